"""Linear-Gaussian state-space models: the exact Kalman filter, smoother and simulator.

A series of ``T`` points, observed at times ``u`` (increasing, possibly
irregular), with a latent state ``x_k`` of dimension ``D``::

    x_0 ~ N(m0, P0)
    x_k = F(dt_k) x_{k-1} + w_k,     w_k ~ N(0, Q(dt_k)),   dt_k = u_k - u_{k-1}
    y_k = h_k . x_k + e_k,           e_k ~ N(0, r)

where ``h_k`` may change with ``k`` (a changepoint gates components on and
off). Missing points (``observed[k] = False``, e.g. NaNs in the data) are
predicted through but contribute nothing to the likelihood.

:class:`StateSpace` holds the per-step matrices as arrays with a leading time
axis, so the filter is one ``lax.scan`` and everything is ``jit``/``vmap``/
``grad``-able. :func:`kalman_filter` gives the exact ``log p(y)`` (the
evidence with every state integrated out), :func:`kalman_smoother` the
posterior mean and covariance of every state (Rauch-Tung-Striebel), and
:func:`simulate_forward` sample paths beyond the data (forecasts).

Example::

    >>> import jax.numpy as jnp
    >>> F = jnp.ones((5, 1, 1)); Q = jnp.full((5, 1, 1), 0.1); h = jnp.ones((5, 1))
    >>> model = StateSpace(F, Q, h, jnp.asarray(0.2), jnp.zeros(1), jnp.eye(1))
    >>> result = kalman_filter(model, jnp.array([0.1, 0.3, 0.2, 0.5, 0.4]))
    >>> result.means.shape, result.log_likelihood.shape
    ((5, 1), ())
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ppl import linalg

__all__ = ["FilterResult", "StateSpace", "kalman_filter", "kalman_smoother", "regression_log_likelihood",
           "sample_gaussian", "simulate_forward", "static_log_likelihood"]

JITTER = 1e-6


class StateSpace(NamedTuple):
    """A linear-Gaussian state-space model over ``T`` steps with a ``D``-dimensional state.

    Attributes:
      transitions: ``(T, D, D)``; ``transitions[k]`` maps ``x_{k-1}`` to the mean of ``x_k``
        (``transitions[0]`` acts on ``x_0 ~ N(m0, P0)``; the identity when ``x_0`` is the
        state at the first point).
      process_noise: ``(T, D, D)`` covariances of ``w_k``.
      observations: ``(T, D)`` rows ``h_k``.
      noise_variance: scalar (or ``(T,)``) variance ``r`` of ``e_k``.
      initial_mean: ``(D,)``.
      initial_covariance: ``(D, D)``.
    """

    transitions: jax.Array
    process_noise: jax.Array
    observations: jax.Array
    noise_variance: jax.Array
    initial_mean: jax.Array
    initial_covariance: jax.Array


class FilterResult(NamedTuple):
    """What :func:`kalman_filter` returns (``T`` steps, state dimension ``D``).

    Attributes:
      log_likelihood: scalar ``log p(y_observed)``.
      means, covariances: ``(T, D)``, ``(T, D, D)``: ``p(x_k | y_{1:k})``.
      predicted_means, predicted_covariances: ``(T, D)``, ``(T, D, D)``: ``p(x_k | y_{1:k-1})``.
      step_log_likelihoods: ``(T,)`` ``log p(y_k | y_{1:k-1})`` (0 where missing).
    """

    log_likelihood: jax.Array
    means: jax.Array
    covariances: jax.Array
    predicted_means: jax.Array
    predicted_covariances: jax.Array
    step_log_likelihoods: jax.Array


def _symmetric(matrix: jax.Array) -> jax.Array:
    return 0.5 * (matrix + jnp.swapaxes(matrix, -1, -2))


def kalman_filter(model: StateSpace, y: jax.Array, observed: jax.Array | None = None) -> FilterResult:
    """The exact filter and ``log p(y)`` of a :class:`StateSpace` (see the module docstring).

    Args:
      model: the state-space model (``T`` steps).
      y: ``(T,)`` observations (values at missing points are ignored, but must be finite).
      observed: ``(T,)`` bool, ``False`` where ``y`` is missing (default: all observed).

    Returns:
      A :class:`FilterResult`.
    """
    y = jnp.asarray(y)
    observed = jnp.ones(y.shape, bool) if observed is None else jnp.asarray(observed, bool)
    noise = jnp.broadcast_to(jnp.asarray(model.noise_variance, y.dtype), y.shape)

    def step(carry, inputs):
        mean, covariance = carry
        transition, process_noise, h, value, seen, r = inputs
        mean = transition @ mean
        covariance = _symmetric(transition @ covariance @ transition.T + process_noise)
        predicted = (mean, covariance)
        variance = h @ covariance @ h + r
        residual = value - h @ mean
        gain = covariance @ h / variance
        log_likelihood = -0.5 * (math.log(2 * math.pi) + jnp.log(variance) + residual**2 / variance)
        updated_mean = mean + gain * residual
        updated_covariance = _symmetric(covariance - variance * jnp.outer(gain, gain))
        mean = jnp.where(seen, updated_mean, mean)
        covariance = jnp.where(seen, updated_covariance, covariance)
        return (mean, covariance), (mean, covariance, *predicted, jnp.where(seen, log_likelihood, 0.0))

    inputs = (model.transitions, model.process_noise, model.observations, y, observed, noise)
    _, (means, covariances, predicted_means, predicted_covariances, steps) = lax.scan(
        step, (model.initial_mean, model.initial_covariance), inputs)
    return FilterResult(jnp.sum(steps), means, covariances, predicted_means, predicted_covariances, steps)


def regression_log_likelihood(model: StateSpace, y: jax.Array, design: jax.Array, prior_scale: jax.Array,
                              observed: jax.Array | None = None) -> jax.Array:
    """The exact ``log p(y)`` of a state-space model plus a regression with Normal coefficients.

    ``y_k = design[k] . beta + h_k . x_k + e_k`` with ``beta ~ N(0, diag(prior_scale^2))`` independent of the
    states: static pieces of a series (a constant, a straight line, a fixed cycle) enter as columns of
    ``design`` instead of states, so the filter's state stays small. De Jong's augmented filter: one
    covariance recursion serves ``y`` and every column (the covariances do not depend on the data), the
    columns' innovations give ``p(y | beta)`` as a Gaussian in ``beta``, and ``beta`` is integrated in closed
    form. Columns of zeros (and zero scales) contribute nothing.

    Args:
      model: the state-space part (``T`` steps, state ``D``).
      y: ``(T,)`` observations (finite; missing points are masked by ``observed``).
      design: ``(T, S)`` regression columns.
      prior_scale: ``(S,)`` the coefficients' prior standard deviations.
      observed: ``(T,)`` bool (default: all observed).

    Returns:
      The scalar ``log p(y_observed)``.
    """
    y = jnp.asarray(y)
    observed = jnp.ones(y.shape, bool) if observed is None else jnp.asarray(observed, bool)
    noise = jnp.broadcast_to(jnp.asarray(model.noise_variance, y.dtype), y.shape)
    columns = jnp.concatenate([y[:, None], design * prior_scale], axis=1)  # (T, 1 + S): y and the scaled columns

    def step(carry, inputs):
        means, covariance = carry  # (D, 1 + S), (D, D)
        transition, process_noise, h, values, seen, r = inputs
        means = transition @ means
        covariance = _symmetric(transition @ covariance @ transition.T + process_noise)
        variance = h @ covariance @ h + r
        innovations = values - h @ means  # (1 + S,)
        gain = covariance @ h / variance
        updated = (means + gain[:, None] * innovations[None, :], _symmetric(covariance - variance * jnp.outer(gain, gain)))
        carry = jax.tree_util.tree_map(lambda new, old: jnp.where(seen, new, old), updated, (means, covariance))
        # where() after the division: a sqrt at 0 would put NaN in second derivatives (Laplace's Hessian)
        standardised = jnp.where(seen, innovations / jnp.sqrt(variance), 0.0)
        return carry, (standardised, jnp.where(seen, jnp.log(variance), 0.0))

    start = (jnp.zeros((model.initial_mean.shape[0], columns.shape[1])).at[:, 0].set(model.initial_mean),
             model.initial_covariance)
    inputs = (model.transitions, model.process_noise, model.observations, columns, observed, noise)
    _, (standardised, log_variances) = lax.scan(step, start, inputs)
    return _integrate_coefficients(standardised[:, 0], standardised[:, 1:], jnp.sum(log_variances), jnp.sum(observed))


def static_log_likelihood(y: jax.Array, design: jax.Array, prior_scale: jax.Array, noise_variance: jax.Array,
                          observed: jax.Array | None = None) -> jax.Array:
    """:func:`regression_log_likelihood` without a state: ``y_k = design[k] . beta + e_k``, in closed form (no
    scan), ``e_k ~ N(0, noise_variance)`` (scalar or ``(T,)``). Equal to ``regression_log_likelihood`` with every
    observation row zero.

    Example::

        >>> import jax.numpy as jnp
        >>> y = jnp.array([0.1, 0.3, 0.2]); X = jnp.ones((3, 1))
        >>> float(static_log_likelihood(y, X, jnp.ones(1), jnp.asarray(0.1))) < 0
        True
    """
    y = jnp.asarray(y)
    observed = jnp.ones(y.shape, bool) if observed is None else jnp.asarray(observed, bool)
    noise = jnp.broadcast_to(jnp.asarray(noise_variance, y.dtype), y.shape)
    scale = jnp.where(observed, 1.0 / jnp.sqrt(noise), 0.0)
    return _integrate_coefficients(y * scale, design * prior_scale * scale[:, None],
                                   jnp.sum(jnp.where(observed, jnp.log(noise), 0.0)), jnp.sum(observed))


def _integrate_coefficients(residual, scaled, log_variance_sum, count) -> jax.Array:
    """``log p(y)`` from the standardised innovations of ``y`` ``(T,)`` and of the scaled columns ``(T, S)``:
    ``y | gamma`` has innovations ``residual - scaled @ gamma``, ``gamma ~ N(0, I)``; ``gamma`` is integrated.

    The quadratic form ``r'r - r'X (I + X'X)^-1 X'r`` is evaluated as ``|r - X g|^2 + |g|^2`` at
    ``g = (I + X'X)^-1 X'r`` (the same number), a sum of squares: the difference form cancels
    catastrophically in float32 when the noise is tiny (standardised values ~1/noise), and went negative
    by thousands of nats, giving a changepoint structure with a two-point line an evidence of +1971."""
    precision = jnp.eye(scaled.shape[1]) + scaled.T @ scaled
    cholesky = linalg.cholesky(precision)
    projected = linalg.solve_triangular(cholesky, scaled.T @ residual, lower=True)
    coefficients = linalg.solve_triangular(cholesky, projected, lower=True, transpose=True)
    misfit = residual - scaled @ coefficients
    return (-0.5 * (count * math.log(2 * math.pi) + log_variance_sum + misfit @ misfit + coefficients @ coefficients)
            - jnp.sum(jnp.log(jnp.diag(cholesky))))


def kalman_smoother(model: StateSpace, filtered: FilterResult) -> tuple[jax.Array, jax.Array]:
    """Rauch-Tung-Striebel smoothing: the means ``(T, D)`` and covariances ``(T, D, D)`` of ``p(x_k | y_{1:T})``."""

    def step(carry, inputs):
        next_mean, next_covariance = carry
        mean, covariance, next_predicted_mean, next_predicted_covariance, next_transition = inputs
        cross = covariance @ next_transition.T
        gain = linalg.solve(next_predicted_covariance + JITTER * jnp.eye(mean.shape[0]), cross.T).T
        mean = mean + gain @ (next_mean - next_predicted_mean)
        covariance = _symmetric(covariance + gain @ (next_covariance - next_predicted_covariance) @ gain.T)
        return (mean, covariance), (mean, covariance)

    last = (filtered.means[-1], filtered.covariances[-1])
    inputs = (filtered.means[:-1], filtered.covariances[:-1], filtered.predicted_means[1:],
              filtered.predicted_covariances[1:], model.transitions[1:])
    _, (means, covariances) = lax.scan(step, last, inputs, reverse=True)
    return (jnp.concatenate([means, last[0][None]]), jnp.concatenate([covariances, last[1][None]]))


def sample_gaussian(key: jax.Array, mean: jax.Array, covariance: jax.Array) -> jax.Array:
    """One draw from ``N(mean, covariance)`` for a possibly singular covariance (eigen-decomposition)."""
    values, vectors = linalg.eigh(_symmetric(covariance))
    noise = jax.random.normal(key, mean.shape)
    return mean + vectors @ (jnp.sqrt(jnp.clip(values, 0.0)) * noise)


def simulate_forward(key: jax.Array, mean: jax.Array, covariance: jax.Array, transitions: jax.Array,
                     process_noise: jax.Array, observations: jax.Array, noise_variance: jax.Array) -> jax.Array:
    """One sample path ``(H,)`` of ``y`` over ``H`` future steps, from the state ``x ~ N(mean, covariance)``.

    ``transitions``, ``process_noise`` ``(H, D, D)`` and ``observations`` ``(H, D)`` are the future steps'
    matrices; ``noise_variance`` is the observation variance (scalar).
    """
    start_key, key = jax.random.split(key)
    state = sample_gaussian(start_key, mean, covariance)

    def step(state, inputs):
        step_key, transition, process, h = inputs
        state_key, noise_key = jax.random.split(step_key)
        state = transition @ state + sample_gaussian(state_key, jnp.zeros_like(state), process)
        return state, h @ state + jnp.sqrt(noise_variance) * jax.random.normal(noise_key)

    keys = jax.random.split(key, transitions.shape[0])
    _, path = lax.scan(step, state, (keys, transitions, process_noise, observations))
    return path
