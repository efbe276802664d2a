"""``space.model``: the generative function that runs the composition a code encodes.

Called as ``space.model.simulate(key, code, *args)`` (and ``assess``,
``generate``, ``update``), with the code an ordinary, traceable argument.

Choices (one fixed structure for every code):

- ``"node_{i}/{terminal}/..."``: every terminal's choices at every node ``i``;
- ``"node_{i}/{operator}/..."``: every operator's choices at every non-bottom
  node (operators written as plain functions have none);
- ``"obs"`` (or ``"obs/..."``): the observation, when the space has ``observe``.

Node ``i`` is a switch over its kinds with ``code[i] - 1`` as the index
(``context.switch``, as in ``ppl.either``): its value is the value of kind
``code[i]`` (terminals called with ``*args``, operators with ``(left value,
right value, *args)``), zeros when empty; values combine bottom-up and the
root's is the return value. The kinds a code does not use, at every node, are
inactive: auxiliary variables drawn from and scored under their prior (the
convention of :mod:`ppl.interface`)::

    score = sum over nodes i and kinds j of score(node i, kind j) + log p(obs | root value)
          = log p(active latents, obs | code) + log p(inactive latents)

so the evidence ``p(obs | code)`` is unchanged by the inactive choices, and
inference that sees activity (Laplace) integrates them exactly. The structure
prior ``space.log_prior(code)`` is *not* included. A concrete code is
validated eagerly (``CompositionError``); with a concrete code ``assess``
needs only the active choices, under ``jit`` all of them.
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
from ppl.context import Context
from ppl.errors import CompositionError
from ppl.interface import GenerativeFunction

__all__ = ["CompositionModel", "Deterministic", "as_operator", "active_choices"]

OBS = "obs"


class _Node(GenerativeFunction):
    """One node of the tree: a switch among its kinds (every kind runs, the code's kind is returned)."""

    def __init__(self, name: str):
        self.name = name

    def body(self, context: Context, index, branches, concrete, fallback):
        return context.switch(index, branches, concrete=concrete, fallback=fallback)


class CompositionModel(GenerativeFunction):
    """``space.model``: a generative function of ``(code, *args)`` (see the module docstring)."""

    def __init__(self, space, name: str):
        self.space = space
        self.name = name
        self._nodes = [_Node(f"{name} node {i}") for i in range(space.size)]

    def body(self, context: Context, *args):
        if not args:
            raise CompositionError("space.model is called with (code, *args); the code is missing.",
                                   model=self.name)
        space, (code, *rest) = self.space, args
        code = space.check_shape(code)
        kinds = space.validate(code) if validation.is_concrete(code) else None
        zeros = self._zeros(rest)
        values: list[Any] = [None] * space.size
        for i in reversed(range(space.size)):  # children before parents
            branches = [(name, f, tuple(rest)) for name, f in space.terminals.items()]
            if not space.tables.bottom[i]:
                left, right = (zeros if values[c] is None else values[c] for c in (2 * i + 1, 2 * i + 2))
                branches += [(name, f, (left, right, *rest)) for name, f in space.operators.items()]
            concrete = int(kinds[i]) - 1 if (kinds is not None and context.interpreter.complete) else None
            values[i] = context.call(f"node_{i}", self._nodes[i], code[i] - 1, branches, concrete, zeros)
        root = values[0]
        observe = space.observe
        if isinstance(observe, GenerativeFunction):
            context.call(OBS, observe, root, *rest)
        elif observe is not None:
            distribution = observe(root, *rest)
            if not isinstance(distribution, Distribution):
                raise CompositionError(f"observe must return a distribution (ppl.dist.*), got {distribution!r}.",
                                       model=self.name)
            context.sample(OBS, distribution)
        return root

    def _zeros(self, args):
        """Zeros of the common value shape (the value of an empty node)."""
        first = next(iter(self.space.terminals.values()))
        shapes = jax.eval_shape(lambda: first.simulate(jax.random.key(0), *args).retval)
        return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def __repr__(self) -> str:
        return f"<ppl.Space model {self.name}>"


class Deterministic(GenerativeFunction):
    """A plain function ``(left, right) -> value`` as an operator without choices."""

    def __init__(self, fn: Callable, name: str):
        self.fn, self.name = fn, name

    def body(self, context: Context, left, right, *args):
        return self.fn(left, right)


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
