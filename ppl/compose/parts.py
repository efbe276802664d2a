"""Naming the parts of a composite: ``f(a, b)`` or ``f(rise=a, fall=b)``.

Shared by the combinators that take several generative functions, so every one
of them names, checks and reports its parts the same way.
"""

from __future__ import annotations

from collections.abc import Collection

from ppl.choices import split_address
from ppl.errors import CompositionError
from ppl.model import GenerativeFunction

__all__: list[str] = []


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
