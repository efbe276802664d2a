"""Relations worked through: the house (a roof above walls) and the snowman (a head above a body)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl.testing import check_assess_matches_simulate, check_generate_fully_constrained
from stdlib import shapes

SIZE = (32, 32)


@pytest.fixture(scope="module")
def data():
    return shapes.make_relation_dataset(jax.random.key(0), 10, size=SIZE, noise=0.1)


@pytest.fixture(scope="module")
def classified(data):
    return shapes.classify_scenes(jax.random.key(1), data.images)


@pytest.mark.parametrize("kind", shapes.RELATIONS)
def test_each_model_simulates_and_assesses_alike(kind):
    model = getattr(shapes, kind)(size=SIZE)
    assert model is getattr(shapes, kind)(size=list(SIZE))  # cached: one model, one set of compilations
    check_assess_matches_simulate(model, (), jax.random.key(3))
    check_generate_fully_constrained(model, (), jax.random.key(4))
    choices = model.simulate(jax.random.key(5)).choices
    assert choices["image"].shape == (*SIZE, 3)
    assert {"backdrop/colour", f"{kind}/gap", f"{kind}/shift", f"{kind}/top/at", f"{kind}/top/scale",
            f"{kind}/top/part/colour", f"{kind}/bottom/colour"} <= set(choices.addresses())


def _draws(parts, count=256):
    traces = jax.jit(jax.vmap(parts.simulate))(jax.random.split(jax.random.key(7), count))
    return traces.choices, np.asarray(jax.vmap(shapes.part_centres)(traces.retval))


def test_the_roof_sits_on_the_walls_centred_and_as_wide_in_every_draw():
    choices, centres = _draws(shapes.house_parts)
    roof, walls = centres[:, 0], centres[:, 1]
    scale = np.asarray(choices["top/scale"])  # the roof's width on the canvas
    assert np.all(roof[:, 1] < walls[:, 1])  # y grows down: the roof above the walls
    assert np.all(np.abs(roof[:, 0] - walls[:, 0]) < 0.25 * scale)  # roughly centred
    np.testing.assert_allclose(roof[:, 0] - walls[:, 0], -scale * np.asarray(choices["shift"]), atol=1e-5)
    width = np.asarray(choices["bottom/width"])
    assert np.all((0.75 <= width) & (width <= 1.0))  # the walls about as wide as the roof
    eaves = roof[:, 1] + 0.5 * scale * np.asarray(choices["top/part/height"])  # the roof's base line
    top_of_walls = walls[:, 1] - 0.5 * scale * np.asarray(choices["bottom/height"])
    assert np.all((0.0 <= top_of_walls - eaves) & (top_of_walls - eaves <= 0.1 * scale + 1e-6))  # resting on them
    assert np.all((0.0 < centres) & (centres < 1.0))


def test_the_head_sits_on_a_larger_body_centred_in_every_draw():
    choices, centres = _draws(shapes.snowman_parts)
    head, body = centres[:, 0], centres[:, 1]
    scale = np.asarray(choices["top/scale"])  # the head's diameter on the canvas
    assert np.all(head[:, 1] < body[:, 1])
    assert np.all(np.abs(head[:, 0] - body[:, 0]) < 0.25 * scale)
    assert np.all(np.asarray(choices["bottom/radius"]) > 0.5)  # the body's radius, in head diameters
    distance = body[:, 1] - head[:, 1]  # touching: the sum of the radii, less an overlap of up to 0.15
    radii = scale * (0.5 + np.asarray(choices["bottom/radius"]))
    assert np.all((radii - 0.15 * scale - 1e-6 <= distance) & (distance <= radii + 0.05 * scale + 1e-6))
    assert np.all((0.0 < centres) & (centres < 1.0))


def test_dataset_is_seeded_balanced_and_drawn_from_the_models(data):
    again = shapes.make_relation_dataset(jax.random.key(0), 10, size=SIZE, noise=0.1)
    np.testing.assert_array_equal(data.images, again.images)
    assert data.labels == again.labels and sorted(data.labels) == ["house"] * 5 + ["snowman"] * 5
    assert data.images.shape == (10, *SIZE, 3) and data.images.dtype == np.float32
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0
    for index in (data.labels.index("house"), data.labels.index("snowman")):
        label, choices = data.labels[index], data.choices[index]
        model = getattr(shapes, label)(size=SIZE)
        canvas = model.assess(choices.set("image", jnp.asarray(data.images[index]))).retval
        np.testing.assert_allclose(np.asarray(canvas), data.clean[index], atol=1e-5)
    for label, choices in zip(data.labels, data.choices):
        colours = np.stack([choices["backdrop/colour"], choices[f"{label}/top/part/colour"],
                            choices[f"{label}/bottom/colour"]])
        assert (np.abs(colours[:, None] - colours[None]).max(-1) + np.eye(3)).min() >= 0.25
    noise = data.images - data.clean
    inside = (data.clean > 0.3) & (data.clean < 0.7)  # away from clipping
    assert abs(noise[inside].std() - 0.1) < 0.01


def test_classify_tells_houses_from_snowmen(data, classified):
    assert classified.names == shapes.RELATIONS
    assert classified.probabilities.shape == (10, 2)
    predicted = [classified.names[i] for i in np.asarray(classified.best)]
    correct = sum(p == label for p, label in zip(predicted, data.labels))
    assert correct >= 9, list(zip(predicted, data.labels))
    np.testing.assert_allclose(np.asarray(classified.probabilities).sum(-1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_classify_at_twice_the_noise_and_one_image_at_a_time():
    data = shapes.make_relation_dataset(jax.random.key(1), 40, size=SIZE, noise=0.2)
    result = shapes.classify_scenes(jax.random.key(2), data.images)
    predicted = [result.names[i] for i in np.asarray(result.best)]
    correct = sum(p == label for p, label in zip(predicted, data.labels))
    assert correct >= 38, list(zip(predicted, data.labels))  # 40 of 40 when written
    one = shapes.classify_scenes(jax.random.key(2), data.images[0])  # one image: no batch axis
    assert one.probabilities.shape == (2,) and one.names[int(one.best)] == data.labels[0]


def test_bad_arguments_raise_errors_that_say_what_to_pass():
    with pytest.raises(ppl.errors.ShapeError, match="size must be"):
        shapes.house(size=(4, 4))
    with pytest.raises(ppl.errors.ShapeError, match="size must be"):
        shapes.snowman(size="large")
    with pytest.raises(ppl.errors.ShapeError, match="noise"):
        shapes.house(noise=0.0)
    with pytest.raises(ppl.errors.ShapeError, match="count n"):
        shapes.make_relation_dataset(jax.random.key(0), -1)
    with pytest.raises(ppl.errors.ShapeError, match="noise"):
        shapes.make_relation_dataset(jax.random.key(0), 2, noise=-0.1)
    with pytest.raises(ppl.errors.ShapeError, match="min_contrast"):
        shapes.make_relation_dataset(jax.random.key(0), 2, min_contrast=1.5)
    with pytest.raises(ppl.errors.ShapeError, match=r"\(H, W, 3\)"):
        shapes.classify_scenes(jax.random.key(0), np.zeros(SIZE))
    with pytest.raises(ppl.errors.ShapeError, match="1/255"):
        shapes.classify_scenes(jax.random.key(0), np.full((*SIZE, 3), 200.0))
    with pytest.raises(ppl.errors.ShapeError, match="NaN"):
        shapes.classify_scenes(jax.random.key(0), np.full((*SIZE, 3), np.nan))
