"""The modelling language and the generative-function interface.

A *generative function* is a stochastic program whose random choices have
addresses. ppl has two kinds: models written with :func:`model` and
:func:`sample` (this module), and combinators built from other generative
functions (``ppl.compose``). Both expose the same four pure, jittable methods.
Writing ``x`` for the choices, ``args`` for the arguments and ``p`` for the
model's joint density over its choices:

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
(``x'_fresh``) choices were sampled from. One convention everywhere:
``score = log p`` (not its negative).

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

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from numpyro.distributions import Distribution

from ppl import validation
from ppl.choices import ChoiceMap, as_choice_map, split_address
from ppl.errors import (
    DuplicateAddressError,
    InvalidSampleTargetError,
    MissingChoiceError,
    ModelDefinitionError,
    ParameterError,
    PPLError,
    UnknownAddressError,
    did_you_mean,
)

__all__ = [
    "Trace",
    "Assessment",
    "Generated",
    "Updated",
    "GenerativeFunction",
    "Model",
    "model",
    "sample",
    "factor",
]


# ---------------------------------------------------------------------------
# Results (pytrees, because NamedTuples are)
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------


class GenerativeFunction:
    """Base class of every generative function (models and combinators).

    Subclasses implement one method, :meth:`run`; the four public interface
    methods are written once here in terms of it. ``run`` executes the function
    once, taking each constrained choice from ``constraints`` and sampling every
    other one from its prior::

        run(key, constraints, args, assess) -> (trace, log_weight)

    with ``log_weight`` the summed log density of the constrained sites. With
    ``assess=True`` the key is ``None`` and an unconstrained site must raise
    ``MissingChoiceError``. ``run`` may ignore constraint addresses it does not
    visit; the public methods check those once, at the top.
    """

    name: str = "generative function"

    def run(self, key, constraints: ChoiceMap, args: tuple, assess: bool) -> tuple[Trace, jax.Array]:
        raise NotImplementedError(f"{type(self).__name__} must implement run().")

    # -- public interface ------------------------------------------------------
    def simulate(self, key: jax.Array, *args) -> Trace:
        """Run forward, sampling every choice from its prior.

        Returns a ``Trace`` whose ``score`` is ``log p(choices; args)``.
        """
        trace, _ = self._top_level(lambda: self.run(key, ChoiceMap(), args, False))
        return trace

    def assess(self, choices: Mapping | ChoiceMap, *args) -> Assessment:
        """``log p(choices; args)`` for a *complete* choice map, and the return value.

        Differentiable in the continuous values of ``choices`` and in ``args``.
        Raises ``MissingChoiceError`` when a visited address has no value and
        ``UnknownAddressError`` when ``choices`` holds an address never visited.
        """
        choices = as_choice_map(choices)
        trace, log_density = self._top_level(lambda: self.run(None, choices, args, True))
        self._check_visited(choices, trace.choices, "assess")
        return Assessment(log_density, trace.retval)

    def generate(self, key: jax.Array, constraints: Mapping | ChoiceMap, *args) -> Generated:
        """Run with the ``constraints`` addresses fixed; sample the rest from the prior.

        ``log_weight = log p(x; args) - log q(x_u)``, i.e. the summed log density
        of the constrained choices: ``0`` with no constraints, ``trace.score``
        when every choice is constrained.
        """
        constraints = as_choice_map(constraints)
        trace, log_weight = self._top_level(lambda: self.run(key, constraints, args, False))
        self._check_visited(constraints, trace.choices, "generate")
        return Generated(trace, log_weight)

    def update(self, key: jax.Array, trace: Trace, changes: Mapping | ChoiceMap, *args) -> Updated:
        """Move ``trace`` to new choices (``changes``) and/or new arguments.

        Choices not in ``changes`` keep their values from ``trace``; choices the
        new execution visits for the first time are sampled from the prior.
        ``log_weight = log p(x'; args') - log p(x; args) - log q(x'_fresh)``;
        it is exactly ``score' - score`` when no fresh choice is made. Omitting
        ``args`` keeps ``trace.args``. Choices of ``trace`` the new execution does
        not visit are dropped.
        """
        changes = as_choice_map(changes)
        if not args:
            args = tuple(trace.args)
        merged = trace.choices.merge(changes)
        new_trace, constrained = self._top_level(lambda: self.run(key, merged, args, False))
        self._check_visited(changes, new_trace.choices, "update")
        return Updated(new_trace, constrained - trace.score)

    def __call__(self, *args, **kwargs):
        raise ModelDefinitionError(
            f"'{self.name}' is a generative function and is not called directly. Inside a "
            f"model write ppl.sample('some_address', {self.name}, *args); outside, run it with "
            f"{self.name}.simulate(jax.random.key(0), *args)."
        )

    # -- helpers ---------------------------------------------------------------
    def _top_level(self, thunk: Callable[[], Any]):
        try:
            return thunk()
        except PPLError as err:
            if err.model is None:
                err.model = self.name
            raise

    def _check_visited(self, given: ChoiceMap, visited: ChoiceMap, method: str) -> None:
        visited_addresses = visited.addresses()
        for address in given.addresses():
            if address in visited and not isinstance(visited[address], ChoiceMap):
                continue
            raise UnknownAddressError(
                f"{method} was given a value for '{address}', but the model never visits that "
                f"address.{did_you_mean(address, visited_addresses)} The model's addresses are: "
                f"{', '.join(repr(a) for a in visited_addresses) or 'none'}. Fix or remove the "
                "misspelled key.",
                model=self.name,
                address=address,
            )


# ---------------------------------------------------------------------------
# The DSL: @ppl.model and ppl.sample
# ---------------------------------------------------------------------------

_active = threading.local()


def _handler_stack() -> list["_Execution"]:
    stack = getattr(_active, "stack", None)
    if stack is None:
        stack = _active.stack = []
    return stack


def sample(address: str, target: Distribution | GenerativeFunction, *args) -> Any:
    """Make a random choice at ``address`` inside a model; return its value.

    Args:
      address: a name unique within this execution of the model (no ``/``).
      target: a ``ppl.dist`` (numpyro) distribution, or another model /
        generative function, whose choices then live under ``"address/..."``.
      *args: arguments for ``target`` when it is a model.

    Returns:
      The sampled (or constrained) value, or the sub-model's return value.
    """
    stack = _handler_stack()
    if not stack:
        raise ModelDefinitionError(
            f"ppl.sample('{address}', ...) was called outside a model. Put it in a function "
            "decorated with @ppl.model and run that with .simulate/.generate/.assess/.update."
        )
    return stack[-1].visit(address, target, args)


def factor(log_weight: jax.Array) -> None:
    """Add ``log_weight`` to the model's log density (a soft constraint).

    The density of the model becomes unnormalised: ``score = log p(x) + sum of
    factors``. Factors count as observed evidence, so they enter the
    ``generate``/``update`` weights too: with factors, ``generate`` with no
    constraints returns ``log_weight = sum of factors`` rather than 0.

    Example::

        >>> @ppl.model
        ... def near_one():
        ...     x = ppl.sample("x", dist.Normal(0.0, 1.0))
        ...     ppl.factor(-((x - 1.0) ** 2))
    """
    stack = _handler_stack()
    if not stack:
        raise ModelDefinitionError(
            "ppl.factor(...) was called outside a model. Put it in a function decorated "
            "with @ppl.model."
        )
    stack[-1].add_factor(log_weight)


class _Execution:
    """Records the ``ppl.sample`` calls of one run of one model (local to that run)."""

    def __init__(self, model_name: str, key, constraints: ChoiceMap, assess: bool):
        self.model_name = model_name
        self.key = key
        self.constraints = constraints
        self.assess = assess
        self.choices: dict[str, Any] = {}
        self.score = jnp.zeros(())
        self.log_weight = jnp.zeros(())
        self.sites_sampled = 0

    def next_key(self):
        # One hash per site (fold_in), half the cost of splitting the key each time;
        # inside a vmap over particles this is the dominant overhead of the DSL.
        self.sites_sampled += 1
        return jax.random.fold_in(self.key, self.sites_sampled)

    def add_factor(self, log_weight) -> None:
        log_weight = jnp.sum(jnp.asarray(log_weight))
        self.score = self.score + log_weight
        self.log_weight = self.log_weight + log_weight

    def visit(self, address: Any, target: Any, args: tuple) -> Any:
        parts = split_address(address)
        if len(parts) != 1:
            raise ModelDefinitionError(
                f"ppl.sample address '{address}' contains '/'. Addresses nest through "
                "sub-models: sample a model at 'a' and its choices live under 'a/...'.",
                address=str(address),
            )
        name = parts[0]
        if name in self.choices:
            raise DuplicateAddressError(
                "this execution visits the address twice. Every ppl.sample call in one run "
                "needs its own address; in a loop use f'x_{i}', or use ppl.unfold.",
                address=name,
            )
        if isinstance(target, Distribution):
            return self._visit_distribution(name, target, args)
        if isinstance(target, GenerativeFunction):
            return self._visit_generative_function(name, target, args)
        raise InvalidSampleTargetError(
            f"ppl.sample needs a distribution (ppl.dist.*) or a model (@ppl.model) as its "
            f"second argument, got {type(target).__name__} {target!r}. If it is a plain Python "
            "function, decorate it with @ppl.model.",
            address=name,
        )

    def _visit_distribution(self, name: str, distribution: Distribution, args: tuple) -> Any:
        if args:
            raise ModelDefinitionError(
                f"ppl.sample('{name}', <distribution>, ...) got extra arguments {args!r}; only "
                "models take arguments.",
                address=name,
            )
        try:
            validation.check_parameters(distribution)
            if self.constraints.has_value(name):
                value = validation.check_constraint(distribution, self.constraints[name])
                log_density = validation.site_log_density(distribution, value)
                self.log_weight = self.log_weight + log_density
            elif name in self.constraints:
                raise ModelDefinitionError(
                    f"the choice map holds sub-addresses {self.constraints[name].addresses()} "
                    "under this address, but here it is a single distribution. Give it a value "
                    "instead of a nested map.",
                )
            elif self.assess:
                raise MissingChoiceError(
                    "assess needs a value for every random choice, and the choice map has none "
                    "here. Add it (e.g. {'{address}': value}), or use generate(key, choices, ...) "
                    "to sample the missing choices."
                )
            else:
                value = distribution.sample(self.next_key())
                log_density = jnp.sum(distribution.log_prob(value))
        except PPLError as err:
            raise err.within(name, self.model_name) from None
        self.choices[name] = value
        self.score = self.score + log_density
        return value

    def _visit_generative_function(self, name: str, target: GenerativeFunction, args: tuple) -> Any:
        if self.constraints.has_value(name):
            raise ModelDefinitionError(
                f"the choice map holds a single value here, but '{name}' is the model "
                f"'{target.name}'. Constrain its choices by their full addresses, e.g. "
                "'{address}/<choice>'.",
                address=name,
            )
        sub_key = None if self.assess else self.next_key()
        try:
            trace, log_weight = target.run(sub_key, self.constraints.submap(name), args, self.assess)
        except PPLError as err:
            raise err.within(name, self.model_name) from None
        self.choices[name] = trace.choices
        self.score = self.score + trace.score
        self.log_weight = self.log_weight + log_weight
        return trace.retval


class Model(GenerativeFunction):
    """A generative function written as a Python function with ``ppl.sample`` calls.

    Create one with the :func:`model` decorator. Control flow on traced values
    must use ``jax.lax``; the set of addresses visited must not depend on the
    values sampled (so the choice map has a fixed structure under ``jit``).
    """

    def __init__(self, fn: Callable, name: str | None = None):
        if not callable(fn):
            raise ModelDefinitionError(f"@ppl.model decorates a function, got {fn!r}.")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "model")
        functools.update_wrapper(self, fn)

    def run(self, key, constraints, args, assess):
        execution = _Execution(self.name, key, constraints, assess)
        stack = _handler_stack()
        stack.append(execution)
        try:
            retval = self.fn(*args)
        except ValueError as err:
            if isinstance(err, PPLError) or "distribution got invalid" not in str(err):
                raise
            raise _parameter_error(err, execution) from None
        finally:
            stack.pop()
        trace = Trace(ChoiceMap.from_entries(execution.choices), execution.score, retval, tuple(args))
        return trace, execution.log_weight

    def __repr__(self) -> str:
        return f"<ppl.model {self.name}>"


def model(fn: Callable | None = None, *, name: str | None = None):
    """Turn a Python function that calls ``ppl.sample`` into a :class:`Model`.

    Use as ``@ppl.model`` or ``@ppl.model(name="stroke")``.
    """
    if fn is None:
        return lambda f: Model(f, name=name)
    return Model(fn, name=name)



def _parameter_error(err: ValueError, execution: _Execution) -> ParameterError:
    """numpyro validates concrete parameters when a distribution is built (in user
    code, before ``ppl.sample`` sees it); say where in the model that happened."""
    visited = list(execution.choices)
    where = f"after address '{visited[-1]}'" if visited else "before the first ppl.sample"
    return ParameterError(
        f"{err} It was built {where}. Check the parameters passed to that dist.*(...) "
        "call (e.g. a scale must be positive).",
        model=execution.model_name,
    )
