"""Composition in time, step by step: ``ppl.unfold``, a Markov chain of a step model run with ``lax.scan``.

(The other combinators in time: :mod:`ppl.compose.seq` and :mod:`ppl.compose.changepoint`.)

``step`` is a generative function called as
``step(t, state, *args) -> new_state``; ``unfold(step, steps)`` is called as
``chain(init_state, *args)`` and runs ``t = 0, ..., steps - 1``::

    state_0 = step(0, init_state, *args)
    state_t = step(t, state_{t-1}, *args)

Writing ``x_t`` for the choices of step ``t``, its density is
``log p(x; init_state, args) = sum_t log p_step(x_t; t, state_{t-1}, args)``.

Choices are *stacked* along a leading time axis: a step choice at ``"x"`` of
shape ``S`` is ``trace.choices["x"]`` of shape ``(steps, *S)``, and step ``t``'s
value is ``trace.choices["x"][t]``. Constraints (``generate``, ``assess``,
``update``) use the same layout: every constrained leaf carries the leading
time axis of length ``steps``. ``trace.retval`` is the stacked states
``(steps, ...)`` (``state_0 ... state_{steps-1}``, not ``init_state``).

Compile time does not depend on ``steps``: the step is traced once, inside one
``lax.scan`` (``context.scan``, which carries the interpreter of the call into
every step, so ``simulate``/``assess``/``generate``/``update``, MAP, MCMC and
NUTS all see the step's choices). Weights: :mod:`ppl.interface`.

Example::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> @ppl.model
    ... def random_walk(t, position, scale):
    ...     return ppl.sample("x", dist.Normal(position, scale))
    >>> walk = ppl.unfold(random_walk, steps=100)
    >>> trace = walk.simulate(jax.random.key(0), 0.0, 1.0)
    >>> trace.choices["x"].shape, trace.retval.shape
    ((100,), (100,))
"""

from __future__ import annotations

import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ppl.choices import ChoiceMap, as_choice_map
from ppl.context import Context, check_finite_rows, interpret
from ppl.errors import CompositionError, NonFiniteError, PPLError, ShapeError
from ppl.interface import GenerativeFunction, Segment, Trace
from ppl.interpreters import Generate
from ppl.validation import is_concrete

__all__ = ["Unfold", "unfold"]


class Unfold(GenerativeFunction):
    """A Markov chain of ``steps`` applications of a step model, run with ``lax.scan``.

    Build one with :func:`unfold`. Called as ``chain(init_state, *args)``; step
    ``t`` runs ``step(t, state_{t-1}, *args)`` with ``state_{-1} = init_state``.

    Weights (``x_t`` = choices of step ``t``, ``s_t`` = state after step ``t``):

    - ``simulate``: ``trace.score = sum_t log p_step(x_t; t, s_{t-1}, args)``;
      choices stacked ``(steps, ...)``; ``trace.retval`` = stacked states.
    - ``generate``: ``log_weight = sum_t`` (log density of step ``t``'s
      constrained sites). Constraints carry the leading time axis: to observe
      ``"y"`` at every step pass ``{"y": ys}`` with ``ys.shape[0] == steps``.
    - ``assess`` / ``update``: as for any generative function, with stacked
      choice maps.

    For particle filters (``ppl.infer.smc``) the chain exposes its pieces:
    ``chain.step`` and ``chain.steps``, :meth:`choices_at` (the slice of a
    stacked choice map at one time step) and :meth:`incremental_scores` (the
    per-step log densities, which sum to ``trace.score``). A filter advances
    particles one step with
    ``chain.step.generate(key, chain.choices_at(obs, t), t, state, *args)``.

    Attributes:
      step: the step generative function, ``step(t, state, *args) -> new_state``.
      steps: the number of time steps (a Python int >= 1).
      name: ``"unfold(<step name>)"`` unless given.
    """

    def __init__(self, step: GenerativeFunction, steps: int, *, name: str | None = None):
        if not isinstance(step, GenerativeFunction):
            raise CompositionError(
                f"ppl.unfold needs a generative function as its step (a @ppl.model "
                f"step(t, state, *args) -> new_state), got {type(step).__name__} {step!r}. "
                "Decorate the step function with @ppl.model."
            )
        self.step = step
        self.steps = _check_steps(steps)
        self.name = name or f"unfold({step.name})"

    def __repr__(self) -> str:
        return f"<ppl.unfold {self.step.name} x {self.steps}>"

    # -- the one method every generative function implements ------------------
    def body(self, context: Context, *args):
        if not args:
            raise CompositionError(
                f"'{self.name}' is called as {self.name}(init_state, *args), but got no "
                "arguments. Pass the initial state first, e.g. "
                "chain.simulate(key, init_state, *args).",
                model=self.name,
            )
        init_state, *extra = args
        init_state = jax.tree.map(strong_array, init_state)
        self._check_finite(context)

        def advance(step_context, state, t):
            new_state = step_context.call(None, self.step, t, state, *extra)
            new_state = same_type_state(state, new_state, self.step.name)
            return new_state, new_state

        try:
            _, states, per_step = context.scan(advance, init_state, jnp.arange(self.steps), self.steps,
                                               what=f"ppl.unfold '{self.name}'", axis="time")
        except PPLError as err:
            raise self._per_step(err) from None
        self._explain_non_finite(per_step, context, init_state, extra, states)
        return states

    # -- for particle filters --------------------------------------------------
    def segments(self):
        """One stepped segment: the filter advances ``step`` ``steps`` times."""
        return (Segment(None, self.step, self.steps, True, self),)

    def choices_at(self, choices: ChoiceMap | dict, t) -> ChoiceMap:
        """The choices (or constraints) of time step ``t`` from a stacked choice map.

        Every leaf of shape ``(steps, *S)`` becomes its row ``t`` of shape ``S``.
        ``t`` may be a traced integer (inside ``lax.scan`` or ``jit``).

        Example::

            >>> @ppl.model
            ... def step(t, position):
            ...     return ppl.sample("x", dist.Normal(position, 1.0))
            >>> ppl.unfold(step, 100).choices_at({"x": jnp.arange(100.0)}, 3)["x"]
            Array(3., dtype=float32)
        """
        return jax.tree.map(lambda leaf: jnp.asarray(leaf)[t], as_choice_map(choices))

    def incremental_scores(self, trace: Trace, *args) -> jax.Array:
        """The per-step log densities ``log p_step(x_t; t, s_{t-1}, args)``, shape ``(steps,)``.

        They sum to ``trace.score``; a particle filter's incremental weight at
        step ``t`` is built from entry ``t``. Computed from the stacked choices
        and states of ``trace`` in parallel over ``t`` (a ``vmap``, no loop).
        ``args`` (``init_state, *args``) default to ``trace.args``. For a batch
        of traces, ``jax.vmap`` this method.
        """
        args = args or tuple(trace.args)
        init_state, *extra = args
        init_state = jax.tree.map(strong_array, init_state)
        previous = jax.tree.map(
            lambda first, stacked: jnp.concatenate([first[None].astype(stacked.dtype), stacked[:-1]]),
            init_state,
            trace.retval,
        )

        def score_of_step(choices_t, t, state):
            return self.step.assess(choices_t, t, state, *extra).log_density

        try:
            return jax.vmap(score_of_step)(trace.choices, jnp.arange(self.steps), previous)
        except PPLError as err:
            raise self._per_step(err) from None

    # -- errors ----------------------------------------------------------------
    def _per_step(self, err: PPLError) -> PPLError:
        """An error raised while tracing the step: say that shapes are per step."""
        if isinstance(err, ShapeError) and "leading time axis" not in err.message:
            err.message += (
                f" (Inside ppl.unfold the step sees one time step: constraints carry a leading "
                f"time axis of length {self.steps} and the shapes above are what remains "
                "after it.)"
            )
        err.model = self.name
        return err

    def _check_finite(self, context: Context) -> None:
        """A concrete float value with NaN or inf: say at which time step, before anything runs."""
        for inputs in context.inputs:
            for address, value in inputs.items():
                if is_concrete(value) and np.issubdtype(np.asarray(value).dtype, np.floating) and np.ndim(value):
                    t = check_finite_rows(np.asarray(value))
                    if t is not None:
                        raise NonFiniteError(
                            f"the constraint holds NaN or inf (first at time step t={t}). Remove or impute "
                            "missing data, or replace it by any finite number and mask it out inside the step: "
                            "dist.Normal(...).mask(seen[t]).",
                            address=address, model=self.name,
                        )

    def _explain_non_finite(self, per_step: dict, context: Context, init_state, extra, states) -> None:
        """A non-finite weight outside ``jit``: rerun that one step eagerly, where the
        constrained values are concrete, so the step raises its own precise error
        (e.g. ``SupportError``) instead of returning ``-inf``. Returns quietly when the
        step itself finds nothing wrong (a legitimate ``-inf``)."""
        weights = per_step.get("weight")
        if weights is None or not is_concrete(weights) or np.all(np.isfinite(np.asarray(weights))):
            return
        t = int(np.argmax(~np.isfinite(np.asarray(weights))))
        state = init_state if t == 0 else jax.tree.map(operator.itemgetter(t - 1), states)
        constraints = self.choices_at(context.inputs[0], t) if context.inputs else ChoiceMap()
        try:
            interpret(self.step, Generate(constraints, context.interpreter.complete), jax.random.key(t),
                      (jnp.asarray(t), state, *extra))
        except PPLError as err:
            err.message += f" (This is time step t={t} of '{self.name}'.)"
            err.model = self.name
            raise err from None


def unfold(step: GenerativeFunction, steps: int, *, name: str | None = None) -> Unfold:
    """A Markov chain: ``steps`` applications of ``step``, compiled as one ``lax.scan``.

    Args:
      step: a generative function ``step(t, state, *args) -> new_state``. ``t``
        is the time index (an int32 scalar, traced); the new state must have
        the same pytree structure, shapes and dtypes as ``state``.
      steps: the number of time steps, a Python int >= 1.
      name: a name for error messages (default ``"unfold(<step name>)"``).

    Returns:
      An :class:`Unfold`, called as ``chain(init_state, *args)``. Its choices
      are the step's, stacked along a leading time axis of length ``steps``;
      its return value is the stacked states.

    Raises:
      CompositionError: ``steps`` is not a positive int, or ``step`` is not a
        generative function.

    Example::

        >>> @ppl.model
        ... def ar1(t, level, rho):
        ...     return ppl.sample("level", dist.Normal(rho * level, 1.0))
        >>> chain = ppl.unfold(ar1, steps=50)
        >>> trace, log_weight = chain.generate(jax.random.key(0), {"level": jnp.zeros(50)}, 0.0, 0.9)
    """
    return Unfold(step, steps, name=name)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _check_steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise CompositionError(
            f"ppl.unfold needs steps as a Python int (it fixes the length of the trace, "
            f"so it must be known before tracing), got {type(steps).__name__} {steps!r}. "
            "Pass e.g. steps=100; for data of unknown length use steps=len(data)."
        )
    if steps <= 0:
        raise CompositionError(
            f"ppl.unfold needs steps >= 1 (the number of time steps), got steps={steps}. "
            "Pass a positive number of steps, e.g. steps=len(observations)."
        )
    return int(steps)


def strong_array(leaf: Any) -> jax.Array:
    """``jnp.asarray`` without a weak type, so the scan carry has one fixed type."""
    array = jnp.asarray(leaf)
    return lax.convert_element_type(array, array.dtype) if getattr(array, "weak_type", False) else array


def _describe_state(state: Any) -> str:
    return str(jax.tree.map(lambda leaf: f"{jnp.result_type(leaf)}{list(jnp.shape(leaf))}", state))


def same_type_state(state: Any, new_state: Any, step_name: str) -> Any:
    """The new state, checked to match the carried state (and cast off weak types)."""
    fix = (
        f" The step '{step_name}' must return a new state with the same structure, shapes "
        f"and dtypes as the state it is given (lax.scan carries it from step to step): it "
        f"was given {_describe_state(state)} and returned {_describe_state(new_state)}. "
        "Return a state shaped like init_state, or pass init_state with the dtype the step "
        "produces (e.g. 0.0 rather than 0)."
    )
    if jax.tree.structure(state) != jax.tree.structure(new_state):
        raise CompositionError("the state changed structure." + fix, model=step_name)
    for old, new in zip(jax.tree.leaves(state), jax.tree.leaves(new_state)):
        if jnp.shape(old) != jnp.shape(new) or jnp.result_type(old) != jnp.result_type(new):
            raise CompositionError("the state changed shape or dtype." + fix, model=step_name)
    return jax.tree.map(lambda old, new: jnp.asarray(new, dtype=old.dtype), state, new_state)
