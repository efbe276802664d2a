"""Spatial relations worked through: a house and a snowman, told apart by analysis by synthesis.

Both scenes are two parts joined by the core relation ``ppl.above(top, bottom)``:
the top part gets a latent pose with ``ppl.place`` and the bottom part is drawn
in the top part's frame, moved by a latent ``gap`` (down) and ``shift``
(across), in the top part's local units. So the relation priors are priors on
the *relative* pose, whatever the pair's position and size on the canvas:

* **house**: a roof (an isosceles triangle, base 1 local unit, apex up) above
  walls (a rectangle hanging from the roof's base line). The roof sits on the
  walls (``gap ~ Uniform(0, 0.1)``), roughly centred (``shift ~ Normal(0,
  0.05)``), about as wide as them (walls' width ``Uniform(0.75, 1.0)`` roof
  widths).
* **snowman**: a head (a disc, diameter 1 local unit) above a body (a larger
  disc, diameter ``Uniform(1.4, 2.0)`` heads). The balls touch or overlap a
  little (``gap ~ Uniform(-0.15, 0.05)``), roughly centred (``shift ~ Normal(0,
  0.05)``).

Every part's local origin is on the line where the two parts meet (the roof's
base, the walls' top edge, the head's lowest point, the body's highest), so
``gap = 0`` means "touching". Each scene is a ``ppl.scene`` of a backdrop of
latent colour and the pair, each part of latent RGB colour, with the observed
``"image"`` ``(H, W, 3)`` Student-t around the canvas, the same robust pixel
likelihood as :func:`~stdlib.shapes.scene.scene_model`.

======================================  =====================================================
address                                 meaning
======================================  =====================================================
``backdrop/colour``                     ``(3,)`` the background, ``Uniform(0, 1)`` each
``house/top/at``                        ``(2,)`` the middle of the roof's base (canvas units)
``house/top/scale``                     ``()`` the roof's width (canvas units)
``house/top/part/height``, ``colour``   the roof's height (roof widths), its RGB
``house/gap``, ``house/shift``          the walls' offset from the roof (roof widths)
``house/bottom/width``, ``height``,     the walls' sides (roof widths), their RGB
``colour``
``snowman/top/at``, ``scale``           the head's lowest point; its diameter (canvas units)
``snowman/top/part/colour``             the head's RGB
``snowman/gap``, ``snowman/shift``      the body's offset from the head (head diameters)
``snowman/bottom/radius``, ``colour``   the body's radius (head diameters), its RGB
``image``                               ``(H, W, 3)`` the observed picture
======================================  =====================================================

:func:`classify_scenes` asks ``ppl.infer.classify`` which of the two explains
each image better, each hypothesis's evidence ``log p(image | model)``
estimated by the core's Laplace approximation (Adam from prior restarts, then
Newton at the mode), one compiled program for a whole batch.

Example::

    >>> import jax
    >>> from stdlib import shapes
    >>> trace = shapes.house(size=(32, 32)).simulate(jax.random.key(0))
    >>> trace.choices["image"].shape
    (32, 32, 3)
    >>> data = shapes.make_relation_dataset(jax.random.key(1), 2, size=(32, 32))
    >>> data.images.shape, sorted(data.labels)
    ((2, 32, 32, 3), ['house', 'snowman'])
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
from stdlib.shapes.scene import DEGREES_OF_FREEDOM, NOISE, SOFTNESS, _backdrop, _likelihood

__all__ = ["DEFAULT_ESTIMATOR", "RELATIONS", "RelationDataset", "classify_scenes", "house", "house_parts",
           "make_relation_dataset", "part_centres", "snowman", "snowman_parts"]

RELATIONS = ("house", "snowman")
DEFAULT_ESTIMATOR = ppl.infer.Laplace(restarts=8, steps=300, newton=10)


def _colour():
    return ppl.sample("colour", dist.Uniform(0.0, 1.0).expand([3]).to_event(1))


# ---------------------------------------------------------------------------
# Parts, in local units, origin on the line where the two parts meet
# ---------------------------------------------------------------------------


@ppl.model(name="roof")
def roof():
    """An isosceles triangle of base 1 on the local ``x`` axis (origin at the base's middle), apex up
    (``-y``) at a latent ``height``; returns a ``stdlib.render.Polygon``."""
    height = ppl.sample("height", dist.Uniform(0.35, 0.7))
    colour = _colour()
    corners = jnp.stack([jnp.array([-0.5, 0.0]), jnp.array([0.5, 0.0]), jnp.stack([jnp.zeros(()), -height])])
    return render.Polygon(vertices=corners, colour=colour)


@ppl.model(name="walls")
def walls():
    """A rectangle hanging from the local origin (the middle of its top edge): latent ``width`` and
    ``height`` (local units); returns a ``stdlib.render.Rectangle``."""
    width = ppl.sample("width", dist.Uniform(0.75, 1.0))
    height = ppl.sample("height", dist.Uniform(0.5, 0.9))
    colour = _colour()
    return render.Rectangle(centre=jnp.stack([jnp.zeros(()), 0.5 * height]), size=jnp.stack([width, height]),
                            colour=colour)


@ppl.model(name="head")
def head():
    """A disc of diameter 1 resting on the local origin (its lowest point); returns a ``stdlib.render.Disc``."""
    return render.Disc(centre=jnp.array([0.0, -0.5]), radius=jnp.asarray(0.5), colour=_colour())


@ppl.model(name="body")
def body():
    """A disc of latent ``radius`` hanging from the local origin (its highest point); returns a
    ``stdlib.render.Disc``."""
    radius = ppl.sample("radius", dist.Uniform(0.7, 1.0))
    return render.Disc(centre=jnp.stack([jnp.zeros(()), radius]), radius=radius, colour=_colour())


def _box(low, high):
    return dist.Uniform(jnp.asarray(low), jnp.asarray(high)).to_event(1)


house_parts = ppl.above(
    ppl.place(roof, at=_box([0.3, 0.38], [0.7, 0.52]), scale=dist.Uniform(0.3, 0.45)),
    walls, gap=dist.Uniform(0.0, 0.1), shift=dist.Normal(0.0, 0.05), name="house")
"""``ppl.above(roof, walls)``: returns ``(roof, walls)`` as ``ppl.Placed`` painters (see the module docstring)."""

snowman_parts = ppl.above(
    ppl.place(head, at=_box([0.3, 0.32], [0.7, 0.45]), scale=dist.Uniform(0.15, 0.25)),
    body, gap=dist.Uniform(-0.15, 0.05), shift=dist.Normal(0.0, 0.05), name="snowman")
"""``ppl.above(head, body)``: returns ``(head, body)`` as ``ppl.Placed`` painters (see the module docstring)."""

_PARTS = {"house": house_parts, "snowman": snowman_parts}


def part_centres(parts) -> jax.Array:
    """``(2, 2)`` canvas centres ``(x, y)`` of a pair returned by :data:`house_parts` or :data:`snowman_parts`
    (top part first): the middle of each part's bounding box, carried through its pose. Pure ``jnp``, so
    ``jax.vmap(part_centres)`` reads a batch of draws.

    Example::

        >>> import jax
        >>> from stdlib import shapes
        >>> roof, walls = shapes.part_centres(shapes.house_parts.simulate(jax.random.key(0)).retval)
        >>> bool(roof[1] < walls[1])          # y grows down: the roof is above the walls
        True
    """
    centres = []
    for placed in parts:
        painter = placed.painter
        if isinstance(painter, render.Polygon):
            vertices = jnp.asarray(painter.vertices)
            local = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
        else:
            local = jnp.asarray(painter.centre)
        centres.append(placed.pose.to_canvas(local))
    return jnp.stack(centres)


# ---------------------------------------------------------------------------
# The scene models
# ---------------------------------------------------------------------------


def _check_size(size, where: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
        ok = all(float(v) == int(v) for v in size) and height >= 8 and width >= 8
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ShapeError(f"{where}: size must be (H, W), two ints >= 8 (pixels), got {size!r}. "
                         "Use e.g. size=(32, 32).")
    return height, width


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and bool(np.isfinite(value))


def _check_noise(noise, degrees_of_freedom, where: str) -> tuple[float, float]:
    if not (_is_number(noise) and noise > 0 and _is_number(degrees_of_freedom) and degrees_of_freedom > 0):
        raise ShapeError(f"{where}: noise and degrees_of_freedom must be finite and > 0, got {noise!r} and "
                         f"{degrees_of_freedom!r}. The defaults are noise={NOISE}, "
                         f"degrees_of_freedom={DEGREES_OF_FREEDOM}.")
    return float(noise), float(degrees_of_freedom)


@functools.lru_cache(maxsize=16)
def _scene(kind: str, size: tuple[int, int], noise: float | None, degrees_of_freedom: float) -> ppl.Model:
    """The scene model (``noise=None``: without the observation, the canvas its return value)."""
    likelihood = None if noise is None else _likelihood(noise, degrees_of_freedom)
    return ppl.scene(size=size, channels=3, noise=likelihood, softness=SOFTNESS, name=kind, backdrop=_backdrop,
                     **{kind: _PARTS[kind]})


def house(size: tuple[int, int] = (32, 32), noise: float = NOISE,
          degrees_of_freedom: float = DEGREES_OF_FREEDOM) -> ppl.Model:
    """A house: a roof ``ppl.above`` walls, on a backdrop, observed as ``"image"`` ``(H, W, 3)``.

    Cached: equal settings return the same model (and share its compilations).

    Args:
      size: ``(H, W)`` pixels.
      noise: the Student-t pixel likelihood's scale.
      degrees_of_freedom: its degrees of freedom (lower is more robust).

    Example::

        >>> import jax
        >>> from stdlib import shapes
        >>> trace = shapes.house(size=(32, 32)).simulate(jax.random.key(0))
        >>> trace.retval.shape, float(trace.choices["house/gap"]) >= 0.0
        ((32, 32, 3), True)
    """
    return _scene("house", _check_size(size, "house"), *_check_noise(noise, degrees_of_freedom, "house"))


def snowman(size: tuple[int, int] = (32, 32), noise: float = NOISE,
            degrees_of_freedom: float = DEGREES_OF_FREEDOM) -> ppl.Model:
    """A snowman: a head ``ppl.above`` a larger body, on a backdrop, observed as ``"image"`` ``(H, W, 3)``.

    Cached like :func:`house`; the same arguments.

    Example::

        >>> import jax
        >>> from stdlib import shapes
        >>> trace = shapes.snowman(size=(32, 32)).simulate(jax.random.key(0))
        >>> float(trace.choices["snowman/bottom/radius"]) > 0.5     # the body is bigger than the head
        True
    """
    return _scene("snowman", _check_size(size, "snowman"), *_check_noise(noise, degrees_of_freedom, "snowman"))


def _models(size, noise, degrees_of_freedom) -> dict[str, ppl.Model]:
    return {"house": house(size, noise, degrees_of_freedom), "snowman": snowman(size, noise, degrees_of_freedom)}


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


class RelationDataset(NamedTuple):
    """Seeded house and snowman images with their ground truth.

    Attributes:
      images: ``(n, H, W, 3)`` float32 in ``[0, 1]``: the clean canvas plus ``Normal(0, noise)``, clipped.
      clean: ``(n, H, W, 3)`` the canvases without noise.
      labels: ``n`` names, each ``"house"`` or ``"snowman"``.
      choices: ``n`` choice maps: the latents each image was drawn with (its model's addresses but
        ``"image"``), so ``model.assess(choices[i].set("image", images[i]))`` scores it.
    """

    images: np.ndarray
    clean: np.ndarray
    labels: tuple
    choices: tuple


DRAWS = 32  # prior draws per kind per compiled call (rejected ones are drawn again)


@functools.partial(jax.jit, static_argnames=("models",))
def _draw(key, *, models):
    """``DRAWS`` prior draws of each scene in ``models`` (built outside the compiled function: a model made
    while tracing would hold that trace's arrays): a tuple of ``(choices, canvases (DRAWS, H, W, 3))``."""
    keys = jax.random.split(key, len(models))
    traces = [jax.vmap(model.simulate)(jax.random.split(k, DRAWS)) for model, k in zip(models, keys)]
    return tuple((trace.choices, trace.retval) for trace in traces)


def _contrast(choices, kind: str) -> np.ndarray:
    """``(count,)``: the smallest largest-channel difference between the backdrop's and the parts' colours."""
    colours = np.stack([np.asarray(choices["backdrop/colour"]), np.asarray(choices[f"{kind}/top/part/colour"]),
                        np.asarray(choices[f"{kind}/bottom/colour"])], axis=1)
    gaps = np.abs(colours[:, :, None, :] - colours[:, None, :, :]).max(axis=-1) + 2.0 * np.eye(3)
    return gaps.min(axis=(1, 2))


def make_relation_dataset(key: jax.Array, n: int, size: tuple[int, int] = (32, 32), noise: float = 0.1,
                          min_contrast: float = 0.25) -> RelationDataset:
    """``n`` images, half houses and half snowmen in a seeded order, drawn from the models' priors.

    Each scene's latents are a prior draw of :func:`house` or :func:`snowman` (``simulate`` of the same
    parts and backdrop), redrawn until the backdrop's and the two parts' colours are each at least
    ``min_contrast`` apart (largest channel difference), so that both parts can be seen; the image is
    the rendered canvas plus ``Normal(0, noise)`` per pixel, clipped to ``[0, 1]`` (as
    :func:`~stdlib.shapes.scene.make_dataset`). One compiled program draws every scene.

    Args:
      key: a PRNG key; the same key gives the same images.
      n: how many (``>= 0``): ``n // 2`` of one kind and the rest of the other (which one gets the
        extra image is seeded).
      size: ``(H, W)`` pixels.
      noise: the pixel noise's standard deviation (``>= 0``).
      min_contrast: in ``[0, 1)``.

    Example::

        >>> import jax
        >>> from stdlib import shapes
        >>> data = shapes.make_relation_dataset(jax.random.key(0), 4, size=(32, 32))
        >>> data.images.shape, sorted(data.labels)
        ((4, 32, 32, 3), ['house', 'house', 'snowman', 'snowman'])
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ShapeError(f"make_relation_dataset needs a count n >= 0 (an int), got {n!r}.")
    size = _check_size(size, "make_relation_dataset")
    if not (_is_number(noise) and noise >= 0):
        raise ShapeError(f"make_relation_dataset: noise must be a finite standard deviation >= 0, got {noise!r}.")
    if not (_is_number(min_contrast) and 0.0 <= min_contrast < 1.0):
        raise ShapeError(f"make_relation_dataset: min_contrast must be in [0, 1), got {min_contrast!r}.")
    n = int(n)
    order_key, draw_key = jax.random.split(key)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(order_key)))  # the order and the pixel noise
    first = int(rng.integers(2))
    labels = [RELATIONS[(i + first) % 2] for i in rng.permutation(n)]
    models = tuple(_scene(kind, size, None, DEGREES_OF_FREEDOM) for kind in RELATIONS)  # no observation
    kept = {kind: [] for kind in RELATIONS}
    for attempt in range(100):
        if all(len(kept[kind]) >= labels.count(kind) for kind in RELATIONS):
            break
        for kind, (choices, canvases) in zip(RELATIONS, _draw(jax.random.fold_in(draw_key, attempt), models=models)):
            canvases = np.asarray(canvases)
            for i in np.flatnonzero(_contrast(choices, kind) >= min_contrast):
                kept[kind].append((jax.tree_util.tree_map(lambda leaf, i=i: np.asarray(leaf[i]), choices), canvases[i]))
    else:
        raise ShapeError(f"make_relation_dataset could not draw scenes whose colours are {min_contrast} apart in "
                         "100 tries; lower min_contrast.")
    taken = {kind: iter(kept[kind]) for kind in RELATIONS}
    drawn = [next(taken[label]) for label in labels]
    clean = np.asarray([canvas for _, canvas in drawn], np.float32).reshape((n, *size, 3))
    images = np.clip(clean + rng.normal(0.0, noise, clean.shape), 0.0, 1.0)
    return RelationDataset(images.astype(np.float32), clean, tuple(labels), tuple(choices for choices, _ in drawn))


# ---------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------


def _check_images(images, where: str) -> np.ndarray:
    """``images`` as float32 ``(H, W, 3)`` or ``(B, H, W, 3)``; a ``ShapeError`` that says what to pass otherwise."""
    array = np.asarray(images)
    if not np.issubdtype(array.dtype, np.number) or array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise ShapeError(f"{where}: images must be one RGB image (H, W, 3) or a batch (B, H, W, 3) of numbers in "
                         f"[0, 1], got shape {array.shape} and dtype {array.dtype}. Lift a grey image with "
                         "np.repeat(image[..., None], 3, axis=-1).")
    _check_size(array.shape[-3:-1], where)
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ShapeError(f"{where}: the images hold {int((~np.isfinite(array)).sum())} NaN or infinite values; "
                         "fill or crop them first.")
    if array.max() > 2.0 or array.min() < -1.0:
        raise ShapeError(f"{where}: the images' values lie in [{array.min():g}, {array.max():g}]; the models draw "
                         "colours in [0, 1]. Scale [0, 255] images by 1/255.")
    return array


def classify_scenes(key: jax.Array, images, *, estimator=DEFAULT_ESTIMATOR, noise: float = NOISE,
                    degrees_of_freedom: float = DEGREES_OF_FREEDOM, chunk_size: int | None = 1):
    """House or snowman? ``ppl.infer.classify`` over :func:`house` and :func:`snowman` for each image.

    Args:
      key: a PRNG key (the Laplace restarts' starting points).
      images: ``(H, W, 3)`` or a batch ``(B, H, W, 3)``, values in ``[0, 1]``.
      estimator: each hypothesis's evidence estimator (default :data:`DEFAULT_ESTIMATOR`, a
        ``ppl.infer.Laplace``); any ``ppl.infer.classify`` estimator.
      noise, degrees_of_freedom: the models' pixel likelihood.
      chunk_size: images per vectorised chunk; the default 1 runs the images one after another in one
        compiled loop, which on a CPU compiles in about half the time of a whole-batch ``vmap`` (``None``)
        and runs as fast. On an accelerator raise it.

    Returns:
      A ``ppl.infer.Classification`` over ``("house", "snowman")``: ``result.probabilities`` ``(B, 2)``
      (``(2,)`` for one image), ``result.best`` the index into ``result.names``.

    Example::

        >>> import jax
        >>> from stdlib import shapes
        >>> data = shapes.make_relation_dataset(jax.random.key(0), 2)
        >>> result = shapes.classify_scenes(jax.random.key(1), data.images)      # doctest: +SKIP
        >>> [result.names[i] for i in result.best] == list(data.labels)           # doctest: +SKIP
        True
    """
    images = _check_images(images, "classify_scenes")
    models = _models(images.shape[-3:-1], noise, degrees_of_freedom)
    return ppl.infer.classify(key, models, {"image": jnp.asarray(images)}, estimator=estimator,
                              chunk_size=chunk_size, batched=images.ndim == 4)
