"""Arguments and results of an eager inference call, shared by ``importance`` and ``smc``.

Which arguments are traced arrays and which compile-time constants, and the
check of an eager result's evidence.

As in ``equinox.filter_jit``: array arguments are traced, every other argument
(Python numbers, strings, functions) is static and part of the compiled
program's cache key.
"""

from __future__ import annotations

import jax
import numpy as np

from ppl.errors import DtypeError, InferenceError, ModelDefinitionError, NonFiniteError
from ppl.validation import integers_fit, nan_scores_allowed

__all__ = ["is_traced", "is_array", "split_args", "join_args", "check_observation_types", "check_finite_observations",
           "check_log_evidence"]


def is_traced(tree) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


def is_array(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic))


def split_args(args: tuple, model):
    """Arrays are traced; everything else is static (part of the compilation cache key)."""
    leaves, treedef = jax.tree_util.tree_flatten(tuple(args))
    dynamic = tuple(leaf for leaf in leaves if is_array(leaf))
    static = (treedef, tuple(None if is_array(leaf) else leaf for leaf in leaves))
    try:
        hash(static)
    except TypeError:
        raise ModelDefinitionError(
            "inference treats non-array arguments as compile-time constants, so they must be "
            f"hashable; got {args!r}. Pass arrays (jnp.asarray(...)) or hashable values.",
            model=model.name,
        ) from None
    return dynamic, static


def join_args(dynamic: tuple, static) -> tuple:
    treedef, static_leaves = static
    arrays = iter(dynamic)
    leaves = [next(arrays) if leaf is None else leaf for leaf in static_leaves]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def check_observation_types(obs, model) -> None:
    """Raise ``DtypeError`` naming the address of an observation that is not numbers (a string, ``None``, an
    object array): it cannot enter a compiled program, and ``None`` would leave the address unobserved."""
    for address, leaf in obs.items():
        if isinstance(leaf, jax.Array):
            continue
        try:
            kind = np.asarray(leaf).dtype.kind
        except (TypeError, ValueError, OverflowError):
            kind = "O"
        if kind not in "biufc":
            text = repr(leaf)
            raise DtypeError(
                f"the observation at '{address}' is {type(leaf).__name__} {text[:40]}, not numbers. Pass a number "
                "or a numeric array (leave an address out of obs to leave it unobserved).",
                model=model.name, address=address,
            )
        if not integers_fit(leaf):
            raise DtypeError(
                f"the observation at '{address}' holds integers beyond JAX's "
                f"{jax.dtypes.canonicalize_dtype(np.int64)}, which would overflow or wrap. Pass floats, or enable "
                "64-bit integers with jax.config.update('jax_enable_x64', True).",
                model=model.name, address=address,
            )


def check_finite_observations(obs, batched: bool = False) -> None:
    """Raise ``NonFiniteError`` naming the address (and observation, when ``batched``) of a NaN/inf."""
    for address, leaf in obs.items():
        if not is_array(leaf) and not isinstance(leaf, (int, float, list, tuple)):
            continue
        values = np.asarray(leaf)
        if values.dtype.kind in "fc" and not np.all(np.isfinite(values)):
            where = np.argwhere(~np.isfinite(values))[0]
            which = f" (observation {int(where[0])})" if batched else ""
            raise NonFiniteError(
                f"the observation at '{address}' holds a non-finite value{which} at index "
                f"{tuple(int(i) for i in where)}. Remove or impute NaN/inf values before running inference.",
                address=address,
            )


def check_log_evidence(
    log_evidence, log_weights, key, model, obs, args, *, increments=None, unit: str = "step"
) -> None:
    """After an eager run: raise a clear error when the evidence is NaN or infinite.

    An invalid observation (NaN, off-support) is found first by an eager
    ``generate``, which raises the core's error naming the address. Otherwise an
    ``InferenceError`` says how many particles failed and, given the per-step
    ``increments`` (SMC), at which ``unit`` (step or temperature stage).
    """
    log_evidence = float(log_evidence)
    if np.isfinite(log_evidence):
        return
    log_weights = np.asarray(log_weights)
    n = log_weights.shape[0]
    if log_evidence < 0 or np.isnan(log_evidence):
        with nan_scores_allowed():  # a NaN from the model's arithmetic is reported below, counting the particles
            model.generate(key, obs, *args)  # raises NonFiniteError, SupportError, ... naming the address
    increments = None if increments is None else np.asarray(increments)
    if np.isnan(log_evidence):
        bad = int(np.sum(np.isnan(log_weights)))
        where = ""
        if increments is not None and np.isnan(increments).any():
            where = f" at {unit} {int(np.argmax(np.isnan(increments)))}"
        raise InferenceError(
            f"{bad} of {n} particles have a NaN log weight{where}, so the evidence is undefined. "
            "A NaN comes from the model's own arithmetic (e.g. log of a negative number, 0/0, "
            "a distribution parameter computed as NaN); check the model with "
            f"{model.name}.generate(key, obs, ...) on a few keys.",
            model=model.name,
        )
    if log_evidence > 0:
        raise InferenceError(
            f"the log evidence is +inf: some of the {n} particles have an infinite weight "
            "(a ppl.factor of +inf or an unbounded density). Check the model's factors.",
            model=model.name,
        )
    where = ""
    if increments is not None:
        where = f" from {unit} {int(np.argmax(np.isneginf(increments))) if np.isneginf(increments).any() else 0} on"
    raise InferenceError(
        f"every one of the {n} particles has zero weight (log weight -inf){where}, so the evidence "
        "estimate is -inf and the weights cannot be normalised. No particle is consistent with "
        "the observations: check that they are possible under the model (its supports and "
        "ppl.factor terms), use more particles, or a proposal closer to the posterior.",
        model=model.name,
    )
