"""Interface checks: the four interface methods of a generative function must agree with each other.

Call :func:`check_interface` from a test of any new generative function (a
combinator you wrote, a model); each check raises ``AssertionError`` with the two
numbers that disagree. The weights checked are those of :mod:`ppl.interface`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ppl.choices import ChoiceMap, as_choice_map
from ppl.interface import GenerativeFunction

__all__ = [
    "check_interface",
    "check_assess_matches_simulate",
    "check_generate_fully_constrained",
    "check_generate_unconstrained",
    "check_update_without_changes",
    "check_update_with_changes",
    "check_vmap_matches_loop",
    "finite",
]

DENSITY_TOL = dict(rtol=1e-5, atol=1e-4)


def _close(actual, expected, what: str, tol: Mapping | None = None) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), err_msg=what, **(tol or DENSITY_TOL))


def check_assess_matches_simulate(model: GenerativeFunction, args: Sequence, key: jax.Array, tol=None) -> None:
    """``assess(simulate(key).choices).log_density == simulate(key).score``, same retval."""
    trace = model.simulate(key, *args)
    log_density, retval = model.assess(trace.choices, *args)
    _close(log_density, trace.score, f"{model.name}: assess(simulate().choices) != simulate().score", tol)
    jax.tree_util.tree_map(
        lambda a, b: _close(a, b, f"{model.name}: assess retval != simulate retval", tol), retval, trace.retval
    )
    if not np.isfinite(np.asarray(trace.score)):
        raise AssertionError(f"{model.name}: simulate gave a non-finite score {trace.score}")


def check_generate_fully_constrained(model: GenerativeFunction, args: Sequence, key: jax.Array, tol=None) -> None:
    """``generate`` with every choice constrained: weight == score, choices unchanged."""
    trace = model.simulate(key, *args)
    new_trace, log_weight = model.generate(jax.random.fold_in(key, 1), trace.choices, *args)
    _close(log_weight, trace.score, f"{model.name}: fully constrained generate weight != score", tol)
    _close(new_trace.score, trace.score, f"{model.name}: fully constrained generate changed the score", tol)
    for address, value in trace.choices.items():
        _close(new_trace.choices[address], value, f"{model.name}: generate changed constrained '{address}'", tol)


def check_generate_unconstrained(
    model: GenerativeFunction, args: Sequence, key: jax.Array, tol=None, *, factors: bool = False
) -> None:
    """``generate`` with no constraints is ``simulate``; its weight is 0.

    With ``factors=True`` (a model using ``ppl.factor``) the weight is the sum of
    the factors, which this generic check cannot separate from the score: only
    the agreement with ``simulate`` is checked then.
    """
    trace, log_weight = model.generate(key, {}, *args)
    simulated = model.simulate(key, *args)
    _close(trace.score, simulated.score, f"{model.name}: generate(key, {{}}) != simulate(key)", tol)
    if not factors:
        _close(log_weight, 0.0, f"{model.name}: unconstrained generate weight != 0", tol)


def check_update_without_changes(model: GenerativeFunction, args: Sequence, key: jax.Array, tol=None) -> None:
    """``update`` with no changes returns weight 0 and the same score."""
    trace = model.simulate(key, *args)
    new_trace, log_weight = model.update(jax.random.fold_in(key, 2), trace, {})
    _close(log_weight, 0.0, f"{model.name}: update with no changes has non-zero weight", tol)
    _close(new_trace.score, trace.score, f"{model.name}: update with no changes changed the score", tol)


def check_update_with_changes(
    model: GenerativeFunction, args: Sequence, key: jax.Array, changes: Mapping | ChoiceMap, tol=None
) -> None:
    """``update`` weight == ``assess(old choices with changes) - old score`` (no fresh choices)."""
    changes = as_choice_map(changes)
    trace = model.simulate(key, *args)
    new_trace, log_weight = model.update(jax.random.fold_in(key, 3), trace, changes, *args)
    expected, _ = model.assess(trace.choices.merge(changes), *args)
    _close(new_trace.score, expected, f"{model.name}: updated score != assess of the changed choices", tol)
    _close(log_weight, expected - trace.score, f"{model.name}: update weight != exact score difference", tol)
    for address, value in changes.items():
        _close(new_trace.choices[address], value, f"{model.name}: update did not apply '{address}'", tol)


def check_vmap_matches_loop(
    model: GenerativeFunction, args: Sequence, key: jax.Array, n: int = 1000, loop: int = 3, tol=None
) -> None:
    """``jit(vmap(simulate))`` over ``n`` keys agrees with a Python loop over the first few."""
    keys = jax.random.split(key, n)
    batched = jax.jit(jax.vmap(lambda k: model.simulate(k, *args)))(keys)
    if batched.score.shape != (n,):
        raise AssertionError(f"{model.name}: vmapped score has shape {batched.score.shape}, expected ({n},)")
    for i in range(loop):
        single = model.simulate(keys[i], *args)
        _close(batched.score[i], single.score, f"{model.name}: vmapped score [{i}] != looped", tol)
        for address, value in single.choices.items():
            _close(batched.choices[address][i], value, f"{model.name}: vmapped '{address}'[{i}] != looped", tol)
    scores = jax.jit(jax.vmap(lambda c: model.assess(c, *args).log_density))(batched.choices)
    _close(scores, batched.score, f"{model.name}: vmapped assess != vmapped simulate score", tol)


def check_interface(
    model: GenerativeFunction,
    args: Sequence = (),
    changes: Mapping | ChoiceMap | None = None,
    *,
    key: jax.Array | None = None,
    factors: bool = False,
    tol: Mapping | None = None,
) -> None:
    """Run every interface consistency check on ``model`` called with ``args``.

    Args:
      model: any generative function.
      args: its arguments.
      changes: a choice map of new values for some existing choices, used to
        check ``update``'s weight (skipped when ``None``).
      key: PRNG key (default ``jax.random.key(0)``).
      factors: set when the model uses ``ppl.factor`` (or a combinator that
        adds factors, like ``ppl.features``): its unconstrained ``generate``
        weight is then the factors, not 0.
      tol: ``dict(rtol=..., atol=...)`` for density comparisons.
    """
    key = jax.random.key(0) if key is None else key
    args = tuple(args)
    check_assess_matches_simulate(model, args, key, tol)
    check_generate_fully_constrained(model, args, key, tol)
    check_generate_unconstrained(model, args, key, tol, factors=factors)
    check_update_without_changes(model, args, key, tol)
    if changes is not None:
        check_update_with_changes(model, args, key, changes, tol)


def finite(tree) -> bool:
    """True when every leaf of ``tree`` is finite."""
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(tree))
