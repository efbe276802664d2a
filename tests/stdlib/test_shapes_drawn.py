"""stdlib.shapes.drawn: scenes drawn by Pillow and matplotlib, whose ground truth means what make_dataset's does."""

import sys

import jax
import numpy as np
import pytest

import ppl
from stdlib import shapes
from stdlib.shapes import drawn
from stdlib.shapes.primitives import BOUNDS, CENTRE

SIZE = (32, 32)
DRAWERS = {"pillow": drawn.draw_with_pillow, "matplotlib": drawn.draw_with_matplotlib}


@pytest.fixture(scope="module", params=sorted(DRAWERS))
def drawer(request):
    return DRAWERS[request.param]


def test_drawings_are_seeded_and_the_ground_truth_is_in_range(drawer):
    data = drawer(3, 8, size=SIZE, max_shapes=3)
    np.testing.assert_array_equal(data.images, drawer(3, 8, size=SIZE, max_shapes=3).images)
    assert not np.array_equal(data.images, drawer(4, 8, size=SIZE, max_shapes=3).images)
    np.testing.assert_array_equal(drawer(jax.random.key(1), 2, size=SIZE).images,
                                  drawer(jax.random.key(1), 2, size=SIZE).images)
    assert data.images.shape == data.clean.shape == (8, *SIZE, 3) and data.images.dtype == np.float32
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0
    assert data.backgrounds.shape == (8, 3) and set(data.counts) <= {1, 2, 3}
    assert [len(scene) for scene in data.shapes] == list(data.counts)
    for scene in data.shapes:
        assert [s.depth for s in scene] == list(range(len(scene)))
        for shape in scene:
            bounds = BOUNDS[shape.kind]
            assert np.all((CENTRE[0] <= shape.centre) & (shape.centre <= CENTRE[1]))
            assert np.all((bounds.low <= shape.size) & (shape.size <= bounds.high))
            assert 0.0 <= shape.angle <= bounds.period and np.all((0 <= shape.colour) & (shape.colour <= 1))
            assert shape.kind != "circle" or shape.size[0] == shape.size[1]
    noise = data.images - data.clean
    inside = (data.clean > 0.2) & (data.clean < 0.8)  # away from clipping
    assert abs(noise[inside].std() - 0.03) < 0.005


def test_the_drawing_is_the_scene_model_drawing_of_the_ground_truth(drawer):
    """The same shapes drawn by the scene model's own rasteriser differ only along edges (where each software
    has its own anti-aliasing), and where a shape is seen whole the pixel is its colour."""
    data = drawer(7, 10, size=SIZE, max_shapes=2)
    seen = 0
    for scene, background, clean in zip(data.shapes, data.backgrounds, data.clean):
        colours = np.array([background] + [s.colour for s in scene])
        gaps = np.abs(colours[:, None] - colours[None]).max(-1) + np.eye(len(colours))
        assert gaps.min() >= 0.25
        canvas, alphas = shapes.render_shapes(scene, background, SIZE)
        difference = np.abs(canvas - clean).max(axis=-1)
        # a shape one pixel off, or turned the other way, fails these (max 0.35-0.93, 0.5-10% of pixels)
        assert difference.max() < 0.45 and (difference > 0.25).mean() < 0.015 and difference.mean() < 0.035
        np.testing.assert_allclose(clean[0, 0], background, atol=0.01)  # the corners are backdrop
        assert np.all(shapes.visible_fractions(alphas) >= 0.45)  # the rule, measured on the other drawing
        for index, shape in enumerate(scene):
            column, row = np.minimum((shape.centre * np.array(SIZE[::-1])).astype(int), np.array(SIZE[::-1]) - 1)
            in_front = np.prod(1.0 - alphas[index + 1:, row, column])
            if alphas[index, row, column] * in_front > 0.99:
                np.testing.assert_allclose(clean[row, column], shape.colour, atol=0.03)
                seen += 1
    assert seen >= 4


def test_pillow_and_matplotlib_draw_a_line_of_the_model_thickness():
    line = [shapes.Shape("line", np.array([0.5, 0.5]), np.array([0.6, 0.06]), 0.5, np.ones(3))]
    reference = shapes.render_shapes(line, np.zeros(3), (64, 64))[1][0].sum()
    for painter in (drawn._pillow_painter(4), drawn._matplotlib_painter((64, 64))):
        assert abs(painter(line, np.zeros(3), (64, 64))[1][0].sum() / reference - 1.0) < 0.08


def test_bad_arguments_and_a_missing_pillow_raise_ppl_errors(monkeypatch):
    for drawer in DRAWERS.values():
        with pytest.raises(ppl.errors.ShapeError, match="max_shapes"):
            drawer(0, 1, max_shapes=0)
        with pytest.raises(ppl.errors.ShapeError, match="kinds"):
            drawer(0, 1, kinds=("hexagon",))
        with pytest.raises(ppl.errors.ShapeError, match="key_or_seed"):
            drawer("seed", 1)
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now fails
    with pytest.raises(ppl.errors.MissingDependencyError, match=r"\.\[examples\]") as error:
        drawn.draw_with_pillow(0, 1)
    assert isinstance(error.value, ImportError)
