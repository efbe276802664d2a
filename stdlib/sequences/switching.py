"""Regime switching: a series that jumps between ``k`` levels, a hidden Markov chain choosing which (``regimes(k)``).

``regimes(k)`` is a :class:`~stdlib.sequences.components.Component` that is
*not* linear-Gaussian: at every point the series sits at one of ``k`` levels,
and which one follows a Markov chain that stays put with probability ``stay``
and otherwise moves to one of the other ``k - 1`` levels uniformly::

    regime_0 ~ Uniform{0, ..., k-1}
    regime_t ~ Categorical(A[regime_{t-1}])      A = stay on the diagonal, (1 - stay) / (k - 1) off it
    value_t  = levels[regime_t]

Hyperparameters (the component's ``priors``, in this order, padded to
``HYPER_SIZE``)::

    level_1              ~ Normal(0, level_scale)       the lowest level
    gap_2, ..., gap_k    ~ HalfNormal(gap_scale)        level_j = level_{j-1} + gap_j (ordered: no label switching)
    stay                 ~ Uniform(0.5, 1)              the probability of keeping the regime at each step

The chain is integrated out *exactly* by the forward algorithm (in log space),
so the functions below give the grammar a collapsed density over the few
hyperparameters, as the Kalman filter does for the linear-Gaussian components:

- :func:`levels_and_stay`, :func:`transition_matrix`: the settings from ``theta``.
- :func:`log_likelihood`: ``log p(y | theta, noise)``, the regime path summed out.
- :func:`smooth`: ``p(regime_t = j | y)`` (forward-backward).
- :func:`forecast_paths`: sample paths of the series beyond its end.
- :func:`hmm`: the same chain with an observation at every step, as a ``ppl.unfold``
  (for particle filters: ``ppl.infer.smc`` on it estimates what :func:`log_likelihood`
  computes exactly).

All of them are pure JAX (``k``, ``horizon``, ``n`` and ``steps`` are static
Python ints); :func:`log_likelihood` has finite first and second derivatives
everywhere in its domain (it sits inside a Laplace Hessian).

Example::

    >>> import jax, jax.numpy as jnp
    >>> two = regimes(2)
    >>> trace = two.model.simulate(jax.random.key(0), jnp.linspace(0.0, 1.0, 30))
    >>> trace.retval.shape, len(set(trace.retval.tolist())) <= 2
    ((30,), True)
    >>> theta = two.settings(jnp.zeros(3))            # the prior medians
    >>> y = jnp.concatenate([jnp.zeros(10), 2.0 * jnp.ones(10)])
    >>> log_likelihood(theta, 2, y, 0.1, jnp.ones(20, bool)).shape
    ()
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import logsumexp

import ppl
from ppl import dist
from ppl.errors import CompositionError
from stdlib.sequences.components import HYPER_SIZE, Component

__all__ = [
    "forecast_paths",
    "hmm",
    "levels_and_stay",
    "log_likelihood",
    "regimes",
    "smooth",
    "transition_matrix",
]

_LARGEST_K = HYPER_SIZE - 1  # k - 1 gaps, a first level and stay must fit in the padded vector
_STAY_MARGIN = 1e-6  # stay is kept in [margin, 1 - margin] inside logs, so derivatives stay finite at stay = 1


# ---------------------------------------------------------------------------
# The component
# ---------------------------------------------------------------------------


def regimes(k: int = 2, level_scale: float = 1.0, gap_scale: float = 1.0) -> Component:
    """Hidden-Markov switching between ``k`` ordered levels (see the module docstring).

    Args:
      k: the number of regimes, 2 or 3 (its ``k + 1`` hyperparameters must fit in ``HYPER_SIZE = 4``).
      level_scale: the prior scale of the lowest level (standardised units).
      gap_scale: the prior scale of each gap between consecutive levels.

    Returns:
      A :class:`Component` with role ``"regimes"``, dimension ``k`` and priors
      ``level_1, gap_2, ..., gap_k, stay``. It has no state-space form (``transition``
      and ``initial`` raise); ``component.model`` is its explicit generative model
      ``model(u) -> (T,)`` with choices ``"hyper/..."`` and ``"regimes/regime"`` ``(T,)``.

    Raises:
      CompositionError: ``k`` is not 2 or 3, or a scale is not positive.

    Example::

        >>> three = regimes(3)
        >>> three.hyper_names
        ('level_1', 'gap_2', 'gap_3', 'stay')
    """
    _check_k(k)
    for what, value in (("level_scale", level_scale), ("gap_scale", gap_scale)):
        if not (isinstance(value, (int, float)) and value > 0):
            raise CompositionError(f"regimes' {what} must be a positive number, got {value!r}; "
                                   f"e.g. regimes({k}, {what}=1.0).")
    priors = ((("level_1", dist.Normal(0.0, level_scale)),)
              + tuple((f"gap_{j}", dist.HalfNormal(gap_scale)) for j in range(2, k + 1))
              + (("stay", dist.Uniform(0.5, 1.0)),))

    def not_linear_gaussian(*_):
        raise CompositionError(
            f"regimes({k}) is not linear-Gaussian: it has no transition or initial state for a Kalman "
            "filter. Integrate it with stdlib.sequences.switching.log_likelihood (the forward algorithm), "
            "or use component.model, its explicit generative model.")

    return Component(f"regimes({k})", "regimes", k, priors, not_linear_gaussian, not_linear_gaussian,
                     np.zeros(k), role="regimes", explicit=_explicit_model)


def _check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= _LARGEST_K:
        raise CompositionError(
            f"regimes needs k, the number of regimes, as an int from 2 to {_LARGEST_K}, got {k!r}: its "
            f"k + 1 hyperparameters (a level, k - 1 gaps, stay) travel in a vector of {HYPER_SIZE}. "
            f"Use regimes(2) or regimes(3).")


def _check_count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise CompositionError(f"{what} must be a positive Python int (it fixes an array's shape), got {value!r}.")
    return int(value)


# ---------------------------------------------------------------------------
# The settings
# ---------------------------------------------------------------------------


def levels_and_stay(theta: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The ``k`` levels ``(k,)`` (ascending when the gaps are positive) and ``stay`` ``()`` from ``theta``.

    ``theta`` ``(HYPER_SIZE,)`` holds ``level_1, gap_2, ..., gap_k, stay`` (then padding);
    ``levels[j] = level_1 + gap_2 + ... + gap_{j+1}``.

    Example::

        >>> levels, stay = levels_and_stay(jnp.array([-1.0, 0.5, 1.5, 0.9]), 3)
        >>> levels.tolist(), round(float(stay), 2)
        ([-1.0, -0.5, 1.0], 0.9)
    """
    _check_k(k)
    theta = jnp.asarray(theta)
    levels = theta[0] + jnp.concatenate([jnp.zeros(1, theta.dtype), jnp.cumsum(theta[1:k])])
    return levels, theta[k]


def transition_matrix(stay: jax.Array, k: int) -> jax.Array:
    """The ``(k, k)`` transition matrix: ``A[i, j] = p(regime_t = j | regime_{t-1} = i)``, ``stay`` on the
    diagonal and ``(1 - stay) / (k - 1)`` off it (rows sum to 1).

    Example::

        >>> np.asarray(transition_matrix(0.8, 3), float).round(2).tolist()
        [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
    """
    _check_k(k)
    eye = jnp.eye(k)
    stay = jnp.asarray(stay)
    return stay * eye + (1.0 - stay) / (k - 1) * (1.0 - eye)


def _log_transition(stay: jax.Array, k: int) -> jax.Array:
    """``log A`` ``(k, k)`` with ``stay`` kept off 0 and 1, so the log and its derivatives stay finite."""
    stay = jnp.clip(stay, _STAY_MARGIN, 1.0 - _STAY_MARGIN)
    eye = jnp.eye(k)
    return jnp.log(stay) * eye + (jnp.log1p(-stay) - math.log(k - 1)) * (1.0 - eye)


# ---------------------------------------------------------------------------
# Exact inference over the regime path
# ---------------------------------------------------------------------------


def _emission_log_likelihoods(levels, y, noise_variance, observed, offset) -> jax.Array:
    """``log N(y_t; offset_t + levels[j], noise_t)`` ``(T, k)``; rows of missing points are 0.

    Missing points may hold NaN (in ``y``, ``offset`` or the variance): they are replaced before any
    arithmetic, so neither values nor derivatives see them."""
    y = jnp.asarray(y)
    observed = jnp.broadcast_to(jnp.asarray(observed, bool), y.shape)
    offset = jnp.zeros_like(y) if offset is None else jnp.broadcast_to(offset, y.shape)
    residual = jnp.where(observed, y - offset, 0.0)
    variance = jnp.where(observed, jnp.broadcast_to(noise_variance, y.shape), 1.0)
    deviations = residual[:, None] - levels[None, :]
    log_density = -0.5 * (jnp.log(2 * jnp.pi * variance)[:, None] + deviations**2 / variance[:, None])
    return jnp.where(observed[:, None], log_density, 0.0)


def _forward(log_transition: jax.Array, emissions: jax.Array) -> jax.Array:
    """``log alpha_t(j) = log p(y_0..y_t, regime_t = j)`` ``(T, k)``, from a uniform first regime."""
    k = emissions.shape[1]

    def step(log_alpha, emission):
        log_alpha = logsumexp(log_alpha[:, None] + log_transition, axis=0) + emission
        return log_alpha, log_alpha

    first = emissions[0] - math.log(k)
    _, rest = lax.scan(step, first, emissions[1:])
    return jnp.concatenate([first[None], rest])


def _backward(log_transition: jax.Array, emissions: jax.Array) -> jax.Array:
    """``log beta_t(i) = log p(y_{t+1}..y_{T-1} | regime_t = i)`` ``(T, k)``."""
    k = emissions.shape[1]

    def step(log_beta, emission):  # beta_{t+1} and y_{t+1} -> beta_t
        log_beta = logsumexp(log_transition + (emission + log_beta)[None, :], axis=1)
        return log_beta, log_beta

    _, earlier = lax.scan(step, jnp.zeros(k, emissions.dtype), emissions[1:], reverse=True)
    return jnp.concatenate([earlier, jnp.zeros((1, k), emissions.dtype)])


def log_likelihood(theta: jax.Array, k: int, y: jax.Array, noise_variance: jax.Array, observed: jax.Array,
                   offset: jax.Array | None = None) -> jax.Array:
    """``log p(y | theta, noise)`` with the regime path summed out exactly (the forward algorithm).

    The model: ``regime_0`` uniform, ``regime_t ~ A[regime_{t-1}]`` (:func:`transition_matrix`), and at
    every observed point ``y_t ~ Normal(offset_t + levels[regime_t], noise_variance_t)``. Missing points
    contribute nothing, but the chain still takes its step there.

    Args:
      theta: ``(HYPER_SIZE,)`` the hyperparameters (``level_1, gap_2..gap_k, stay``, padding).
      k: the number of regimes (a Python int, static).
      y: ``(T,)`` the series; missing points may hold anything, NaN included.
      noise_variance: ``()`` or ``(T,)`` the observation variance.
      observed: ``(T,)`` bool, False at missing points.
      offset: ``(T,)`` added to the mean (e.g. the other components' contribution); default 0.

    Returns:
      ``()`` the log likelihood. Differentiable twice in ``theta``, ``noise_variance`` and ``offset``
      (``stay`` is held in ``[1e-6, 1 - 1e-6]`` inside the logarithms).

    Example::

        >>> theta = jnp.array([0.0, 2.0, 0.9, 0.0])           # levels 0 and 2, stay 0.9
        >>> y = jnp.array([0.1, -0.2, 2.1, jnp.nan, 1.9])
        >>> value = log_likelihood(theta, 2, y, 0.25, ~jnp.isnan(y))
        >>> bool(jnp.isfinite(value))
        True
    """
    levels, stay = levels_and_stay(theta, k)
    emissions = _emission_log_likelihoods(levels, y, noise_variance, observed, offset)
    return logsumexp(_forward(_log_transition(stay, k), emissions)[-1])


def smooth(theta: jax.Array, k: int, y: jax.Array, noise_variance: jax.Array, observed: jax.Array,
           offset: jax.Array | None = None) -> jax.Array:
    """``p(regime_t = j | y)`` ``(T, k)``: the posterior regime probabilities (forward-backward, log space).

    Arguments as for :func:`log_likelihood`; each row sums to 1. The last row is the filtering
    distribution at the end of the series (the ``last_probabilities`` of :func:`forecast_paths`).

    Example::

        >>> theta = jnp.array([0.0, 2.0, 0.9, 0.0])
        >>> y = jnp.array([0.0, 0.1, 2.0, 2.1])
        >>> smooth(theta, 2, y, 0.1, jnp.ones(4, bool)).argmax(axis=1).tolist()
        [0, 0, 1, 1]
    """
    levels, stay = levels_and_stay(theta, k)
    log_transition = _log_transition(stay, k)
    emissions = _emission_log_likelihoods(levels, y, noise_variance, observed, offset)
    log_posterior = _forward(log_transition, emissions) + _backward(log_transition, emissions)
    return jax.nn.softmax(log_posterior, axis=1)


def forecast_paths(key: jax.Array, theta: jax.Array, k: int, last_probabilities: jax.Array, horizon: int,
                   noise_variance: jax.Array, n: int) -> jax.Array:
    """``n`` sample paths ``(n, horizon)`` of the series after its last point.

    Each path draws the regime at the last point from ``last_probabilities`` ``(k,)`` (e.g.
    ``smooth(...)[-1]``), moves the chain ``horizon`` steps, and adds the observation noise:
    ``y_{T+h} = levels[regime_{T+h}] + sqrt(noise_variance_h) * eps``. ``noise_variance`` is ``()``
    or ``(horizon,)``; ``horizon`` and ``n`` are Python ints.

    Example::

        >>> theta = jnp.array([0.0, 2.0, 0.9, 0.0])
        >>> paths = forecast_paths(jax.random.key(0), theta, 2, jnp.array([0.0, 1.0]), 5, 0.01, 100)
        >>> paths.shape
        (100, 5)
    """
    horizon, n = _check_count(horizon, "forecast_paths' horizon"), _check_count(n, "forecast_paths' n")
    levels, stay = levels_and_stay(theta, k)
    log_transition = jnp.log(transition_matrix(stay, k))
    log_last = jnp.log(jnp.asarray(last_probabilities))
    scales = jnp.sqrt(jnp.broadcast_to(noise_variance, (horizon,)))

    def one_path(path_key):
        start_key, steps_key = jax.random.split(path_key)

        def step(regime, inputs):
            step_key, scale = inputs
            move_key, noise_key = jax.random.split(step_key)
            regime = jax.random.categorical(move_key, log_transition[regime])
            return regime, levels[regime] + scale * jax.random.normal(noise_key, (), levels.dtype)

        _, values = lax.scan(step, jax.random.categorical(start_key, log_last),
                             (jax.random.split(steps_key, horizon), scales))
        return values

    return jax.vmap(one_path)(jax.random.split(key, n))


# ---------------------------------------------------------------------------
# The chain as generative models
# ---------------------------------------------------------------------------


def _next_probabilities(previous: jax.Array, stay: jax.Array, k: int) -> jax.Array:
    """The next regime's probabilities ``(k,)``: uniform when ``previous < 0`` (no regime yet), else
    ``A[previous]``."""
    rows = transition_matrix(stay, k)
    return jnp.where(previous < 0, jnp.full((k,), 1.0 / k), rows[jnp.maximum(previous, 0)])


@functools.cache
def _regime_chain(k: int, steps: int) -> ppl.GenerativeFunction:
    """The regime path alone: ``unfold`` of ``(t, previous, stay) -> regime``, from ``previous = -1``."""

    def body(t, previous, stay):
        return ppl.sample("regime", dist.Categorical(_next_probabilities(previous, stay, k)))

    body.__name__ = f"regimes_{k}_path_step"
    return ppl.unfold(ppl.model(body), steps)


def _explicit_model(component: Component) -> ppl.GenerativeFunction:
    """``component.model``: the hyperparameters, then the regime path, returning ``levels[path]`` ``(T,)``."""
    k = component.dim

    def body(u, span=1.0, step=None, observed=None):
        """``u``: ``(T,)`` scaled times (only their number matters: the chain moves once per point);
        ``span``, ``step`` and ``observed`` are not used (a grammar passes them to every part)."""
        theta = ppl.sample("hyper", component.hyper)
        levels, stay = levels_and_stay(theta, k)
        path = ppl.sample("regimes", _regime_chain(k, u.shape[0]), jnp.int32(-1), stay)
        return levels[path]

    body.__name__ = f"regimes_{k}"
    return ppl.model(body)


@functools.cache
def hmm(k: int, steps: int) -> ppl.GenerativeFunction:
    """The regime chain with an observation at every step, as ``ppl.unfold`` (for particle filters).

    Called as ``chain(-1, levels, stay, noise)``: step ``t`` runs
    ``step(t, previous_regime, levels, stay, noise)``, which samples

    - ``"regime" ~ Categorical(A[previous_regime])``, or uniform when ``previous_regime < 0``
      (start the chain from ``jnp.int32(-1)``: no regime yet);
    - ``"y" ~ Normal(levels[regime], noise)`` (``noise`` is a standard deviation),

    and returns the regime. With every ``"y"`` observed its evidence is
    ``exp(log_likelihood(theta, k, y, noise**2, all True))``. The same ``(k, steps)`` gives the same
    object (so compiled programs are shared).

    Example::

        >>> chain = hmm(2, 20)
        >>> trace = chain.simulate(jax.random.key(0), jnp.int32(-1), jnp.array([0.0, 2.0]), 0.9, 0.3)
        >>> trace.choices["y"].shape, trace.choices["regime"].shape
        ((20,), (20,))
    """
    _check_k(k)
    steps = _check_count(steps, "hmm's steps")

    def body(t, previous, levels, stay, noise):
        regime = ppl.sample("regime", dist.Categorical(_next_probabilities(previous, stay, k)))
        ppl.sample("y", dist.Normal(levels[regime], noise))
        return regime

    body.__name__ = f"regimes_{k}_hmm_step"
    return ppl.unfold(ppl.model(body), steps)
