"""Choice: a discrete latent picks one of several alternatives.

``ppl.either(a, b, ..., probs=...)`` is a generative function that draws an
index ``k ~ Categorical(probs)`` at address ``"index"`` and runs alternative
``k`` with its own arguments. It is the building block of the *space of
compositions* (``ppl.Space``), where every node of a grammar tree is such a
choice among terminals and operators.

**Fixed structure.** Under ``jit`` the index is a traced value, so the choice
map cannot depend on it: *every* alternative runs and keeps its choices in the
trace, under ``"0/..."``, ``"1/..."`` (or the keyword names given). Only the
selected alternative counts::

    score      = log probs[k] + score_k
    log_weight = [log probs[k] if "index" is constrained] + log_weight_k
    retval     = retval_k

The choices of the inactive alternatives are *placeholders*: values simulated
from their prior, or the constrained values when ``generate``/``update`` is
given some. They carry no density. ``update`` that changes the index
re-activates the placeholders already in the trace, so its weight is exactly
``score' - score`` (no fresh choice is made); to propose new values for the
newly chosen alternative, change them in the same ``update``.

**assess.** With a concrete index (an ordinary number, not a ``jit`` tracer)
``assess`` needs only the chosen alternative's choices; values given for other
alternatives are checked (shape, dtype, support) and otherwise ignored. Under
``jit``/``vmap`` the index is not known while tracing, so ``assess`` needs the
choices of every alternative, as ``simulate`` produces them.

**Why compute every alternative and select** rather than ``lax.switch``: the
trace must hold every alternative's choices, so every alternative runs anyway;
the result, score and weight are then picked with ``lax.select_n``. Under
``vmap`` (the common case: particles, populations of structures) ``lax.switch``
is lowered to exactly this select of all branches.

Example::

    >>> import jax, ppl
    >>> from ppl import dist
    >>> @ppl.model
    ... def small():
    ...     return ppl.sample("x", dist.Normal(0.0, 1.0))
    >>> @ppl.model
    ... def large():
    ...     return ppl.sample("x", dist.Normal(0.0, 10.0))
    >>> size = ppl.either(small, large, probs=[0.7, 0.3])
    >>> trace = size.simulate(jax.random.key(0))
    >>> trace.choices.addresses()
    ('0/x', '1/x', 'index')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from numpyro import distributions as dist

from ppl import validation
from ppl.choices import ChoiceMap
from ppl.compose.parts import named_parts
from ppl.errors import CompositionError, MissingChoiceError, ModelDefinitionError, PPLError
from ppl.model import GenerativeFunction, Trace

__all__ = ["either", "Either"]

INDEX = "index"
PROBS_TOL = 1e-6


# ---------------------------------------------------------------------------
# Shared machinery: run every alternative, select the active one
# (also used by ppl.Space, where each grammar node is such a choice)
# ---------------------------------------------------------------------------


class Alternative(NamedTuple):
    """One alternative of a choice: its address, generative function and arguments."""

    name: str
    function: GenerativeFunction
    args: tuple


def placeholder_key() -> jax.Array:
    """The fixed key used to fill missing placeholder choices of inactive alternatives in assess."""
    return jax.random.key(0)


def run_alternatives(
    keys,
    constraints: ChoiceMap,
    alternatives: Sequence[Alternative],
    active: int | None,
    assess: bool,
    owner: str,
) -> list[tuple[Trace, jax.Array] | None]:
    """Run each alternative at its address; return ``(trace, log_weight)`` per alternative.

    ``keys`` holds one PRNG key per alternative (``None`` in assess).
    ``active`` is the concrete index of the selected alternative (``-1`` for
    none) or ``None`` when it is only known at run time. In ``assess`` with a
    concrete ``active``, an inactive alternative without given choices is
    skipped (``None`` in the result) and one with given choices is run with the
    missing ones filled from :func:`placeholder_key`. Everywhere else every
    alternative runs normally.
    """
    keys = [None] * len(alternatives) if keys is None else keys
    results: list[tuple[Trace, jax.Array] | None] = []
    for position, (alternative, sub_key) in enumerate(zip(alternatives, keys)):
        name = alternative.name
        if constraints.has_value(name):
            raise ModelDefinitionError(
                f"the choice map holds a single value here, but '{name}' is the generative function "
                f"'{alternative.function.name}'. Constrain its choices by their full addresses, "
                "e.g. '{address}/<choice>'.",
                model=owner,
                address=name,
            )
        sub_constraints = constraints.submap(name)
        run_key, run_assess = sub_key, assess
        if assess and active is not None and position != active:
            if not sub_constraints:
                results.append(None)
                continue
            run_key, run_assess = placeholder_key(), False
        try:
            results.append(alternative.function.run(run_key, sub_constraints, alternative.args, run_assess))
        except MissingChoiceError as err:
            if active is None and assess:
                err.message += (
                    " (The selected alternative is only known at run time here, e.g. under jit or "
                    "vmap, so assess needs the choices of every alternative, as simulate produces "
                    "them; or call assess outside jit with a concrete index/code.)"
                )
            raise err.within(name, owner) from None
        except PPLError as err:
            raise err.within(name, owner) from None
    return results


def check_same_structure(values: Sequence, names: Sequence[str], owner: str, what: str = "alternative"):
    """Raise ``CompositionError`` unless every value has the same pytree structure, shapes and dtypes."""
    first = _signature(values[0])
    for value, name in zip(values[1:], names[1:]):
        other = _signature(value)
        if other != first:
            raise CompositionError(
                f"every {what} must return a value of the same structure, shape and dtype, so one "
                f"can stand in for another under jit; {what} '{names[0]}' returns {_show(first)} but "
                f"'{name}' returns {_show(other)}. Make them agree (e.g. broadcast with "
                "jnp.broadcast_to, cast with .astype).",
                model=owner,
            )


def select(index: jax.Array, values: Sequence[Any]) -> Any:
    """``values[index]`` for pytrees of equal structure, with a (possibly traced) integer index.

    Out-of-range indices are clipped to the nearest alternative.
    """
    if len(values) == 1:
        return values[0]
    index = jnp.clip(jnp.asarray(index), 0, len(values) - 1).astype(jnp.int32)
    return jax.tree_util.tree_map(lambda *leaves: lax.select_n(index, *map(jnp.asarray, leaves)), *values)


def concrete_int(value: Any) -> int | None:
    """``int(value)`` when ``value`` is a concrete scalar, else ``None``."""
    if not validation.is_concrete(value):
        return None
    return int(np.asarray(value))


def _signature(value: Any):
    leaves, treedef = jax.tree_util.tree_flatten(value)
    return treedef, tuple((tuple(jnp.shape(leaf)), jnp.result_type(leaf)) for leaf in leaves)


def _show(signature) -> str:
    treedef, leaves = signature
    shown = ", ".join(f"{dtype}{list(shape)}" for shape, dtype in leaves)
    return shown if treedef.num_leaves == 1 and treedef.num_nodes == 1 else f"{treedef} of ({shown})"


# ---------------------------------------------------------------------------
# ppl.either
# ---------------------------------------------------------------------------


class Either(GenerativeFunction):
    """A discrete latent choice among alternatives; build one with :func:`either`.

    Addresses: ``"index"`` holds ``k ~ Categorical(probs)`` (int32); alternative
    ``j``'s choices live under its name (``"0"``, ``"1"``, ... for positional
    alternatives, the keyword for named ones). Every alternative is called with
    the arguments of the ``either``.
    """

    def __init__(self, alternatives: dict[str, GenerativeFunction], probs: jax.Array, name: str):
        self.alternatives = alternatives
        self.names = tuple(alternatives)
        self.probs = probs
        self.name = name

    @property
    def index_distribution(self) -> dist.Categorical:
        return dist.Categorical(probs=self.probs)

    def run(self, key, constraints, args, assess):
        count = 1 + len(self.names)
        keys = jax.random.split(key, count) if key is not None else [None] * count
        index, index_log_density, index_log_weight = self._choose_index(keys[0], constraints, assess)
        active = concrete_int(index) if assess else None
        alternatives = [Alternative(name, self.alternatives[name], tuple(args)) for name in self.names]
        results = run_alternatives(keys[1:], constraints, alternatives, active, assess, self.name)
        choices = {INDEX: index}
        choices.update({name: result[0].choices for name, result in zip(self.names, results) if result})
        if active is not None:
            trace, log_weight = results[active]
            retval, score = trace.retval, trace.score
        else:
            check_same_structure([r[0].retval for r in results], self.names, self.name)
            retval = select(index, [r[0].retval for r in results])
            score = select(index, [r[0].score for r in results])
            log_weight = select(index, [r[1] for r in results])
        trace = Trace(ChoiceMap.from_entries(choices), index_log_density + score, retval, tuple(args))
        return trace, index_log_weight + log_weight

    def _choose_index(self, key, constraints: ChoiceMap, assess: bool):
        """``(index, log p(index), its contribution to log_weight)``."""
        distribution = self.index_distribution
        try:
            if constraints.has_value(INDEX):
                index = validation.check_constraint(distribution, constraints[INDEX])
                log_density = validation.site_log_density(distribution, index)
                return index, log_density, log_density
            if INDEX in constraints:
                raise ModelDefinitionError(
                    "the choice map holds sub-addresses under 'index', but it is the integer that "
                    "selects the alternative. Give it a value such as 0."
                )
            if assess:
                raise MissingChoiceError(
                    "assess needs the selected alternative's index, and the choice map has none. "
                    "Add it (e.g. {'{address}': 0}), or use generate(key, choices, ...) to sample it."
                )
        except PPLError as err:
            raise err.within(INDEX, self.name) from None
        index = distribution.sample(key).astype(jnp.int32)
        return index, distribution.log_prob(index), jnp.zeros(())

    def __repr__(self) -> str:
        return f"<ppl.either {self.name}>"


def either(*alternatives: GenerativeFunction, probs: Any = None, name: str | None = None,
           **named_alternatives: GenerativeFunction) -> Either:
    """A discrete latent choice among ``alternatives``: ``k ~ Categorical(probs)``, run alternative ``k``.

    Args:
      *alternatives: generative functions, addressed ``"0"``, ``"1"``, ...
      probs: prior probabilities of the alternatives, shape ``(number of
        alternatives,)``, non-negative, summing to one (within ``1e-6``);
        ``None`` for uniform.
      name: the name used in messages (default ``either(a, b, ...)``).
      **named_alternatives: alternatives addressed by their keyword (after the
        positional ones, in the order given).

    Returns:
      An :class:`Either`. Called with ``*args``, it passes them to every
      alternative; every alternative must return a value of the same
      structure, shape and dtype. Its choices: ``"index"`` and each
      alternative's choices under its name (all of them, see the module
      docstring: only the selected one counts).

    Raises:
      CompositionError: no alternatives, an alternative that is not a
        generative function, a keyword named ``"index"`` or containing ``/``,
        or ``probs`` of the wrong length, negative or not summing to one.

    Example::

        >>> coin = ppl.either(heads=small, tails=large, probs=[0.5, 0.5])
        >>> coin.assess({"index": 0, "heads/x": 0.1}).log_density  # only the chosen one needed
    """
    label = name or "either({})".format(
        ", ".join(getattr(a, "name", repr(a)) for a in (*alternatives, *named_alternatives.values()))
    )
    if not alternatives and not named_alternatives:
        raise CompositionError("ppl.either needs at least one alternative, got none. Pass generative "
                               "functions: ppl.either(model_a, model_b).", model=label)
    entries = named_parts("either", alternatives, named_alternatives, reserved=(INDEX,), mixed=True, model=label)
    return Either(entries, _check_probs(probs, len(entries), label), label)


def _check_probs(probs: Any, count: int, label: str) -> jax.Array:
    """Validate ``probs`` eagerly (when concrete); return them as a float array."""
    if probs is None:
        return jnp.full((count,), 1.0 / count)
    if not validation.is_concrete(probs):
        return jnp.asarray(probs)
    try:
        array = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError):
        raise CompositionError(
            f"ppl.either probs must be numbers, got {probs!r}. Pass e.g. probs=[0.5, 0.5].", model=label
        ) from None
    if array.shape != (count,):
        raise CompositionError(
            f"ppl.either has {count} alternatives, so probs must have shape ({count},), got shape "
            f"{array.shape} ({probs!r}). Give one probability per alternative, or probs=None for uniform.",
            model=label,
        )
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise CompositionError(
            f"ppl.either probs must be finite and non-negative, got {array.tolist()}.", model=label
        )
    total = float(array.sum())
    if abs(total - 1.0) > PROBS_TOL:
        raise CompositionError(
            f"ppl.either probs must sum to one (within {PROBS_TOL:g}), got {array.tolist()} summing to "
            f"{total:.8g}. Normalise them, e.g. probs / probs.sum().",
            model=label,
        )
    return jnp.asarray(array, dtype=jnp.result_type(float))
