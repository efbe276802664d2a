"""Reading whole numbers: digit models glued side by side, with an unknown count and unknown positions.

A number image ``(H, W)`` (grey, in ``[0, 1]``, at least as tall and as wide as
one digit of the models' size ``(h, w)``) is explained by this generative model:

* a count ``n``, uniform on ``1..max_digits`` (over the counts that fit in ``W``);
* given ``n``, a placement: ``n`` boxes of ``h x w`` pixels, left to right, not
  overlapping, every placement of them on the canvas equally likely (each box's
  row offset uniform on ``0..H-h`` as well);
* in each box, a digit of a class uniform on 0-9, drawn by that class's stroke
  model (:func:`~stdlib.digits.model.digit_model`: strokes, pose, pen, ink and
  the robust pixel likelihood, all of it);
* every pixel outside the boxes is blank: the same pixel likelihood around a
  rendering of no ink (each pixel's noise level summed out on its own).

(Inside a box the digit model shares one noise level across the box and may
hold a blot; outside, each pixel's level is its own. On clean scans the two
agree; on heavily noisy images, untested here, a box over plain noise gains
from the shared level, which biases the count upwards.)

Because the boxes do not overlap, the likelihood factorises: ``log p(image |
n, placement, classes) = log p_blank(image) + sum_i [log p(box_i | class_i) -
log p_blank(box_i)]``. :func:`read_numbers` therefore asks every class model to
explain every ``h x w`` window of the image (one batched
``ppl.infer.classify`` call, the evidence of each being the Laplace
approximation at the stroke model's MAP, exactly as :func:`~stdlib.digits.classify`
scores one digit) and then sums over **every** count and placement exactly, by
a forward recursion over the columns (a semi-Markov segmentation): the count
posterior is exact given the window evidences, and the readings (digit strings)
are ranked by their posterior mass summed over placements, with a beam of the
best prefixes per column (exact when the beam holds every string with mass).
No search is needed: the recursion visits every placement, which is more than a
stochastic search over structures would (``ppl.infer.search`` is for spaces
that cannot be enumerated).

Example (scikit-learn's digits need the ``examples`` extra)::

    >>> import jax
    >>> from stdlib import digits
    >>> images, labels = digits.load_sklearn()                                   # doctest: +SKIP
    >>> models = digits.fit(jax.random.key(0), images[:100], labels[:100])       # doctest: +SKIP
    >>> data = digits.make_numbers(jax.random.key(1), 3, images[1000:], labels[1000:])  # doctest: +SKIP
    >>> reading = digits.read_number(jax.random.key(2), models, data.images[0])  # doctest: +SKIP
    >>> reading.text, data.texts[0]                                              # doctest: +SKIP
    ('407', '407')
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp

from ppl.errors import NonFiniteError, ShapeError, SupportError
from ppl.infer.progress import progress_bar
from ppl.validation import check_key
from stdlib.digits.inference import classify
from stdlib.digits.model import DigitModels, as_pixel_array, check_images, check_labels

__all__ = ["Numbers", "Reading", "make_numbers", "read_number", "read_numbers"]


class Reading(NamedTuple):
    """What a number image says, with uncertainty.

    Attributes:
      text: the most probable digit string, e.g. ``"407"``.
      probability: its posterior probability (placements summed out); exact when the beam holds every
        string with mass, else a lower bound (a placement whose prefix left the beam is not counted).
      alternatives: ``[(text, probability), ...]``, best first (``alternatives[0]`` is ``(text, probability)``),
        each a lower bound like ``probability``.
      count_posterior: ``(max_digits + 1,)`` ``P(count = n | image)`` (index 0 is always 0).
      boxes: ``(len(text), 2)`` int ``(row, column)`` of each digit's top-left corner in the best placement of
        ``text``.
      digit_probabilities: ``(len(text), 10)`` each of those boxes' class posterior.
      log_evidence: ``log p(image)`` under the number model (windows' Laplace evidences, placements summed).
    """

    text: str
    probability: float
    alternatives: list
    count_posterior: np.ndarray
    boxes: np.ndarray
    digit_probabilities: np.ndarray
    log_evidence: float


class Numbers(NamedTuple):
    """Seeded number images with their ground truth (:func:`make_numbers`).

    Attributes:
      images: ``n`` grey images ``(H, W_i)`` float32 in ``[0, 1]`` (widths differ unless ``width`` was given).
      texts: ``n`` digit strings.
      boxes: ``n`` int arrays ``(len(text), 2)``: each digit's top-left ``(row, column)``.
      sources: ``n`` int arrays: the index (into the pool passed in) of each digit's image.
    """

    images: list
    texts: list
    boxes: list
    sources: list


# ---------------------------------------------------------------------------
# Generating number images
# ---------------------------------------------------------------------------


def _check_range(name: str, value, low: int = 0) -> tuple[int, int]:
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
            or not low <= value[0] <= value[1]):
        raise ShapeError(f"{name} must be a pair (min, max) of ints with {low} <= min <= max; got {value!r}.")
    return int(value[0]), int(value[1])


def check_max_digits(max_digits) -> int:
    if isinstance(max_digits, bool) or not isinstance(max_digits, (int, np.integer)) or max_digits < 1:
        raise ShapeError(f"max_digits must be an int >= 1 (the most digits a number may have); got {max_digits!r}.")
    return int(max_digits)


def make_numbers(key: jax.Array, n: int, images, labels, *, max_digits: int = 4, min_digits: int = 1,
                 height: int | None = None, width: int | None = None, gaps=(0, 3), margins=(0, 3),
                 noise: float = 0.0) -> Numbers:
    """``n`` images of ``min_digits..max_digits`` digits side by side, drawn from a pool of digit images.

    Each image: a count uniform on ``min_digits..max_digits``; that many digits drawn uniformly from the pool
    (``images (N, h, w)``, ``labels (N,)``; pass images you did not fit the models on); gaps between
    neighbours uniform on ``gaps`` pixels (0: touching); blank margins uniform on ``margins`` pixels left
    and right (or, with ``width``, the slack spread at random); each digit's row offset uniform on
    ``0..height - h`` (``height`` defaults to ``h``: no vertical jitter); Gaussian ``noise``, clipped.

    Example::

        >>> import jax, numpy as np
        >>> pool = np.zeros((10, 8, 8), np.float32); pool[:, 2:6, 3:5] = 1.0
        >>> data = make_numbers(jax.random.key(0), 2, pool, np.arange(10), height=10)
        >>> [image.shape[0] for image in data.images], all(len(t) == len(b) for t, b in zip(data.texts, data.boxes))
        ([10, 10], True)
    """
    check_key(key, "digits.make_numbers")
    pool = check_images(images)
    labels = check_labels(labels, pool.shape[0])
    max_digits = check_max_digits(max_digits)
    if isinstance(min_digits, bool) or not isinstance(min_digits, (int, np.integer)) or not 1 <= min_digits <= max_digits:
        raise ShapeError(f"min_digits must be an int in 1..max_digits={max_digits}; got {min_digits!r}.")
    if not (isinstance(n, (int, np.integer)) and n >= 0):
        raise ShapeError(f"make_numbers needs a count n >= 0; got {n!r}.")
    gap_low, gap_high = _check_range("gaps", gaps)
    margin_low, margin_high = _check_range("margins", margins)
    h, w = pool.shape[1:]
    height = h if height is None else int(height)
    if height < h:
        raise ShapeError(f"height must be at least the digits' height {h}; got {height}.")
    if width is not None and int(width) < max_digits * w + (max_digits - 1) * gap_low:
        raise ShapeError(f"width {width} cannot hold {max_digits} digits of width {w} with gaps >= {gap_low}; "
                         f"use width >= {max_digits * w + (max_digits - 1) * gap_low}.")
    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
    out = Numbers([], [], [], [])
    for _ in range(n):
        count = int(rng.integers(min_digits, max_digits + 1))
        sources = rng.integers(0, pool.shape[0], size=count)
        spaces = rng.integers(gap_low, gap_high + 1, size=count - 1)
        if width is None:
            left, right = rng.integers(margin_low, margin_high + 1, size=2)
            canvas_width = int(left + right + count * w + spaces.sum())
        else:
            canvas_width = int(width)
            slack = canvas_width - count * w - int(spaces.sum())
            if slack < 0:  # the drawn gaps do not fit: the narrowest allowed (the width check makes them fit)
                spaces = np.full_like(spaces, gap_low)
                slack = canvas_width - count * w
            left = int(rng.integers(0, slack + 1))
        columns = left + np.concatenate([[0], np.cumsum(spaces + w)])[:count]
        rows = rng.integers(0, height - h + 1, size=count)
        canvas = np.zeros((height, canvas_width), np.float32)
        for source, row, column in zip(sources, rows, columns):
            canvas[row:row + h, column:column + w] = np.maximum(canvas[row:row + h, column:column + w], pool[source])
        if noise > 0:
            canvas = np.clip(canvas + rng.normal(0.0, noise, canvas.shape), 0.0, 1.0).astype(np.float32)
        out.images.append(canvas)
        out.texts.append("".join(str(int(labels[s])) for s in sources))
        out.boxes.append(np.stack([rows, columns], axis=1).astype(np.int32))
        out.sources.append(sources.astype(np.int32))
    return out


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def check_number_image(image, size) -> np.ndarray:
    """Validate one number image: grey ``(H, W)``, ``H >= h`` and ``W >= w``, finite, in ``[0, 1]``."""
    array = as_pixel_array(image)
    h, w = size
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ShapeError(f"read_number takes one grey image (H, W); got an array of shape {array.shape}. "
                         "For a batch use read_numbers(key, models, [image, ...]); convert colour images to grey "
                         "first (e.g. image.mean(-1)).")
    if array.shape[0] < h or array.shape[1] < w:
        raise ShapeError(f"the models read {h}x{w} digits, so the image must be at least {h} high and {w} wide; "
                         f"got {array.shape[0]}x{array.shape[1]}. Resize it so one digit is {h}x{w} pixels.")
    if array.dtype.kind not in "fiu":
        raise ShapeError(f"the image must hold numbers (floats in [0, 1]); got dtype {array.dtype}.")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise NonFiniteError("the image contains NaN or inf; remove or impute those pixels first.")
    if array.min() < 0.0 or array.max() > 1.0:
        raise SupportError(f"pixel values must lie in [0, 1]; got [{array.min():.4g}, {array.max():.4g}]. "
                           "Scale the image first (e.g. image / 255 for 8-bit, image / 16 for load_digits).")
    return array


def _windows(image: np.ndarray, size) -> np.ndarray:
    """``(H - h + 1, W - w + 1, h, w)``: every ``h x w`` window of ``image``."""
    return np.lib.stride_tricks.sliding_window_view(image, size)


_BLANK_PAD = 1024


@jax.jit
def _blank_program(values, params):
    """``(P,)`` each pixel's ``log p`` around no ink, its noise level summed out (one compiled program)."""
    from stdlib.digits.model import pixels

    per_level = pixels(jnp.zeros(values.shape), params, ()).level_log_prob(values)  # (K, P)
    return jax.nn.logsumexp(per_level + jnp.log(params.noise_probs)[:, None], axis=0)


def _blank_log_prob(models: DigitModels, images: list) -> list:
    """Per image ``(H, W)`` float64: each pixel's ``log p`` under the pixel likelihood around no ink.

    (Each pixel's noise level is summed out on its own; one call for all the images' pixels.)
    """
    values = np.concatenate([image.ravel() for image in images])
    padded = -(-values.size // _BLANK_PAD) * _BLANK_PAD  # few distinct shapes: few compilations
    values = np.concatenate([values, np.zeros(padded - values.size, values.dtype)])
    flat = np.asarray(_blank_program(jnp.asarray(values), models.of(0)), np.float64)[:sum(i.size for i in images)]
    ends = np.cumsum([image.size for image in images])[:-1]
    return [part.reshape(image.shape) for part, image in zip(np.split(flat, ends), images)]


def _box_scores(relative: np.ndarray) -> np.ndarray:
    """``(C, 10)``: ``log`` of a box at each column holding each class, relative to blank pixels.

    ``relative (R, C, 10)``: each window's evidence minus its pixels' blank ``log p`` (``R`` row offsets,
    ``C`` column offsets). Row offsets are summed out (uniform prior), and the class prior (uniform) is included.
    """
    return logsumexp(relative, axis=0) - math.log(relative.shape[0]) - math.log(10)


def _log_placements(columns: int, box: int, max_digits: int) -> np.ndarray:
    """``(max_digits + 1,)``: ``log`` of the number of placements of ``n`` boxes (``-inf`` where none fit)."""
    free = [columns - n * box for n in range(max_digits + 1)]
    return np.array([math.log(math.comb(f + n, n)) if f >= 0 else -np.inf for n, f in enumerate(free)])


def _count_evidence(scores: np.ndarray, box: int, columns: int, max_digits: int) -> np.ndarray:
    """``(max_digits + 1,)``: ``log sum`` over placements of ``n`` boxes of ``exp(sum of box scores)``."""
    box_total = logsumexp(scores, axis=1)  # (positions,)
    forward = np.full((max_digits + 1, columns + 1), -np.inf)
    forward[0, :] = 0.0
    for j in range(1, columns + 1):
        forward[1:, j] = forward[1:, j - 1]
        if j >= box:
            forward[1:, j] = np.logaddexp(forward[1:, j], forward[:-1, j - box] + box_total[j - box])
    return forward[:, columns]


def _readings(scores: np.ndarray, box: int, columns: int, max_digits: int, beam: int) -> list[dict]:
    """Per count ``n``, ``{text: log mass}`` summed over placements (the ``beam`` best prefixes kept per column)."""
    # beams[m][j]: {text of m digits: log sum over placements of m boxes in columns [0, j)}
    beams = [[{"": 0.0} for _ in range(columns + 1)]]
    order = np.argsort(-scores, axis=1)
    for m in range(1, max_digits + 1):
        row = [{} for _ in range(columns + 1)]
        for j in range(columns + 1):
            merged = dict(row[j - 1]) if j >= 1 else {}
            if j >= box:
                start = j - box
                for prefix, mass in beams[m - 1][start].items():
                    for c in order[start][: min(10, beam)]:
                        text = prefix + str(c)
                        value = mass + scores[start, c]
                        merged[text] = np.logaddexp(merged[text], value) if text in merged else value
            if len(merged) > beam:
                kept = sorted(merged.items(), key=lambda item: -item[1])[:beam]
                merged = dict(kept)
            row[j] = merged
        beams.append(row)
    return [beams[m][columns] for m in range(max_digits + 1)]


def _best_placement(scores: np.ndarray, text: str, box: int, columns: int) -> np.ndarray:
    """The columns of the most probable placement of ``text``'s boxes (Viterbi)."""
    n = len(text)
    best = np.full((n + 1, columns + 1), -np.inf)
    best[0, :] = 0.0
    took = np.zeros((n + 1, columns + 1), bool)
    for m in range(1, n + 1):
        c = int(text[m - 1])
        for j in range(columns + 1):
            skip = best[m, j - 1] if j >= 1 else -np.inf
            place = best[m - 1, j - box] + scores[j - box, c] if j >= box else -np.inf
            took[m, j] = place > skip
            best[m, j] = max(skip, place)
    starts, j = [], columns
    for m in range(n, 0, -1):
        while not took[m, j]:
            j -= 1
        starts.append(j - box)
        j -= box
    return np.array(starts[::-1], np.int64)


def _read_one(log_evidence: np.ndarray, blank: np.ndarray, size, max_digits: int, beam: int,
              alternatives: int) -> Reading:
    """One image's :class:`Reading` from its windows' ``log_evidence (R, C, 10)`` and pixels' blank ``log p``."""
    w = size[1]
    relative = log_evidence - _windows(blank, size).sum(axis=(-2, -1))[..., None]  # (R, C, 10)
    scores = _box_scores(relative)  # (C, 10)
    columns = blank.shape[1]
    log_placements = _log_placements(columns, w, max_digits)
    fits = np.isfinite(log_placements[1:])
    log_prior = np.full(max_digits + 1, -np.inf)
    log_prior[1:][fits] = -math.log(fits.sum())  # count uniform over the counts that fit
    per_count = np.full(max_digits + 1, -np.inf)
    possible = np.isfinite(log_prior)
    per_count[possible] = (_count_evidence(scores, w, columns, max_digits)[possible] - log_placements[possible]
                           + log_prior[possible])
    log_normaliser = logsumexp(per_count)
    count_posterior = np.exp(per_count - log_normaliser)
    ranked = []
    for n, texts in enumerate(_readings(scores, w, columns, max_digits, beam)):
        if n == 0 or not np.isfinite(log_prior[n]):
            continue
        ranked += [(text, mass - log_placements[n] + log_prior[n] - log_normaliser) for text, mass in texts.items()]
    ranked.sort(key=lambda item: -item[1])
    top = [(text, float(np.exp(log_mass))) for text, log_mass in ranked[:alternatives]]
    text, probability = top[0]
    starts = _best_placement(scores, text, w, columns)
    rows = np.array([int(np.argmax(relative[:, x, int(c)])) for x, c in zip(starts, text)], np.int64)
    digit_log = scores[starts]
    digit_probabilities = np.exp(digit_log - logsumexp(digit_log, axis=1, keepdims=True))
    blank_total = float(blank.sum())
    return Reading(text, probability, top, count_posterior, np.stack([rows, starts], axis=1), digit_probabilities,
                   blank_total + float(log_normaliser))


BLOCK = 64  # windows per classify call


def window_evidence(key: jax.Array, models: DigitModels, windows: np.ndarray, budget: Any = None, *,
                    block: int = BLOCK, progress: bool | None = None) -> np.ndarray:
    """``(N, 10)`` float64: each class's ``log p(window | class)`` for ``windows (N, h, w)``.

    ``digits.classify`` on blocks of exactly ``block`` windows (the last padded with copies), block ``b``
    with ``fold_in(key, b)``: one compiled program serves every call.
    """
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ShapeError(f"block must be an int >= 1 (windows per compiled call); got {block!r}.")
    total = windows.shape[0]
    padded = -(-total // block) * block
    windows = np.concatenate([windows, np.broadcast_to(windows[:1], (padded - total, *windows.shape[1:]))])
    out = []
    with progress_bar(padded // block, "read numbers", enabled=progress, unit="block") as bar:
        for index, start in enumerate(range(0, padded, block)):
            result = classify(jax.random.fold_in(key, index), models, windows[start:start + block], budget,
                              chunk_size=min(32, block))
            out.append(np.asarray(result.log_evidence, np.float64))
            bar.update()
    return np.concatenate(out)[:total]


def read_numbers(key: jax.Array, models: DigitModels, images, *, max_digits: int = 4, budget: Any = None,
                 beam: int = 64, alternatives: int = 5, block: int = BLOCK,
                 progress: bool | None = None) -> list[Reading]:
    """Read each of ``images`` (a list of grey ``(H, W_i)`` images, or an ``(N, H, W)`` array): see :func:`read_number`.

    The windows of all the images are scored together, ``block`` at a time (``digits.classify`` on a fixed
    shape, so any number of images of any widths costs one compilation); a progress bar shows on long runs.
    A window's key depends on its place in the batch and on ``block``: with ``budget.restarts > 1`` (jittered
    restarts) the readings depend on them too; with the default one restart they do not use the key.
    """
    check_key(key, "digits.read_numbers")
    if not isinstance(models, DigitModels):
        raise ShapeError(f"models must be digits.DigitModels (from digits.prototypes or digits.fit); got "
                         f"{type(models).__name__}.")
    max_digits = check_max_digits(max_digits)
    if isinstance(beam, bool) or not isinstance(beam, (int, np.integer)) or beam < 1:
        raise ShapeError(f"beam must be an int >= 1 (readings kept per column); got {beam!r}.")
    if isinstance(alternatives, bool) or not isinstance(alternatives, (int, np.integer)) or alternatives < 1:
        raise ShapeError(f"alternatives must be an int >= 1; got {alternatives!r}.")
    if not isinstance(images, (list, tuple)) and np.ndim(images) == 2:
        raise ShapeError("read_numbers takes a batch (a list of images or an (N, H, W) array); for one (H, W) "
                         "image use read_number(key, models, image).")
    checked = [check_number_image(image, models.size) for image in images]
    if not checked:
        raise ShapeError("read_numbers got no images; pass at least one.")
    grids = [_windows(image, models.size) for image in checked]
    windows = np.concatenate([grid.reshape(-1, *models.size) for grid in grids])
    log_evidence = window_evidence(key, models, windows, budget, block=block, progress=progress)
    blanks = _blank_log_prob(models, checked)
    readings, offset = [], 0
    for blank, grid in zip(blanks, grids):
        count = grid.shape[0] * grid.shape[1]
        evidence = log_evidence[offset:offset + count].reshape(grid.shape[0], grid.shape[1], 10)
        readings.append(_read_one(evidence, blank, models.size, max_digits, int(beam), int(alternatives)))
        offset += count
    return readings


def read_number(key: jax.Array, models: DigitModels, image, max_digits: int = 4, *, budget: Any = None,
                beam: int = 64, alternatives: int = 5, block: int = BLOCK) -> Reading:
    """Read the digit string in a grey image ``(H, W)`` of 1-``max_digits`` digits side by side.

    Analysis by synthesis (see the module docstring): every class model explains every digit-sized window;
    the count and the positions are summed out exactly. The image is in ``[0, 1]``, ink bright on a dark
    background like the models' training images, at least ``models.size`` high and wide.

    Args:
      key: PRNG key (the stroke fits' restarts); the same key gives the same reading.
      models: the ten class models (:func:`~stdlib.digits.fit` or :func:`~stdlib.digits.prototypes`).
      image: ``(H, W)`` floats in ``[0, 1]``.
      max_digits: the most digits the number may have.
      budget: the stroke fits' effort per window and class (as in :func:`~stdlib.digits.classify`).
      beam: readings kept per column and count (exact when every string with mass fits).
      alternatives: how many readings ``Reading.alternatives`` lists.
      block: windows scored per compiled call (one program per ``block``, whatever the image's width).

    Returns:
      a :class:`Reading`: ``.text``, ``.probability``, ``.alternatives``, ``.count_posterior``, ``.boxes``.
    """
    return read_numbers(key, models, [image], max_digits=max_digits, budget=budget, beam=beam,
                        alternatives=alternatives, block=block)[0]
