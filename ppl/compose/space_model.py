"""``space.model``: the generative function that runs the composition a code encodes.

Called as ``space.model.simulate(key, code, *args)`` (and ``assess``,
``generate``, ``update``), with the code an ordinary, traceable argument.

Choices (one fixed structure for every code):

- ``"node_{i}/{terminal}/..."``: every terminal's choices at every node ``i``;
- ``"node_{i}/{operator}/..."``: every operator's choices at every non-bottom
  node (operators written as plain functions have none);
- ``"obs"`` (or ``"obs/..."``): the observation, when the space has ``observe``.

Node ``i`` is a ``ppl.either`` over its kinds with ``code[i]`` as the index:
its value is the value of kind ``code[i]`` (terminals called with ``*args``,
operators with ``(left value, right value, *args)``), zeros when empty; values
combine bottom-up and the root's is the return value. Only the active kind of
each non-empty node counts::

    score = sum over non-empty nodes i of score(node i's kind) + log p(obs | root value)
          = log p(latents, obs | code)

The structure prior ``space.log_prior(code)`` is *not* included. A concrete
code is validated eagerly (``CompositionError``); with a concrete code
``assess`` needs only the active choices, under ``jit`` all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution

from ppl import validation
from ppl.choices import ChoiceMap
from ppl.compose.choice import Alternative, check_same_structure, placeholder_key, run_alternatives, select
from ppl.errors import CompositionError, PPLError
from ppl.model import GenerativeFunction, Model, Trace, sample

__all__ = ["CompositionModel", "Deterministic", "as_operator", "active_choices"]

OBS = "obs"


class CompositionModel(GenerativeFunction):
    """``space.model``: a generative function of ``(code, *args)`` (see the module docstring)."""

    def __init__(self, space, name: str):
        self.space = space
        self.name = name

    def run(self, key, constraints, args, assess):
        if not args:
            raise CompositionError("space.model is called with (code, *args); the code is missing.",
                                   model=self.name)
        space, (code, *rest) = self.space, args
        code = space.check_shape(code)
        kinds = space.validate(code) if validation.is_concrete(code) else None
        width = space.num_terminals + space.num_operators
        count = space.size * width + 1
        keys = jax.random.split(key, count) if key is not None else [None] * count
        values: list[Any] = [None] * space.size
        choices, score, log_weight = {}, jnp.zeros(()), jnp.zeros(())
        for i in reversed(range(space.size)):  # children before parents
            alternatives = [Alternative(name, f, tuple(rest)) for name, f in space.terminals.items()]
            if not space.tables.bottom[i]:
                left, right = (self._value(values[c], rest) for c in (2 * i + 1, 2 * i + 2))
                alternatives += [Alternative(name, f, (left, right, *rest))
                                 for name, f in space.operators.items()]
            active = int(kinds[i]) - 1 if (assess and kinds is not None) else None
            node_keys = keys[i * width : i * width + len(alternatives)]
            try:
                results = run_alternatives(node_keys, constraints.submap(f"node_{i}"), alternatives, active,
                                           assess, self.name)
            except PPLError as err:
                raise err.within(f"node_{i}", self.name) from None
            entries = {a.name: r[0].choices for a, r in zip(alternatives, results) if r and r[0].choices}
            if entries:
                choices[f"node_{i}"] = ChoiceMap.from_entries(entries)
            if active is not None:  # concrete code in assess: only the active kind ran for sure
                trace, weight = results[active] if active >= 0 else (None, 0.0)
                values[i] = trace.retval if trace is not None else None
                score = score + (trace.score if trace is not None else 0.0)
                log_weight = log_weight + weight
                continue
            retvals = [r[0].retval for r in results]
            check_same_structure(retvals, [a.name for a in alternatives], self.name, "terminal or operator")
            zero = jnp.zeros(())
            values[i] = select(code[i], [jax.tree_util.tree_map(jnp.zeros_like, retvals[0])] + retvals)
            score = score + select(code[i], [zero] + [r[0].score for r in results])
            log_weight = log_weight + select(code[i], [zero] + [r[1] for r in results])
        root = self._value(values[0], rest)
        if space.observe is not None:
            observation, observed_weight = self._observe(keys[-1], constraints, root, rest, assess)
            own_address = isinstance(space.observe, GenerativeFunction)
            choices[OBS] = observation.choices if own_address else observation.choices[OBS]
            score, log_weight = score + observation.score, log_weight + observed_weight
        return Trace(ChoiceMap.from_entries(choices), score, root, tuple(args)), log_weight

    def _value(self, value, args):
        """A node's value, or zeros of the common value shape for an empty node skipped in assess."""
        if value is not None:
            return value
        first = next(iter(self.space.terminals.values()))
        trace, _ = first.run(placeholder_key(), ChoiceMap(), tuple(args), False)
        return jax.tree_util.tree_map(jnp.zeros_like, trace.retval)

    def _observe(self, key, constraints: ChoiceMap, value, args, assess):
        observe = self.space.observe
        if isinstance(observe, GenerativeFunction):
            try:
                return observe.run(key, constraints.submap(OBS), (value, *args), assess)
            except PPLError as err:
                raise err.within(OBS, self.name) from None
        try:  # a function returning a distribution: one site at "obs"
            return _observation_model(observe).run(key, constraints, (value, *args), assess)
        except PPLError as err:
            err.model = self.name
            raise

    def __repr__(self) -> str:
        return f"<ppl.Space model {self.name}>"


def _observation_model(observe: Callable) -> Model:
    def observation(value, *args):
        distribution = observe(value, *args)
        if not isinstance(distribution, Distribution):
            raise CompositionError(
                f"observe must return a distribution (ppl.dist.*), got {distribution!r}."
            )
        return sample(OBS, distribution)

    return Model(observation, name="observe")


class Deterministic(GenerativeFunction):
    """A plain function ``(left, right) -> value`` as an operator without choices."""

    def __init__(self, fn: Callable, name: str):
        self.fn, self.name = fn, name

    def run(self, key, constraints, args, assess):
        left, right = args[:2]
        return Trace(ChoiceMap(), jnp.zeros(()), self.fn(left, right), tuple(args)), jnp.zeros(())


def as_operator(name: str, operator: Any, space_name: str) -> GenerativeFunction:
    """A space operator as a generative function of ``(left, right, *args)``."""
    if isinstance(operator, GenerativeFunction):
        return operator
    if callable(operator):
        return Deterministic(operator, name)
    raise CompositionError(
        f"operator '{name}' must be a generative function of (left, right, *args) or a function "
        f"(left, right) -> value, got {operator!r}.",
        model=space_name,
    )


def active_choices(space, choices: ChoiceMap, code: jax.Array) -> ChoiceMap:
    """Boolean masks with the structure and leaf shapes of ``choices``: does each count for ``code``."""
    code = jnp.asarray(code)
    entries = {}
    for key in choices.keys():
        sub = choices[key]
        if key.startswith("node_"):
            kind_of_node = code[int(key[len("node_") :])]
            masks = {}
            for kind in sub.keys():
                is_active = kind_of_node == space.kinds.index(kind)
                masks[kind] = jax.tree_util.tree_map(
                    lambda leaf, a=is_active: jnp.broadcast_to(a, np.shape(leaf)), sub[kind]
                )
            entries[key] = ChoiceMap.from_entries(masks)
        else:
            entries[key] = jax.tree_util.tree_map(lambda leaf: jnp.ones(np.shape(leaf), bool), sub)
    return ChoiceMap.from_entries(entries)
