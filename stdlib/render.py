"""Differentiable soft rasterisation: the one place to look for rendering (digits, shapes, scenes).

Everything that draws lives here or is re-exported from here. The core keeps
only what ``ppl.scene`` needs to put painters on a canvas: the painter
protocol, poses, sprites and layer compositing (``ppl.compose.painting``; the
core never imports the standard library). Those names are re-exported below,
so ``stdlib.render.render is ppl.render`` and ``stdlib.render.Pose is
ppl.Pose``.

Three layers:

1. **Primitives** (pure functions of points): *signed distances* (negative
   inside, positive outside, in the units of the points) to a disc, an ellipse,
   a box, a polygon, a segment and a polyline; Bezier curves sampled into
   polylines; and :func:`coverage`, which turns a signed distance into a soft
   coverage in ``[0, 1]``::

       coverage(d, softness) = sigmoid(-d / softness)

   The sigmoid is symmetric about the edge, so the summed coverage of a shape
   over a pixel grid is its area (``pi r^2`` for a disc) up to curvature terms
   of order ``softness^2``; and it is smooth, so gradients reach every
   parameter from pixels near the edge. Points have shape ``(..., 2)`` (any
   batch shape, e.g. a ``(H, W, 2)`` pixel grid); shape parameters are single
   shapes. Batch over shapes or images with ``jax.vmap``.

2. **Painters** (``Disc``, ``Ellipse``, ``Rectangle``, ``Polygon``,
   ``Stroke``): pytrees with ``paint(points, softness) -> (colour, alpha)``, the
   protocol of ``ppl.scene`` (see ``ppl.compose.painting``). Place them with
   ``ppl.place`` or give them canvas coordinates directly (``x`` right, ``y``
   down, canvas = unit square).

3. **Compositing** (from the core): ``render(painters, size)`` draws painters,
   groups and ``Layers`` onto a canvas with ``over``/``max``/``sum`` blending;
   ``Pose``/``Placed`` move a painter, ``Sprite`` draws an image, ``painter``
   declares a painter class, ``pixel_centres`` the sampling grid. Also
   :func:`gaussian_pen`, the ink density of a pen along polylines (digits).

Example::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from stdlib import render
    >>> canvas = ppl.render(render.Disc(centre=jnp.array([0.5, 0.5]), radius=0.25), (32, 32))
    >>> area = float(canvas.sum()) / 32**2          # about pi * 0.25**2 = 0.196
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ppl.compose.painting import Layers, Placed, Pose, Sprite, painter, pixel_centres, render
from ppl.errors import ShapeError

__all__ = [
    "render",
    "painter",
    "Pose",
    "Placed",
    "Sprite",
    "Layers",
    "pixel_centres",
    "coverage",
    "disc_distance",
    "ellipse_distance",
    "box_distance",
    "polygon_distance",
    "segment_distance",
    "polyline_distance",
    "bezier_curve",
    "bezier_spline",
    "soft_disc",
    "soft_ellipse",
    "soft_polygon",
    "soft_stroke",
    "union",
    "gaussian_pen",
    "Disc",
    "Ellipse",
    "Rectangle",
    "Polygon",
    "Stroke",
]

_TINY = 1e-12


def _norm(v: jax.Array) -> jax.Array:
    """Euclidean norm over the last axis with a finite gradient at 0."""
    return jnp.sqrt(jnp.sum(v * v, axis=-1) + _TINY)


def _rotate_to_local(points: jax.Array, centre: jax.Array, angle: jax.Array) -> jax.Array:
    """``R(-angle) (points - centre)``: coordinates in a frame turned by ``angle``."""
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    d = points - centre
    return jnp.stack([cos * d[..., 0] + sin * d[..., 1], -sin * d[..., 0] + cos * d[..., 1]], axis=-1)


# ---------------------------------------------------------------------------
# Signed distances
# ---------------------------------------------------------------------------


def coverage(signed_distance: jax.Array, softness: Any) -> jax.Array:
    """Soft coverage ``sigmoid(-signed_distance / softness)`` in ``[0, 1]``; 1/2 on the edge."""
    return jax.nn.sigmoid(-signed_distance / softness)


def disc_distance(points: jax.Array, centre: jax.Array, radius: jax.Array) -> jax.Array:
    """Exact signed distance ``|p - centre| - radius``; ``points (..., 2)`` -> ``(...)``."""
    return _norm(points - centre) - radius


def ellipse_distance(points: jax.Array, centre: jax.Array, radii: jax.Array, angle: Any = 0.0) -> jax.Array:
    """Signed distance to an ellipse with semi-axes ``radii (2,)`` turned by ``angle``.

    First-order approximation ``k0 (k0 - 1) / k1`` with ``k0 = |q / r|``,
    ``k1 = |q / r^2|`` (``q`` the local point): exact on the boundary (value 0,
    unit gradient), so edges are equally soft all round; ``-min(radii)`` at the
    centre. Exact for a circle.
    """
    q = _rotate_to_local(points, centre, angle)
    radii = jnp.asarray(radii)
    k0 = _norm(q / radii)
    k1 = _norm(q / radii**2)
    at_centre = jnp.sum(q * q, axis=-1) < 1e-10
    safe_k1 = jnp.where(at_centre, 1.0, k1)
    return jnp.where(at_centre, -jnp.min(radii), k0 * (k0 - 1.0) / safe_k1)


def box_distance(points: jax.Array, centre: jax.Array, half_size: jax.Array, angle: Any = 0.0) -> jax.Array:
    """Exact signed distance to a rectangle of half side lengths ``half_size (2,)``, turned by ``angle``."""
    q = jnp.abs(_rotate_to_local(points, centre, angle)) - half_size
    outside = _norm(jnp.maximum(q, 0.0)) - jnp.sqrt(_TINY)
    inside = jnp.minimum(jnp.max(q, axis=-1), 0.0)
    return outside + inside


def polygon_distance(points: jax.Array, vertices: jax.Array) -> jax.Array:
    """Exact signed distance to a simple polygon ``vertices (n, 2)`` (either winding order).

    The distance to the nearest edge, negative where a ray from the point
    crosses the boundary an odd number of times.
    """
    vertices = jnp.asarray(vertices)
    if vertices.ndim != 2 or vertices.shape[-1] != 2 or vertices.shape[0] < 3:
        raise ShapeError(f"a polygon needs vertices of shape (n, 2) with n >= 3; got {tuple(vertices.shape)}.")
    start = vertices
    end = jnp.roll(vertices, -1, axis=0)
    p = points[..., None, :]  # (..., 1, 2) against (n, 2) edges
    edge = end - start
    w = p - start
    t = jnp.clip(jnp.sum(w * edge, -1) / (jnp.sum(edge * edge, -1) + _TINY), 0.0, 1.0)
    squared = jnp.sum((w - edge * t[..., None]) ** 2, axis=-1)
    distance = jnp.sqrt(jnp.min(squared, axis=-1) + _TINY)
    # crossing number of a ray towards +x
    y, y0, y1 = p[..., 1], start[:, 1], end[:, 1]
    straddles = (y0 <= y) != (y1 <= y)
    x_cross = start[:, 0] + (y - y0) * edge[:, 0] / jnp.where(y1 == y0, 1.0, y1 - y0)
    crossings = jnp.sum(straddles & (p[..., 0] < x_cross), axis=-1)
    return jnp.where(crossings % 2 == 1, -distance, distance)


def segment_distance(points: jax.Array, start: jax.Array, end: jax.Array) -> jax.Array:
    """Distance (unsigned) from ``points (..., 2)`` to the segment ``start``-``end``."""
    edge = end - start
    w = points - start
    t = jnp.clip(jnp.sum(w * edge, -1) / (jnp.sum(edge * edge, -1) + _TINY), 0.0, 1.0)
    return _norm(w - edge * t[..., None])


def polyline_distance(points: jax.Array, vertices: jax.Array) -> jax.Array:
    """Distance (unsigned) to the open polyline through ``vertices (n, 2)``, ``n >= 2``."""
    vertices = jnp.asarray(vertices)
    if vertices.ndim != 2 or vertices.shape[-1] != 2 or vertices.shape[0] < 2:
        raise ShapeError(f"a polyline needs vertices of shape (n, 2) with n >= 2; got {tuple(vertices.shape)}.")
    p = points[..., None, :]
    return jnp.min(segment_distance(p, vertices[:-1], vertices[1:]), axis=-1)


# ---------------------------------------------------------------------------
# Curves
# ---------------------------------------------------------------------------


def bezier_curve(control: jax.Array, samples: int = 16) -> jax.Array:
    """Points of the Bezier curve with control points ``control (..., d + 1, 2)``.

    Returns ``(..., samples, 2)`` at ``t = 0, 1/(samples-1), ..., 1`` (Bernstein
    form; degree ``d`` from the number of control points; batched over ``...``).
    """
    control = jnp.asarray(control)
    degree = control.shape[-2] - 1
    t = jnp.linspace(0.0, 1.0, samples)[:, None]
    k = jnp.arange(degree + 1)
    binomial = jnp.exp(
        jax.scipy.special.gammaln(degree + 1.0) - jax.scipy.special.gammaln(k + 1.0) - jax.scipy.special.gammaln(degree - k + 1.0)
    )
    basis = binomial * t**k * (1.0 - t) ** (degree - k)  # (samples, d + 1)
    return jnp.einsum("sk,...kc->...sc", basis, control)


def bezier_spline(control: jax.Array, degree: int, samples: int = 16) -> jax.Array:
    """A chain of Bezier segments sharing end points, as a polyline.

    ``control (m * degree + 1, 2)``: segment ``i`` uses control points
    ``i * degree ... (i + 1) * degree``. ``degree`` 1 is the polyline itself, 2
    quadratic, 3 cubic. Returns ``(m * (samples - 1) + 1, 2)`` vertices (the
    polyline is within ``O(1 / samples^2)`` of the curve).
    """
    control = jnp.asarray(control)
    n = control.shape[0]
    if control.ndim != 2 or control.shape[-1] != 2 or n < 2 or (n - 1) % degree:
        raise ShapeError(
            f"a degree-{degree} Bezier spline needs m * {degree} + 1 control points of shape (n, 2) "
            f"(e.g. {degree + 1} or {2 * degree + 1}); got shape {tuple(control.shape)}."
        )
    if degree == 1:
        return control
    segments = jnp.stack([control[i : i + degree + 1] for i in range(0, n - 1, degree)])
    curve = bezier_curve(segments, samples)  # (m, samples, 2)
    return jnp.concatenate([curve[:, :-1].reshape(-1, 2), curve[-1:, -1]], axis=0)


# ---------------------------------------------------------------------------
# Soft primitives (coverage in [0, 1])
# ---------------------------------------------------------------------------


def soft_disc(points, centre, radius, softness):
    """Soft coverage of a disc, ``(...)`` in ``[0, 1]``."""
    return coverage(disc_distance(points, centre, radius), softness)


def soft_ellipse(points, centre, radii, angle, softness):
    """Soft coverage of an ellipse with semi-axes ``radii``, turned by ``angle``."""
    return coverage(ellipse_distance(points, centre, radii, angle), softness)


def soft_polygon(points, vertices, softness):
    """Soft coverage of a simple polygon ``vertices (n, 2)``."""
    return coverage(polygon_distance(points, vertices), softness)


def soft_stroke(points, vertices, width, softness):
    """Soft coverage of a pen of diameter ``width`` drawn along the polyline ``vertices (n, 2)``."""
    return coverage(polyline_distance(points, vertices) - 0.5 * width, softness)


def union(alphas: jax.Array, axis: int = 0) -> jax.Array:
    """Soft union of coverages along ``axis``: ``1 - prod(1 - alpha)`` (in ``[0, 1]``)."""
    return 1.0 - jnp.prod(1.0 - alphas, axis=axis)


def _normal_cdf(x: jax.Array) -> jax.Array:
    """``Phi(x)`` by one ``erf``: a third of ``jax.scipy.special.ndtr``'s cost on CPU (which evaluates ``erf`` and
    ``erfc`` and selects). Far in the lower tail it rounds to 0 where ``ndtr`` keeps ~1e-8: the pen only takes
    differences of it, where that is below float32's resolution of the ink anyway."""
    return 0.5 + 0.5 * jax.lax.erf(x * np.float32(1.0 / np.sqrt(2.0)))


def gaussian_pen(vertices: jax.Array, width: Any, size, *, weights: Any = None, dabs: int = 4) -> jax.Array:
    """Ink density ``(H, W)`` of a soft round pen drawn along polylines; cheap and smooth.

    The pen is a Gaussian of sd ``sigma = width / 3.42`` swept along each
    polyline ``vertices (S, P, 2)`` (canvas coordinates, unit square) and
    averaged exactly over each pixel::

        density(p) = sqrt(2 pi) sigma * integral N(p; c(s), sigma^2 I) ds

    (a line integral, approximated by ``dabs`` Gaussian dabs per segment, each
    weighted by its share of the segment's length), so a straight stroke has
    density 1 on its axis whatever its length or sampling. ``1 - exp(-3 density)``
    is then an opacity whose half-maximum is ``width`` wide. Isotropic dabs are
    separable, so the pixel averages are ``erf`` differences along ``x`` and
    ``y`` and the image is one ``(H, K) @ (K, W)`` product over the ``K`` dabs:
    about a hundred times cheaper than distance-based coverage, with gradients
    that reach every vertex from every pixel. ``weights (S,)`` scales each
    stroke (0 removes it). Pen width is in canvas *heights* (round on a
    non-square canvas).
    """
    vertices = jnp.asarray(vertices)
    if vertices.ndim != 3 or vertices.shape[-1] != 2 or vertices.shape[1] < 2:
        raise ShapeError(f"gaussian_pen needs polylines of shape (S, P, 2) with P >= 2; got {tuple(vertices.shape)}.")
    height, width_px = size
    aspect = width_px / height
    points = vertices * jnp.array([aspect, 1.0])  # height units: x in [0, W/H]
    start, edge = points[:, :-1], points[:, 1:] - points[:, :-1]  # (S, P-1, 2)
    t = (jnp.arange(dabs) + 0.5) / dabs
    centres = (start[:, :, None, :] + t[:, None] * edge[:, :, None, :]).reshape(-1, 2)  # (K, 2)
    length = _norm(edge) / dabs  # (S, P-1)
    if weights is not None:
        length = length * jnp.asarray(weights)[:, None]
    length = jnp.broadcast_to(length[:, :, None], start.shape[:2] + (dabs,)).reshape(-1)
    sigma = jnp.asarray(width) / 3.42
    x_edges = jnp.arange(width_px + 1) / height
    y_edges = jnp.arange(height + 1) / height
    cdf_x = _normal_cdf((x_edges[None, :] - centres[:, :1]) / sigma)  # (K, W + 1)
    cdf_y = _normal_cdf((y_edges[None, :] - centres[:, 1:]) / sigma)  # (K, H + 1)
    mass_x = (cdf_x[:, 1:] - cdf_x[:, :-1]) * height  # pixel average of the 1-d pdf
    mass_y = (cdf_y[:, 1:] - cdf_y[:, :-1]) * height
    return jnp.sqrt(2 * jnp.pi) * sigma * (mass_y.T * length) @ mass_x


# ---------------------------------------------------------------------------
# Painters
# ---------------------------------------------------------------------------


def _filled(colour: Any, alpha: jax.Array) -> tuple[jax.Array, jax.Array]:
    colour = jnp.atleast_1d(jnp.asarray(colour, dtype=alpha.dtype))
    if colour.ndim != 1:
        raise ShapeError(f"a painter's colour must be a number (grey) or a (C,) vector; got shape {tuple(colour.shape)}.")
    return jnp.broadcast_to(colour, alpha.shape + colour.shape), alpha


@painter
class Disc:
    """A filled disc: ``centre (2,)``, ``radius ()``, ``colour`` (number or ``(C,)``)."""

    centre: Any
    radius: Any
    colour: Any = 1.0

    def paint(self, points, softness):
        return _filled(self.colour, soft_disc(points, jnp.asarray(self.centre), self.radius, softness))


@painter
class Ellipse:
    """A filled ellipse: ``centre (2,)``, semi-axes ``radii (2,)``, ``angle ()``, ``colour``."""

    centre: Any
    radii: Any
    angle: Any = 0.0
    colour: Any = 1.0

    def paint(self, points, softness):
        alpha = soft_ellipse(points, jnp.asarray(self.centre), jnp.asarray(self.radii), self.angle, softness)
        return _filled(self.colour, alpha)


@painter
class Rectangle:
    """A filled rectangle: ``centre (2,)``, side lengths ``size (2,)``, ``angle ()``, ``colour``."""

    centre: Any
    size: Any
    angle: Any = 0.0
    colour: Any = 1.0

    def paint(self, points, softness):
        distance = box_distance(points, jnp.asarray(self.centre), 0.5 * jnp.asarray(self.size), self.angle)
        return _filled(self.colour, coverage(distance, softness))


@painter
class Polygon:
    """A filled simple polygon (a triangle with 3 vertices): ``vertices (n, 2)``, ``colour``."""

    vertices: Any
    colour: Any = 1.0

    def paint(self, points, softness):
        return _filled(self.colour, soft_polygon(points, self.vertices, softness))


@painter
class Stroke:
    """A pen stroke along a Bezier spline (``degree`` 1: polyline through ``control``).

    Attributes:
      control: ``(m * degree + 1, 2)`` control points (see :func:`bezier_spline`).
      width: ``()`` pen diameter.
      ink: ``()`` opacity of the ink, ``alpha = ink * coverage`` (in ``[0, 1]``).
      colour: a number (grey) or ``(C,)``.
      degree: 1, 2 (quadratic) or 3 (cubic); a static Python int.
      samples: points per curve segment (static).
    """

    control: Any
    width: Any
    ink: Any = 1.0
    colour: Any = 1.0
    degree: int = dataclasses.field(default=1, metadata={"static": True})
    samples: int = dataclasses.field(default=16, metadata={"static": True})

    def paint(self, points, softness):
        path = bezier_spline(self.control, self.degree, self.samples)
        return _filled(self.colour, self.ink * soft_stroke(points, path, self.width, softness))
