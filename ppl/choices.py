"""Addresses and choice maps.

An *address* names one random choice: a slash-joined path such as ``"b/delta"``
(choice ``delta`` of the sub-model sampled at ``b``). A :class:`ChoiceMap` maps
addresses to values. It is an immutable pytree, so ``jax.jit``, ``jax.vmap`` and
``jax.grad`` see straight through it: stacking choice maps along a leading axis
gives a batch of choice maps, and the gradient of a function of a choice map is
a choice map.

Build one from a flat dict of slash-joined addresses, from nested dicts, or both::

    >>> from ppl import ChoiceMap
    >>> cm = ChoiceMap({"a/x": 1.0, "b": {"y": 2.0}})
    >>> cm["a/x"], cm["b"]["y"], cm.addresses()
    (1.0, 2.0, ('a/x', 'b/y'))

Every public function that takes a choice map also takes such a dict.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np

from ppl.errors import InvalidAddressError, ModelDefinitionError, ShapeError, UnknownAddressError, did_you_mean

__all__ = ["ChoiceMap", "as_choice_map", "split_address", "join_address"]

SEPARATOR = "/"


def split_address(address: Any) -> tuple[str, ...]:
    """``"a/b/c" -> ("a", "b", "c")``; rejects empty components with a clear error."""
    if isinstance(address, (int, np.integer)) and not isinstance(address, bool):
        address = str(address)
    if not isinstance(address, str):
        raise ModelDefinitionError(
            f"An address must be a string such as 'x' or 'a/x', got {type(address).__name__} "
            f"{address!r}."
        )
    parts = tuple(address.split(SEPARATOR))
    if any(part == "" for part in parts):
        raise InvalidAddressError(
            f"Address {address!r} has an empty component; write it as slash-joined names "
            "such as 'a/x' (no leading, trailing or double slashes)."
        )
    return parts


def join_address(*parts: str) -> str:
    return SEPARATOR.join(p for p in parts if p)


def _as_leaf(value: Any, address: str) -> Any:
    """Store lists/tuples of numbers as numpy arrays so they are one pytree leaf."""
    if isinstance(value, (list, tuple)):
        try:
            return np.asarray(value)
        except ValueError:
            raise ShapeError(
                f"the value is a ragged list (its rows differ in length): {_clip(value)}. "
                "Pass a rectangular array, e.g. np.asarray(rows) with equal rows.",
                address=address,
            ) from None
    return value


@jax.tree_util.register_pytree_node_class
class ChoiceMap:
    """An immutable map from addresses to values; a pytree.

    Leaves are arrays (or Python numbers); internal nodes are choice maps. Keys
    are kept sorted, so two choice maps with the same addresses always have the
    same pytree structure whatever order they were built in.

    Args:
      mapping: a flat ``{"a/x": value}`` dict, a nested ``{"a": {"x": value}}``
        dict, a mix of both, another ``ChoiceMap``, or ``None`` for empty.

    Example::

        >>> cm = ChoiceMap({"a/x": 1.0}).set("a/y", 2.0)
        >>> cm.to_dict()
        {'a/x': 1.0, 'a/y': 2.0}
    """

    __slots__ = ("_entries",)

    def __init__(self, mapping: Mapping[str, Any] | ChoiceMap | None = None):
        if mapping is None:
            entries: dict[str, Any] = {}
        elif isinstance(mapping, ChoiceMap):
            entries = dict(mapping._entries)
        elif isinstance(mapping, Mapping):
            entries = {}
            for address, value in mapping.items():
                _insert(entries, split_address(address), value, str(address))
        else:
            raise ModelDefinitionError(
                f"A choice map is built from a dict such as {{'x': 1.0}} or {{'a/x': 1.0}}, "
                f"got {type(mapping).__name__}."
            )
        object.__setattr__(self, "_entries", dict(sorted(entries.items())))

    # -- pytree -------------------------------------------------------------
    def tree_flatten(self):
        return tuple(self._entries.values()), tuple(self._entries.keys())

    @classmethod
    def from_entries(cls, entries: dict[str, Any]) -> "ChoiceMap":
        """Build from a ``{key: leaf or ChoiceMap}`` dict of single-component keys (no checks)."""
        keys = tuple(sorted(entries))
        return cls.tree_unflatten(keys, tuple(entries[k] for k in keys))

    @classmethod
    def tree_unflatten(cls, keys, values):
        new = object.__new__(cls)
        object.__setattr__(new, "_entries", dict(zip(keys, values)))
        return new

    def __setattr__(self, name, value):
        raise AttributeError("ChoiceMap is immutable; use .set(address, value) or .merge(other).")

    # -- reading ------------------------------------------------------------
    def __getitem__(self, address: str) -> Any:
        node: Any = self
        parts = split_address(address)
        for i, part in enumerate(parts):
            if not isinstance(node, ChoiceMap) or part not in node._entries:
                raise UnknownAddressError(
                    f"the choice map has no address '{address}'."
                    + did_you_mean(str(address), self.addresses())
                    + f" It holds: {_short_list(self.addresses())}.",
                    address=str(address),
                )
            node = node._entries[part]
        return node

    def get(self, address: str, default: Any = None) -> Any:
        try:
            return self[address]
        except KeyError:
            return default

    def __contains__(self, address: object) -> bool:
        try:
            self[address]  # type: ignore[index]
        except (KeyError, TypeError, ValueError):
            return False
        return True

    def has_value(self, address: str) -> bool:
        """True when ``address`` holds a value (a leaf), not a sub-map."""
        return address in self and not isinstance(self[address], ChoiceMap)

    def keys(self) -> tuple[str, ...]:
        """The top-level address components."""
        return tuple(self._entries)

    def submap(self, key: str) -> "ChoiceMap":
        """The sub-map under a top-level key, or an empty map when there is none."""
        value = self._entries.get(key)
        return value if isinstance(value, ChoiceMap) else ChoiceMap()

    def addresses(self) -> tuple[str, ...]:
        """Every leaf address, slash-joined and sorted."""
        return tuple(address for address, _ in self.items())

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(address, value)`` for every leaf, in sorted order."""
        for key, value in self._entries.items():
            if isinstance(value, ChoiceMap):
                for sub_address, sub_value in value.items():
                    yield join_address(key, sub_address), sub_value
            else:
                yield key, value

    def __iter__(self) -> Iterator[str]:
        return iter(self.addresses())

    def __len__(self) -> int:
        return len(self.addresses())

    def __bool__(self) -> bool:
        return bool(self._entries)

    def to_dict(self) -> dict[str, Any]:
        """A flat ``{address: value}`` dict."""
        return dict(self.items())

    def to_nested(self) -> dict[str, Any]:
        """A nested dict mirroring the address tree."""
        return {
            key: value.to_nested() if isinstance(value, ChoiceMap) else value
            for key, value in self._entries.items()
        }

    # -- building -----------------------------------------------------------
    def set(self, address: str, value: Any) -> "ChoiceMap":
        """A copy with ``address`` set to ``value`` (a leaf or a ``ChoiceMap``)."""
        return self.merge(ChoiceMap({address: value}))

    def merge(self, other: Mapping[str, Any] | ChoiceMap) -> ChoiceMap:
        """A copy with every address of ``other`` added; ``other`` wins on overlap."""
        other = as_choice_map(other)
        entries = dict(self._entries)
        for key, value in other._entries.items():
            mine = entries.get(key)
            if isinstance(mine, ChoiceMap) and isinstance(value, ChoiceMap):
                entries[key] = mine.merge(value)
            else:
                entries[key] = value
        return ChoiceMap.from_entries(entries)

    def filter(self, addresses) -> "ChoiceMap":
        """The sub choice map holding only ``addresses`` (leaf addresses or prefixes)."""
        return ChoiceMap({a: self[a] for a in addresses if a in self})

    def __repr__(self) -> str:
        inner = ", ".join(f"{a!r}: {_describe(v)}" for a, v in self.items())
        return f"ChoiceMap({{{inner}}})"


def as_choice_map(choices: Mapping[str, Any] | ChoiceMap | None) -> ChoiceMap:
    """Accept a ``ChoiceMap``, a (flat or nested) dict, or ``None``."""
    if isinstance(choices, ChoiceMap):
        return choices
    return ChoiceMap(choices)


def _insert(entries: dict[str, Any], parts: tuple[str, ...], value: Any, full: str) -> None:
    head, rest = parts[0], parts[1:]
    if isinstance(value, Mapping) and not isinstance(value, ChoiceMap):
        value = ChoiceMap(value)
    if rest:
        child = entries.get(head)
        if child is None:
            child = {}
        elif isinstance(child, ChoiceMap):
            child = dict(child._entries)
        else:
            raise InvalidAddressError(f"Address '{full}' goes below '{head}', which already holds a value.")
        _insert(child, rest, value, full)
        entries[head] = ChoiceMap.from_entries(child)
        return
    existing = entries.get(head)
    if existing is not None:
        if isinstance(existing, ChoiceMap) and isinstance(value, ChoiceMap):
            overlap = set(existing.addresses()) & set(value.addresses())
            if not overlap:
                entries[head] = existing.merge(value)
                return
            full = join_address(full, sorted(overlap)[0])
        raise InvalidAddressError(f"Address '{full}' is given twice in this choice map.")
    entries[head] = value if isinstance(value, ChoiceMap) else _as_leaf(value, full)


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is None or shape == ():
        return repr(value)
    return f"<{getattr(value, 'dtype', '')}{list(shape)}>"


def _clip(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_list(addresses, limit: int = 8) -> str:
    shown = ", ".join(f"'{a}'" for a in addresses[:limit])
    more = len(addresses) - limit
    if not addresses:
        return "nothing"
    return shown + (f" and {more} more" if more > 0 else "")
