"""Exact oracles: closed-form log evidences and posteriors to test inference against.

Conjugate Normal-Normal, Beta-Bernoulli, Bayesian linear regression,
linear-Gaussian state-space models (the Kalman filter) and hidden Markov models
(the forward algorithm). An estimate with a reported standard error should fall
within a few standard errors of them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from numpyro.distributions import MultivariateNormal

__all__ = [
    "normal_normal_log_evidence",
    "normal_normal_posterior",
    "beta_bernoulli_log_evidence",
    "beta_bernoulli_posterior",
    "linear_regression_log_evidence",
    "linear_regression_posterior",
    "KalmanFilterResult",
    "kalman_filter",
    "kalman_log_evidence",
    "HMMForwardResult",
    "hmm_forward",
    "hmm_log_evidence",
]


def normal_normal_log_evidence(observations, prior_mean, prior_std, noise_std) -> jax.Array:
    """``log p(y)`` for ``mu ~ Normal(prior_mean, prior_std)``, ``y_i ~ Normal(mu, noise_std)`` i.i.d.

    Marginally ``y ~ MultivariateNormal(prior_mean * 1, noise_std^2 I + prior_std^2 1 1^T)``.

    Args:
      observations: ``(m,)`` the ``y_i``.
    """
    y = jnp.asarray(observations, dtype=float)
    m = y.shape[0]
    covariance = noise_std**2 * jnp.eye(m) + prior_std**2 * jnp.ones((m, m))
    return MultivariateNormal(jnp.full(m, prior_mean, dtype=y.dtype), covariance).log_prob(y)


def normal_normal_posterior(observations, prior_mean, prior_std, noise_std) -> tuple[jax.Array, jax.Array]:
    """Posterior ``(mean, std)`` of ``mu`` in :func:`normal_normal_log_evidence`'s model."""
    y = jnp.asarray(observations, dtype=float)
    precision = 1.0 / prior_std**2 + y.shape[0] / noise_std**2
    mean = (prior_mean / prior_std**2 + jnp.sum(y) / noise_std**2) / precision
    return mean, jnp.sqrt(1.0 / precision)


def beta_bernoulli_log_evidence(observations, alpha, beta) -> jax.Array:
    """``log p(y)`` for ``p ~ Beta(alpha, beta)``, ``y_i ~ Bernoulli(p)`` i.i.d. (an ordered sequence).

    ``log B(alpha + k, beta + m - k) - log B(alpha, beta)`` with ``k`` successes in ``m`` trials.
    """
    y = jnp.asarray(observations)
    successes = jnp.sum(y)
    failures = y.shape[0] - successes
    betaln = jax.scipy.special.betaln
    return betaln(alpha + successes, beta + failures) - betaln(alpha, beta)


def beta_bernoulli_posterior(observations, alpha, beta) -> tuple[jax.Array, jax.Array]:
    """Posterior Beta parameters ``(alpha + k, beta + m - k)`` of ``p``."""
    y = jnp.asarray(observations)
    successes = jnp.sum(y)
    return alpha + successes, beta + y.shape[0] - successes


def linear_regression_log_evidence(design, observations, prior_mean, prior_covariance, noise_std) -> jax.Array:
    """``log p(y)`` for ``w ~ MultivariateNormal(prior_mean, prior_covariance)``, ``y ~ Normal(X w, noise_std)``.

    Marginally ``y ~ MultivariateNormal(X prior_mean, noise_std^2 I + X prior_covariance X^T)``.

    Args:
      design: ``(m, d)`` design matrix ``X``.
      observations: ``(m,)`` the ``y_i``.
      prior_mean: ``(d,)``; prior_covariance: ``(d, d)``.
    """
    X = jnp.asarray(design, dtype=float)
    y = jnp.asarray(observations, dtype=float)
    covariance = noise_std**2 * jnp.eye(X.shape[0]) + X @ jnp.asarray(prior_covariance) @ X.T
    return MultivariateNormal(X @ jnp.asarray(prior_mean), covariance).log_prob(y)


def linear_regression_posterior(design, observations, prior_mean, prior_covariance, noise_std):
    """Posterior ``(mean, covariance)`` of ``w`` in :func:`linear_regression_log_evidence`'s model."""
    X = jnp.asarray(design, dtype=float)
    y = jnp.asarray(observations, dtype=float)
    prior_precision = jnp.linalg.inv(jnp.asarray(prior_covariance))
    covariance = jnp.linalg.inv(prior_precision + X.T @ X / noise_std**2)
    mean = covariance @ (prior_precision @ jnp.asarray(prior_mean) + X.T @ y / noise_std**2)
    return mean, covariance


class KalmanFilterResult(NamedTuple):
    """Result of :func:`kalman_filter`.

    Attributes:
      log_evidence: ``()`` ``log p(y_0, ..., y_{T-1})``.
      filtered_means: ``(T, dz)`` means of ``p(z_t | y_0..y_t)``.
      filtered_covariances: ``(T, dz, dz)`` their covariances.
    """

    log_evidence: jax.Array
    filtered_means: jax.Array
    filtered_covariances: jax.Array


def kalman_filter(
    observations,
    initial_mean,
    initial_covariance,
    transition_matrix,
    transition_covariance,
    emission_matrix,
    emission_covariance,
) -> KalmanFilterResult:
    """Exact filtering and evidence for a linear-Gaussian state-space model.

    The model, for ``t = 0, ..., T-1``::

        z_0 ~ Normal(initial_mean, initial_covariance)
        z_t ~ Normal(A z_{t-1}, Q)                    (t >= 1)
        y_t ~ Normal(H z_t, R)

    with ``A = transition_matrix (dz, dz)``, ``Q = transition_covariance``,
    ``H = emission_matrix (dy, dz)``, ``R = emission_covariance (dy, dy)``.
    ``log_evidence = sum_t log Normal(y_t; H m_t, H P_t H^T + R)`` with ``(m_t, P_t)``
    the one-step predictions. One ``lax.scan``; jittable.

    Args:
      observations: ``(T, dy)``.
    """
    ys = jnp.asarray(observations, dtype=float)
    A = jnp.asarray(transition_matrix, dtype=float)
    Q = jnp.asarray(transition_covariance, dtype=float)
    H = jnp.asarray(emission_matrix, dtype=float)
    R = jnp.asarray(emission_covariance, dtype=float)

    def step(carry, y):
        mean, covariance, log_evidence = carry  # the prediction for this step
        predicted_y = H @ mean
        innovation_covariance = H @ covariance @ H.T + R
        innovation_covariance = (innovation_covariance + innovation_covariance.T) / 2
        log_evidence = log_evidence + MultivariateNormal(predicted_y, innovation_covariance).log_prob(y)
        gain = jnp.linalg.solve(innovation_covariance, H @ covariance).T
        filtered_mean = mean + gain @ (y - predicted_y)
        filtered_covariance = covariance - gain @ innovation_covariance @ gain.T
        filtered_covariance = (filtered_covariance + filtered_covariance.T) / 2
        next_mean = A @ filtered_mean
        next_covariance = A @ filtered_covariance @ A.T + Q
        return (next_mean, next_covariance, log_evidence), (filtered_mean, filtered_covariance)

    initial = (jnp.asarray(initial_mean, dtype=float), jnp.asarray(initial_covariance, dtype=float), jnp.zeros(()))
    (_, _, log_evidence), (means, covariances) = jax.lax.scan(step, initial, ys)
    return KalmanFilterResult(log_evidence, means, covariances)


def kalman_log_evidence(observations, *model) -> jax.Array:
    """``kalman_filter(observations, *model).log_evidence``."""
    return kalman_filter(observations, *model).log_evidence


class HMMForwardResult(NamedTuple):
    """Result of :func:`hmm_forward`.

    Attributes:
      log_evidence: ``()`` ``log p(y_0, ..., y_{T-1})``.
      filtered_probabilities: ``(T, K)`` ``p(z_t = k | y_0..y_t)``.
    """

    log_evidence: jax.Array
    filtered_probabilities: jax.Array


def hmm_forward(initial_probabilities, transition_matrix, emission_log_likelihoods) -> HMMForwardResult:
    """The forward algorithm for a hidden Markov model with ``K`` states.

    The model: ``z_0 ~ Categorical(initial_probabilities)``,
    ``z_t ~ Categorical(transition_matrix[z_{t-1}])``, and any emission, given as
    ``emission_log_likelihoods[t, k] = log p(y_t | z_t = k)`` (``(T, K)``), so it
    serves every emission distribution. Computed in log space with one
    ``lax.scan``; jittable.
    """
    log_initial = jnp.log(jnp.asarray(initial_probabilities, dtype=float))
    log_transition = jnp.log(jnp.asarray(transition_matrix, dtype=float))
    emissions = jnp.asarray(emission_log_likelihoods, dtype=float)
    logsumexp = jax.scipy.special.logsumexp

    def step(log_alpha, emission):
        log_alpha = logsumexp(log_alpha[:, None] + log_transition, axis=0) + emission
        return log_alpha, log_alpha

    first = log_initial + emissions[0]
    last, rest = jax.lax.scan(step, first, emissions[1:])
    log_alphas = jnp.concatenate([first[None], rest])
    filtered = jnp.exp(log_alphas - logsumexp(log_alphas, axis=1, keepdims=True))
    return HMMForwardResult(logsumexp(last), filtered)


def hmm_log_evidence(observations, initial_probabilities, transition_matrix, emission_probabilities) -> jax.Array:
    """``log p(y)`` for an HMM with categorical emissions.

    ``emission_probabilities[k, v] = p(y_t = v | z_t = k)`` (``(K, V)``);
    ``observations`` is ``(T,)`` ints in ``[0, V)``.
    """
    y = jnp.asarray(observations)
    emission_log_likelihoods = jnp.log(jnp.asarray(emission_probabilities, dtype=float))[:, y].T
    return hmm_forward(initial_probabilities, transition_matrix, emission_log_likelihoods).log_evidence
