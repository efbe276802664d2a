"""Resampling: choose ancestor indices for a population of weighted particles.

Every resampler takes a PRNG key and the particles' (unnormalised) log weights,
shape ``(n,)``, and returns ancestor indices, shape ``(n,)`` int32, such that
particle ``i`` is copied ``N_i`` times with ``E[N_i] = n * w_i`` (``w`` the
normalised weights). They differ in the variance of ``N_i``:

============  ===================================================  ============
name          offspring counts                                     variance
============  ===================================================  ============
multinomial   i.i.d. draws from ``w``                              highest
residual      ``floor(n w_i)`` copies + multinomial on the rest    lower
stratified    one uniform in each of n strata of [0, 1)            lower
systematic    one uniform shared by all strata                     lowest
============  ===================================================  ============

Systematic and residual resampling are computed by *counting* (offspring
counts from the cumulative weights, then a scatter-add and a cumulative sum):
O(n), fully parallel, with no binary search — the binary search
(``jnp.searchsorted``) dominates a particle filter's step on a GPU. Stratified
and multinomial resampling need a search; its method is chosen per backend.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from ppl.infer.resample import resample_systematic
    >>> resample_systematic(jax.random.key(0), jnp.log(jnp.array([0.1, 0.6, 0.3])))
    Array([1, 1, 2], dtype=int32)
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ppl.errors import PPLError

__all__ = [
    "RESAMPLERS",
    "resample",
    "resample_multinomial",
    "resample_residual",
    "resample_stratified",
    "resample_systematic",
]


def _normalised(log_weights: jax.Array) -> jax.Array:
    return jax.nn.softmax(log_weights)


def _cumulative(weights: jax.Array) -> jax.Array:
    cdf = jnp.cumsum(weights)
    return cdf.at[-1].set(1.0)  # exact 1 at the end whatever the rounding


def _indices_from_counts(cumulative_counts: jax.Array, n: int) -> jax.Array:
    """Ancestors from cumulative offspring counts ``N_i`` (non-decreasing, ``N_{n-1} = n``).

    Slot ``j`` belongs to the first particle with ``N_i > j``, i.e. its ancestor is
    ``#{i : N_i <= j}``: a histogram of the ``N_i`` followed by a cumulative sum.
    """
    marks = jnp.zeros(n + 1, jnp.int32).at[cumulative_counts].add(1)
    return jnp.cumsum(marks[:n]).astype(jnp.int32)


def _search_method() -> str:
    # On CPU the default binary search is fastest; on accelerators an unrolled scan
    # avoids the per-iteration loop overhead that otherwise dominates.
    return "scan" if jax.default_backend() == "cpu" else "scan_unrolled"


def _search(cdf: jax.Array, uniforms: jax.Array) -> jax.Array:
    indices = jnp.searchsorted(cdf, uniforms, side="right", method=_search_method())
    return jnp.minimum(indices, cdf.shape[0] - 1).astype(jnp.int32)


def resample_systematic(key: jax.Array, log_weights: jax.Array) -> jax.Array:
    """Systematic resampling: points ``(j + u) / n``, one ``u ~ U[0, 1)`` for all ``j``.

    Each particle gets ``floor(n w_i)`` or ``ceil(n w_i)`` copies.
    """
    n = log_weights.shape[0]
    u = jax.random.uniform(key, dtype=log_weights.dtype)
    cdf = _cumulative(_normalised(log_weights))
    # N_i = #{j : (j + u) / n < C_i} = ceil(n C_i - u), clipped to [0, n]
    counts = jnp.clip(jnp.ceil(n * cdf - u), 0, n).astype(jnp.int32)
    return _indices_from_counts(counts.at[-1].set(n), n)


def resample_stratified(key: jax.Array, log_weights: jax.Array) -> jax.Array:
    """Stratified resampling: one uniform in each stratum ``[j/n, (j+1)/n)``."""
    n = log_weights.shape[0]
    uniforms = (jnp.arange(n, dtype=log_weights.dtype) + jax.random.uniform(key, (n,), log_weights.dtype)) / n
    return _search(_cumulative(_normalised(log_weights)), uniforms)


def resample_multinomial(key: jax.Array, log_weights: jax.Array) -> jax.Array:
    """Multinomial resampling: ``n`` i.i.d. ancestors drawn with probabilities ``w``."""
    n = log_weights.shape[0]
    uniforms = jax.random.uniform(key, (n,), log_weights.dtype)  # i.i.d., unsorted
    return _search(_cumulative(_normalised(log_weights)), uniforms)


def resample_residual(key: jax.Array, log_weights: jax.Array) -> jax.Array:
    """Residual resampling: ``floor(n w_i)`` copies, the remaining ``R`` slots multinomial
    on the residual weights ``n w_i - floor(n w_i)``."""
    n = log_weights.shape[0]
    scaled = n * _normalised(log_weights)
    whole = jnp.floor(scaled)
    deterministic = jnp.cumsum(whole).astype(jnp.int32)
    placed = deterministic[-1]
    fixed_part = _indices_from_counts(jnp.minimum(deterministic, n), n)
    residual = jnp.maximum(scaled - whole, 0.0)
    residual_logits = jnp.where(residual > 0, jnp.log(residual), -jnp.inf)
    # all-zero residual (every n w_i an integer) leaves no slot to fill; avoid NaN
    residual_logits = jnp.where(placed >= n, jnp.zeros_like(residual_logits), residual_logits)
    random_part = resample_multinomial(key, residual_logits)
    return jnp.where(jnp.arange(n) < placed, fixed_part, random_part)


RESAMPLERS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "systematic": resample_systematic,
    "stratified": resample_stratified,
    "multinomial": resample_multinomial,
    "residual": resample_residual,
}


def resample(key: jax.Array, log_weights: jax.Array, method: str = "systematic") -> jax.Array:
    """Ancestor indices ``(n,)`` by the named ``method`` (see the table above)."""
    try:
        resampler = RESAMPLERS[method]
    except KeyError:
        raise ResampleMethodError(method) from None
    return resampler(key, log_weights)


class ResampleMethodError(PPLError, ValueError):
    def __init__(self, method):
        super().__init__(
            f"unknown resampling method {method!r}; choose one of "
            f"{', '.join(repr(m) for m in RESAMPLERS)}."
        )
