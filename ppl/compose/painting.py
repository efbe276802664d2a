"""Painters, poses and compositing: the deterministic half of spatial composition.

A *canvas* is a plain float array of shape ``(H, W, C)`` (height, width,
channels). Scenes are described in **normalised canvas coordinates**, so one
scene renders at any resolution:

* a point is ``(x, y)``: ``x`` grows to the right, ``y`` grows *down*;
* the canvas is the unit square ``[0, 1] x [0, 1]`` whatever its size; pixel
  ``(row i, column j)`` is sampled at its centre ``((j + 0.5) / W, (i + 0.5) / H)``
  (on a non-square canvas a unit of ``x`` and a unit of ``y`` cover different
  numbers of pixels);
* angles are in radians; a positive angle turns ``+x`` towards ``+y``
  (clockwise on screen, as in SVG).

A *painter* is any pytree with a method::

    paint(points: (..., 2), softness: scalar) -> (colour (..., C) or (..., 1), alpha (...))

that evaluates a part at points of its *local* frame. ``alpha`` in ``[0, 1]`` is
its coverage; ``softness`` is the width (in local units) over which a soft
painter's edge fades, which the renderer derives from the pixel size so edges
stay about one pixel wide at any resolution and under any scale. A 1-channel
colour is grey and is broadcast over the canvas channels. By convention a part
is drawn around its local origin at about unit size (``Sprite`` covers
``[-1/2, 1/2]^2``); ``Placed`` moves it onto the canvas with a ``Pose``.

Rendering composites *layers* in order (later ones on top), vectorised over all
pixels and layers at once; everything is differentiable in the painters'
parameters and poses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from ppl.errors import CompositionError

__all__ = [
    "Canvas",
    "Painter",
    "painter",
    "Pose",
    "Placed",
    "Sprite",
    "Layers",
    "pixel_centres",
    "render",
    "BLENDS",
]

Canvas = jax.Array
"""A canvas: a float array of shape ``(H, W, C)``."""

BLENDS = ("over", "max", "sum")


@runtime_checkable
class Painter(Protocol):
    """Anything with ``paint(points (..., 2), softness) -> (colour (..., C), alpha (...))``.

    A painter class whose ``paint`` picks one of several branches by a traced index (``lax.switch`` on a
    field, e.g. a shape's kind) sets the class attribute ``branching = True``: stacked layers of it
    (``ppl.many``) are then painted one at a time instead of under ``vmap``, so each layer runs only its own
    branch (under ``vmap`` a batched index runs every branch and selects). A scene of four such shapes
    renders several times faster; the compiled program grows with the number of layers.
    """

    def paint(self, points: jax.Array, softness: jax.Array) -> tuple[jax.Array, jax.Array]: ...


def painter(cls=None, /):
    """Class decorator: make ``cls`` a frozen dataclass registered as a pytree.

    Fields are pytree leaves (arrays, numbers) unless declared
    ``dataclasses.field(metadata={"static": True})`` (Python constants such as a
    curve degree). The class must define ``paint``. Example::

        >>> import jax, jax.numpy as jnp, ppl
        >>> @ppl.painter
        ... class Square:
        ...     half: float
        ...     def paint(self, points, softness):
        ...         distance = jnp.max(jnp.abs(points), axis=-1) - self.half
        ...         alpha = jax.nn.sigmoid(-distance / softness)
        ...         return jnp.ones(alpha.shape + (1,)), alpha
    """

    def wrap(cls):
        if not callable(getattr(cls, "paint", None)):
            raise CompositionError(
                f"@ppl.painter class {cls.__name__} has no paint method. Define "
                "paint(self, points, softness) -> (colour (..., C), alpha (...))."
            )
        cls = dataclasses.dataclass(frozen=True, eq=False)(cls)
        return jax.tree_util.register_dataclass(cls)

    return wrap if cls is None else wrap(cls)


def _rotation(angle: jax.Array) -> jax.Array:
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    return jnp.stack([jnp.stack([cos, -sin]), jnp.stack([sin, cos])])


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class Pose:
    """A similarity transform from a part's local frame onto the canvas.

    ``canvas_point = at + scale * R(angle) @ local_point``.

    Attributes:
      at: ``(2,)`` where the local origin lands, in canvas coordinates.
      scale: ``()`` positive size factor (local unit -> canvas units).
      angle: ``()`` rotation in radians (positive turns ``+x`` towards ``+y``).
    """

    at: Any
    scale: Any
    angle: Any

    @staticmethod
    def identity() -> "Pose":
        return Pose(jnp.zeros(2), jnp.ones(()), jnp.zeros(()))

    def to_canvas(self, points: jax.Array) -> jax.Array:
        """Local points ``(..., 2)`` -> canvas points ``(..., 2)``."""
        return self.at + self.scale * points @ _rotation(self.angle).T

    def to_local(self, points: jax.Array) -> jax.Array:
        """Canvas points ``(..., 2)`` -> local points ``(..., 2)``."""
        return (points - self.at) @ _rotation(self.angle) / self.scale

    def compose(self, inner: "Pose") -> "Pose":
        """The pose of ``inner``'s frame seen from the canvas: ``self(inner(x))``."""
        return Pose(
            self.to_canvas(jnp.asarray(inner.at)),
            self.scale * inner.scale,
            self.angle + inner.angle,
        )


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class Placed:
    """A painter (or group of them) drawn with a pose; itself a painter.

    ``Placed(p, pose).paint(x, s) = p.paint(pose.to_local(x), s / pose.scale)``.
    """

    painter: Any
    pose: Pose

    def paint(self, points, softness):
        return self.painter.paint(self.pose.to_local(points), softness / self.pose.scale)


@painter
class Sprite:
    """An image as a painter: covers local ``[-1/2, 1/2]^2``, sampled bilinearly.

    Attributes:
      image: ``(h, w, C)`` colours (row 0 at the top, like a canvas).
      alpha: optional ``(h, w)`` coverage; by default the sprite is opaque
        inside its square and transparent outside (with a soft edge).

    Differentiable in ``image``, ``alpha`` and (through ``Placed``) the pose.
    A canvas returned by a part that is then placed becomes a ``Sprite``.
    """

    image: Any
    alpha: Any = None

    def paint(self, points, softness):
        image = jnp.asarray(self.image)
        height, width = image.shape[:2]
        # continuous pixel index: pixel centre j sits at (j + 0.5) / width - 0.5
        col = (points[..., 0] + 0.5) * width - 0.5
        row = (points[..., 1] + 0.5) * height - 0.5
        colour = _bilinear(image, row, col)
        outside = jnp.max(jnp.abs(points), axis=-1) - 0.5
        alpha = jax.nn.sigmoid(-outside / softness)
        if self.alpha is not None:
            alpha = alpha * _bilinear(jnp.asarray(self.alpha)[..., None], row, col)[..., 0]
        return colour, alpha


def _bilinear(image: jax.Array, row: jax.Array, col: jax.Array) -> jax.Array:
    """Sample ``image (h, w, C)`` at fractional ``(row, col)`` (clamped at the border)."""
    height, width = image.shape[:2]
    row = jnp.clip(row, 0.0, height - 1.0)
    col = jnp.clip(col, 0.0, width - 1.0)
    r0 = jnp.clip(jnp.floor(row), 0, max(height - 2, 0)).astype(jnp.int32)
    c0 = jnp.clip(jnp.floor(col), 0, max(width - 2, 0)).astype(jnp.int32)
    r1 = jnp.minimum(r0 + 1, height - 1)
    c1 = jnp.minimum(c0 + 1, width - 1)
    fr = (row - r0)[..., None]
    fc = (col - c0)[..., None]
    top = image[r0, c0] * (1 - fc) + image[r0, c1] * fc
    bottom = image[r1, c0] * (1 - fc) + image[r1, c1] * fc
    return top * (1 - fr) + bottom * fr


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class Layers:
    """``K`` parts of one kind, stacked on a leading axis, with an on/off mask.

    Attributes:
      painters: a painter-like pytree whose leaves have a leading axis ``K``
        (what ``jax.vmap`` of a part returns).
      active: ``(K,)`` bool; inactive layers are not drawn.
    """

    painters: Any
    active: Any


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def pixel_centres(size: Sequence[int]) -> jax.Array:
    """The ``(H, W, 2)`` canvas coordinates ``(x, y)`` of every pixel centre."""
    height, width = check_size(size)
    x = (jnp.arange(width) + 0.5) / width
    y = (jnp.arange(height) + 0.5) / height
    return jnp.stack(jnp.meshgrid(x, y), axis=-1)


def render(
    parts: Any,
    size: Sequence[int],
    *,
    channels: int = 1,
    blend: str = "over",
    background: Any = 0.0,
    softness: float = 0.5,
) -> Canvas:
    """Composite painters onto a new ``(H, W, channels)`` canvas; pure and differentiable.

    Args:
      parts: a painter, a ``Placed``, a ``Layers`` stack, a canvas array of
        shape ``(H, W, C)`` (an opaque full-canvas layer), or a (nested)
        tuple/list of those, drawn in order (later on top).
      size: ``(H, W)`` in pixels.
      channels: ``C``.
      blend: how a layer with colour ``c`` and coverage ``a`` meets the canvas
        ``x`` below it: ``"over"``: ``c a + x (1 - a)`` (alpha compositing);
        ``"max"``: ``max(x, c a)``; ``"sum"``: ``x + c a`` (not clipped).
      background: the canvas before any layer: a number, a ``(C,)`` colour or
        an ``(H, W, C)`` image.
      softness: edge width of soft painters, in pixels (``1 / sqrt(H W)``
        canvas units per pixel). Larger values blur edges and widen the basin
        in which gradients with respect to pose point the right way.

    Example::

        >>> import jax.numpy as jnp, ppl
        >>> canvas = ppl.render(ppl.Sprite(jnp.ones((2, 2, 1))), (8, 8))
        >>> canvas.shape
        (8, 8, 1)
    """
    size = check_size(size)
    channels = check_channels(channels)
    blend = check_blend(blend)
    background = check_background(background, size, channels)
    softness = check_softness(softness)
    return render_parts((parts,), (None,), size, channels, blend, softness, background)


def render_parts(values: tuple, addresses: tuple, size, channels, blend, softness, background) -> Canvas:
    """Render ``values`` (parts in drawing order) after the options were checked.

    A ``CompositionError`` from ``values[i]`` gains the address ``addresses[i]``
    (when not ``None``). Runs as one compiled program (cached by the parts'
    pytree structure and shapes) when every leaf is an array or a number, so
    scenes are quick outside ``jit`` too; under ``jit``/``vmap``/``grad`` it is
    inlined.
    """
    leaves = jax.tree_util.tree_leaves((values, background))
    if all(isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float, bool)) for leaf in leaves):
        return _render_compiled(values, addresses, size, channels, blend, softness, background)
    return _render(values, addresses, size, channels, blend, softness, background)


def _render(values, addresses, size, channels, blend, softness, background):
    points = pixel_centres(size)
    pixel_softness = softness / np.sqrt(size[0] * size[1])
    layers = []
    for value, address in zip(values, addresses):
        try:
            layers.append(paint_layers(value, points, pixel_softness, channels))
        except CompositionError as err:
            if address is not None:
                err.address = address if err.address is None else f"{address}/{err.address}"
            raise
    stacked = [jnp.concatenate(arrays, axis=0) for arrays in zip(*layers)]
    return composite(*stacked, background, blend)


_render_compiled = jax.jit(_render, static_argnums=(1, 2, 3, 4, 5))


def paint_layers(item: Any, points: jax.Array, softness, channels: int):
    """Evaluate every layer of ``item`` at ``points (..., 2)``.

    Returns ``colours (L, ..., channels)``, ``alphas (L, ...)``, ``active (L,)``
    for the ``L`` layers of ``item`` in drawing order. Raises
    ``CompositionError`` for anything that is not a painter, group, stack or
    canvas of matching size.
    """
    grid = points.shape[:-1]
    if isinstance(item, Layers):
        active = jnp.asarray(item.active)
        count = _leading_size(item.painters, active)

        def one(painters, on):
            colours, alphas, inner_active = paint_layers(painters, points, softness, channels)
            return colours, alphas, inner_active & on

        if getattr(item.painters, "branching", False):  # one at a time: each layer runs its own branch only
            painted = [one(jax.tree_util.tree_map(lambda leaf, i=i: leaf[i], item.painters), active[i])
                       for i in range(count)]
            colours, alphas, active = (jnp.stack(parts) for parts in zip(*painted))
        else:
            colours, alphas, active = jax.vmap(one, axis_size=count)(item.painters, active)
        return (
            colours.reshape((-1,) + colours.shape[2:]),
            alphas.reshape((-1,) + alphas.shape[2:]),
            active.reshape(-1),
        )
    if isinstance(item, Placed):
        inner = item.painter
        if is_canvas_array(inner):
            inner = Sprite(inner)
        pose = item.pose
        return paint_layers(inner, pose.to_local(points), softness / pose.scale, channels)
    if isinstance(item, (tuple, list)):
        painted = [paint_layers(member, points, softness, channels) for member in item]
        if not painted:
            return (jnp.zeros((0,) + grid + (channels,)), jnp.zeros((0,) + grid), jnp.zeros((0,), bool))
        return tuple(jnp.concatenate(parts, axis=0) for parts in zip(*painted))
    if callable(getattr(item, "paint", None)):
        colour, alpha = item.paint(points, softness)
        colour, alpha = _check_painted(item, colour, alpha, grid, channels)
        return colour[None], alpha[None], jnp.ones((1,), bool)
    if is_canvas_array(item) and jnp.ndim(item) == 3:
        layer = jnp.asarray(item)
        expected = tuple(grid) + (channels,)
        if layer.shape[:2] != tuple(grid) or layer.shape[2] not in (1, channels):
            raise CompositionError(
                f"a part rendered to a canvas of shape {tuple(layer.shape)}, but the scene's "
                f"canvas is {expected} (H, W, C). Give the part the scene's size and "
                "channels, or place it with ppl.place(part, at=..., scale=...) (a placed "
                "canvas is resampled as a ppl.Sprite at any size)."
            )
        layer = jnp.broadcast_to(layer, expected).astype(jnp.result_type(float))
        return layer[None], jnp.ones((1,) + tuple(grid)), jnp.ones((1,), bool)
    raise CompositionError(
        f"a scene part must return a painter (an object with paint(points, softness)), "
        f"a group (tuple) of painters, or a canvas array (H, W, C); got "
        f"{_describe(item)}. Return e.g. ppl.Sprite(image) or a stdlib.render painter."
    )


def composite(colours, alphas, active, background, blend: str) -> Canvas:
    """Blend ``L`` layers onto ``background``, in order; vectorised over layers.

    ``colours (L, H, W, C)``, ``alphas (L, H, W)``, ``active (L,)`` (inactive
    layers leave the canvas unchanged), ``background`` broadcastable to
    ``(H, W, C)``. See :func:`render` for the blend formulas.
    """
    canvas_shape = colours.shape[1:]
    background = jnp.broadcast_to(background, canvas_shape)
    if colours.shape[0] == 0:
        return background
    on = active.reshape((-1,) + (1,) * (colours.ndim - 1))
    alphas = alphas[..., None]
    if blend == "over":
        alphas = jnp.where(on, alphas, 0.0)
        keep = 1.0 - alphas
        # kept_from[k] = prod_{j >= k} (1 - a_j): how much of layer k-1 shows through
        kept_from = jnp.flip(jnp.cumprod(jnp.flip(keep, 0), axis=0), 0)
        shows = jnp.concatenate([kept_from[1:], jnp.ones_like(keep[:1])], axis=0)
        return background * kept_from[0] + jnp.sum(colours * alphas * shows, axis=0)
    ink = colours * alphas
    if blend == "sum":
        return background + jnp.sum(jnp.where(on, ink, 0.0), axis=0)
    return jnp.maximum(background, jnp.max(jnp.where(on, ink, -jnp.inf), axis=0))


# ---------------------------------------------------------------------------
# Checks (Python-level, before anything compiles)
# ---------------------------------------------------------------------------


def _check_painted(item, colour, alpha, grid, channels):
    colour, alpha = jnp.asarray(colour), jnp.asarray(alpha)
    name = type(item).__name__
    if tuple(alpha.shape) != tuple(grid):
        raise CompositionError(
            f"{name}.paint returned alpha of shape {tuple(alpha.shape)} for points of shape "
            f"{tuple(grid) + (2,)}; expected {tuple(grid)} (one coverage per point)."
        )
    if colour.ndim != alpha.ndim + 1 or tuple(colour.shape[:-1]) != tuple(grid) or colour.shape[-1] not in (1, channels):
        raise CompositionError(
            f"{name}.paint returned colour of shape {tuple(colour.shape)}, but the canvas has "
            f"{channels} channel(s); expected {tuple(grid) + (channels,)} (or "
            f"{tuple(grid) + (1,)} for grey). Give the part a colour with {channels} "
            f"channel(s), or build the scene with channels={colour.shape[-1] if colour.ndim else 1}."
        )
    return jnp.broadcast_to(colour, tuple(grid) + (channels,)), alpha


def _leading_size(tree, active) -> int:
    if active.ndim != 1:
        raise CompositionError(f"Layers.active must have shape (K,), got {tuple(active.shape)}.")
    count = active.shape[0]
    for leaf in jax.tree_util.tree_leaves(tree):
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != count:
            raise CompositionError(
                f"Layers holds {count} layers (active has shape ({count},)) but a painter leaf "
                f"has shape {tuple(jnp.shape(leaf))}; every leaf needs the leading axis {count}."
            )
    return count


def is_canvas_array(value) -> bool:
    return isinstance(value, (jax.Array, np.ndarray)) and not isinstance(value, (bool, int, float))


def _describe(value) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"an array of shape {tuple(shape)}"
    return f"{type(value).__name__} {value!r}"[:200]


def check_size(size) -> tuple[int, int]:
    try:
        height, width = (int(s) for s in size)
        ok = all(int(s) == s for s in size) and height > 0 and width > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise CompositionError(f"size must be (H, W), two positive integers (pixels); got {size!r}.")
    return height, width


def check_channels(channels) -> int:
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
        raise CompositionError(f"channels must be a positive integer (1 grey, 3 RGB); got {channels!r}.")
    return int(channels)


def check_blend(blend) -> str:
    if blend not in BLENDS:
        raise CompositionError(f"blend must be one of {', '.join(map(repr, BLENDS))}; got {blend!r}.")
    return blend


def check_softness(softness) -> float:
    if not isinstance(softness, (int, float, np.floating)) or not softness > 0:
        raise CompositionError(f"softness must be a positive number of pixels (e.g. 0.5); got {softness!r}.")
    return float(softness)


def check_background(background, grid, channels) -> jax.Array:
    array = jnp.asarray(background, dtype=jnp.result_type(float))
    allowed = [(), (1,), (channels,), tuple(grid) + (1,), tuple(grid) + (channels,)]
    if tuple(array.shape) not in allowed:
        raise CompositionError(
            f"background must be a number, a ({channels},) colour or an {tuple(grid) + (channels,)} "
            f"image; got shape {tuple(array.shape)}."
        )
    return array
