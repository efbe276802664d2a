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
import functools
import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution, constraints
from numpyro.distributions.distribution import MaskedDistribution

from ppl.errors import DtypeError, ModelDefinitionError, NonFiniteError, ParameterError, ShapeError, SupportError

__all__ = ["is_concrete", "check_key", "check_constraint", "check_parameters", "check_log_density", "site_log_density",
           "values_in_support", "nan_scores_allowed", "nan_allowed", "integers_fit"]


def is_concrete(value: Any) -> bool:
    """True when ``value`` holds actual numbers (not a JAX tracer)."""
    return not isinstance(value, jax.core.Tracer)


def check_key(key: Any, who: str, model: str | None = None) -> None:
    """Raise ``ModelDefinitionError`` unless ``key`` is one PRNG key: ``jax.random.key(seed)`` (shape ``()``),
    or a raw ``uint32`` key of ``jax.random.PRNGKey(seed)``. Tracers pass when their shape and dtype do."""
    dtype, shape = getattr(key, "dtype", None), tuple(np.shape(key)) if hasattr(key, "shape") else None
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return
        got = f"an array of {shape[0] if len(shape) == 1 else shape} keys"
        fix = "Pass one of them (keys[0]), or run several with jax.vmap over the keys."
    elif dtype is not None and np.dtype(dtype) == np.uint32 and shape == _raw_key_shape():
        return
    else:
        if dtype is None:
            got = f"{type(key).__name__} {key!r}"
        else:
            got = f"an array of dtype {dtype} and shape {shape}"
        seed = key if isinstance(key, int) and not isinstance(key, bool) else 0
        fix = f"Make one from a seed with jax.random.key({seed}), and split it (jax.random.split) for more."
    raise ModelDefinitionError(f"{who} takes a PRNG key such as jax.random.key(0) as its key, got {got}. {fix}",
                               model=model)


def integers_fit(value: Any) -> bool:
    """False for a Python or NumPy integer (array) beyond JAX's integer type (``int32`` unless ``jax_enable_x64``):
    JAX raises ``OverflowError`` for a Python int that large and silently wraps a NumPy one (``2**40 -> 0``)."""
    info = np.iinfo(jax.dtypes.canonicalize_dtype(np.int64))
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return info.min <= int(value) <= info.max
    if isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.size:
        return info.min <= int(value.min()) and int(value.max()) <= info.max
    return True


@functools.cache
def _raw_key_shape() -> tuple[int, ...]:
    """``(2,)`` for the default threefry keys."""
    return tuple(jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0))).shape)


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
    if not integers_fit(value):
        raise DtypeError(
            f"the integer value {_preview(np.asarray(value))} does not fit in JAX's "
            f"{jax.dtypes.canonicalize_dtype(np.int64)}. Pass a float for a large continuous value, or enable "
            "64-bit integers with jax.config.update('jax_enable_x64', True)."
        )
    try:
        array = jnp.asarray(value)
    except (TypeError, OverflowError) as err:
        raise DtypeError(
            f"expected a number or array, got {type(value).__name__}: {err}. "
            "Pass a jnp/numpy array or a Python number (a float for a large value)."
        ) from None
    kind = np.dtype(array.dtype).kind
    if kind == "c":
        raise DtypeError(f"expected a real value, got complex dtype {array.dtype}. Pass real numbers.")
    if not discrete and kind == "b":
        raise DtypeError(
            f"{describe(distribution)} is continuous but the value has dtype bool. "
            "Pass floats, e.g. value.astype(jnp.float32)."
        )
    if discrete and kind == "b" and not _is_boolean(distribution.support):
        raise DtypeError(
            f"{describe(distribution)} takes integers ({distribution.support}) but the value has dtype bool. "
            "Pass integers, e.g. value.astype(jnp.int32)."
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
                "missing data, or replace it by any finite number and mask it out: dist.Normal(...).mask(seen)."
            )
        ok = _support_ok(distribution, array)
        if ok is not None and is_concrete(ok) and not bool(np.all(np.asarray(ok))):
            raise SupportError(
                f"value {_preview(concrete)} lies outside the support of "
                f"{describe(distribution)} ({distribution.support}). "
                "Pass a value inside the support, or choose a distribution whose support holds it."
            )
    return array


def _is_boolean(support) -> bool:
    while hasattr(support, "base_constraint"):  # .to_event(...)
        support = support.base_constraint
    return support is constraints.boolean


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
        if param is not None and np.iscomplexobj(param):
            raise ParameterError(
                f"{describe(distribution)} got a complex {name}; distributions take real "
                f"parameters. Pass real numbers to dist.{describe(distribution)}(...)."
            )
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


def check_log_density(distribution: Distribution, log_density: jax.Array) -> None:
    """Raise ``ParameterError`` when a concrete log density is NaN: the value came from (or was scored by) a
    distribution whose parameters make no sense together (e.g. an infinite scale), which a NaN score would
    otherwise hide."""
    if nan_allowed():
        return
    if is_concrete(log_density) and bool(np.isnan(np.asarray(log_density)).any()):
        parameters = ", ".join(
            f"{name}={_preview(np.asarray(getattr(distribution, name)))}"
            for name in getattr(distribution, "arg_constraints", {})
            if getattr(distribution, name, None) is not None and is_concrete(getattr(distribution, name))
        )
        shown = f"{describe(distribution)}({parameters})" if parameters else describe(distribution)
        raise ParameterError(
            f"the log density of {shown} is NaN here. Check the parameters passed "
            f"to dist.{describe(distribution)}(...) (e.g. an infinite or NaN scale, computed from the model's "
            "arguments)."
        )


_state = threading.local()


@contextlib.contextmanager
def _flag_set(name: str):
    """Set this thread's flag ``name`` within the block (restored after, so blocks nest)."""
    previous = getattr(_state, name, False)
    setattr(_state, name, True)
    try:
        yield
    finally:
        setattr(_state, name, previous)


@contextlib.contextmanager
def values_in_support():
    """Within this block (at trace time), traced constrained values are trusted to lie
    in their distributions' supports, so ``site_log_density`` skips its ``-inf`` mask.

    For inference programs that guarantee it: observations checked eagerly before
    the program runs, and latent values that are in the support by construction
    (e.g. ``ppl.infer.map``'s bijections from unconstrained space). Never for
    kernels that can propose values outside the support (random-walk MH).
    """
    with _flag_set("trusted"):
        yield


def nan_allowed() -> bool:
    """True inside :func:`nan_scores_allowed`."""
    return getattr(_state, "nan_allowed", False)


@contextlib.contextmanager
def nan_scores_allowed():
    """Within this block a concrete NaN log density or ``ppl.factor`` is not raised (:func:`check_log_density`):
    for inference's eager re-run of a model after NaN weights, which looks for bad observations and otherwise
    reports the NaN weights itself (an ``InferenceError`` counting the particles)."""
    with _flag_set("nan_allowed"):
        yield


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
