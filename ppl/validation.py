"""Eager checks of constrained values and distribution parameters.

Checks run in Python while JAX traces a model. Whenever a value is concrete (a
number or array, not a tracer) it is checked right there and a ``ppl.errors``
exception is raised before anything compiles. Values that are only known at run
time (tracers inside ``jit``) cannot raise; for those the site's log density is
set to ``-inf`` where the value lies outside the support, so a bad observation
under ``jit`` gives a documented ``-inf`` score, never a NaN.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution
from numpyro.distributions.distribution import MaskedDistribution

from ppl.errors import DtypeError, NonFiniteError, ParameterError, ShapeError, SupportError

__all__ = ["is_concrete", "check_constraint", "check_parameters", "site_log_density", "values_in_support"]


def is_concrete(value: Any) -> bool:
    """True when ``value`` holds actual numbers (not a JAX tracer)."""
    return not isinstance(value, jax.core.Tracer)


def describe(distribution: Distribution) -> str:
    """A short readable name: ``Normal.expand([2]).to_event(1)`` rather than ``Independent``."""
    base = getattr(distribution, "base_dist", None)
    if base is None:
        return type(distribution).__name__
    name = type(distribution).__name__
    if name == "Independent":
        return f"{describe(base)}.to_event({distribution.reinterpreted_batch_ndims})"
    if name == "ExpandedDistribution":
        return f"{describe(base)}.expand({list(distribution.batch_shape)})"
    if name == "MaskedDistribution":
        return f"{describe(base)}.mask(...)"
    return name


def _expected_shape(distribution: Distribution) -> tuple[int, ...]:
    return tuple(distribution.batch_shape) + tuple(distribution.event_shape)


def check_constraint(distribution: Distribution, value: Any) -> jax.Array:
    """Validate a constrained value against ``distribution``; return it as an array.

    Raises ``DtypeError``, ``ShapeError``, ``NonFiniteError`` or ``SupportError``
    (without model/address; the caller adds those).
    """
    discrete = bool(getattr(distribution.support, "is_discrete", False))
    if isinstance(value, (str, bytes)) or getattr(value, "dtype", None) == object:
        raise DtypeError(
            f"expected a number or array, got {type(value).__name__} {value!r}. "
            "Pass a jnp/numpy array or a Python number."
        )
    try:
        array = jnp.asarray(value)
    except TypeError as err:
        raise DtypeError(
            f"expected a number or array, got {type(value).__name__}: {err}. "
            "Pass a jnp/numpy array or a Python number."
        ) from None
    kind = np.dtype(array.dtype).kind
    if kind == "c":
        raise DtypeError(f"expected a real value, got complex dtype {array.dtype}. Pass real numbers.")
    if not discrete and kind == "b":
        raise DtypeError(
            f"{describe(distribution)} is continuous but the value has dtype bool. "
            "Pass floats, e.g. value.astype(jnp.float32)."
        )
    if not discrete and kind in "iu":
        array = array.astype(jnp.result_type(float))

    expected = _expected_shape(distribution)
    if tuple(array.shape) != expected:
        raise ShapeError(
            f"{describe(distribution)} expects a value of shape {expected} "
            f"(batch {tuple(distribution.batch_shape)} + event {tuple(distribution.event_shape)}), "
            f"got shape {tuple(array.shape)}. Pass an array of shape {expected}."
        )

    if discrete and kind == "f":
        if not is_concrete(array):
            raise DtypeError(
                f"{describe(distribution)} is discrete but the value has dtype "
                f"{array.dtype}. Pass integers, e.g. jnp.asarray(value, jnp.int32)."
            )
        concrete = np.asarray(array)
        if not np.all(np.isfinite(concrete)) or np.any(concrete != np.round(concrete)):
            raise DtypeError(
                f"{describe(distribution)} is discrete but got non-integer values "
                f"{_preview(concrete)}. Pass integers."
            )
        array = array.astype(jnp.int32)

    if is_concrete(array):
        concrete = np.asarray(array)
        if kind in "fc" and not np.all(np.isfinite(concrete)):
            raise NonFiniteError(
                f"the value contains NaN or inf ({_preview(concrete)}). Remove or impute "
                "missing data, or mask it with dist.mask(...)."
            )
        ok = _support_ok(distribution, array)
        if ok is not None and is_concrete(ok) and not bool(np.all(np.asarray(ok))):
            raise SupportError(
                f"value {_preview(concrete)} lies outside the support of "
                f"{describe(distribution)} ({distribution.support}). "
                "Pass a value inside the support, or choose a distribution whose support holds it."
            )
    return array


def _support_ok(distribution: Distribution, value: jax.Array) -> jax.Array | None:
    """Elementwise (batch-shaped) support check, honouring masks; None if unknown."""
    try:
        ok = distribution.support(value)
    except Exception:  # a user distribution without a checkable support
        return None
    if isinstance(distribution, MaskedDistribution) and not isinstance(distribution._mask, bool):
        ok = ok | ~jnp.asarray(distribution._mask)
    elif isinstance(distribution, MaskedDistribution) and distribution._mask is False:
        return None
    return ok


def check_parameters(distribution: Distribution) -> None:
    """Raise ``ParameterError`` for a concrete parameter outside its constraint."""
    for name, constraint in getattr(distribution, "arg_constraints", {}).items():
        param = getattr(distribution, name, None)
        if param is None or not is_concrete(param):
            continue
        try:
            ok = constraint(jnp.asarray(param))
        except Exception:
            continue
        if is_concrete(ok) and not bool(np.all(np.asarray(ok))):
            raise ParameterError(
                f"{describe(distribution)} got {name}={_preview(np.asarray(param))}, "
                f"outside its allowed range ({constraint}). Fix the parameter passed to "
                f"dist.{describe(distribution)}(...)."
            )


_state = threading.local()


@contextlib.contextmanager
def values_in_support():
    """Within this block (at trace time), traced constrained values are trusted to lie
    in their distributions' supports, so ``site_log_density`` skips its ``-inf`` mask.

    For inference programs that guarantee it: observations checked eagerly before
    the program runs, and latent values that are in the support by construction
    (e.g. ``ppl.infer.map``'s bijections from unconstrained space). Never for
    kernels that can propose values outside the support (random-walk MH).
    """
    previous = getattr(_state, "trusted", False)
    _state.trusted = True
    try:
        yield
    finally:
        _state.trusted = previous


def site_log_density(distribution: Distribution, value: jax.Array) -> jax.Array:
    """Sum of ``log_prob(value)``; ``-inf`` (not NaN) where a traced value is off-support
    (unless inside :func:`values_in_support`)."""
    log_prob = distribution.log_prob(value)
    if not is_concrete(value) and not getattr(_state, "trusted", False):
        ok = _support_ok(distribution, value)
        if ok is not None:
            log_prob = jnp.where(ok, log_prob, -jnp.inf)
    return jnp.sum(log_prob)


def _preview(array: np.ndarray, limit: int = 6) -> str:
    flat = np.ravel(array)
    text = np.array2string(flat[:limit], precision=4, separator=", ")
    if array.ndim == 0:
        return np.array2string(array, precision=4)
    return text[:-1] + (", ...]" if flat.size > limit else "]")
