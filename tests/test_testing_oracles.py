"""ppl.testing's exact oracles (against independent computations) and SBC helpers."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist, testing

ORACLE_TOL = dict(rtol=1e-4, atol=1e-4)
# jitted once each: a jitted oracle compiles in one go, faster than op by op
linear_regression_log_evidence = jax.jit(testing.linear_regression_log_evidence)
linear_regression_posterior = jax.jit(testing.linear_regression_posterior)
kalman_filter = jax.jit(testing.kalman_filter)


# --- oracles against independent float64 computations ------------------------------


def _normal_logpdf(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)


def _mvn_logpdf(x, mean, covariance):
    diff = x - mean
    _, logdet = np.linalg.slogdet(covariance)
    return -0.5 * (diff @ np.linalg.solve(covariance, diff) + logdet + len(x) * np.log(2 * np.pi))


def test_normal_normal_evidence_and_posterior_by_quadrature():
    y = np.array([1.3, 0.2, 0.9, 1.7])
    grid = np.linspace(-15.0, 15.0, 300_001)
    log_joint = _normal_logpdf(grid, 0.5, 2.0) + _normal_logpdf(y[:, None], grid, 0.7).sum(0)
    density = np.exp(log_joint)
    evidence = np.trapezoid(density, grid)
    np.testing.assert_allclose(testing.normal_normal_log_evidence(y, 0.5, 2.0, 0.7), np.log(evidence), **ORACLE_TOL)
    mean, std = testing.normal_normal_posterior(y, 0.5, 2.0, 0.7)
    posterior_mean = np.trapezoid(grid * density, grid) / evidence
    posterior_var = np.trapezoid((grid - posterior_mean) ** 2 * density, grid) / evidence
    np.testing.assert_allclose([mean, std], [posterior_mean, np.sqrt(posterior_var)], **ORACLE_TOL)


def test_beta_bernoulli_evidence_by_quadrature():
    flips = np.array([1, 1, 0, 1, 0, 1, 1])
    a, b = 2.0, 3.0
    grid = np.linspace(1e-9, 1 - 1e-9, 400_001)
    log_beta_function = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    log_prior = (a - 1) * np.log(grid) + (b - 1) * np.log1p(-grid) - log_beta_function
    k, m = flips.sum(), len(flips)
    evidence = np.trapezoid(np.exp(log_prior + k * np.log(grid) + (m - k) * np.log1p(-grid)), grid)
    np.testing.assert_allclose(testing.beta_bernoulli_log_evidence(flips, a, b), np.log(evidence), **ORACLE_TOL)
    np.testing.assert_allclose(testing.beta_bernoulli_posterior(flips, a, b), (a + k, b + m - k))


def test_linear_regression_evidence_satisfies_bayes_rule_at_any_point():
    rng = np.random.default_rng(0)
    X = np.stack([np.ones(12), np.linspace(-1, 1, 12), rng.normal(size=12)], axis=1)
    y = X @ np.array([0.5, -1.0, 0.3]) + 0.4 * rng.normal(size=12)
    prior_mean, prior_cov, noise = np.array([0.0, 0.2, -0.1]), np.diag([1.0, 2.0, 0.5]), 0.4
    # posterior in float64, written independently of ppl.testing
    cov = np.linalg.inv(np.linalg.inv(prior_cov) + X.T @ X / noise**2)
    mean = cov @ (np.linalg.solve(prior_cov, prior_mean) + X.T @ y / noise**2)
    got_mean, got_cov = linear_regression_posterior(X, y, prior_mean, prior_cov, noise)
    np.testing.assert_allclose(got_mean, mean, **ORACLE_TOL)
    np.testing.assert_allclose(got_cov, cov, **ORACLE_TOL)
    got = linear_regression_log_evidence(X, y, prior_mean, prior_cov, noise)
    for w in (mean, np.array([1.0, -2.0, 0.5])):
        # log p(y) = log p(y | w) + log p(w) - log p(w | y), whatever w
        expected = (
            _normal_logpdf(y, X @ w, noise).sum() + _mvn_logpdf(w, prior_mean, prior_cov) - _mvn_logpdf(w, mean, cov)
        )
        np.testing.assert_allclose(got, expected, **ORACLE_TOL)


def _linear_gaussian_system():
    A = np.array([[0.9, 0.2], [-0.1, 0.8]])
    Q = np.array([[0.3, 0.05], [0.05, 0.2]])
    H = np.array([[1.0, 0.5]])
    R = np.array([[0.4]])
    m0, P0 = np.array([0.5, -0.3]), np.array([[1.0, 0.2], [0.2, 0.6]])
    ys = np.array([[0.4], [1.1], [-0.2], [0.3], [0.9]])
    return ys, m0, P0, A, Q, H, R


def test_kalman_filter_matches_the_joint_gaussian_of_all_observations():
    ys, m0, P0, A, Q, H, R = _linear_gaussian_system()
    T, dz = len(ys), len(m0)
    # joint of z_0..z_{T-1}: means A^t m0, covariances Cov(z_s, z_t) = A^(t-s) Cov(z_s) for t >= s
    means = [m0]
    marginals = [P0]
    for _ in range(1, T):
        means.append(A @ means[-1])
        marginals.append(A @ marginals[-1] @ A.T + Q)
    joint = np.zeros((T * dz, T * dz))
    for s in range(T):
        for t in range(s, T):
            block = np.linalg.matrix_power(A, t - s) @ marginals[s]
            joint[t * dz : (t + 1) * dz, s * dz : (s + 1) * dz] = block
            joint[s * dz : (s + 1) * dz, t * dz : (t + 1) * dz] = block.T
    emission = np.kron(np.eye(T), H)
    y_mean = emission @ np.concatenate(means)
    y_cov = emission @ joint @ emission.T + np.kron(np.eye(T), R)
    result = kalman_filter(ys, m0, P0, A, Q, H, R)
    np.testing.assert_allclose(result.log_evidence, _mvn_logpdf(ys.ravel(), y_mean, y_cov), **ORACLE_TOL)
    np.testing.assert_allclose(jax.jit(testing.kalman_log_evidence)(ys, m0, P0, A, Q, H, R), result.log_evidence)
    # the last filtered mean is E[z_{T-1} | all y]: Gaussian conditioning of the joint
    cross = joint[-dz:] @ emission.T
    last = means[-1] + cross @ np.linalg.solve(y_cov, ys.ravel() - y_mean)
    np.testing.assert_allclose(result.filtered_means[-1], last, **ORACLE_TOL)
    assert result.filtered_covariances.shape == (T, dz, dz)


def _hmm():
    initial = np.array([0.5, 0.3, 0.2])
    transition = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.25, 0.25, 0.5]])
    emission = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]])
    observations = np.array([0, 1, 1, 2, 0])
    return observations, initial, transition, emission


def test_hmm_forward_matches_enumerating_every_path():
    observations, initial, transition, emission = _hmm()
    T, K = len(observations), len(initial)
    total, last_state = 0.0, np.zeros(K)
    for path in itertools.product(range(K), repeat=T):
        p = initial[path[0]] * emission[path[0], observations[0]]
        for t in range(1, T):
            p *= transition[path[t - 1], path[t]] * emission[path[t], observations[t]]
        total += p
        last_state[path[-1]] += p
    got = testing.hmm_log_evidence(observations, initial, transition, emission)
    np.testing.assert_allclose(got, np.log(total), **ORACLE_TOL)
    log_likelihoods = np.log(emission[:, observations].T)
    result = testing.hmm_forward(initial, transition, log_likelihoods)
    np.testing.assert_allclose(result.filtered_probabilities[-1], last_state / total, **ORACLE_TOL)
    np.testing.assert_allclose(result.filtered_probabilities.sum(1), np.ones(T), rtol=1e-5)


# --- oracles against ppl models (their conventions match the obvious model) ------------


@ppl.model
def linear_gaussian(ys_count, m0, P0, A, Q, H, R):
    z = ppl.sample("z_0", dist.MultivariateNormal(m0, P0))
    ppl.sample("y_0", dist.MultivariateNormal(H @ z, R))
    for t in range(1, ys_count):
        z = ppl.sample(f"z_{t}", dist.MultivariateNormal(A @ z, Q))
        ppl.sample(f"y_{t}", dist.MultivariateNormal(H @ z, R))


@ppl.model
def hidden_markov(count, initial, transition, emission):
    z = ppl.sample("z_0", dist.Categorical(initial))
    ppl.sample("y_0", dist.Categorical(emission[z]))
    for t in range(1, count):
        z = ppl.sample(f"z_{t}", dist.Categorical(transition[z]))
        ppl.sample(f"y_{t}", dist.Categorical(emission[z]))


def test_kalman_and_hmm_oracles_agree_with_importance_on_the_same_models():
    ys, m0, P0, A, Q, H, R = (jnp.asarray(a, jnp.float32) for a in _linear_gaussian_system())
    ys = ys[:3]
    obs = {f"y_{t}": ys[t] for t in range(3)}
    result = ppl.infer.importance(jax.random.key(0), linear_gaussian, obs, 3, m0, P0, A, Q, H, R, n=50_000)
    exact = float(testing.kalman_log_evidence(ys, m0, P0, A, Q, H, R))
    se = float(result.log_evidence_standard_error)
    assert se < 0.05 and abs(float(result.log_evidence) - exact) < 4 * se

    observations, initial, transition, emission = (jnp.asarray(a) for a in _hmm())
    obs = {f"y_{t}": observations[t] for t in range(5)}
    result = ppl.infer.importance(jax.random.key(1), hidden_markov, obs, 5, initial, transition, emission, n=20_000)
    exact = float(testing.hmm_log_evidence(observations, initial, transition, emission))
    se = float(result.log_evidence_standard_error)
    assert se < 0.05 and abs(float(result.log_evidence) - exact) < 4 * se


# --- simulation-based calibration ------------------------------------------------------

SIMULATIONS, DRAWS, PARTICLES = 400, 99, 1000
CALIBRATED, MISCALIBRATED = 1e-3, 1e-6


@ppl.model
def location():
    mu = ppl.sample("mu", dist.Normal(0.5, 2.0))
    ppl.sample("y", dist.Normal(mu, 1.0).expand([5]).to_event(1))


@ppl.model
def coin():
    p = ppl.sample("p", dist.Beta(2.0, 3.0))
    ppl.sample("flips", dist.Bernoulli(p).expand([8]).to_event(1))


DESIGN = jnp.stack([jnp.ones(8), jnp.linspace(-1.0, 1.0, 8)], axis=1)


@ppl.model
def regression(design):
    w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    ppl.sample("y", dist.Normal(design @ w, 1.0).to_event(1))


SBC_MODELS = {
    "normal": (location, (), "mu", "y"),
    "beta-bernoulli": (coin, (), "p", "flips"),
    "regression": (regression, (DESIGN,), "w", "y"),
}


def importance_resampling(model, args, particles=PARTICLES):
    def sampler(key, observed):
        run_key, resample_key = jax.random.split(key)
        result = ppl.infer.importance(run_key, model, observed, *args, n=particles)
        return ppl.infer.importance_resample(resample_key, result, DRAWS)

    return sampler


def _sbc_pvalue(name, sampler, seed=0):
    model, args, latent, observed = SBC_MODELS[name]
    ranks = testing.sbc_ranks(
        jax.random.key(seed), model, args, sampler, latents=[latent], observations=[observed],
        simulations=SIMULATIONS, draws=DRAWS,
    )
    assert ranks[latent].shape[0] == SIMULATIONS and ranks[latent].dtype == jnp.int32
    return testing.rank_uniformity_pvalue(ranks, DRAWS, bins=10)


@pytest.mark.parametrize(
    "name",
    [
        "normal",
        pytest.param("beta-bernoulli", marks=pytest.mark.slow),
        pytest.param("regression", marks=pytest.mark.slow),
    ],
)
def test_importance_resampling_is_calibrated(name):
    model, args, _, _ = SBC_MODELS[name]
    assert _sbc_pvalue(name, importance_resampling(model, args)) > CALIBRATED


def test_sbc_fails_a_sampler_biased_by_half_a_posterior_standard_deviation():
    def exact(key, observed, shift=0.0):
        mean, std = testing.normal_normal_posterior(observed["y"], 0.5, 2.0, 1.0)
        return ppl.ChoiceMap({"mu": mean + shift * std + std * jax.random.normal(key, (DRAWS,))})

    assert _sbc_pvalue("normal", exact) > CALIBRATED  # the exact posterior passes ...
    assert _sbc_pvalue("normal", lambda k, o: exact(k, o, shift=0.5)) < MISCALIBRATED  # ... shifted, it fails


def test_sbc_fails_importance_resampling_with_a_single_particle():
    # one particle is a prior draw: the "posterior" ignores the data
    sampler = importance_resampling(regression, (DESIGN,), particles=1)
    assert _sbc_pvalue("regression", sampler) < MISCALIBRATED


def test_sbc_errors_name_the_problem():
    with pytest.raises(ppl.errors.UnknownAddressError, match="Did you mean 'mu'"):
        testing.sbc_ranks(jax.random.key(0), location, (), None, latents=["mu_"], observations=["y"],
                          simulations=2, draws=3)
    with pytest.raises(ValueError, match="expected \\(draws,\\)"):
        testing.sbc_ranks(jax.random.key(0), location, (), lambda k, o: {"mu": jnp.zeros(2)},
                          latents=["mu"], observations=["y"], simulations=2, draws=3)


def test_rank_uniformity_pvalue_on_known_rank_sets():
    uniform = np.tile(np.arange(100), 10)[:, None]  # exactly flat: statistic 0
    assert testing.rank_uniformity_pvalue(uniform, draws=99, bins=10) == pytest.approx(1.0)
    piled = np.zeros((1000, 1), int)
    assert testing.rank_uniformity_pvalue(piled, draws=99, bins=10) < 1e-10
    # a dict of latents: Bonferroni over all elements
    rng = np.random.default_rng(0)
    ranks = {"a": rng.integers(0, 100, (1000, 2)), "b": piled[:, 0]}
    assert testing.rank_uniformity_pvalue(ranks, draws=99) < 1e-10
    with pytest.raises(ValueError, match="bins"):
        testing.rank_uniformity_pvalue(uniform, draws=99, bins=101)
    with pytest.raises(ValueError, match="ranks must lie"):
        testing.rank_uniformity_pvalue(uniform + 1, draws=99)
