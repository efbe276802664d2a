"""Scenes of shapes: the generative model an image is explained by, and seeded datasets drawn from it.

``scene_model(max_shapes=K, size=(H, W))`` is a spatial composition
(``ppl.scene``) of

* a backdrop of latent colour (``"backdrop/colour"``, uniform RGB), or a fixed
  one (``background=``);
* ``ppl.many`` of up to ``K`` shapes (``"shapes/count"``, uniform on ``0..K``),
  each ``ppl.either`` of the five primitives (``"shapes/parts/index"`` its kind,
  ``"shapes/parts/<kind>/..."`` every kind's latents, stacked ``(K, ...)``),
  painted in order with ``over`` blending: a later shape occludes an earlier one,
  so the slots are the depth order;
* the observed ``"image"`` ``(H, W, 3)``: each pixel Student-t (``df=4``) around
  the rendered canvas with scale ``noise``, heavy-tailed so that a few pixels
  drawn with another renderer's edge profile, or clipped, do not swamp the fit.

Example::

    >>> import jax
    >>> from stdlib import shapes
    >>> model = shapes.scene_model(max_shapes=3, size=(32, 32))
    >>> trace = model.simulate(jax.random.key(0))
    >>> trace.choices["image"].shape
    (32, 32, 3)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from ppl import dist
from ppl.errors import ShapeError
from stdlib import render
from stdlib.shapes.primitives import BOUNDS, CENTRE, KINDS, PRIMITIVES, painter_of

__all__ = ["DEGREES_OF_FREEDOM", "NOISE", "Dataset", "Shape", "make_dataset", "scene_model"]

NOISE = 0.1
DEGREES_OF_FREEDOM = 4.0
SOFTNESS = 0.5  # edge width in pixels


class Shape(NamedTuple):
    """One shape: ``kind`` (a name of ``KINDS``), ``centre (2,)``, ``size (2,)``, ``angle``, ``colour (3,)``;
    canvas units (the unit square, ``x`` right, ``y`` down). ``depth``: its place in the painting order
    (0 is painted first, at the back)."""

    kind: str
    centre: np.ndarray
    size: np.ndarray
    angle: float
    colour: np.ndarray
    depth: int = 0

    def painter(self):
        return painter_of(self.kind, self.centre, self.size, self.angle, self.colour)


def check_max_shapes(max_shapes) -> int:
    if isinstance(max_shapes, bool) or not isinstance(max_shapes, (int, np.integer)) or max_shapes < 1:
        raise ShapeError(f"max_shapes must be an int >= 1 (the most shapes a scene may hold), got {max_shapes!r}.")
    return int(max_shapes)


@ppl.model(name="backdrop")
def _backdrop():
    colour = ppl.sample("colour", dist.Uniform(0.0, 1.0).expand([3]).to_event(1))
    return render.Rectangle(centre=jnp.array([0.5, 0.5]), size=jnp.array([4.0, 4.0]), colour=colour)


def _likelihood(noise: float, degrees_of_freedom: float):
    return lambda canvas: dist.StudentT(degrees_of_freedom, canvas, noise).to_event(3)


@functools.lru_cache(maxsize=32)
def scene_model(max_shapes: int = 4, size: tuple[int, int] = (64, 64), background=None, noise: float = NOISE,
                degrees_of_freedom: float = DEGREES_OF_FREEDOM) -> ppl.Model:
    """The scene model (see the module docstring); cached, so equal settings share one model and its compilations.

    Args:
      max_shapes: ``K``, the most shapes (``>= 1``).
      size: ``(H, W)`` pixels.
      background: ``None`` (a latent colour) or a fixed grey level or ``(r, g, b)`` tuple.
      noise: the pixel likelihood's scale.
      degrees_of_freedom: the Student-t's (lower is more robust; ``inf`` is not allowed, pass a large number
        for a Gaussian).
    """
    max_shapes = check_max_shapes(max_shapes)
    shapes = ppl.many(ppl.either(**PRIMITIVES), max_shapes, name="shapes")
    likelihood = _likelihood(float(noise), float(degrees_of_freedom))
    behind = {"backdrop": _backdrop} if background is None else {  # the backdrop part first: painted first
        "background": np.broadcast_to(np.asarray(background, np.float32), (3,))}
    return ppl.scene(size=tuple(size), channels=3, noise=likelihood, softness=SOFTNESS, name="shapes.scene",
                     **behind, shapes=shapes)


# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------


class Dataset(NamedTuple):
    """Seeded scenes with their ground truth.

    Attributes:
      images: ``(n, H, W, 3)`` float32 in ``[0, 1]`` (the clean canvas plus Gaussian noise, clipped).
      clean: ``(n, H, W, 3)`` the canvases without noise.
      shapes: ``n`` lists of :class:`Shape`, back to front.
      backgrounds: ``(n, 3)``.
      counts: ``(n,)`` shapes per scene.
    """

    images: np.ndarray
    clean: np.ndarray
    shapes: list
    backgrounds: np.ndarray
    counts: np.ndarray


@functools.partial(jax.jit, static_argnames=("kind", "size"))
def _paint(kind, centre, extent, angle, colour, size):
    """``(colour (H, W, 3), alpha (H, W))`` of one shape, as the scene model paints it."""
    colour, alpha = painter_of(kind, centre, extent, angle, colour).paint(render.pixel_centres(size),
                                                                          SOFTNESS / max(size))
    return jnp.broadcast_to(colour, (*size, 3)), alpha


def render_shapes(shapes: list, background, size) -> tuple[np.ndarray, np.ndarray]:
    """``(canvas (H, W, 3), alphas (k, H, W))``: ``shapes`` (back to front) over ``background``, as the scene
    model draws them (``over`` blending)."""
    size = tuple(int(v) for v in size)
    canvas = np.broadcast_to(np.asarray(background, np.float32), (*size, 3)).copy()
    alphas = np.zeros((len(shapes), *size), np.float32)
    for i, shape in enumerate(shapes):
        colour, alpha = (np.asarray(a) for a in _paint(shape.kind, np.float32(shape.centre), np.float32(shape.size),
                                                       np.float32(shape.angle), np.float32(shape.colour), size))
        canvas = alpha[..., None] * colour + (1.0 - alpha[..., None]) * canvas
        alphas[i] = alpha
    return canvas, alphas


def visible_fractions(alphas: np.ndarray) -> np.ndarray:
    """``(k,)``: how much of each shape's coverage is not hidden by the shapes painted after it."""
    hidden = np.ones_like(alphas)
    for i in range(len(alphas) - 2, -1, -1):
        hidden[i] = hidden[i + 1] * (1.0 - alphas[i + 1])
    return (alphas * hidden).sum(axis=(1, 2)) / np.maximum(alphas.sum(axis=(1, 2)), 1e-9)


def _draw_shape(rng: np.random.Generator, kind: str, depth: int) -> Shape:
    bounds = BOUNDS[kind]
    size = rng.uniform(bounds.low, bounds.high)
    if kind == "circle":
        size[1] = size[0]
    return Shape(kind, rng.uniform(*CENTRE, size=2), size, float(rng.uniform(0.0, bounds.period)),
                 rng.uniform(0.0, 1.0, size=3), depth)


def make_dataset(key: jax.Array, n: int, size: tuple[int, int] = (64, 64), max_shapes: int = 4,
                 noise: float = 0.1, min_shapes: int = 1, kinds=KINDS, min_visible: float = 0.5,
                 min_contrast: float = 0.25) -> Dataset:
    """``n`` scenes drawn from the scene model's prior, made identifiable, with their ground truth.

    Each scene has a count uniform on ``min_shapes..max_shapes``, kinds uniform over ``kinds``, the
    latents of :mod:`stdlib.shapes.primitives` and a uniform background colour, painted back to front
    (a random occlusion order). A draw is redrawn until every shape is seen: at least ``min_visible`` of
    its area not hidden by the shapes in front, and every colour at least ``min_contrast`` from the
    background and from the other shapes' (largest channel difference), so that the count is a property
    of the image. Pixels get ``Normal(0, noise)`` noise and are clipped to ``[0, 1]``.

    Args:
      key: a PRNG key; the same key gives the same scenes.
      n: how many scenes.

    Example::

        >>> import jax
        >>> from stdlib import shapes
        >>> data = shapes.make_dataset(jax.random.key(0), 2, size=(32, 32), max_shapes=3)
        >>> data.images.shape, [len(s) for s in data.shapes] == list(data.counts)
        ((2, 32, 32, 3), True)
    """
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    return draw_scenes(np.random.default_rng(seed), n, size, max_shapes, noise, min_shapes, kinds, min_visible,
                       min_contrast, render_shapes)


def draw_scenes(rng: np.random.Generator, n: int, size, max_shapes: int, noise: float, min_shapes: int, kinds,
                min_visible: float, min_contrast: float, paint) -> Dataset:
    """``n`` scenes drawn from the priors and painted by ``paint(shapes, background, size) -> (canvas (H, W, 3),
    alphas (k, H, W))`` (:func:`render_shapes`, or another renderer's), redrawn until identifiable (the rules
    of :func:`make_dataset`), with noise. The one place those rules live."""
    max_shapes = check_max_shapes(max_shapes)
    if not (isinstance(n, (int, np.integer)) and n >= 0):
        raise ShapeError(f"a dataset needs a count n >= 0, got {n!r}.")
    if not 1 <= min_shapes <= max_shapes:
        raise ShapeError(f"min_shapes must be in 1..max_shapes={max_shapes}, got {min_shapes!r}.")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ShapeError(f"unknown shape kinds {unknown}; the kinds are {', '.join(KINDS)}.")
    size = (int(size[0]), int(size[1]))
    images, cleans, scenes, backgrounds = [], [], [], []
    for _ in range(n):
        for _attempt in range(1000):
            count = int(rng.integers(min_shapes, max_shapes + 1))
            background = rng.uniform(0.0, 1.0, size=3)
            drawn = [_draw_shape(rng, str(rng.choice(kinds)), depth) for depth in range(count)]
            colours = np.array([background] + [s.colour for s in drawn])
            gaps = np.abs(colours[:, None, :] - colours[None, :, :]).max(axis=-1)
            if np.min(gaps + np.eye(len(colours))) < min_contrast:
                continue
            canvas, alphas = paint(drawn, background, size)
            if np.all(visible_fractions(alphas) >= min_visible):
                break
        else:
            raise ShapeError("could not draw a scene whose shapes are all visible in 1000 tries; lower max_shapes, "
                             "min_visible or min_contrast, or use a larger canvas.")
        cleans.append(canvas)
        images.append(np.clip(canvas + rng.normal(0.0, noise, canvas.shape), 0.0, 1.0))
        scenes.append(drawn)
        backgrounds.append(background)
    as_array = lambda items, shape: np.asarray(items, np.float32).reshape(shape)
    return Dataset(as_array(images, (n, *size, 3)), as_array(cleans, (n, *size, 3)), scenes,
                   as_array(backgrounds, (n, 3)), np.array([len(s) for s in scenes], np.int32))
