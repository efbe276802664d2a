"""The shape primitives: ``circle``, ``ellipse``, ``rectangle``, ``triangle`` and ``line``.

Each is an ordinary ppl model (written with ``ppl.sample``) whose return value is
a painter of :mod:`stdlib.render`, the project's one differentiable soft
rasteriser, so ``ppl.scene`` draws it and gradients reach every latent. The
canvas is the unit square (``x`` right, ``y`` down). Every primitive has the same
five latents, so a scene can hold any of them in one slot (``ppl.either``):

==========  =======================================  ==============================================
address     prior                                    meaning
==========  =======================================  ==============================================
``centre``  ``Uniform(0.15, 0.85)`` each coordinate  the shape's centre (canvas units)
``size``    ``Uniform(low, high)`` each, ``(2,)``    its extent along its own axes (see below)
``angle``   ``Uniform(0, period)``                   its turn, over the kind's symmetry period
``colour``  ``Uniform(0, 1)`` each, ``(3,)``         RGB
==========  =======================================  ==============================================

``size`` is ``(width, height)`` of the shape before it turns: a circle's
diameter twice (only the first is read; the second is an unused draw, so that
every kind has the same choices), an ellipse's two diameters, a rectangle's
sides, a triangle's base and height (isosceles, apex up before turning), a
line's length and thickness.

Example::

    >>> import jax, ppl
    >>> from stdlib import shapes
    >>> trace = shapes.circle.simulate(jax.random.key(0))
    >>> sorted(trace.choices.addresses())
    ['angle', 'centre', 'colour', 'size']
    >>> canvas = ppl.render(trace.retval, (32, 32), channels=3)
    >>> canvas.shape
    (32, 32, 3)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ppl import dist
from ppl.model import model, sample
from stdlib import render

__all__ = ["KINDS", "PRIMITIVES", "Bounds", "ShapePainter", "circle", "ellipse", "line", "outline", "painter_of", "rectangle",
           "triangle"]


class Bounds(NamedTuple):
    """A kind's prior bounds: ``size`` ``(low, high)`` per axis ``((2,), (2,))`` and the angle's period."""

    low: tuple[float, float]
    high: tuple[float, float]
    period: float


CENTRE = (0.15, 0.85)
BOUNDS = {
    "circle": Bounds((0.12, 0.12), (0.45, 0.45), 2 * math.pi),
    "ellipse": Bounds((0.12, 0.08), (0.5, 0.3), math.pi),
    "rectangle": Bounds((0.1, 0.1), (0.45, 0.45), math.pi / 2),
    "triangle": Bounds((0.14, 0.14), (0.5, 0.45), 2 * math.pi),
    "line": Bounds((0.25, 0.025), (0.7, 0.06), math.pi),
}
KINDS = tuple(BOUNDS)


def _latents(kind: str):
    bounds = BOUNDS[kind]
    centre = sample("centre", dist.Uniform(*CENTRE).expand([2]).to_event(1))
    size = sample("size", dist.Uniform(jnp.asarray(bounds.low), jnp.asarray(bounds.high)).to_event(1))
    angle = sample("angle", dist.Uniform(0.0, bounds.period))
    colour = sample("colour", dist.Uniform(0.0, 1.0).expand([3]).to_event(1))
    return centre, size, angle, colour


def painter_of(kind: str, centre, size, angle, colour) -> ShapePainter:
    """The painter of a ``kind`` with these latents (what the model returns)."""
    if kind not in KINDS:
        raise ValueError(f"unknown shape kind {kind!r}; the kinds are {', '.join(KINDS)}.")
    as_float = lambda value: jnp.asarray(value, jnp.float32)
    return ShapePainter(kind=jnp.asarray(KINDS.index(kind), jnp.int32), centre=as_float(centre),
                        size=as_float(size), angle=as_float(angle), colour=as_float(colour))


def _coverage(kind: int, points, centre, size, angle, softness):
    """``(...)`` soft coverage of one shape of kind ``KINDS[kind]`` (a Python int) at ``points (..., 2)``."""
    name = KINDS[kind]
    if name == "circle":
        return render.soft_disc(points, centre, 0.5 * size[0], softness)
    if name == "ellipse":
        return render.soft_ellipse(points, centre, 0.5 * size, angle, softness)
    if name == "rectangle":
        return render.coverage(render.box_distance(points, centre, 0.5 * size, angle), softness)
    if name == "triangle":
        return render.soft_polygon(points, _triangle(centre, size, angle), softness)
    return render.soft_stroke(points, _segment(centre, size[0], angle), size[1], softness)


@render.painter
class ShapePainter:
    """Any primitive as one painter type (so ``ppl.either`` over kinds returns one structure): ``kind`` an
    ``int32`` index into ``KINDS`` (traced is fine: ``lax.switch``), ``centre (2,)``, ``size (2,)``,
    ``angle ()``, ``colour (3,)``."""

    kind: Any
    centre: Any
    size: Any
    angle: Any
    colour: Any

    branching = True  # a scene paints its shapes one at a time, so each runs its own kind's branch only

    def paint(self, points, softness):
        branches = [lambda p, c, s, a, k=k: _coverage(k, p, c, s, a, softness) for k in range(len(KINDS))]
        alpha = jax.lax.switch(self.kind, branches, points, self.centre, self.size, self.angle)
        colour = jnp.asarray(self.colour, alpha.dtype)
        return jnp.broadcast_to(colour, alpha.shape + colour.shape), alpha


# corners in units of (width, height), before turning: the triangle's apex up (-y), the line along x
TRIANGLE = np.array([[0.0, -0.5], [-0.5, 0.5], [0.5, 0.5]])
SEGMENT = np.array([[-0.5, 0.0], [0.5, 0.0]])
RECTANGLE = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])


def _turn(local, centre, angle, xp=jnp):
    """``centre + R(angle) local``: local points ``(m, 2)`` to the canvas (``xp``: ``jnp``, or ``np`` for plots)."""
    cos, sin = xp.cos(angle), xp.sin(angle)
    return centre + local @ xp.stack([xp.stack([cos, -sin]), xp.stack([sin, cos])]).T


def _triangle(centre, size, angle):
    """Isosceles, base ``size[0]``, height ``size[1]``, apex up (``-y``) before turning; ``centre`` is the
    centre of its bounding box."""
    return _turn(jnp.asarray(TRIANGLE) * size, centre, angle)


def _segment(centre, length, angle):
    return _turn(jnp.asarray(SEGMENT) * length, centre, angle)


def outline(kind: str, centre, size, angle, points: int = 64) -> np.ndarray:
    """``(m, 2)`` canvas points along the shape's edge (closed), for plots."""
    centre, size, angle = np.asarray(centre, float), np.asarray(size, float), float(angle)
    if kind in ("circle", "ellipse"):
        radii = 0.5 * (size if kind == "ellipse" else np.array([size[0], size[0]]))
        theta = np.linspace(0.0, 2 * np.pi, points)
        local = np.stack([radii[0] * np.cos(theta), radii[1] * np.sin(theta)], axis=1)
    elif kind in ("rectangle", "triangle"):
        corners = RECTANGLE if kind == "rectangle" else TRIANGLE
        local = np.concatenate([corners, corners[:1]]) * size
    elif kind == "line":
        local = SEGMENT * size[0]
    else:
        raise ValueError(f"unknown shape kind {kind!r}; the kinds are {', '.join(KINDS)}.")
    return _turn(local, centre, angle, xp=np)


def _primitive(kind: str):
    @model(name=kind)
    def primitive():
        return painter_of(kind, *_latents(kind))

    return primitive


circle = _primitive("circle")
ellipse = _primitive("ellipse")
rectangle = _primitive("rectangle")
triangle = _primitive("triangle")
line = _primitive("line")
PRIMITIVES = {"circle": circle, "ellipse": ellipse, "rectangle": rectangle, "triangle": triangle, "line": line}
