"""Segments in time: :func:`seq` (fixed order) and :func:`changepoint` (latent boundaries).

Both take their parts as positional arguments (addresses ``"0"``, ``"1"``, ...)
or as keywords (``seq(rise=a, fall=b)``: addresses ``"rise"``, ``"fall"``), call
every part with the composite's own arguments, and return a series whose
leading axis is time. Both are re-exported by :mod:`ppl.compose.sequence`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from numpyro import distributions as dist

from ppl.errors import CompositionError, PPLError, SupportError
from ppl.compose.parts import named_parts as parts_by_name
from ppl.model import GenerativeFunction, Model, Trace, sample

__all__ = ["Seq", "seq", "Changepoint", "changepoint"]


def _describe(tree: Any) -> str:
    return str(jax.tree.map(lambda leaf: f"{jnp.result_type(leaf)}{list(jnp.shape(leaf))}", tree))


class _Composite(GenerativeFunction):
    """A combinator whose ``run`` is an internal ``ppl.Model`` over its parts."""

    parts: dict[str, GenerativeFunction]
    _model: Model

    def run(self, key, constraints, args, assess):
        return self._model.run(key, constraints, args, assess)

    def part_scores(self, trace: Trace, *args) -> jax.Array:
        """``log p`` of each part's choices, in part order; shape ``(n_parts,)``.

        ``args`` default to ``trace.args``. The entries sum to ``trace.score``
        minus the log density of the combinator's own choices (none for
        ``seq``; the boundaries for ``changepoint``).
        """
        args = args or tuple(trace.args)
        scores = []
        for address, part in self.parts.items():
            try:
                part_trace, _ = part.run(None, trace.choices.submap(address), args, True)
            except PPLError as err:
                raise err.within(address, self.name) from None
            scores.append(part_trace.score)
        return jnp.stack(scores)


# ---------------------------------------------------------------------------
# seq
# ---------------------------------------------------------------------------


class Seq(_Composite):
    """Parts one after another; the output is their return values concatenated in time.

    Build one with :func:`seq`. Called as ``composite(*args)``: every part is
    called with the same ``args``; part ``p``'s choices live under ``"p/..."``.

    - ``trace.score = sum_p log p_p(x_p; args)``; ``generate``/``assess``/
      ``update`` weights are the sums of the parts' weights.
    - ``trace.retval = concatenate([retval_p for p in parts], axis=0)`` (leafwise
      for pytree return values): part ``p`` returns ``(T_p, ...)``, the composite
      ``(sum_p T_p, ...)``.
    - :meth:`incremental_scores` gives one score per part (the increments a
      particle filter adds part by part).

    Attributes:
      parts: ``{address: generative function}`` in time order.
    """

    def __init__(self, parts: dict[str, GenerativeFunction]):
        self.parts = parts
        self.name = _label("seq", parts)
        self._model = Model(self._concatenate_parts, name=self.name)

    def _concatenate_parts(self, *args):
        retvals = {address: sample(address, part, *args) for address, part in self.parts.items()}
        return _concatenate_in_time(retvals, self.name)

    def incremental_scores(self, trace: Trace, *args) -> jax.Array:
        """Per-part log densities ``log p_p(x_p; args)``, shape ``(n_parts,)``.

        They sum to ``trace.score``. ``args`` default to ``trace.args``.
        """
        return self.part_scores(trace, *args)

    def __repr__(self) -> str:
        return f"<ppl.{self.name}>"


def seq(*parts: GenerativeFunction, **named_parts: GenerativeFunction) -> Seq:
    """Compose parts in time: part 0 happens, then part 1, ...; outputs concatenated.

    Args:
      *parts: generative functions, at addresses ``"0"``, ``"1"``, ...; or
      **named_parts: the same by name, at addresses named after the keywords
        (time order = keyword order). Each part is called with the composite's
        arguments and returns an array (or pytree of arrays) with a leading
        time axis; trailing shapes must agree.

    Returns:
      A :class:`Seq`.

    Raises:
      CompositionError: no parts, a part that is not a generative function,
        positional and keyword parts mixed, or (when run) return values that
        cannot be concatenated along axis 0.

    Example::

        >>> @ppl.model
        ... def flat(n):
        ...     level = ppl.sample("level", dist.Normal(0.0, 1.0))
        ...     return jnp.full(n, level)
        >>> both = ppl.seq(before=flat, after=flat)
        >>> both.simulate(jax.random.key(0), 5).retval.shape
        (10,)
    """
    if not parts and not named_parts:
        raise CompositionError(
            "ppl.seq needs at least one part, got none. Pass generative functions: "
            "ppl.seq(a, b) or ppl.seq(rise=a, fall=b)."
        )
    return Seq(parts_by_name("seq", parts, named_parts))


def _label(combinator: str, parts: dict[str, GenerativeFunction]) -> str:
    """``"seq(a, b)"`` for positional parts, ``"seq(rise=a, fall=b)"`` for named ones."""
    positional = list(parts) == [str(i) for i in range(len(parts))]
    names = [p.name if positional else f"{a}={p.name}" for a, p in parts.items()]
    return f"{combinator}({', '.join(names)})"


def _concatenate_in_time(retvals: dict[str, Any], name: str) -> Any:
    """Concatenate the parts' return values leafwise along axis 0, with clear errors."""
    addresses = list(retvals)
    first = addresses[0]
    structure = jax.tree.structure(retvals[first])
    for address in addresses:
        problem = None
        if jax.tree.structure(retvals[address]) != structure:
            problem = "its return value has a different structure"
        elif any(jnp.ndim(leaf) == 0 for leaf in jax.tree.leaves(retvals[address])):
            problem = "its return value has no time axis (a scalar)"
        elif any(
            jnp.shape(a)[1:] != jnp.shape(b)[1:]
            for a, b in zip(jax.tree.leaves(retvals[address]), jax.tree.leaves(retvals[first]))
        ):
            problem = "its return value's shape after the time axis differs"
        if problem:
            shapes = ", ".join(f"'{a}': {_describe(r)}" for a, r in retvals.items())
            raise CompositionError(
                f"ppl.seq concatenates its parts' return values along axis 0 (time), but for "
                f"part '{address}' {problem}. Returned: {shapes}. Make every part return an "
                "array (or the same pytree of arrays) of shape (T_part, ...) with equal "
                "trailing shapes, e.g. jnp.full(n, level) rather than level.",
                model=name,
            )
    return jax.tree.map(lambda *leaves: jnp.concatenate(leaves, axis=0), *retvals.values())


# ---------------------------------------------------------------------------
# changepoint
# ---------------------------------------------------------------------------


def _boundary_address(k: int) -> str:
    return f"boundary_{k}"


class Changepoint(_Composite):
    """Segments of one series whose boundaries are latent choices.

    Build one with :func:`changepoint`. Called as ``composite(*args)``: each of
    the ``K`` segment models is called with ``args`` and returns a full series
    of the same shape ``(T, ...)``. The ``K - 1`` boundaries are integers
    ``1 <= boundary_0 < ... < boundary_{K-2} <= T - 1`` at addresses
    ``"boundary_0"``, ``"boundary_1"``, ...; the output follows segment ``k`` for
    ``boundary_{k-1} <= t < boundary_k`` (with ``boundary_{-1} = 0``,
    ``boundary_{K-1} = T``), so segment ``k`` covers at least one time step.

    Prior on the boundaries (sequential discrete uniform; for two segments,
    uniform on ``1 .. T-1``)::

        boundary_k ~ DiscreteUniform(boundary_{k-1} + 1, T - (K - 1) + k)

    ``trace.score = sum_k log p_k(x_k; args) + sum_k log p(boundary_k | boundary_{k-1})``.
    Every segment's choices exist for all ``T`` steps (also where the segment is
    not shown); the unused ones follow their prior. Put the observation model
    *outside* the changepoint (``obs ~ Normal(changepoint_output, noise)``) so
    the data tell the boundaries apart.

    Attributes:
      parts: ``{address: segment model}`` in time order.
      boundaries: the boundary addresses, ``("boundary_0", ...)``.
    """

    def __init__(self, parts: dict[str, GenerativeFunction]):
        self.parts = parts
        self.boundaries = tuple(_boundary_address(k) for k in range(len(parts) - 1))
        self.name = _label("changepoint", parts)
        self._model = Model(self._piecewise, name=self.name)

    def _piecewise(self, *args):
        series = {address: sample(address, part, *args) for address, part in self.parts.items()}
        length = self._series_length(series)
        n_segments = len(self.parts)
        low, boundaries = 1, []
        for k, address in enumerate(self.boundaries):
            high = length - (n_segments - 1) + k
            try:
                boundary = sample(address, dist.DiscreteUniform(low, high))
            except SupportError as err:
                err.message += (
                    f" Changepoint boundaries are integers with 1 <= boundary_0 < ... < "
                    f"boundary_{n_segments - 2} <= T - 1 = {length - 1}."
                )
                raise
            boundaries.append(boundary)
            low = boundary + 1
        times = jnp.arange(length)
        segment = sum((times >= b).astype(jnp.int32) for b in boundaries)  # (T,) in 0..K-1
        return jax.tree.map(lambda *leaves: jnp.stack(leaves)[segment, times], *series.values())

    def _series_length(self, series: dict[str, Any]) -> int:
        shapes = {a: [jnp.shape(leaf) for leaf in jax.tree.leaves(s)] for a, s in series.items()}
        first = next(iter(shapes.values()))
        structures = {jax.tree.structure(s) for s in series.values()}
        if len(structures) > 1 or any(s != first for s in shapes.values()) or any(
            len(shape) == 0 for shape in first
        ) or not first:
            described = ", ".join(f"'{a}': {_describe(s)}" for a, s in series.items())
            raise CompositionError(
                "ppl.changepoint needs every segment to return a series of the same shape "
                f"(T, ...) for the same arguments, got {described}. Make each segment model "
                "return the whole series, e.g. jnp.full(T, level) or level + slope * jnp.arange(T).",
                model=self.name,
            )
        length = first[0][0]
        if length < len(self.parts):
            raise CompositionError(
                f"ppl.changepoint with {len(self.parts)} segments needs a series of at least "
                f"{len(self.parts)} time steps (every segment covers one or more), but the "
                f"segments return T={length}. Use fewer segments or a longer series.",
                model=self.name,
            )
        return length

    def segment_index(self, trace: Trace) -> jax.Array:
        """Which segment each time step follows, shape ``(T,)``, values in ``0 .. K-1``."""
        length = jax.tree.leaves(trace.retval)[0].shape[0]
        times = jnp.arange(length)
        return sum((times >= trace.choices[a]).astype(jnp.int32) for a in self.boundaries)

    def __repr__(self) -> str:
        return f"<ppl.{self.name}>"


def changepoint(*segments: GenerativeFunction, **named_segments: GenerativeFunction) -> Changepoint:
    """A series that switches from one segment model to the next at latent times.

    Args:
      *segments: two or more generative functions, at addresses ``"0"``,
        ``"1"``, ...; or
      **named_segments: the same by name (time order = keyword order). Each is
        called with the composite's arguments and returns the whole series,
        shape ``(T, ...)``, the same for every segment.

    Returns:
      A :class:`Changepoint` with boundaries at ``"boundary_0"`` ...
      ``"boundary_{K-2}"`` (integers, ``1 <= b_0 < b_1 < ... <= T - 1``),
      constrainable and inferable like any choice. See :class:`Changepoint` for
      the prior and the score.

    Raises:
      CompositionError: fewer than two segments, a segment that is not a
        generative function, or (when run) segments of different shapes or a
        series shorter than the number of segments.

    Example::

        >>> @ppl.model
        ... def level(T):
        ...     return jnp.full(T, ppl.sample("level", dist.Normal(0.0, 3.0)))
        >>> shift = ppl.changepoint(before=level, after=level)
        >>> trace = shift.generate(jax.random.key(0), {"boundary_0": 7}, 20).trace
        >>> shift.segment_index(trace)[6:8].tolist()
        [0, 1]
    """
    if len(segments) + len(named_segments) < 2:
        raise CompositionError(
            f"ppl.changepoint needs at least two segments (one boundary between them), got "
            f"{len(segments) + len(named_segments)}. Pass e.g. ppl.changepoint(before=a, after=b)."
        )
    parts = parts_by_name("changepoint", segments, named_segments, reserved_prefix="boundary_")
    return Changepoint(parts)
