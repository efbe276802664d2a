"""The interpretation protocol: every generative function hands every choice to the interpreter of the call.

A generative function implements one method, ``body(context, *args)``. Its
choices go through the :class:`Context` it is given:

=====================================  ==============================================
``context.sample(name, distribution)``  a choice at ``name``; returns its value
``context.call(name, function, *args)`` a sub-generative function whose choices live
                                        under ``name/...`` (``name=None``: at this level)
``context.factor(log_weight)``          a soft constraint added to the density
``context.scan(step, carry, xs, n)``    ``lax.scan``: ``step(context_t, carry, x)``;
                                        the steps' choices are stacked ``(n, ...)``
``context.vmap(body, xs, n)``           ``jax.vmap``: ``body(context_k, x)``; the
                                        copies' choices are stacked ``(n, ...)``
``context.switch(index, branches)``     alternatives: every branch runs, the value of
                                        branch ``index`` is returned
=====================================  ==============================================

The context carries the *interpreter* of the current call (an
:class:`Interpreter`) through all of these unchanged: into sub-generative
functions, into every step of a ``lax.scan`` and every copy of a ``vmap``, into
every branch of a switch. The interpreter decides what happens at a choice
(:meth:`Interpreter.choose`): sample it, read a given value, transform an
unconstrained value, describe the site. So a combinator written once with
these methods works with ``simulate``, ``assess``, ``generate``, ``update``,
evaluation in unconstrained space (MAP, Laplace, MALA, NUTS) and site
description, and inference sees every choice of every composition however
nested. The interpreters live in :mod:`ppl.interpreters`.

**Inactive structure.** ``Site.active`` tells an interpreter whether a choice is
used by the current structure; :meth:`Context.switch` and the ``active=``
argument of :meth:`Context.vmap` set it. The convention itself (inactive
choices are auxiliary variables under their prior) is stated in
:mod:`ppl.interface`.

**Address checks** are made once, here: a name is visited once per scope,
holds no ``/``, and the inputs of an interpreter hold a value where a
distribution is sampled and a sub-map where a generative function is called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from numpyro.distributions import Distribution

from ppl import validation
from ppl.choices import ChoiceMap, join_address, split_address
from ppl.errors import (
    CompositionError,
    DuplicateAddressError,
    DtypeError,
    MissingChoiceError,
    ModelDefinitionError,
    NonFiniteError,
    PPLError,
    ShapeError,
)

__all__ = ["Site", "Interpreter", "Context", "Run", "interpret", "all_true", "select", "check_same_structure",
           "concrete_int", "check_finite_rows"]


class Site(NamedTuple):
    """What an interpreter sees of one choice.

    Attributes:
      address: the full slash-joined address (from the top of the call).
      distribution: the distribution sampled there.
      active: whether the choice is used by the current structure: ``None``
        (always) or a boolean array (traced under ``jit``), broadcastable
        against ``batch_shape`` (see the module docstring).
      batch_shape: the leading axes the choice is stacked along in the trace,
        added by enclosing ``scan``/``vmap`` (``()`` at the top level).
    """

    address: str
    distribution: Distribution
    active: Any
    batch_shape: tuple[int, ...]


class Interpreter:
    """What happens at each choice of one call (a subclass per interpretation).

    Attributes:
      accumulators: the names of the scalars summed over the choices (e.g.
        ``("score", "weight")``); a call returns their totals.
      complete: every visited choice needs a value in ``inputs[0]`` (like
        ``assess``); a switch with a concrete index then skips a branch that
        is not chosen and has no inputs (its density integrates to one).
      records: :meth:`choose` returns a per-choice record (an array pytree),
        collected in a choice map of records stacked like the choices.
      inputs: the per-address inputs of the call (choice maps), sliced like the
        choices: ``inputs[i].submap(name)`` inside a sub-call, row ``t`` inside
        step ``t`` of a scan.
    """

    accumulators: tuple[str, ...] = ("score",)
    complete: bool = False
    records: bool = False

    def __init__(self, inputs: Sequence[ChoiceMap] = ()):
        self.inputs = tuple(inputs)

    def choose(self, site: Site, given: tuple, draw_key: Callable[[], jax.Array]):
        """``(value, {accumulator: contribution}, record)`` for one choice.

        ``given[i]`` is ``inputs[i]``'s value at this address or ``None``;
        ``draw_key()`` gives a fresh PRNG key (``None`` when the call has none).
        """
        raise NotImplementedError

    def factor(self, log_weight: jax.Array, scope: Site) -> dict[str, jax.Array]:
        """Contributions of ``ppl.factor(log_weight)``: the score, by default.

        ``scope`` describes where the factor was made: ``scope.address`` is the
        scope's prefix, ``scope.distribution`` is ``None``.
        """
        return {"score": log_weight}


class Run(NamedTuple):
    """What one interpreted call gives: the return value, the choices, the totals and the records."""

    retval: Any
    choices: ChoiceMap
    totals: dict[str, jax.Array]
    records: ChoiceMap | None


def all_true(*flags: Any) -> Any:
    """The conjunction of activity flags (``None`` means always active)."""
    present = [flag for flag in flags if flag is not None]
    if not present:
        return None
    result = jnp.asarray(present[0])
    for flag in present[1:]:
        result = result & jnp.asarray(flag)
    return result


class Context:
    """The handler of one scope of one call: it hands every choice to the interpreter.

    Create the top-level one with :func:`interpret`; combinators get theirs as
    the first argument of ``body`` and use the methods listed in the module
    docstring. Nothing else of a context is part of the protocol.
    """

    def __init__(self, interpreter: Interpreter, inputs: tuple, key, prefix: str, owner: str, active: Any,
                 batch_shape: tuple[int, ...], tempering: tuple | None = None):
        self.interpreter = interpreter
        self.inputs = inputs
        self.key = key
        self.prefix = prefix
        self.owner = owner  # the generative function whose body runs here (for messages)
        self.active = active
        self.batch_shape = batch_shape
        self.tempering = tempering  # (observed full addresses, beta) or None
        self.choices: dict[str, Any] = {}
        self.records: dict[str, Any] = {}
        self.totals: dict[str, jax.Array] = {}
        self._draws = 0

    # -- keys ------------------------------------------------------------------------------------
    def next_key(self):
        """A fresh PRNG key for this scope (``None`` when the call has none).

        One ``fold_in`` per draw: half the cost of splitting, and inside a vmap over
        particles this is the dominant overhead of the language.
        """
        if self.key is None:
            return None
        self._draws += 1
        return jax.random.fold_in(self.key, self._draws)

    # -- the protocol ------------------------------------------------------------------------------
    def sample(self, name: Any, distribution: Distribution) -> Any:
        """A choice at ``name`` (a plain name, no ``/``); returns its value."""
        name = self._claim(name)
        given = []
        for inputs in self.inputs:
            if inputs.has_value(name):
                given.append(inputs[name])
            elif name in inputs:
                raise ModelDefinitionError(
                    f"the choice map holds sub-addresses {inputs[name].addresses()} under this address, but "
                    "here it is a single distribution. Give it a value instead of a nested map.",
                    address=name, model=self.owner,
                )
            else:
                given.append(None)
        site = Site(join_address(self.prefix, name), distribution, self.active, self.batch_shape)
        try:
            validation.check_parameters(distribution)
            value, contributions, record = self.interpreter.choose(site, tuple(given), self.next_key)
        except PPLError as err:
            raise err.within(name, self.owner) from None
        self._add(contributions, site.address)
        self.choices[name] = value
        if self.interpreter.records and record is not None:
            self.records[name] = record
        return value

    def call(self, name: Any, function, *args, active: Any = None) -> Any:
        """Run ``function.body`` with ``args``; its choices live under ``name/...``.

        ``name=None`` runs it in this scope (its choices at this level: how a
        combinator delegates to an internal model). ``active`` narrows the
        activity of everything inside (a switch's branches).
        """
        if name is None:
            if active is None:
                return function.body(self, *args)
            child = self._child(self.prefix, self.inputs, self.next_key(), function.name, active, self.batch_shape)
            retval = function.body(child, *args)
            self.absorb(child)
            return retval
        name = self._claim(name)
        for inputs in self.inputs:
            if inputs.has_value(name):
                raise ModelDefinitionError(
                    f"the choice map holds a single value here, but '{name}' is the generative function "
                    f"'{function.name}'. Constrain its choices by their full addresses, e.g. "
                    "'{address}/<choice>'.",
                    address=name, model=self.owner,
                )
        inputs = tuple(inputs.submap(name) for inputs in self.inputs)
        child = self._child(join_address(self.prefix, name), inputs, self.next_key(), function.name,
                            all_true(self.active, active), self.batch_shape)
        try:
            retval = function.body(child, *args)
        except PPLError as err:
            raise err.within(name, self.owner) from None
        self.choices[name] = child.choice_map()
        if self.interpreter.records:
            self.records[name] = child.record_map()
        self._add_totals(child.totals)
        return retval

    def factor(self, log_weight: Any) -> None:
        """Add ``log_weight`` (summed) to the density; see ``ppl.factor``."""
        scope = Site(self.prefix, None, self.active, self.batch_shape)
        kind = np.dtype(getattr(log_weight, "dtype", None) or np.asarray(log_weight).dtype).kind
        if kind not in "iuf":
            raise DtypeError(
                f"ppl.factor takes a real log weight (a number or an array of numbers), got "
                f"{type(log_weight).__name__} {log_weight!r:.60}. Pass e.g. jnp.log(p) or a log density.",
                model=self.owner,
            )
        total = jnp.sum(jnp.asarray(log_weight, dtype=jnp.result_type(float)))
        if validation.is_concrete(total) and not validation.nan_allowed() and bool(np.isnan(np.asarray(total))):
            raise NonFiniteError(
                "ppl.factor got a NaN log weight. A factor is a log density: -inf rules a value out, NaN means "
                "nothing. Check the expression passed to ppl.factor.",
                model=self.owner,
            )
        self._add(self.interpreter.factor(total, scope), None)

    def scan(self, step: Callable, carry: Any, xs: Any, length: int, *, what: str = "this scan", axis: str = "time"):
        """``lax.scan`` whose steps make choices: ``step(context_t, carry, x_t) -> (carry, y_t)``.

        Every input of the interpreter under this scope carries a leading axis
        of length ``length`` (row ``t`` goes to step ``t``); the steps' choices
        are stacked along a leading axis in this scope. Returns ``(carry, ys,
        per_step_totals)``; the totals are also added to this scope's.
        """
        self._check_stacked(length, what, axis)
        keys = None if self.key is None else jax.random.split(self.next_key(), length)
        names = self._names_before()

        def one(carry, inputs):
            key_t, inputs_t, x_t = inputs
            child = self._child(self.prefix, inputs_t, key_t, self.owner, self.active, self.batch_shape + (length,))
            carry, y = step(child, carry, x_t)
            return carry, (y, child.choice_map(), child.record_map(), child.totals)

        carry, (ys, choices, records, totals) = lax.scan(one, carry, (keys, self.inputs, xs), length=length)
        self._merge_stacked(choices, records, names)
        self._add_totals({name: jnp.sum(value) for name, value in totals.items()})
        return carry, ys, totals

    def vmap(self, body: Callable, xs: Any, size: int, *, active: Any = None, what: str = "this vmap",
             axis: str = "copy"):
        """``jax.vmap`` whose copies make choices: ``body(context_k, x_k) -> y_k``.

        ``xs`` (any pytree with leading axis ``size``, or ``None``) and every
        input under this scope are split along their leading axis; ``active``
        (``None`` or a ``(size,)`` boolean array) narrows each copy's activity.
        The copies' choices are stacked along a leading axis in this scope.
        Returns ``ys``, stacked.
        """
        self._check_stacked(size, what, axis)
        keys = None if self.key is None else jax.random.split(self.next_key(), size)
        names = self._names_before()
        flags = jnp.ones((size,), bool) if active is None else jnp.asarray(active)

        def one(key_k, inputs_k, x_k, flag):
            copy_active = flag if active is not None else None
            child = self._child(self.prefix, inputs_k, key_k, self.owner, all_true(self.active, copy_active),
                                self.batch_shape + (size,))
            y = body(child, x_k)
            return y, child.choice_map(), child.record_map(), child.totals

        in_axes = (None if keys is None else 0, 0, None if xs is None else 0, 0)
        ys, choices, records, totals = jax.vmap(one, in_axes=in_axes, axis_size=size)(keys, self.inputs, xs, flags)
        self._merge_stacked(choices, records, names)
        self._add_totals({name: jnp.sum(value) for name, value in totals.items()})
        return ys

    def switch(self, index: Any, branches: Sequence[tuple[str, Any, tuple]], *, concrete: int | None = None,
               fallback: Any = None) -> Any:
        """Alternatives: every ``(name, function, args)`` branch runs at ``name``; returns branch ``index``'s value.

        Branch ``j`` is active where ``index == j`` (see the module docstring);
        ``concrete`` is the index when it is known while tracing (``-1``: none
        chosen). An ``index`` outside ``0 .. len(branches) - 1`` selects
        ``fallback`` (default: zeros shaped like the branches' values).
        """
        index = jnp.asarray(index)
        values, ran = [], []
        for position, (name, function, args) in enumerate(branches):
            chosen = concrete is None or concrete == position
            if not chosen and self.interpreter.complete and not any(name in inputs for inputs in self.inputs):
                continue  # not chosen, no values given: its density integrates to one
            try:
                values.append(self.call(name, function, *args, active=index == position))
            except MissingChoiceError as err:
                if concrete is None and self.interpreter.complete:
                    err.message += (
                        " (The selected alternative is only known at run time here, e.g. under jit or vmap, so "
                        "every alternative needs its choices, as simulate produces them; or call with a concrete "
                        "index or code, outside jit.)"
                    )
                raise
            ran.append(position)
        if concrete is not None:
            if concrete in ran:
                return values[ran.index(concrete)]
            if fallback is not None:
                return fallback
            raise CompositionError("no alternative is chosen and there is no fallback value.", model=self.owner)
        check_same_structure(values, [branches[p][0] for p in ran], self.owner)
        if fallback is None:
            fallback = jax.tree_util.tree_map(jnp.zeros_like, values[0])
        return select(index, [values[ran.index(p)] if p in ran else fallback for p in range(len(branches))],
                      fallback)

    def total(self, name: str) -> jax.Array:
        """The running total of accumulator ``name`` in this scope (0 when nothing was added)."""
        return self.totals.get(name, jnp.zeros(()))

    # -- results ---------------------------------------------------------------------------------
    def choice_map(self) -> ChoiceMap:
        return ChoiceMap.from_entries(self.choices)

    def record_map(self) -> ChoiceMap | None:
        return ChoiceMap.from_entries(self.records) if self.interpreter.records else None

    # -- helpers -----------------------------------------------------------------------------------
    def _child(self, prefix, inputs, key, owner, active, batch_shape) -> "Context":
        return Context(self.interpreter, inputs, key, prefix, owner, active, batch_shape, self.tempering)

    def _claim(self, name: Any) -> str:
        parts = split_address(name)
        if len(parts) != 1:
            raise ModelDefinitionError(
                f"ppl.sample address '{name}' contains '/'. Addresses nest through sub-models: sample a model "
                "at 'a' and its choices live under 'a/...'.",
                address=str(name), model=self.owner,
            )
        name = parts[0]
        if name in self.choices:
            raise DuplicateAddressError(
                "this execution visits the address twice. Every ppl.sample call in one run needs its own "
                "address; in a loop use f'x_{i}', or use ppl.unfold.",
                address=name, model=self.owner,
            )
        return name

    def _add(self, contributions: dict[str, jax.Array], address: str | None) -> None:
        if self.tempering is not None and address is not None and address in self.tempering[0]:
            beta = self.tempering[1]
            log_likelihood = contributions.get("score", jnp.zeros(()))
            contributions = {name: _scaled(value, beta) for name, value in contributions.items()}
            contributions["log_likelihood"] = log_likelihood
        self._add_totals(contributions)

    def _add_totals(self, contributions: dict[str, jax.Array]) -> None:
        for name, value in contributions.items():
            self.totals[name] = self.totals[name] + value if name in self.totals else jnp.asarray(value)

    def absorb(self, child: "Context") -> None:
        """Take over the choices, records and totals of ``child``, a context of the same scope."""
        for name, value in child.choices.items():
            if name in self.choices:
                raise DuplicateAddressError("this execution visits the address twice.", address=name,
                                            model=self.owner)
            self.choices[name] = value
        self.records.update(child.records)
        self._add_totals(child.totals)

    def _names_before(self) -> set:
        return set(self.choices)

    def _merge_stacked(self, choices: ChoiceMap, records: ChoiceMap | None, names_before: set) -> None:
        for name in choices.keys():
            if name in names_before:
                raise DuplicateAddressError(
                    "this address is visited both inside and outside a scan or vmap of the same scope.",
                    address=name, model=self.owner,
                )
            self.choices[name] = choices[name]
        if records is not None:
            for name in records.keys():
                self.records[name] = records[name]

    def _check_stacked(self, length: int, what: str, axis: str) -> None:
        for inputs in self.inputs:
            for address, value in inputs.items():
                shape = tuple(np.shape(value))
                if not shape or shape[0] != length:
                    raise ShapeError(
                        f"every value under {what} carries a leading {axis} axis of length {length} (one row "
                        f"per {axis}), but '{{address}}' has shape {shape}. Pass an array of shape "
                        f"({length}, ...); for the same value everywhere use "
                        f"jnp.broadcast_to(value, ({length},) + jnp.shape(value)).",
                        address=address, model=self.owner,
                    )


def _scaled(value: jax.Array, factor: Any) -> jax.Array:
    """``factor * value`` with ``0 * (-inf) = 0``. A Python ``0`` drops ``value`` altogether (so the
    computation of an observation's density is dead code, e.g. for the prior alone)."""
    if isinstance(factor, (int, float)) and factor == 0:
        return jnp.zeros_like(value)
    return jnp.where(factor > 0, factor * value, 0.0)


def interpret(function, interpreter: Interpreter, key, args: tuple, *, tempering: tuple | None = None) -> Run:
    """Run ``function`` once under ``interpreter``: the one entry point of every interpretation."""
    context = Context(interpreter, interpreter.inputs, key, "", function.name, None, (), tempering)
    retval = function.body(context, *args)
    totals = {name: context.total(name) for name in interpreter.accumulators}
    if tempering is not None:
        totals["log_likelihood"] = context.total("log_likelihood")
    return Run(retval, context.choice_map(), totals, context.record_map())


# ---------------------------------------------------------------------------
# Selecting among alternatives
# ---------------------------------------------------------------------------


def select(index: jax.Array, values: Sequence[Any], fallback: Any = None) -> Any:
    """``values[index]`` for pytrees of equal structure, with a (possibly traced) integer index.

    An index outside ``0 .. len(values) - 1`` gives ``fallback`` when one is
    given, else the nearest alternative.
    """
    index = jnp.asarray(index).astype(jnp.int32)
    if fallback is not None:
        values = [fallback, *values]
        index = jnp.where((index >= 0) & (index < len(values) - 1), index + 1, 0)
    if len(values) == 1:
        return values[0]
    index = jnp.clip(index, 0, len(values) - 1)
    return jax.tree_util.tree_map(lambda *leaves: lax.select_n(index, *map(jnp.asarray, leaves)), *values)


def check_same_structure(values: Sequence, names: Sequence[str], owner: str, what: str = "alternative") -> None:
    """Raise ``CompositionError`` unless every value has the same pytree structure, shapes and dtypes."""
    if not values:
        return
    first = _signature(values[0])
    for value, name in zip(values[1:], names[1:]):
        other = _signature(value)
        if other != first:
            raise CompositionError(
                f"every {what} must return a value of the same structure, shape and dtype, so one can stand in "
                f"for another under jit; {what} '{names[0]}' returns {_show(first)} but '{name}' returns "
                f"{_show(other)}. Make them agree (e.g. broadcast with jnp.broadcast_to, cast with .astype).",
                model=owner,
            )


def _signature(value: Any):
    leaves, treedef = jax.tree_util.tree_flatten(value)
    return treedef, tuple((tuple(jnp.shape(leaf)), jnp.result_type(leaf)) for leaf in leaves)


def _show(signature) -> str:
    treedef, leaves = signature
    shown = ", ".join(f"{dtype}{list(shape)}" for shape, dtype in leaves)
    return shown if treedef.num_leaves == 1 and treedef.num_nodes == 1 else f"{treedef} of ({shown})"


def concrete_int(value: Any) -> int | None:
    """``int(value)`` when ``value`` is a concrete scalar, else ``None``."""
    if not validation.is_concrete(value):
        return None
    return int(np.asarray(value))


def check_finite_rows(values: np.ndarray) -> int | None:
    """The first row of ``values`` (leading axis) holding a non-finite number, or ``None``."""
    finite = np.isfinite(values).reshape(values.shape[0], -1).all(axis=1)
    return None if finite.all() else int(np.argmin(finite))


