"""Composition in time with latent boundaries: ``ppl.changepoint``, a series that switches model at latent times.

Weights: :mod:`ppl.interface`. Every segment's choices exist for all time
steps (the ones a segment does not show follow their prior: see the inactive
structure convention in :mod:`ppl.interface`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from numpyro import distributions as dist

from ppl.compose.parts import Composite, describe_tree, label
from ppl.compose.parts import named_parts as parts_by_name
from ppl.errors import CompositionError, SupportError
from ppl.interface import GenerativeFunction, Trace
from ppl.model import Model, sample

__all__ = ["Changepoint", "changepoint"]


# ---------------------------------------------------------------------------
# changepoint
# ---------------------------------------------------------------------------


def _boundary_address(k: int) -> str:
    return f"boundary_{k}"


class Changepoint(Composite):
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
        self.name = label("changepoint", parts)
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
            described = ", ".join(f"'{a}': {describe_tree(s)}" for a, s in series.items())
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
