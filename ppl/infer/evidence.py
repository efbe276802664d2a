"""Evidence helpers: log-mean-exp, normalised weights, effective sample size, standard errors.

Every importance-style algorithm ends the same way. Given ``n`` log weights
``l_i = log w_i`` (``w_i = p(x_i, y) / q(x_i)`` for particles ``x_i ~ q``):

====================================  ===============================================
quantity                              formula
====================================  ===============================================
``log_mean_exp(l)``                   ``log((1/n) sum_i exp(l_i))`` = ``log Z_hat``
``normalized_weights(l)``             ``w_i / sum_j w_j``
``effective_sample_size(l)``          ``(sum_i w_i)^2 / sum_i w_i^2``, in ``[1, n]`` (0 when every weight is 0)
``log_mean_exp_standard_error(l)``    ``sqrt((n / ESS - 1) / (n - 1))``
====================================  ===============================================

``log_mean_exp`` of the log weights is the log of an unbiased estimate of the
evidence ``Z = p(y)`` (its log is biased low by about ``se**2 / 2``). The standard
error is the delta-method one: ``Var(log Z_hat) ~ Var(w) / (n mean(w)^2)`` with
the sample variance of the ``w_i``; in terms of the effective sample size it is
the formula in the table. It is honest when the weights have a finite variance
and ``ESS`` is not tiny; a heavy-tailed weight distribution (a proposal much
narrower than the posterior) makes every such estimate optimistic.

Independent runs combine with :func:`combine_log_evidence`: their evidence
estimates are pooled by ``log_mean_exp`` (unbiased for ``Z``), and the standard
error comes from the spread *between* runs, which does not trust any single
run's weights.

All functions are pure and jittable, work on the last axis (leading axes are
batch axes), and never return NaN for ``-inf`` log weights: when every weight is
zero, ``log_mean_exp`` is ``-inf``, the normalised weights are ``0``, the ESS is
``0`` and the standard error is ``inf``. NaN log weights propagate (the public
inference functions turn them into :class:`~ppl.errors.InferenceError`).

Example::

    >>> import jax.numpy as jnp
    >>> from ppl.infer.evidence import log_mean_exp, effective_sample_size
    >>> log_weights = jnp.log(jnp.array([1.0, 1.0, 2.0]))
    >>> round(float(jnp.exp(log_mean_exp(log_weights))), 4)
    1.3333
    >>> round(float(effective_sample_size(log_weights)), 4)
    2.6667
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "EvidenceEstimate",
    "log_mean_exp",
    "normalized_weights",
    "effective_sample_size",
    "log_mean_exp_standard_error",
    "combine_log_evidence",
    "log_sum_exp",
    "as_evidence",
]


class EvidenceEstimate(NamedTuple):
    """A log-evidence estimate with its standard error (both scalars, or batch-shaped).

    Attributes:
      log_evidence: ``log Z_hat``.
      standard_error: the standard error of ``log Z_hat``.
    """

    log_evidence: jax.Array
    standard_error: jax.Array


def log_sum_exp(log_values: jax.Array) -> jax.Array:
    """``log sum exp`` over the last axis; ``-inf`` (not NaN) when every value is ``-inf``."""
    peak = jnp.max(log_values, axis=-1, keepdims=True)
    safe_peak = jnp.where(jnp.isfinite(peak), peak, 0.0)
    total = jnp.sum(jnp.exp(log_values - safe_peak), axis=-1)
    return jnp.log(total) + safe_peak[..., 0]


def log_mean_exp(log_values: jax.Array) -> jax.Array:
    """``log((1/n) sum_i exp(log_values_i))`` over the last axis, computed stably.

    Args:
      log_values: ``(..., n)`` array, e.g. log importance weights.

    Returns:
      ``(...)`` array; ``-inf`` when every value is ``-inf``.
    """
    log_values = jnp.asarray(log_values)
    return log_sum_exp(log_values) - jnp.log(log_values.shape[-1])


def normalized_weights(log_weights: jax.Array) -> jax.Array:
    """``w_i / sum_j w_j`` over the last axis; all zeros when every weight is zero.

    Args:
      log_weights: ``(..., n)`` unnormalised log weights.

    Returns:
      ``(..., n)`` weights summing to 1 (or all 0).
    """
    log_weights = jnp.asarray(log_weights)
    total = log_sum_exp(log_weights)[..., None]
    finite = jnp.isfinite(total)
    return jnp.where(finite, jnp.exp(log_weights - jnp.where(finite, total, 0.0)), 0.0)


def effective_sample_size(log_weights: jax.Array) -> jax.Array:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` over the last axis.

    ``n`` for equal weights, ``1`` when one particle carries all the weight,
    ``0`` when every weight is zero.
    """
    weights = normalized_weights(log_weights)
    sum_of_squares = jnp.sum(weights**2, axis=-1)
    return jnp.where(sum_of_squares > 0, 1.0 / jnp.where(sum_of_squares > 0, sum_of_squares, 1.0), 0.0)


def log_mean_exp_standard_error(log_values: jax.Array) -> jax.Array:
    """Delta-method standard error of ``log_mean_exp(log_values)`` over the last axis.

    For i.i.d. ``v_i = exp(log_values_i)`` the estimate ``log mean(v)`` has
    ``se^2 = s^2 / (n mean(v)^2)`` with ``s^2`` the sample variance (``n - 1`` in
    the denominator), which equals ``(n / ESS - 1) / (n - 1)``. Applied to one
    run's log weights it is the standard error of that run's ``log_evidence``;
    applied to the log evidences of independent runs it is the standard error of
    their pooled estimate (:func:`combine_log_evidence`).

    Returns ``inf`` when every value is ``-inf`` or ``n < 2``.
    """
    log_values = jnp.asarray(log_values)
    n = log_values.shape[-1]
    if n < 2:
        return jnp.full(log_values.shape[:-1], jnp.inf)
    ess = effective_sample_size(log_values)
    variance = (n / jnp.where(ess > 0, ess, 1.0) - 1.0) / (n - 1)
    return jnp.where(ess > 0, jnp.sqrt(jnp.maximum(variance, 0.0)), jnp.inf)


def combine_log_evidence(log_evidences: jax.Array) -> EvidenceEstimate:
    """Pool the log-evidence estimates of ``k`` independent runs (of equal size).

    ``log_evidence = log_mean_exp(log_evidences)`` (the mean of the ``Z_hat_j`` is
    unbiased for ``Z``, as each is), and ``standard_error`` is
    :func:`log_mean_exp_standard_error` of the runs: it measures the spread of
    the runs' estimates, so it does not rely on any one run's weights.

    Args:
      log_evidences: ``(..., k)`` log evidences of independent runs, ``k >= 2``.

    Example::

        >>> import jax.numpy as jnp
        >>> estimate = combine_log_evidence(jnp.array([-3.1, -3.0, -2.9]))
        >>> round(float(estimate.log_evidence), 3), round(float(estimate.standard_error), 3)
        (-2.997, 0.058)
    """
    log_evidences = jnp.asarray(log_evidences)
    return EvidenceEstimate(log_mean_exp(log_evidences), log_mean_exp_standard_error(log_evidences))


def as_evidence(out, who: str = "the estimator") -> EvidenceEstimate:
    """What an evidence estimator returned, as ``(log_evidence, standard_error)`` scalars.

    The protocol shared by ``classify``'s ``estimator=`` and ``search``'s
    ``score=``: an estimator ``(key, model, obs, *args)`` returns a scalar log
    evidence, a ``(log_evidence, standard_error)`` pair, or an object with
    ``.log_evidence`` (and optionally ``.log_evidence_standard_error``), such as
    the result of ``importance``, ``smc`` or ``laplace``. A missing standard
    error is NaN.
    """
    from ppl.errors import ModelDefinitionError

    if hasattr(out, "log_evidence"):
        out = (out.log_evidence, getattr(out, "log_evidence_standard_error", None))
    if isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise ModelDefinitionError(
                f"{who} returned {len(out)} values; return log_evidence or (log_evidence, standard_error)."
            )
        log_evidence, standard_error = out
    else:
        log_evidence, standard_error = out, None
    log_evidence = jnp.asarray(log_evidence, jnp.float32)
    if log_evidence.shape != ():
        raise ModelDefinitionError(
            f"{who} must return a scalar log evidence for one observation and one hypothesis, got shape "
            f"{log_evidence.shape}. Reduce over particles inside the estimator."
        )
    standard_error = jnp.full((), jnp.nan) if standard_error is None else jnp.asarray(standard_error, jnp.float32)
    return EvidenceEstimate(log_evidence, standard_error)
