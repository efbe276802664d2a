"""Test helpers for users' own models, combinators and inference algorithms.

Three kinds of helper, the ones ppl's own test suite uses:

**Interface checks.** The four interface methods must agree with each other.
Call :func:`check_interface` from a test of any new generative function::

    >>> import jax, ppl
    >>> from ppl import dist
    >>> from ppl.testing import check_interface
    >>> @ppl.model
    ... def coin(p):
    ...     return ppl.sample("heads", dist.Bernoulli(p))
    >>> check_interface(coin, (0.3,), changes={"heads": 1})

Each check raises ``AssertionError`` with the two numbers that disagree.

**Exact oracles.** Closed-form log evidences (and posteriors) to test an
inference algorithm against: conjugate Normal-Normal
(:func:`normal_normal_log_evidence`), Beta-Bernoulli
(:func:`beta_bernoulli_log_evidence`), Bayesian linear regression
(:func:`linear_regression_log_evidence`), linear-Gaussian state-space models
(:func:`kalman_filter`, the Kalman filter) and hidden Markov models
(:func:`hmm_forward`, the forward algorithm). An estimate with a reported
standard error should fall within a few standard errors of them::

    >>> import jax.numpy as jnp
    >>> from ppl.testing import beta_bernoulli_log_evidence
    >>> round(float(beta_bernoulli_log_evidence(jnp.array([1, 0, 1]), 1.0, 1.0)), 4)
    -2.4849

**Simulation-based calibration** (Talts et al. 2018, arXiv:1804.06788).
Simulate ``(latents, data)`` from the model, run the posterior sampler on the
data, and rank the true latent among the posterior draws: for a correct sampler
the ranks are uniform on ``{0, ..., draws}``. :func:`sbc_ranks` runs every
simulation in one jitted, vmapped program; :func:`rank_uniformity_pvalue` tests
the ranks with a chi-square test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numpyro.distributions import MultivariateNormal

from ppl.choices import ChoiceMap, as_choice_map
from ppl.errors import UnknownAddressError, did_you_mean
from ppl.model import GenerativeFunction, Trace

__all__ = [
    "check_interface",
    "check_assess_matches_simulate",
    "check_generate_fully_constrained",
    "check_generate_unconstrained",
    "check_update_without_changes",
    "check_update_with_changes",
    "check_vmap_matches_loop",
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
    "sbc_ranks",
    "rank_uniformity_pvalue",
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


# ---------------------------------------------------------------------------
# Exact oracles: closed-form evidences and posteriors
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Simulation-based calibration
# ---------------------------------------------------------------------------


def sbc_ranks(
    key: jax.Array,
    model: GenerativeFunction,
    args: Sequence,
    posterior_sampler: Callable[[jax.Array, ChoiceMap], ChoiceMap | Trace],
    *,
    latents: Sequence[str],
    observations: Sequence[str],
    simulations: int,
    draws: int,
) -> ChoiceMap:
    """Simulation-based-calibration ranks of ``latents`` (Talts et al. 2018).

    For each of ``simulations`` runs (all in one ``jit(vmap(...))`` program):
    simulate a trace from ``model(*args)``, give its ``observations`` choices to
    ``posterior_sampler(key, observed)``, which returns ``draws`` posterior draws
    as a ``ChoiceMap`` (or ``Trace``) with leading axis ``draws``, and count, for
    every element of every latent, the draws below the simulated value (ties,
    possible for discrete latents, are broken uniformly at random).

    For a correct posterior sampler each rank is uniform on ``{0, ..., draws}``;
    test that with :func:`rank_uniformity_pvalue`. The sampler must be jittable
    (the observations it gets are traced).

    Returns:
      A ``ChoiceMap`` from each latent address to int32 ranks of shape
      ``(simulations, *latent_shape)``.

    Example::

        >>> import jax, ppl
        >>> from ppl import dist
        >>> @ppl.model
        ... def coin():
        ...     p = ppl.sample("p", dist.Beta(2.0, 2.0))
        ...     ppl.sample("flips", dist.Bernoulli(p).expand([5]).to_event(1))
        >>> def posterior(key, observed):
        ...     a, b = beta_bernoulli_posterior(observed["flips"], 2.0, 2.0)
        ...     return ChoiceMap({"p": dist.Beta(a, b).sample(key, (99,))})
        >>> ranks = sbc_ranks(jax.random.key(0), coin, (), posterior, latents=["p"],
        ...                   observations=["flips"], simulations=200, draws=99)
        >>> rank_uniformity_pvalue(ranks, draws=99) > 0.001
        True
    """
    latents, observations, args = tuple(latents), tuple(observations), tuple(args)

    def one_simulation(sim_key):
        simulate_key, posterior_key, tie_key = jax.random.split(sim_key, 3)
        trace = model.simulate(simulate_key, *args)
        _check_addresses(model, trace.choices, latents + observations)
        observed = trace.choices.filter(observations)
        posterior = posterior_sampler(posterior_key, observed)
        posterior = posterior.choices if isinstance(posterior, Trace) else as_choice_map(posterior)
        ranks = {}
        for index, address in enumerate(latents):
            truth = jnp.asarray(trace.choices[address])
            sampled = jnp.asarray(posterior[address])
            if sampled.shape != (draws,) + truth.shape:
                raise ValueError(
                    f"sbc_ranks: posterior_sampler returned shape {sampled.shape} at '{address}', "
                    f"expected (draws,) + latent shape = {(draws,) + truth.shape}. Return a "
                    "ChoiceMap whose leaves stack the draws along a leading axis."
                )
            below = jnp.sum(sampled < truth, axis=0)
            ties = jnp.sum(sampled == truth, axis=0)
            tie_break = jax.random.randint(jax.random.fold_in(tie_key, index), truth.shape, 0, ties + 1)
            ranks[address] = (below + tie_break).astype(jnp.int32)
        return ChoiceMap(ranks)

    keys = jax.random.split(key, simulations)
    return jax.jit(jax.vmap(one_simulation))(keys)


def _check_addresses(model, choices: ChoiceMap, addresses) -> None:
    known = choices.addresses()
    for address in addresses:
        if address not in choices:
            raise UnknownAddressError(
                f"sbc_ranks was asked for '{address}', but the model never visits that address."
                f"{did_you_mean(address, known)} Its addresses are: {', '.join(known)}.",
                model=model.name,
                address=address,
            )


def rank_uniformity_pvalue(ranks, draws: int, bins: int = 10) -> float:
    """Chi-square p-value that SBC ranks are uniform on ``{0, ..., draws}``.

    The ``draws + 1`` rank values are grouped into ``bins`` contiguous bins
    (expected counts proportional to their widths) and each latent element is
    tested separately with ``bins - 1`` degrees of freedom; the result is the
    Bonferroni-corrected smallest p-value, ``min(1, m * min_j p_j)`` over the
    ``m`` elements. Keep ``simulations / bins`` at 20 or more.

    Args:
      ranks: ``(simulations, ...)`` int ranks, or a ``ChoiceMap``/dict of them
        (as :func:`sbc_ranks` returns).
      draws: the number of posterior draws each rank was computed from.
      bins: the number of histogram bins (at most ``draws + 1``).

    Returns:
      A Python float; small values (e.g. < 0.001) mean the sampler is miscalibrated.
    """
    leaves = list(as_choice_map(ranks).to_dict().values()) if isinstance(ranks, (Mapping, ChoiceMap)) else [ranks]
    if not 2 <= bins <= draws + 1:
        raise ValueError(f"rank_uniformity_pvalue needs 2 <= bins <= draws + 1 = {draws + 1}, got bins={bins}.")
    edges = np.floor(np.arange(bins + 1) * (draws + 1) / bins).astype(int)
    expected_fraction = np.diff(edges) / (draws + 1)
    pvalues = []
    for leaf in leaves:
        values = np.asarray(leaf).reshape(np.shape(leaf)[0], -1)
        if values.min() < 0 or values.max() > draws:
            raise ValueError(f"ranks must lie in [0, {draws}], got values in [{values.min()}, {values.max()}].")
        simulations = values.shape[0]
        for column in values.T:
            # bin b holds the integers edges[b] .. edges[b + 1] - 1
            counts = np.histogram(column, bins=edges - 0.5)[0]
            expected = simulations * expected_fraction
            statistic = float(np.sum((counts - expected) ** 2 / expected))
            pvalues.append(float(jax.scipy.special.gammaincc((bins - 1) / 2.0, statistic / 2.0)))
    return float(min(1.0, len(pvalues) * min(pvalues)))
