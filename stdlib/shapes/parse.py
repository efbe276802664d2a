"""Inverse graphics: the scene that explains an image, by analysis by synthesis.

``parse(key, image, max_shapes=K)`` explains an ``(H, W, 3)`` image with
:func:`~stdlib.shapes.scene.scene_model` and returns a :class:`Scene`.
The search over scene structures (how many shapes, of which kinds, in which
depth order) is greedy, as a person would draw the scene:

1. the backdrop alone (its colour starts at the median of the border pixels);
2. the largest one-coloured blob where the image and the current rendering
   differ (both smoothed over 3x3, more than 0.15 apart in some channel; split
   by colour, so that two shapes that touch are two blobs; connected) suggests
   the next shape: its centre, its extent and direction (the blob's second
   moments), its colour (the median inside);
3. every kind is tried there, in front of the shapes found so far and, when
   the blob touches one of them, behind them too (a shape seen only in part
   may be at the back); each candidate structure's continuous latents (every
   shape's centre, size, angle and colour, and the backdrop's colour) are
   refined together and its evidence ``log p(image, count, kinds)`` estimated
   by the core's Laplace (``ppl.infer.Laplace``: Adam from the guess, then
   Newton on the active latents at the mode), on the image reduced to
   ``resolution`` pixels (default 32) on its longer side;
4. the best candidate is kept if its evidence beats the structure without it,
   and the search goes on from it; otherwise the next largest blob is tried
   (up to three); when none helps, or at ``max_shapes``, it stops;
5. each shape found is revised with the whole scene in place: every other
   kind is tried in its place (matched to its silhouette) and the scene
   without it; the best change is kept where it raises the evidence (a kind
   chosen while later shapes were still missing, or a shape that two others
   explain better, is corrected).

The evidences give the posterior over the count (the best structure of each
count, normalised) and, for each shape, the probability of its kind among the
kinds tried when it was added.

Example::

    >>> import jax
    >>> from stdlib import shapes
    >>> data = shapes.make_dataset(jax.random.key(0), 1, size=(32, 32), max_shapes=2)
    >>> scene = shapes.parse(jax.random.key(1), data.images[0], max_shapes=2)   # doctest: +SKIP
    >>> [s.kind for s in scene.shapes]                                            # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import softmax

import ppl
from ppl.errors import ShapeError
from ppl.validation import check_key
from stdlib import render
from stdlib.shapes.primitives import BOUNDS, CENTRE, KINDS, outline, painter_of
from stdlib.shapes.scene import (
    NOISE,
    SOFTNESS,
    Shape,
    check_max_shapes,
    render_shapes,
    scene_model,
)

__all__ = ["DEFAULT_LAPLACE", "RESOLUTION", "Scene", "check_image", "parse"]

DEFAULT_LAPLACE = ppl.infer.Laplace(restarts=1, steps=150, newton=1)
RESOLUTION = 32  # the search's canvas: the image's longer side reduced to this many pixels
DIFFERENCE = 0.15  # a pixel this far from the rendering (in some channel, both 3x3 means) is unexplained
BLOBS = 3  # regions tried, largest first, before the search stops
SMALLEST_BLOB = 0.003  # of the image's area (12 pixels of 64 x 64)
LATENTS_PER_SHAPE = 8  # centre 2, size 2, angle 1, colour 3
CONCURRENT = 2  # candidates evaluated at once


@dataclasses.dataclass(frozen=True)
class Scene:
    """A parsed scene.

    Attributes:
      shapes: the shapes found, back to front (:class:`~stdlib.shapes.scene.Shape`).
      kind_probabilities: ``(len(shapes), len(KINDS))`` each shape's kind probabilities: from the revision
        (every kind in its place, the rest of the scene found and refined), or, where the budget ended
        first, among the kinds tried when it was added.
      background: ``(3,)`` the backdrop colour.
      count_posterior: ``(max_shapes + 1,)`` ``P(count | image)`` over the structures evaluated (the best one
        of each count; counts never reached get 0).
      log_evidence: ``log p(image, count, kinds)`` of the scene returned (Laplace).
      history: the best evidence after each step (anytime: never decreases).
      image: the image explained ``(H, W, 3)``.
    """

    shapes: list
    kind_probabilities: np.ndarray
    background: np.ndarray
    count_posterior: np.ndarray
    log_evidence: float
    history: np.ndarray
    image: np.ndarray

    @property
    def count(self) -> int:
        return len(self.shapes)

    def render(self) -> np.ndarray:
        """``(H, W, 3)`` the scene drawn without noise."""
        return render_shapes(self.shapes, self.background, self.image.shape[:2])[0]

    def table(self) -> str:
        """One line per shape, front first: kind (probability), centre and size in pixels, angle, colour."""
        height, width = self.image.shape[:2]
        lines = [f"{'depth':>5}  {'kind':<10} {'p':>5}  {'centre (px)':>13}  {'size (px)':>13}  {'angle':>6}  colour"]
        for index in range(len(self.shapes) - 1, -1, -1):
            shape = self.shapes[index]
            p = self.kind_probabilities[index, KINDS.index(shape.kind)]
            centre = shape.centre * np.array([width, height])
            size = shape.size * np.array([width, height])
            colour = " ".join(f"{c:.2f}" for c in shape.colour)
            lines.append(f"{index:>5}  {shape.kind:<10} {p:5.2f}  ({centre[0]:5.1f}, {centre[1]:5.1f})  "
                         f"({size[0]:5.1f}, {size[1]:5.1f})  {np.degrees(shape.angle):6.1f}  {colour}")
        return "\n".join(lines)

    def plot(self, path: str) -> None:
        """A figure: the image, the reconstruction, the residual and the outlines found (needs matplotlib)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        height, width = self.image.shape[:2]
        reconstruction = self.render()
        figure, axes = plt.subplots(1, 4, figsize=(12, 3.4))
        axes[0].imshow(np.clip(self.image, 0, 1))
        axes[0].set_title("image")
        axes[1].imshow(np.clip(reconstruction, 0, 1))
        axes[1].set_title(f"reconstruction ({self.count} shapes)")
        axes[2].imshow(np.abs(self.image - reconstruction).max(axis=-1), cmap="magma", vmin=0, vmax=1)
        axes[2].set_title("residual")
        axes[3].imshow(np.clip(self.image, 0, 1))
        for shape in self.shapes:
            edge = outline(shape.kind, shape.centre, shape.size, shape.angle) * np.array([width, height]) - 0.5
            axes[3].plot(edge[:, 0], edge[:, 1], "w-", lw=2.0)
            axes[3].plot(edge[:, 0], edge[:, 1], "k-", lw=1.0)
        axes[3].set_title("found")
        for axis in axes:
            axis.set_xlim(-0.5, width - 0.5)
            axis.set_ylim(height - 0.5, -0.5)
            axis.set_xticks([])
            axis.set_yticks([])
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)


def check_image(image, value_range=None) -> np.ndarray:
    """``image`` as ``(H, W, 3)`` float32 in ``[0, 1]``: grey ``(H, W)`` or ``(H, W, 1)`` is lifted to RGB,
    ``(H, W, 4)`` loses its alpha; values in ``[0, 255]`` are scaled when ``value_range`` is ``None`` and the
    largest is above 1.

    Raises:
      ShapeError: the wrong rank or channel count, NaN pixels, values outside the declared or inferred range.
    """
    try:
        array = np.asarray(image)
    except (TypeError, ValueError):
        raise ShapeError("an image must be an array of numbers (H, W) or (H, W, C); got a ragged nested list. "
                         "Pass an array whose rows all have the same length.") from None
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ShapeError(f"an image must hold real numbers, got dtype {array.dtype}.")
    array = array.astype(np.float32)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or min(array.shape[:2]) < 4:
        raise ShapeError(f"an image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) with H, W >= 4; got shape "
                         f"{np.shape(image)}.")
    if np.isnan(array).any():
        raise ShapeError(f"the image has {int(np.isnan(array).sum())} NaN values; fill or crop them first.")
    if array.shape[-1] == 4:
        array = array[..., :3]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    low, high = float(array.min()), float(array.max())
    if value_range is None:
        value_range = (0.0, 255.0) if high > 1.0 else (0.0, 1.0)
        if low < 0.0 or high > 255.0:
            raise ShapeError(f"image values lie in [{low:g}, {high:g}], neither [0, 1] nor [0, 255]; pass "
                             "value_range=(low, high) to say what they mean.")
    if isinstance(value_range, (tuple, list)):
        pair = tuple(value_range)
    else:  # an array (h, l); anything else (a string, a number) is not a pair
        pair = tuple(np.asarray(value_range).tolist()) if np.ndim(value_range) == 1 else ()
    if not (len(pair) == 2 and all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
                                   and np.isfinite(v) for v in pair)):
        raise ShapeError(f"value_range must be a pair of finite numbers (low, high), e.g. (0, 255); got "
                         f"{value_range!r}.")
    lo, hi = map(float, pair)
    if not hi > lo or low < lo or high > hi:
        raise ShapeError(f"image values lie in [{low:g}, {high:g}], outside value_range=({lo:g}, {hi:g}).")
    return (array - lo) / (hi - lo)


@functools.lru_cache(maxsize=8)
def _scorer(max_shapes: int, size: tuple, laplace: ppl.infer.Laplace, noise: float = NOISE):
    """The compiled evidence of one structure (count and kinds given), from a starting guess. Newton and the
    Hessian work on the active latents only (at most ``8 * max_shapes + 3``: the shapes used and the backdrop),
    not on every kind's latents in every slot."""
    model = scene_model(max_shapes, size, noise=noise)
    if laplace.max_dimension is None:
        laplace = dataclasses.replace(laplace, max_dimension=LATENTS_PER_SHAPE * max_shapes + 3)

    @jax.jit
    def score(key, image, count, kinds, init):
        return laplace(key, model, {"image": image, "shapes/count": count, "shapes/parts/index": kinds}, init=init)

    return score


def _defaults(max_shapes: int) -> dict:
    """Starting values for the slots no shape uses (their latents are inactive)."""
    values = {}
    for kind in KINDS:
        bounds = BOUNDS[kind]
        middle = 0.5 * (np.array(bounds.low) + np.array(bounds.high))
        values[f"shapes/parts/{kind}/centre"] = np.full((max_shapes, 2), 0.5, np.float32)
        values[f"shapes/parts/{kind}/size"] = np.tile(middle, (max_shapes, 1)).astype(np.float32)
        values[f"shapes/parts/{kind}/angle"] = np.full((max_shapes,), 0.25 * bounds.period, np.float32)
        values[f"shapes/parts/{kind}/colour"] = np.full((max_shapes, 3), 0.5, np.float32)
    return values


def _inside(value, low, high):
    """``value`` moved just inside ``(low, high)`` (the uniform priors' open supports)."""
    margin = 1e-3 * (np.asarray(high) - np.asarray(low))
    return np.clip(value, np.asarray(low) + margin, np.asarray(high) - margin)


def _init(shapes: list, background, max_shapes: int, restarts: int) -> dict:
    """Laplace's ``init``: restart ``r`` turns every shape by a further quarter of its symmetry period."""
    rows = []
    for restart in range(restarts):
        values = _defaults(max_shapes)
        for slot, shape in enumerate(shapes):
            bounds = BOUNDS[shape.kind]
            prefix = f"shapes/parts/{shape.kind}/"
            values[prefix + "centre"][slot] = _inside(shape.centre, *CENTRE)
            values[prefix + "size"][slot] = _inside(shape.size, bounds.low, bounds.high)
            angle = (shape.angle + restart * bounds.period / 4) % bounds.period
            values[prefix + "angle"][slot] = _inside(angle, 0.0, bounds.period)
            values[prefix + "colour"][slot] = _inside(shape.colour, 0.0, 1.0)
        values["backdrop/colour"] = _inside(np.asarray(background, np.float32), 0.0, 1.0)
        rows.append(values)
    return {address: jnp.asarray(np.stack([row[address] for row in rows])) for address in rows[0]}


def _read(trace, kinds: np.ndarray, count: int) -> tuple[list, np.ndarray]:
    choices = trace.choices
    found = []
    for slot in range(count):
        kind = KINDS[int(kinds[slot])]
        prefix = f"shapes/parts/{kind}/"
        size = np.asarray(choices[prefix + "size"][slot], np.float64)
        if kind == "circle":
            size = np.array([size[0], size[0]])
        found.append(Shape(kind, np.asarray(choices[prefix + "centre"][slot], np.float64), size,
                           float(choices[prefix + "angle"][slot]), np.asarray(choices[prefix + "colour"][slot],
                                                                              np.float64), slot))
    return found, np.asarray(choices["backdrop/colour"], np.float64)


class Blob(NamedTuple):
    """A region the rendering does not explain: its ``centre (2,)``, ``extent (2,)`` (along and across its main
    direction), ``angle`` (of the main direction), ``colour (3,)`` and ``pixels`` (an ``(H, W)`` mask)."""

    centre: np.ndarray
    extent: np.ndarray
    angle: float
    colour: np.ndarray
    pixels: np.ndarray


def _blobs(image: np.ndarray, canvas: np.ndarray, most: int = BLOBS) -> list[Blob]:
    """The ``most`` largest one-coloured regions the rendering does not explain, largest first.

    Both the image and the rendering are smoothed (3x3 mean, per channel); a pixel is unexplained where they
    differ by more than ``DIFFERENCE`` in some channel (a line two pixels wide still is). The unexplained
    pixels are split by colour (binned in quarters per channel; for each of the most common bins, the pixels
    within ``DIFFERENCE`` of its mean colour, connected), so two shapes that touch are two regions, not one
    (the shapes of a scene differ in colour)."""
    from scipy import ndimage

    smooth = ndimage.uniform_filter(image, (3, 3, 0))
    difference = np.abs(smooth - ndimage.uniform_filter(canvas, (3, 3, 0))).max(axis=-1)
    unexplained = difference > DIFFERENCE
    smallest = SMALLEST_BLOB * difference.size
    if unexplained.sum() < smallest:
        return []
    colours = smooth[unexplained]
    bins = np.clip((colours * 4).astype(int), 0, 3) @ np.array([16, 4, 1])
    counts = np.bincount(bins)
    regions = []
    for common in np.argsort(counts)[::-1][:most]:
        if counts[common] < smallest:
            break
        dominant = colours[bins == common].mean(axis=0)
        labels, count = ndimage.label(unexplained & (np.abs(smooth - dominant).max(axis=-1) < DIFFERENCE))
        for label in range(1, count + 1):
            pixels = labels == label
            if pixels.sum() >= smallest and not any(np.array_equal(pixels, r) for r in regions):
                regions.append(pixels)
    regions.sort(key=lambda r: -r.sum())
    return [_blob(pixels, np.median(image[pixels], axis=0)) for pixels in regions[:most]]


def _blob(pixels: np.ndarray, colour) -> Blob:
    """The :class:`Blob` of a region ``pixels (H, W)`` (two or more pixels): its centre, and its extent and main
    direction from the second moments."""
    height, width = pixels.shape
    rows, cols = np.nonzero(pixels)
    points = np.stack([(cols + 0.5) / width, (rows + 0.5) / height], axis=1)
    values, vectors = np.linalg.eigh(np.cov(points.T) + 1e-6 * np.eye(2))
    extent = np.sqrt(12.0 * values[::-1])  # a uniform segment of length a has variance a^2 / 12
    angle = float(np.arctan2(vectors[1, 1], vectors[0, 1]))
    return Blob(points.mean(axis=0), extent, angle, np.asarray(colour), pixels)


def _touches(blob: Blob, alphas: np.ndarray) -> bool:
    """Whether the blob is within two pixels of a shape already found (then its depth order matters)."""
    from scipy import ndimage

    if len(alphas) == 0:
        return False
    return bool(np.any(ndimage.binary_dilation(blob.pixels, iterations=2) & (alphas.max(axis=0) > 0.05)))


TURNS = 16  # angles tried per kind when matching a guess to a blob


@functools.partial(jax.jit, static_argnames=("kind", "size"))
def _overlaps(kind: str, centre, sizes, angles, target, pixels, size):
    """For each ``(size (2,), angle)`` pose, ``(centre (2,), IoU)``: the shape moved so that its coverage's
    centroid is ``target``, and its coverage's (> 0.5) intersection over union with ``pixels (H, W)``.
    ``sizes (n, 2)``, ``angles (n,)``; one compiled call for every pose."""
    grid = render.pixel_centres(size)

    def alpha(at, extent, angle):
        return painter_of(kind, at, extent, angle, jnp.zeros(3)).paint(grid, SOFTNESS / max(size))[1]

    def one(extent, angle):
        first = alpha(centre, extent, angle)
        total = first.sum()
        centroid = (first[..., None] * grid).sum(axis=(0, 1)) / jnp.maximum(total, 1e-12)
        moved = jnp.where(total > 0, centre + target - centroid, centre)
        covered = alpha(moved, extent, angle) > 0.5
        union = jnp.maximum(jnp.sum(covered | pixels), 1)
        return moved, jnp.sum(covered & pixels) / union

    return jax.vmap(one)(sizes, angles)


def _turned(guess: Shape, blob: Blob) -> Shape:
    """``guess`` matched to the blob: of ``TURNS`` angles over its symmetry period and both pairings of its
    extent with its two sizes, the one whose coverage, moved so that its centroid is the blob's centre (a
    triangle's centre is not its centroid), best overlaps the blob's pixels (intersection over union; the
    first pose tried wins a tie)."""
    period = BOUNDS[guess.kind].period
    pairings = [guess.size] if guess.kind in ("circle", "line") else [guess.size, guess.size[::-1]]
    turns = (guess.angle + period * np.arange(TURNS) / TURNS) % period
    sizes = np.repeat(np.asarray(pairings, np.float32), TURNS, axis=0)
    angles = np.tile(turns, len(pairings)).astype(np.float32)
    centres, overlaps = _overlaps(guess.kind, np.float32(guess.centre), sizes, angles, np.float32(blob.centre),
                                  np.asarray(blob.pixels), tuple(blob.pixels.shape))
    best = int(np.argmax(np.asarray(overlaps)))
    return guess._replace(centre=np.asarray(centres[best], np.float64), size=np.asarray(sizes[best], np.float64),
                          angle=float(angles[best]))


def _matched(kind: str, blob: Blob, colour, depth: int) -> Shape:
    """A ``kind`` guessed from the blob's extent and turned and moved to its best overlap with it."""
    return _turned(_guess(kind, blob.centre, blob.extent, blob.angle, colour, depth), blob)


def _guess(kind: str, centre, extent, angle, colour, depth: int) -> Shape:
    """A first guess of a ``kind`` covering a blob of this extent."""
    if kind == "circle":
        size = np.full(2, np.sqrt(extent[0] * extent[1]) * 1.1)
    elif kind == "ellipse":
        size = extent * 1.1
    elif kind == "triangle":
        size = extent * 1.2
    elif kind == "line":
        size = np.array([extent[0], max(0.03, extent[1])])
    else:
        size = extent
    return Shape(kind, np.asarray(centre), np.asarray(size), float(angle % BOUNDS[kind].period), np.asarray(colour),
                 depth)


def working_image(image: np.ndarray, resolution: int | None) -> tuple[np.ndarray, float]:
    """``(image reduced so that its longer side has at most resolution pixels, the model's pixel noise there)``.

    The reduction averages (antialiased linear resampling), which keeps the unit square's coordinates and
    divides independent pixel noise by the square root of the pixels averaged; the noise scale follows."""
    height, width = image.shape[:2]
    if resolution is None or max(height, width) <= resolution:
        return image, NOISE
    scale = resolution / max(height, width)
    size = (max(4, round(height * scale)), max(4, round(width * scale)))
    reduced = jax.image.resize(jnp.asarray(image), (*size, 3), "linear", antialias=True)
    return np.asarray(reduced), NOISE * math.sqrt(size[0] * size[1] / (height * width))


def parse(key: jax.Array, image, max_shapes: int = 4, *, budget: int | None = None, value_range=None,
          resolution: int | None = RESOLUTION, laplace: ppl.infer.Laplace = DEFAULT_LAPLACE) -> Scene:
    """The scene that explains ``image`` (see the module docstring).

    Args:
      key: a PRNG key (the same key gives the same scene).
      image: ``(H, W, 3)``, ``(H, W)`` grey or ``(H, W, 4)``, values in ``[0, 1]`` or ``[0, 255]``.
      max_shapes: the most shapes (``>= 1``).
      budget: the most candidate structures to evaluate (default: all the greedy search asks for, at most
        ``1 + 25 * max_shapes``). Anytime: the scene returned is the best evaluated, and a larger budget
        evaluates the same candidates first, so its evidence is never lower.
      value_range: what the image's values mean, e.g. ``(0, 255)`` (default: inferred).
      resolution: the candidates are fitted and scored on the image reduced so that its longer side has this
        many pixels (``None``: the full image); the shapes are in canvas units, so they apply to the full image.
      laplace: the evidence estimator for each candidate.

    Returns:
      A :class:`Scene`.

    Raises:
      ShapeError: a bad image (see :func:`check_image`) or ``max_shapes < 1``.
    """
    check_key(key, "shapes.parse")
    max_shapes = check_max_shapes(max_shapes)
    image = check_image(image, value_range)
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer))
                                   or resolution < 8):
        raise ShapeError(f"parse's resolution must be None or an int >= 8 (pixels), got {resolution!r}.")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1):
        raise ShapeError(f"parse's budget must be None or an int >= 1 (the backdrop alone), got {budget!r}.")
    working, noise = working_image(image, resolution)
    score = _scorer(max_shapes, tuple(working.shape[:2]), laplace, noise)
    pixels = jnp.asarray(working)
    limit = 1 + 25 * max_shapes if budget is None else int(budget)

    def evaluate(step: int, shapes: list, background):
        kinds = np.zeros(max_shapes, np.int32)
        kinds[: len(shapes)] = [KINDS.index(s.kind) for s in shapes]
        result = score(jax.random.fold_in(key, step), pixels, len(shapes), jnp.asarray(kinds),
                       _init(shapes, background, max_shapes, laplace.restarts))
        return float(result.log_evidence), result, kinds

    def evaluate_all(trials: list, background) -> list:
        """``(value, result, kinds)`` of each trial scene, as many as the budget allows, in order (two at a
        time: XLA:CPU leaves a core idle on programs this small)."""
        nonlocal evaluated
        trials = trials[: max(limit - evaluated, 0)]
        jobs = [pool.submit(evaluate, evaluated + i, trial, background) for i, trial in enumerate(trials)]
        evaluated += len(trials)
        return [job.result() for job in jobs]

    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    evaluated = 1
    evidence, result, kinds = evaluate(0, [], np.median(border, axis=0))
    shapes, background = _read(result.trace, kinds, 0)
    canvas, alphas = render_shapes(shapes, background, image.shape[:2])  # full resolution: thin shapes stay visible
    best_by_count = np.full(max_shapes + 1, -np.inf)
    best_by_count[0] = evidence
    history, kind_rows = [evidence], []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENT)
    latest = None  # the index of the shape added last, while nothing else has changed since
    try:
        while len(shapes) < max_shapes and evaluated < limit:
            added = False
            for blob in _blobs(image, canvas):  # the largest region first; the next if no shape there helps
                trials, places = [], []
                for position in ("front", "back") if _touches(blob, alphas) else ("front",):
                    for kind in KINDS:
                        new = _matched(kind, blob, blob.colour, depth=len(shapes))
                        trials.append(shapes + [new] if position == "front" else [new] + shapes)
                        places.append((position, kind))
                results = evaluate_all(trials, background)
                if not results:
                    break
                by_kind = np.full(len(KINDS), -np.inf)
                for (value, _, _), (_, kind) in zip(results, places):
                    by_kind[KINDS.index(kind)] = np.logaddexp(by_kind[KINDS.index(kind)], value)
                best = int(np.argmax([value for value, _, _ in results]))
                (value, found, trial_kinds), (position, _) = results[best], places[best]
                count = len(shapes) + 1
                best_by_count[count] = max(best_by_count[count], value)
                if value > evidence:
                    added = True
                    break
            if not added:
                break
            evidence, (shapes, background) = value, _read(found.trace, trial_kinds, count)
            canvas, alphas = render_shapes(shapes, background, image.shape[:2])
            latest = len(kind_rows) if position == "front" else 0
            kind_rows.insert(latest, softmax(by_kind))
            history.append(evidence)
        index = 0  # revise: each shape as every other kind, and left out (the rest of the scene now found)
        while index < len(shapes) and evaluated < limit:
            if index == latest:  # chosen with everything else as it is now: its trials were the search's own
                index += 1
                continue
            shape = shapes[index]
            silhouette = render_shapes([shape], np.zeros(3), image.shape[:2])[1][0] > 0.5
            trials = []
            if silhouette.sum() >= 3:
                blob = _blob(silhouette, shape.colour)
                trials = [shapes[:index] + [_matched(kind, blob, shape.colour, shape.depth)] + shapes[index + 1:]
                          for kind in KINDS if kind != shape.kind]
            trials.append(shapes[:index] + shapes[index + 1:])
            by_kind = np.full(len(KINDS), -np.inf)
            by_kind[KINDS.index(shape.kind)] = evidence
            best = None
            for trial, (value, found, trial_kinds) in zip(trials, evaluate_all(trials, background)):
                best_by_count[len(trial)] = max(best_by_count[len(trial)], value)
                if len(trial) == len(shapes):
                    by_kind[KINDS.index(trial[index].kind)] = value
                if value > (evidence if best is None else best[0]):
                    best = (value, found, trial_kinds, len(trial))
            if np.all(np.isfinite(by_kind)):  # every kind here, with the others refined: its kind posterior
                kind_rows[index] = softmax(by_kind)
            if best is not None:
                evidence, (shapes, background) = best[0], _read(best[1].trace, best[2], best[3])
                history.append(evidence)
                latest = None
                if best[3] < len(kind_rows):  # left out: the same place now holds the next shape
                    kind_rows.pop(index)
                    continue
            index += 1
    finally:
        pool.shutdown()
    count_posterior = softmax(best_by_count)
    return Scene(shapes=shapes, kind_probabilities=np.asarray(kind_rows).reshape(len(shapes), len(KINDS)),
                 background=np.asarray(background), count_posterior=count_posterior, log_evidence=float(evidence),
                 history=np.asarray(history), image=image)
