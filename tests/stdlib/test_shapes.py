"""stdlib.shapes: the primitives' rendering and gradients, the scene model, seeded datasets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from stdlib import render, shapes

SIZE = (24, 24)
LATENTS = {  # one of each kind, well inside the canvas
    "circle": ([0.5, 0.45], [0.4, 0.4], 0.0),
    "ellipse": ([0.45, 0.5], [0.5, 0.3], 0.4),
    "rectangle": ([0.5, 0.55], [0.4, 0.3], 0.3),
    "triangle": ([0.5, 0.5], [0.5, 0.4], 0.2),
    "line": ([0.5, 0.5], [0.6, 0.06], 0.7),
}


def _canvas(kind, centre, size, angle, colour):
    painter = shapes.painter_of(kind, centre, size, angle, colour)
    return ppl.render(painter, SIZE, channels=3, background=jnp.array([0.2, 0.3, 0.4]), softness=0.7)


@pytest.mark.parametrize("kind", shapes.KINDS)
def test_rendering_gradients_match_finite_differences(kind):
    """d/d(latents) of a random projection of the canvas, by autodiff and by central differences (float32:
    steps of 2e-3 canvas units, 1/20 of a pixel)."""
    centre, size, angle = LATENTS[kind]
    weights = jax.random.normal(jax.random.key(0), (*SIZE, 3))
    flat = jnp.asarray(centre + size + [angle] + [0.9, 0.5, 0.1], jnp.float32)

    def projection(x):
        return jnp.sum(weights * _canvas(kind, x[:2], x[2:4], x[4], x[5:8]))

    gradient = np.asarray(jax.grad(projection)(flat))
    step = 2e-3
    numeric = np.array([(projection(flat.at[i].add(step)) - projection(flat.at[i].add(-step))) / (2 * step)
                        for i in range(flat.shape[0])])
    used = np.ones(8, bool)
    if kind == "circle":
        used[3] = used[4] = False  # a circle reads one diameter and has no angle
    np.testing.assert_allclose(gradient[used], numeric[used], rtol=0.03, atol=0.03 * np.abs(numeric).max())
    np.testing.assert_allclose(gradient[~used], 0.0, atol=1e-6)


@pytest.mark.parametrize("kind", shapes.KINDS)
def test_each_primitive_covers_its_area(kind):
    """The summed coverage is the shape's area (soft edges are symmetric; 48 pixels, so the line is ~3 wide)."""
    centre, size, angle = LATENTS[kind]
    grid = (48, 48)
    alpha = shapes.painter_of(kind, centre, size, angle, [1.0, 0.0, 0.0]).paint(render.pixel_centres(grid),
                                                                                0.5 / grid[0])[1]
    width, height = size
    area = {"circle": np.pi * width**2 / 4, "ellipse": np.pi * width * height / 4, "rectangle": width * height,
            "triangle": width * height / 2, "line": width * height + np.pi * height**2 / 4}[kind]
    assert abs(float(alpha.sum()) / (grid[0] * grid[1]) - area) < 0.05 * area


def test_scene_model_simulates_scores_and_draws_shapes_in_depth_order():
    model = shapes.scene_model(max_shapes=2, size=(16, 16))
    trace = model.simulate(jax.random.key(3))  # eager: faster than compiling it here
    choices = trace.choices
    assert choices["image"].shape == (16, 16, 3)
    assert {"shapes/count", "shapes/parts/index", "backdrop/colour", "shapes/parts/circle/centre"} <= set(
        choices.addresses())
    assessed = jax.jit(model.assess)(choices)
    np.testing.assert_allclose(float(assessed.log_density), float(trace.score), rtol=1e-5)
    # two opaque rectangles, the second over the first: the overlap shows the second's colour
    first = shapes.Shape("rectangle", np.array([0.4, 0.5]), np.array([0.5, 0.5]), 0.0, np.array([1.0, 0.0, 0.0]))
    second = first._replace(centre=np.array([0.6, 0.5]), colour=np.array([0.0, 0.0, 1.0]), depth=1)
    canvas, alphas = shapes.render_shapes([first, second], [1.0, 1.0, 1.0], (64, 64))
    np.testing.assert_allclose(canvas[32, 32], [0.0, 0.0, 1.0], atol=1e-3)
    np.testing.assert_allclose(canvas[32, 16], [1.0, 0.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(shapes.visible_fractions(alphas), [0.4, 1.0], atol=0.03)  # 0.2 of 0.5 uncovered


def test_scene_model_first_built_inside_jit_serves_later_programs():
    """scene_model is cached: built first under a trace, it must hold concrete arrays (ppl.many's count and
    ppl.either's kind probabilities, a fixed background), or every later program using it would fail with a
    leaked tracer."""
    settings = dict(max_shapes=1, size=(6, 7), background=(0.2, 0.3, 0.4))

    @jax.jit
    def inside(key):
        return shapes.scene_model(**settings).simulate(key).choices["image"].sum()

    first = float(inside(jax.random.key(0)))
    later = shapes.scene_model(**settings).simulate(jax.random.key(0)).choices["image"].sum()
    np.testing.assert_allclose(float(later), first, rtol=1e-5)


def test_make_dataset_is_seeded_and_every_shape_is_seen():
    data = shapes.make_dataset(jax.random.key(5), 12, size=(32, 32), max_shapes=3, noise=0.1)
    again = shapes.make_dataset(jax.random.key(5), 12, size=(32, 32), max_shapes=3, noise=0.1)
    np.testing.assert_array_equal(data.images, again.images)
    assert data.images.shape == (12, 32, 32, 3) and 0.0 <= data.images.min() and data.images.max() <= 1.0
    assert set(data.counts) <= {1, 2, 3} and len(set(data.counts)) > 1
    for scene, background, clean in zip(data.shapes, data.backgrounds, data.clean):
        canvas, alphas = shapes.render_shapes(scene, background, (32, 32))
        np.testing.assert_allclose(canvas, clean, atol=1e-5)
        assert np.all(shapes.visible_fractions(alphas) >= 0.5)
        colours = np.array([background] + [s.colour for s in scene])
        gaps = np.abs(colours[:, None] - colours[None]).max(-1) + np.eye(len(colours))
        assert gaps.min() >= 0.25
    noise = data.images - data.clean
    inside = (data.clean > 0.3) & (data.clean < 0.7)  # away from clipping
    assert abs(noise[inside].std() - 0.1) < 0.01


def test_bad_arguments_raise_shape_errors():
    with pytest.raises(ppl.errors.ShapeError, match="max_shapes"):
        shapes.scene_model(max_shapes=0)
    with pytest.raises(ppl.errors.ShapeError, match="max_shapes"):
        shapes.make_dataset(jax.random.key(0), 2, max_shapes=0)
    with pytest.raises(ppl.errors.ShapeError, match="kinds"):
        shapes.make_dataset(jax.random.key(0), 2, kinds=("hexagon",))
    with pytest.raises(ValueError, match="kinds are"):
        shapes.painter_of("hexagon", [0.5, 0.5], [0.1, 0.1], 0.0, [1.0, 1.0, 1.0])


def test_images_are_checked_and_normalised():
    grey = np.linspace(0, 255, 64).reshape(8, 8)
    lifted = shapes.check_image(grey)
    assert lifted.shape == (8, 8, 3) and lifted.max() == 1.0 and np.all(lifted[..., 0] == lifted[..., 2])
    rgba = np.random.default_rng(0).uniform(size=(8, 8, 4))
    assert shapes.check_image(rgba).shape == (8, 8, 3)
    np.testing.assert_allclose(shapes.check_image(np.full((8, 8), 5.0), value_range=(0, 10)), 0.5)
    for bad, match in [(np.zeros((8, 8, 2)), "must be"), (np.zeros((2, 8, 8, 3)), "must be"),
                       (np.full((8, 8, 3), np.nan), "NaN"), (np.full((8, 8, 3), -0.5), "neither"),
                       (np.full((8, 8, 3), 300.0), "neither"), (np.array([["a"] * 8] * 8), "numbers")]:
        with pytest.raises(ppl.errors.ShapeError, match=match):
            shapes.check_image(bad)
    with pytest.raises(ppl.errors.ShapeError, match="outside"):
        shapes.check_image(np.full((8, 8), 5.0), value_range=(0, 1))
    with pytest.raises(ppl.errors.ShapeError, match="max_shapes"):
        shapes.parse(jax.random.key(0), np.zeros((8, 8, 3)), max_shapes=0)


@pytest.mark.slow  # ~1.5 minutes: a ~50 s compile, then ten 64x64 scenes of 1-3 shapes
def test_parse_recovers_count_and_kinds_of_generated_scenes():
    """The issue's check: count and kinds right in at least 9 of 10 seeds (these ten reach 9: the miss is a
    thin, faint line the blob finder does not see), with the anytime property and the scene's bookkeeping.
    See docs/shapes.md."""
    data = shapes.make_dataset(jax.random.key(7), 10, size=(64, 64), max_shapes=3)
    right, evidences = 0, []
    for index in range(10):
        scene = shapes.parse(jax.random.key(index), data.images[index], max_shapes=3)
        truth = sorted(s.kind for s in data.shapes[index])
        right += sorted(s.kind for s in scene.shapes) == truth
        assert np.all(np.diff(scene.history) > 0) and abs(scene.count_posterior.sum() - 1) < 1e-6
        assert scene.kind_probabilities.shape == (scene.count, len(shapes.KINDS))
        assert scene.render().shape == (64, 64, 3)
        evidences.append(scene.log_evidence)
    assert right >= 9, right
    # anytime: a smaller budget evaluates a prefix of the same candidates, so its best is never higher
    short = shapes.parse(jax.random.key(0), data.images[0], max_shapes=3, budget=3)
    assert short.log_evidence <= evidences[0] + 1e-6


def test_the_backdrop_is_painted_behind_the_shapes():
    """A red square on a blue backdrop: the square's pixels are red and the corners blue (the backdrop part is
    painted first; put after the shapes, it would cover them)."""
    model = shapes.scene_model(max_shapes=1, size=(16, 16))
    rectangle = list(shapes.PRIMITIVES).index("rectangle")
    constraints = {"shapes/count": 1, "shapes/parts/index": jnp.array([rectangle]),
                   "shapes/parts/rectangle/centre": jnp.array([[0.5, 0.5]]),
                   "shapes/parts/rectangle/size": jnp.array([[0.5, 0.5]]),
                   "shapes/parts/rectangle/angle": jnp.array([0.0]),
                   "shapes/parts/rectangle/colour": jnp.array([[1.0, 0.0, 0.0]]),
                   "backdrop/colour": jnp.array([0.0, 0.0, 1.0])}
    canvas = np.asarray(model.generate(jax.random.key(0), constraints).trace.retval)
    np.testing.assert_allclose(canvas[8, 8], [1.0, 0.0, 0.0], atol=0.02)
    for corner in (canvas[0, 0], canvas[0, -1], canvas[-1, 0], canvas[-1, -1]):
        np.testing.assert_allclose(corner, [0.0, 0.0, 1.0], atol=0.02)
