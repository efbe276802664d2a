"""stdlib.digits.read_number: the exact sum over counts and placements, generated numbers read back, bad input."""

import itertools
import math

import jax
import numpy as np
import pytest
from scipy.special import logsumexp

from ppl.errors import NonFiniteError, ShapeError, SupportError
from stdlib import digits
from stdlib.digits import inference as digit_inference
from stdlib.digits import numbers

BOX = 3


def placements(columns, box, n):
    """Every placement of ``n`` non-overlapping boxes of width ``box`` in ``columns`` columns (brute force)."""
    return [starts for starts in itertools.combinations(range(columns - box + 1), n)
            if all(b - a >= box for a, b in zip(starts, starts[1:]))]


@pytest.mark.parametrize("columns", [3, 7, 10])
def test_the_count_recursion_sums_every_placement(columns):
    scores = np.random.default_rng(columns).normal(0.0, 2.0, (columns - BOX + 1, 10))
    forward = numbers._count_evidence(scores, BOX, columns, 3)
    log_counts = numbers._log_placements(columns, BOX, 3)
    for n in range(4):
        found = placements(columns, BOX, n)
        assert log_counts[n] == (math.log(len(found)) if found else -np.inf)
        brute = logsumexp([sum(logsumexp(scores[x]) for x in starts) for starts in found]) if found else -np.inf
        np.testing.assert_allclose(forward[n], brute, rtol=1e-12)


def test_the_readings_are_each_strings_mass_over_placements():
    columns = 8
    scores = np.random.default_rng(0).normal(0.0, 2.0, (columns - BOX + 1, 10))
    beams = numbers._readings(scores, BOX, columns, 2, beam=10**4)  # a beam that holds every string: exact
    for n in (1, 2):
        brute = {}
        for starts in placements(columns, BOX, n):
            for classes in itertools.product(range(10), repeat=n):
                text = "".join(map(str, classes))
                brute[text] = np.logaddexp(brute.get(text, -np.inf), sum(scores[x, c] for x, c in zip(starts, classes)))
        assert set(beams[n]) == set(brute)
        for text, mass in brute.items():
            np.testing.assert_allclose(beams[n][text], mass, rtol=1e-12)
    # a narrow beam drops prefixes: each string it keeps has at most its exact mass, and the best string stays first
    small = numbers._readings(scores, BOX, columns, 2, beam=5)[2]
    assert all(mass <= beams[2][text] + 1e-12 for text, mass in small.items())
    assert max(small, key=small.get) == max(beams[2], key=beams[2].get)


def test_the_best_placement_is_the_viterbi_path():
    columns = 9
    scores = np.random.default_rng(1).normal(0.0, 2.0, (columns - BOX + 1, 10))
    for text in ("4", "07", "123"):
        found = numbers._best_placement(scores, text, BOX, columns)
        brute = max(placements(columns, BOX, len(text)), key=lambda s: sum(scores[x, int(c)] for x, c in zip(s, text)))
        np.testing.assert_array_equal(found, brute)


@pytest.fixture(scope="module")
def pool():
    """The prototypes rendered at their prior pose, three jittered copies of each class: (30, 8, 8)."""
    proto = digits.prototypes((8, 8))
    p = proto.params
    render = jax.vmap(lambda s, m, pose, w, i: digits.render_digit(s[0], m, pose, w, i, (8, 8), proto.supersample))
    shift = np.array([[0.0] * 6, [0.04, 0.0, 0, 0, 0.1, 0], [-0.04, 0.03, 0, 0, -0.1, 0]], np.float32)
    images = [np.asarray(render(p.stroke_mean, p.stroke_mask, p.pose_mean + s, p.width_mean, p.ink_mean)) for s in shift]
    return proto, np.clip(np.concatenate(images), 0.0, 1.0), np.tile(np.arange(10), 3)


def test_make_numbers_is_seeded_and_places_the_digits_where_it_says(pool):
    _, images, labels = pool
    data = digits.make_numbers(jax.random.key(3), 6, images, labels, height=10, gaps=(0, 2))
    again = digits.make_numbers(jax.random.key(3), 6, images, labels, height=10, gaps=(0, 2))
    assert data.texts == again.texts and all(np.array_equal(a, b) for a, b in zip(data.images, again.images))
    for image, text, boxes, sources in zip(data.images, data.texts, data.boxes, data.sources):
        assert image.shape[0] == 10 and 1 <= len(text) <= 4 and boxes.shape == (len(text), 2)
        assert np.all(np.diff(boxes[:, 1]) >= 8)  # left to right, not overlapping
        for (row, column), source, digit in zip(boxes, sources, text):
            np.testing.assert_array_equal(image[row:row + 8, column:column + 8], images[source])
            assert labels[source] == int(digit)
        assert image.sum() == pytest.approx(sum(images[s].sum() for s in sources), rel=1e-5)
    fixed = digits.make_numbers(jax.random.key(4), 5, images, labels, width=40, gaps=(2, 3), noise=0.1)
    for image, boxes in zip(fixed.images, fixed.boxes):
        assert image.shape == (8, 40) and 0.0 <= image.min() and image.max() <= 1.0
        assert np.all(np.diff(boxes[:, 1]) >= 8 + 2)  # gaps of at least 2, even when the width is tight


@pytest.mark.slow  # compiles the stroke fits for a block of windows (about 20 s)
def test_generated_numbers_are_read_back(pool):
    models, images, labels = pool
    data = digits.make_numbers(jax.random.key(0), 6, images, labels, max_digits=3, height=9, gaps=(0, 2))
    budget = digit_inference.Budget(steps=20, restarts=1, keep=2)
    readings = digits.read_numbers(jax.random.key(1), models, data.images, max_digits=3, budget=budget)
    for reading, text, boxes in zip(readings, data.texts, data.boxes):
        assert reading.text == text, (reading.alternatives, text)
        np.testing.assert_array_equal(reading.boxes, boxes)
        assert reading.count_posterior.shape == (4,) and reading.count_posterior[len(text)] > 0.9
        assert reading.alternatives[0] == (reading.text, reading.probability)
        assert sum(p for _, p in reading.alternatives) <= 1.0 + 1e-9
        assert [p for _, p in reading.alternatives] == sorted((p for _, p in reading.alternatives), reverse=True)
        assert reading.digit_probabilities.shape == (len(text), 10)
    one = digits.read_number(jax.random.key(1), models, data.images[0], max_digits=3, budget=budget)
    assert one.text == data.texts[0]


@pytest.mark.parametrize(
    "image, error, match",
    [
        (np.zeros((2, 8, 20)), ShapeError, "one grey image"),
        (np.zeros((8, 6)), ShapeError, "at least 8 high and 8 wide"),
        (np.full((8, 20), 255.0), SupportError, "image / 255"),
        (np.full((8, 20), np.nan), NonFiniteError, "NaN"),
    ],
)
def test_bad_number_images_raise_clear_errors(pool, image, error, match):
    with pytest.raises(error, match=match):
        digits.read_number(jax.random.key(0), pool[0], image)


def test_bad_arguments_raise_clear_errors(pool):
    models, images, labels = pool
    with pytest.raises(ShapeError, match="max_digits"):
        digits.read_number(jax.random.key(0), models, np.zeros((8, 20)), max_digits=0)
    with pytest.raises(ShapeError, match="DigitModels"):
        digits.read_number(jax.random.key(0), {"a": 1}, np.zeros((8, 20)))
    with pytest.raises(ShapeError, match="for one \\(H, W\\) image use read_number"):
        digits.read_numbers(jax.random.key(0), models, np.zeros((8, 20)))
    with pytest.raises(ShapeError, match="gaps"):
        digits.make_numbers(jax.random.key(0), 2, images, labels, gaps=(3, 1))
    with pytest.raises(ShapeError, match="height"):
        digits.make_numbers(jax.random.key(0), 2, images, labels, height=5)


def test_a_reading_s_probabilities_add_up_to_the_count_posterior(pool):
    """_read_one on synthetic window evidences (row offsets R = 2): P(text) summed over the strings of each
    length is P(count), and the evidence is the brute-force sum over counts, placements, rows and classes."""
    models = pool[0]
    rng = np.random.default_rng(7)
    image = np.zeros((9, 19), np.float32)
    blank = numbers._blank_log_prob(models, [image])[0]
    log_evidence = rng.normal(0.0, 3.0, (2, 12, 10)) + numbers._windows(blank, (8, 8)).sum(axis=(-2, -1))[..., None]
    reading = numbers._read_one(log_evidence, blank, models.size, 3, beam=10**4, alternatives=10**4)
    np.testing.assert_allclose(reading.count_posterior.sum(), 1.0, rtol=1e-12)
    by_count = np.zeros(4)
    for text, probability in reading.alternatives:
        by_count[len(text)] += probability
    np.testing.assert_allclose(by_count, reading.count_posterior, rtol=1e-9, atol=1e-12)
    relative = log_evidence - numbers._windows(blank, (8, 8)).sum(axis=(-2, -1))[..., None]
    terms = []
    for n in (1, 2):  # three boxes of 8 do not fit in 19 columns
        found = placements(19, 8, n)
        for starts in found:
            box = [logsumexp(relative[:, x, :]) - math.log(2) - math.log(10) for x in starts]
            terms.append(sum(box) - math.log(len(found)) - math.log(2))
    np.testing.assert_allclose(reading.log_evidence, blank.sum() + logsumexp(terms), rtol=1e-9)
    assert reading.count_posterior[3] == 0.0
