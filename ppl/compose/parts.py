"""Naming the parts of a composite: ``f(a, b)`` or ``f(rise=a, fall=b)``.

Shared by the combinators that take several generative functions, so every one
of them names, checks and reports its parts the same way.
"""

from __future__ import annotations

from collections.abc import Collection

import jax
import jax.numpy as jnp

from ppl.choices import split_address
from ppl.errors import CompositionError, PPLError
from ppl.interface import GenerativeFunction, Trace
from ppl.model import Model

__all__: list[str] = []


class Composite(GenerativeFunction):
    """A combinator whose body is an internal ``ppl.Model`` over its parts (run in the same scope)."""

    parts: dict[str, GenerativeFunction]
    _model: Model

    def body(self, context, *args):
        return context.call(None, self._model, *args)

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
                scores.append(part.assess(trace.choices.submap(address), *args).log_density)
            except PPLError as err:
                raise err.within(address, self.name) from None
        return jnp.stack(scores)


def label(combinator: str, parts: dict[str, GenerativeFunction]) -> str:
    """``"seq(a, b)"`` for positional parts, ``"seq(rise=a, fall=b)"`` for named ones."""
    positional = list(parts) == [str(i) for i in range(len(parts))]
    names = [p.name if positional else f"{a}={p.name}" for a, p in parts.items()]
    return f"{combinator}({', '.join(names)})"


def describe_tree(tree) -> str:
    return str(jax.tree.map(lambda leaf: f"{jnp.result_type(leaf)}{list(jnp.shape(leaf))}", tree))


def named_parts(
    combinator: str,
    positional: tuple,
    named: dict,
    *,
    reserved: Collection[str] = (),
    reserved_prefix: str | None = None,
    mixed: bool = False,
    model: str | None = None,
) -> dict[str, GenerativeFunction]:
    """``{address: part}``: positional parts at ``"0"``, ``"1"``, ..., keyword parts at
    their keyword. Raises ``CompositionError`` for a part that is not a generative
    function, or a name that contains ``/`` or collides with an address the
    combinator makes itself (``reserved``, or starting with ``reserved_prefix``).
    Unless ``mixed``, parts are either all positional or all keyword."""
    if positional and named and not mixed:
        raise CompositionError(
            f"ppl.{combinator} takes its parts either all positionally (addresses '0', '1', ...) "
            f"or all by keyword (addresses named after the keywords), got {len(positional)} "
            f"positional and keywords {sorted(named)}. Use one style, e.g. "
            f"ppl.{combinator}(rise=a, fall=b).",
            model=model,
        )
    entries = {str(i): part for i, part in enumerate(positional)}
    entries.update(named)
    for address, part in entries.items():
        if not isinstance(part, GenerativeFunction):
            raise CompositionError(
                f"ppl.{combinator} composes generative functions, but part '{address}' is "
                f"{type(part).__name__} {part!r}. Decorate it with @ppl.model (a "
                "distribution can be wrapped in a one-line model).",
                model=model,
                address=address,
            )
        clashes = address in reserved or (reserved_prefix is not None and address.startswith(reserved_prefix))
        if clashes or not _single_component(address):
            raise CompositionError(
                f"ppl.{combinator} cannot use '{address}' as a part name: it contains '/' or "
                "collides with an address the combinator makes itself "
                f"({', '.join(repr(r) for r in reserved) or repr(reserved_prefix + '...')}). "
                "Rename the part.",
                model=model,
                address=address,
            )
    return entries


def _single_component(address: str) -> bool:
    try:
        return len(split_address(address)) == 1
    except ValueError:
        return False
