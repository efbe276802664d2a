"""The generative-function interface: four pure, jittable methods, written once.

A *generative function* is a stochastic program whose random choices have
addresses: a model written with ``@ppl.model`` (:mod:`ppl.model`) or a
combinator (:mod:`ppl.compose`). Each implements one method,
``body(context, *args)``, and hands every choice to the interpreter of the
current call through ``context`` (:mod:`ppl.context`). The public methods
below are interpreters over that one code path (:mod:`ppl.interpreters`).

Writing ``x`` for the choices, ``args`` for the arguments and ``p`` for the
joint density over the choices (factors included):

=================================================  ==========================================
method                                             weight
=================================================  ==========================================
``simulate(key, *args) -> Trace``                  ``trace.score = log p(x; args)``
``assess(choices, *args) -> (log_density, retval)`` ``log_density = log p(x; args)``, x complete
``generate(key, constraints, *args)``              ``log_weight = log p(x; args) - log q(x_u)``
``-> (trace, log_weight)``                         ``= sum of log p over constrained sites``
``update(key, trace, changes, *args)``             ``log_weight = log p(x'; args') - log p(x; args)``
``-> (trace, log_weight)``                         ``- log q(x'_fresh)``
=================================================  ==========================================

where ``q`` is the prior the unconstrained (``x_u``) or newly visited
(``x'_fresh``) choices were drawn from; ``ppl.factor`` terms count as
constrained (they enter every weight). One convention everywhere:
``score = log p`` (not its negative).

**Inactive structure** (one convention, for ``ppl.either``, ``ppl.Space`` and
``ppl.many``; ``p`` in the table above includes it). Structure that the current values do not use (the alternatives
a switch did not choose, the copies of ``many`` beyond its count) is still run,
so every trace has one fixed shape under ``jit``. Its choices are *auxiliary
variables*: they are drawn from their prior and scored under it, exactly as
when they are active. The density of a trace is therefore normalised and the
marginal of the active choices and observations is unchanged (the inactive
ones integrate to one). Changing only an index or a count is then a valid
Metropolis-Hastings move: the newly active choices already hold draws from
their prior, and their density is in both scores. Every site tells its
interpreter whether it is active (``Site.active``), so that, e.g., a Laplace
approximation integrates the inactive choices exactly instead of
approximating them. ``assess`` with a concrete index does not need the
choices of a branch that is not chosen: their density integrates to one.

Example::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> @ppl.model
    ... def stroke(start):
    ...     d = ppl.sample("delta", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    ...     return start + d
    >>> trace = stroke.simulate(jax.random.key(0), jnp.zeros(2))
    >>> log_density, _ = stroke.assess(trace.choices, jnp.zeros(2))
    >>> bool(jnp.allclose(log_density, trace.score))
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

from ppl.choices import ChoiceMap, as_choice_map
from ppl.context import Context, interpret
from ppl.errors import DtypeError, ModelDefinitionError, PPLError, UnknownAddressError, did_you_mean
from ppl.interpreters import Generate
from ppl.validation import check_key

__all__ = ["Trace", "Assessment", "Generated", "Updated", "GenerativeFunction", "Segment"]


class Trace(NamedTuple):
    """One execution of a generative function.

    Attributes:
      choices: ``ChoiceMap`` of every random choice made, by address.
      score: ``log p(choices; args)``, a scalar (``(n,)`` once vmapped over n).
      retval: what the model returned (any pytree).
      args: the arguments it was called with (a tuple).
    """

    choices: ChoiceMap
    score: jax.Array
    retval: Any
    args: tuple


class Assessment(NamedTuple):
    """Result of ``assess``: ``log_density = log p(choices; args)`` and the return value."""

    log_density: jax.Array
    retval: Any


class Generated(NamedTuple):
    """Result of ``generate``: the trace and ``log_weight = log p(x) - log q(x_unconstrained)``."""

    trace: Trace
    log_weight: jax.Array


class Updated(NamedTuple):
    """Result of ``update``: the new trace and ``log_weight = log p(x') - log p(x) - log q(fresh)``."""

    trace: Trace
    log_weight: jax.Array


class Segment(NamedTuple):
    """One stretch of a sequence model, as a particle filter advances it (see :meth:`GenerativeFunction.segments`).

    Attributes:
      address: where the segment's choices live in the model (``None``: at its top level).
      model: a stepped segment's step, called ``step(t, state, *args) -> state``
        (its choices stacked along a leading time axis); else the part itself,
        called with the model's arguments and assimilated in one step.
      steps: the number of steps (1 for a part that is not stepped).
      stepped: whether ``model`` is a step function.
      owner: the generative function that runs the steps (for messages).
    """

    address: str | None
    model: Any
    steps: int
    stepped: bool
    owner: Any = None


class GenerativeFunction:
    """Base class of every generative function (models and combinators).

    Subclasses implement :meth:`body`; the interface methods are written once
    here. To write a combinator: implement ``body(context, *args)`` with the
    context's ``sample``/``call``/``factor``/``scan``/``vmap``/``switch``, state
    its weights by reference to this module, and run
    ``ppl.testing.check_interface`` on it (``docs/extending.md``).
    """

    name: str = "generative function"

    def body(self, context: Context, *args) -> Any:
        """Run once, handing every choice to ``context``; return the value."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement body(context, *args): make each choice with "
            "context.sample / context.call (see ppl.context)."
        )

    def segments(self) -> tuple[Segment, ...] | None:
        """How a particle filter advances this model step by step, or ``None`` (not a sequence).

        ``ppl.infer.smc`` filters a model with segments one step at a time and
        runs tempered SMC on the others; ``ppl.unfold`` and ``ppl.seq`` have
        segments.
        """
        return None

    # -- public interface ------------------------------------------------------
    def simulate(self, key: jax.Array, *args) -> Trace:
        """Run forward, sampling every choice from its prior.

        Returns a ``Trace`` whose ``score`` is ``log p(choices; args)``.
        """
        check_key(key, f"{self.name}.simulate", self.name)
        run = self._run(Generate(ChoiceMap()), key, args)
        return Trace(run.choices, run.totals["score"], run.retval, tuple(args))

    def assess(self, choices: Mapping | ChoiceMap, *args) -> Assessment:
        """``log p(choices; args)`` for a *complete* choice map, and the return value.

        Differentiable in the continuous values of ``choices`` and in ``args``.
        Raises ``MissingChoiceError`` when a visited address has no value and
        ``UnknownAddressError`` when ``choices`` holds an address never visited.
        """
        choices = self._choice_map(choices, "assess")
        run = self._run(Generate(choices, complete=True), None, args)
        self._check_visited(choices, run.choices, "assess")
        return Assessment(run.totals["score"], run.retval)

    def generate(self, key: jax.Array, constraints: Mapping | ChoiceMap, *args) -> Generated:
        """Run with the ``constraints`` addresses fixed; sample the rest from the prior.

        ``log_weight = log p(x; args) - log q(x_u)``, i.e. the summed log density
        of the constrained choices (and factors): ``0`` with no constraints and no
        factors, ``trace.score`` when every choice is constrained.
        """
        check_key(key, f"{self.name}.generate", self.name)
        constraints = self._choice_map(constraints, "generate")
        run = self._run(Generate(constraints), key, args)
        self._check_visited(constraints, run.choices, "generate")
        return Generated(Trace(run.choices, run.totals["score"], run.retval, tuple(args)), run.totals["weight"])

    def update(self, key: jax.Array, trace: Trace, changes: Mapping | ChoiceMap, *args) -> Updated:
        """Move ``trace`` to new choices (``changes``) and/or new arguments.

        Choices not in ``changes`` keep their values from ``trace``; choices the
        new execution visits for the first time are sampled from the prior.
        ``log_weight = log p(x'; args') - log p(x; args) - log q(x'_fresh)``;
        it is exactly ``score' - score`` when no fresh choice is made. Omitting
        ``args`` keeps ``trace.args``. Choices of ``trace`` the new execution does
        not visit are dropped.
        """
        check_key(key, f"{self.name}.update", self.name)
        if not isinstance(trace, Trace):
            raise ModelDefinitionError(
                f"{self.name}.update(key, trace, changes, ...) takes the Trace that simulate or generate returned, "
                f"got {type(trace).__name__}. For a choice map of values use {self.name}.generate(key, choices, ...).",
                model=self.name,
            )
        changes = self._choice_map(changes, "update")
        if not args:
            args = tuple(trace.args)
        run = self._run(Generate(trace.choices.merge(changes)), key, args)
        self._check_visited(changes, run.choices, "update")
        new_trace = Trace(run.choices, run.totals["score"], run.retval, tuple(args))
        return Updated(new_trace, run.totals["weight"] - trace.score)

    def __call__(self, *args, **kwargs):
        raise ModelDefinitionError(
            f"'{self.name}' is a generative function and is not called directly. Inside a "
            f"model write ppl.sample('some_address', {self.name}, *args); outside, run it with "
            f"{self.name}.simulate(jax.random.key(0), *args)."
        )

    # -- helpers ---------------------------------------------------------------
    def _choice_map(self, choices, method: str) -> ChoiceMap:
        """``choices`` as a ``ChoiceMap``; a ``None`` value (which would leave its address unconstrained) raises."""
        choices = top_level(self, lambda: as_choice_map(choices))
        for address, value in choices.items():
            if value is None:
                raise DtypeError(
                    f"{method} was given None as the value of '{address}'. Give it a value, or leave the address "
                    "out to sample it.",
                    model=self.name, address=address,
                )
        return choices

    def _run(self, interpreter, key, args):
        return top_level(self, lambda: interpret(self, interpreter, key, tuple(args)))

    def _check_visited(self, given: ChoiceMap, visited: ChoiceMap, method: str) -> None:
        check_visited(self, given, visited, method)


def top_level(function: GenerativeFunction, thunk: Callable[[], Any]):
    """Run ``thunk``; an error that does not name its model yet names ``function``."""
    try:
        return thunk()
    except PPLError as err:
        if err.model is None:
            err.model = function.name
        raise


def check_visited(function: GenerativeFunction, given: ChoiceMap, visited: ChoiceMap, method: str) -> None:
    """Raise ``UnknownAddressError`` for an address of ``given`` the run did not visit."""
    visited_addresses = None
    for address in given.addresses():
        if address in visited and not isinstance(visited[address], ChoiceMap):
            continue
        visited_addresses = visited.addresses() if visited_addresses is None else visited_addresses
        raise UnknownAddressError(
            f"{method} was given a value for '{address}', but the model never visits that address."
            f"{did_you_mean(address, visited_addresses)} The model's addresses are: "
            f"{', '.join(repr(a) for a in visited_addresses) or 'none'}. Fix or remove the misspelled key.",
            model=function.name,
            address=address,
        )
