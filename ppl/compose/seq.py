"""Composition in time, part after part: ``ppl.seq``, outputs concatenated along time.

Parts are given as positional arguments (addresses ``"0"``, ``"1"``, ...) or
as keywords (``seq(rise=a, fall=b)``: addresses ``"rise"``, ``"fall"``); every
part is called with the composite's own arguments and returns a series whose
leading axis is time. Weights: :mod:`ppl.interface` (the sums of the parts').
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ppl.compose.parts import Composite, describe_tree, label
from ppl.compose.parts import named_parts as parts_by_name
from ppl.errors import CompositionError
from ppl.interface import GenerativeFunction, Segment, Trace
from ppl.model import Model, sample

__all__ = ["Seq", "seq"]


# ---------------------------------------------------------------------------
# seq
# ---------------------------------------------------------------------------


class Seq(Composite):
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
        self.name = label("seq", parts)
        self._model = Model(self._concatenate_parts, name=self.name)

    def _concatenate_parts(self, *args):
        retvals = {address: sample(address, part, *args) for address, part in self.parts.items()}
        return _concatenate_in_time(retvals, self.name)

    def segments(self):
        """A segment per part: an unfold part is stepped, any other part is one step."""
        found = []
        for address, part in self.parts.items():
            inner = part.segments()
            if inner is not None and len(inner) == 1 and inner[0].stepped and inner[0].address is None:
                found.append(inner[0]._replace(address=address))
            else:
                found.append(Segment(address, part, 1, False, part))
        return tuple(found)

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
            shapes = ", ".join(f"'{a}': {describe_tree(r)}" for a, r in retvals.items())
            raise CompositionError(
                f"ppl.seq concatenates its parts' return values along axis 0 (time), but for "
                f"part '{address}' {problem}. Returned: {shapes}. Make every part return an "
                "array (or the same pytree of arrays) of shape (T_part, ...) with equal "
                "trailing shapes, e.g. jnp.full(n, level) rather than level.",
                model=name,
            )
    return jax.tree.map(lambda *leaves: jnp.concatenate(leaves, axis=0), *retvals.values())
