"""Giving parts a pose: ``ppl.place`` and the relations ``beside``, ``above``, ``inside``.

A *part* is a generative function whose return value is a painter (see
``ppl.compose.painting``), a group (tuple) of painters, or a canvas array; a
constant painter can stand in for a part that makes no choices. Every pose
field is either fixed (a number or array) or latent (a ``ppl.dist``
distribution or a model, sampled at the field's own address).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import distributions as dist
from numpyro.distributions import Distribution

from ppl.compose.painting import Layers, Placed, Pose, Sprite, is_canvas_array
from ppl.errors import CompositionError
from ppl.interface import GenerativeFunction
from ppl.model import Model, sample

__all__ = ["place", "beside", "above", "inside"]

_SHAPES = {"at": (2,), "scale": (), "angle": (), "gap": (), "shift": (), "offset": (2,)}


# ---------------------------------------------------------------------------
# Pose fields: fixed or latent
# ---------------------------------------------------------------------------


def _pose_spec(field: str, value: Any, default: Any, *, positive: bool = False, where: str = "place"):
    """Check a pose field at construction time; return it as an array or a sampler."""
    shape = _SHAPES[field]
    if value is None:
        value = default
    if isinstance(value, GenerativeFunction):
        return value
    if isinstance(value, Distribution):
        got = tuple(value.batch_shape) + tuple(value.event_shape)
        if got != shape:
            raise CompositionError(
                f"{where}: the distribution for '{field}' draws values of shape {got}, but "
                f"'{field}' has shape {shape}."
                + (" Use e.g. dist.Uniform(0.2, 0.8).expand([2]).to_event(1)." if shape == (2,) else "")
            )
        if positive:
            lower = getattr(value.support, "lower_bound", None)
            if lower is None or not np.all(np.asarray(lower) >= 0):
                raise CompositionError(
                    f"{where}: '{field}' must be positive, but its distribution has support "
                    f"{value.support}. Use a positive distribution such as dist.LogNormal, "
                    "dist.Gamma or dist.Uniform(low > 0, high)."
                )
        return value
    try:
        array = jnp.asarray(value, dtype=jnp.result_type(float))
    except TypeError:
        array = None
    if array is None or tuple(array.shape) != shape:
        got = f"shape {tuple(array.shape)}" if array is not None else f"{type(value).__name__}"
        raise CompositionError(
            f"{where}: '{field}' must be a fixed value of shape {shape}, a ppl.dist "
            f"distribution or a model; got {got}."
        )
    if positive and not bool(np.all(np.asarray(array) > 0)):
        raise CompositionError(f"{where}: '{field}' must be positive; got {np.asarray(array)}.")
    return array


def _draw(field: str, spec) -> jax.Array:
    """The value of a pose field: the fixed array, or a sample at address ``field``."""
    if not isinstance(spec, (Distribution, GenerativeFunction)):
        return spec
    value = jnp.asarray(sample(field, spec), dtype=jnp.result_type(float))
    if tuple(value.shape) != _SHAPES[field]:
        raise CompositionError(
            f"the model for '{field}' returned a value of shape {tuple(value.shape)}; "
            f"'{field}' needs shape {_SHAPES[field]}.",
            address=field,
        )
    return value


# ---------------------------------------------------------------------------
# Parts
# ---------------------------------------------------------------------------


def _is_fixed_part(part: Any) -> bool:
    """A constant part: a painter, a placed painter, a canvas array, or a group of them."""
    if isinstance(part, (tuple, list)):
        return all(_is_fixed_part(member) for member in part)
    return callable(getattr(part, "paint", None)) or isinstance(part, Placed) or is_canvas_array(part)


def check_part(part: Any, where: str) -> Any:
    """Accept a generative function or a constant painter; raise ``CompositionError`` otherwise."""
    if isinstance(part, GenerativeFunction) or _is_fixed_part(part):
        return part
    hint = (
        " It looks like a plain Python function: decorate it with @ppl.model."
        if callable(part)
        else ""
    )
    raise CompositionError(
        f"{where} must be a model / generative function whose return value is a painter, "
        f"or a painter itself; got {type(part).__name__} {part!r:.100}.{hint}"
    )


def run_part(address: str, part: Any, args: tuple) -> Any:
    """Sample ``part`` at ``address`` (a constant painter visits no address)."""
    if isinstance(part, GenerativeFunction):
        return sample(address, part, *args)
    return part


def attach(content: Any, pose: Pose) -> Any:
    """Give ``content`` (painter, group, stack or canvas) the pose ``pose``."""
    if isinstance(content, Layers):
        count = jnp.shape(content.active)[0]
        stacked = jax.tree_util.tree_map(lambda leaf: jnp.broadcast_to(leaf, (count,) + jnp.shape(leaf)), pose)
        return Layers(attach(content.painters, stacked), content.active)
    if isinstance(content, (tuple, list)):
        return tuple(attach(member, pose) for member in content)
    if is_canvas_array(content):
        if jnp.ndim(content) != 3:
            raise CompositionError(
                f"a part returned an array of shape {tuple(jnp.shape(content))}; only a canvas "
                "(H, W, C) can be placed (it becomes a ppl.Sprite)."
            )
        return Placed(Sprite(content), pose)
    if callable(getattr(content, "paint", None)) or isinstance(content, Placed):
        return Placed(content, pose)
    raise CompositionError(
        "a placed part must return a painter (an object with paint(points, softness)), a "
        f"group (tuple) of painters or a canvas (H, W, C); got {type(content).__name__}."
    )


def reference_pose(content: Any, where: str) -> Pose:
    """The frame a relation measures from: a placed part's pose (composed through
    nested placements); a group's first member's; identity for an unplaced painter."""
    if isinstance(content, Placed):
        return content.pose.compose(reference_pose(content.painter, where))
    if isinstance(content, (tuple, list)):
        return reference_pose(content[0], where) if content else Pose.identity()
    if isinstance(content, Layers):
        raise CompositionError(
            f"{where}: the reference part is a stack of parts (ppl.many); a relation needs a "
            "single reference pose. Relate single parts, then repeat the relation with ppl.many."
        )
    return Pose.identity()


def _part_name(part: Any) -> str:
    return getattr(part, "name", type(part).__name__)


# ---------------------------------------------------------------------------
# place
# ---------------------------------------------------------------------------


def place(part: Any, at: Any = None, scale: Any = None, angle: Any = None, *, name: str | None = None) -> Model:
    """A part with a pose: ``canvas_point = at + scale * R(angle) @ local_point``.

    Args:
      part: a generative function (called with the placed model's arguments;
        its choices live under ``"part/..."``) whose return value is a painter,
        a group (tuple) of painters, or a canvas (which becomes a ``ppl.Sprite``
        covering local ``[-1/2, 1/2]^2``); or a constant painter.
      at: ``(2,)`` position of the part's local origin in canvas coordinates
        (``x`` right, ``y`` down, canvas = unit square). Default ``(0, 0)``.
      scale: ``()`` positive size (local unit -> canvas units). Default 1.
      angle: ``()`` radians, positive turns ``+x`` towards ``+y``. Default 0.

    Each of ``at``/``scale``/``angle`` is fixed (a number or array) or latent:
    a ``ppl.dist`` distribution (or a model) sampled at address ``"at"``,
    ``"scale"`` or ``"angle"``. Returns a model whose return value is the part
    wrapped in ``ppl.Placed(painter, ppl.Pose(at, scale, angle))`` (member-wise
    for a group). Its score is the part's score plus the log density of the
    latent pose fields.

    Example::

        >>> import jax, jax.numpy as jnp, ppl
        >>> from ppl import dist
        >>> moved = ppl.place(ppl.Sprite(jnp.ones((4, 4, 1))),
        ...                   at=dist.Uniform(0.2, 0.8).expand([2]).to_event(1), scale=0.3)
        >>> moved.simulate(jax.random.key(0)).choices.addresses()
        ('at',)
    """
    where = f"ppl.place({_part_name(part)})"
    check_part(part, "ppl.place's part")
    at_spec = _pose_spec("at", at, jnp.zeros(2), where=where)
    scale_spec = _pose_spec("scale", scale, jnp.ones(()), positive=True, where=where)
    angle_spec = _pose_spec("angle", angle, jnp.zeros(()), where=where)

    def placed(*args):
        pose = Pose(_draw("at", at_spec), _draw("scale", scale_spec), _draw("angle", angle_spec))
        return attach(run_part("part", part, args), pose)

    return Model(placed, name=name or f"place({_part_name(part)})")


# ---------------------------------------------------------------------------
# Relations: a prior on the pose of one part relative to another
# ---------------------------------------------------------------------------


def _relation(kind, reference, other, specs, relative_pose, name):
    """Build a relation model: run ``reference``, sample the relative pose fields in
    ``specs`` (address -> spec), run ``other`` and draw it in the reference's frame
    moved by ``relative_pose(values)``. Returns ``(reference, other)`` in drawing order."""
    (ref_address, ref_part), (other_address, other_part) = reference, other
    check_part(ref_part, f"ppl.{kind}'s {ref_address} part")
    check_part(other_part, f"ppl.{kind}'s {other_address} part")
    where = f"ppl.{kind}"

    def related(*args):
        ref_value = run_part(ref_address, ref_part, args)
        frame = reference_pose(ref_value, where)
        values = {field: _draw(field, spec) for field, spec in specs.items()}
        other_value = run_part(other_address, other_part, args)
        return ref_value, attach(other_value, frame.compose(relative_pose(values)))

    return Model(related, name=name or f"{kind}({_part_name(ref_part)}, {_part_name(other_part)})")


def beside(left: Any, right: Any, *, gap: Any = None, shift: Any = None, name: str | None = None) -> Model:
    """``left`` with ``right`` beside it, to its right.

    ``right`` is drawn in ``left``'s frame (its pose, scale and angle), moved by
    ``(gap, shift)`` local units: ``gap`` along ``left``'s ``+x`` (default
    prior ``Uniform(1.0, 1.5)``: unit-sized parts side by side, up to half a
    part apart) and ``shift`` along its ``+y`` (default ``Normal(0, 0.1)``:
    roughly aligned). Give ``left`` a pose with ``ppl.place``; ``right`` needs
    none (a pose it has is read relative to that frame).

    Addresses: ``"left/..."``, ``"gap"``, ``"shift"``, ``"right/..."`` (pose
    fields given as fixed values visit no address). Returns
    ``(left, right)``, a group of placed painters, in drawing order.
    """
    specs = {
        "gap": _pose_spec("gap", gap, dist.Uniform(1.0, 1.5), where="ppl.beside"),
        "shift": _pose_spec("shift", shift, dist.Normal(0.0, 0.1), where="ppl.beside"),
    }
    relative = lambda v: Pose(jnp.stack([v["gap"], v["shift"]]), jnp.ones(()), jnp.zeros(()))  # noqa: E731
    return _relation("beside", ("left", left), ("right", right), specs, relative, name)


def above(top: Any, bottom: Any, *, gap: Any = None, shift: Any = None, name: str | None = None) -> Model:
    """``top`` with ``bottom`` below it.

    ``bottom`` is drawn in ``top``'s frame moved by ``gap`` along ``+y`` (down;
    default prior ``Uniform(1.0, 1.5)``) and ``shift`` along ``+x`` (default
    ``Normal(0, 0.1)``). Addresses: ``"top/..."``, ``"gap"``, ``"shift"``,
    ``"bottom/..."``. Returns ``(top, bottom)``.
    """
    specs = {
        "gap": _pose_spec("gap", gap, dist.Uniform(1.0, 1.5), where="ppl.above"),
        "shift": _pose_spec("shift", shift, dist.Normal(0.0, 0.1), where="ppl.above"),
    }
    relative = lambda v: Pose(jnp.stack([v["shift"], v["gap"]]), jnp.ones(()), jnp.zeros(()))  # noqa: E731
    return _relation("above", ("top", top), ("bottom", bottom), specs, relative, name)


def inside(inner: Any, outer: Any, *, offset: Any = None, scale: Any = None, name: str | None = None) -> Model:
    """``inner`` inside ``outer``.

    ``inner`` is drawn in ``outer``'s frame, shrunk by ``scale`` (default prior
    ``Uniform(0.3, 0.6)``) and moved by ``offset`` local units from its origin
    (default ``Normal(0, 0.05)`` per axis). ``outer`` is drawn first, so with
    ``blend="over"`` the inner part shows on top. Addresses: ``"outer/..."``,
    ``"offset"``, ``"scale"``, ``"inner/..."``. Returns ``(outer, inner)``.
    """
    specs = {
        "offset": _pose_spec("offset", offset, dist.Normal(0.0, 0.05).expand([2]).to_event(1), where="ppl.inside"),
        "scale": _pose_spec("scale", scale, dist.Uniform(0.3, 0.6), positive=True, where="ppl.inside"),
    }
    relative = lambda v: Pose(v["offset"], v["scale"], jnp.zeros(()))  # noqa: E731
    return _relation("inside", ("outer", outer), ("inner", inner), specs, relative, name)
