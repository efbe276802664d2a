"""stdlib.sequences.switching (regimes): the forward algorithm against enumeration over every regime path and
against ppl.testing.hmm_forward, a particle filter against the exact evidence, forward-backward
against enumeration, forecasts against the exact predictive, derivatives, and the explicit model.

Tolerances: identities between two float32 computations of one density at ~1e-5; Monte Carlo
comparisons at 4 standard errors measured from the samples (or replicate runs)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl.errors import CompositionError
from ppl.infer.smc import smc
from ppl.testing import check_interface, check_vmap_matches_loop, hmm_forward
from stdlib.sequences.components import HYPER_SIZE
from stdlib.sequences.switching import (
    forecast_paths,
    hmm,
    levels_and_stay,
    log_likelihood,
    regimes,
    smooth,
    transition_matrix,
)

KEY = jax.random.key(0)
DENSITY = {"rtol": 1e-5, "atol": 1e-4}

# ---------------------------------------------------------------------------
# Shared data (module level, so compiled programs are shared between tests)
# ---------------------------------------------------------------------------

T = 6
THETAS = {2: jnp.array([-0.5, 1.5, 0.8, 0.0]), 3: jnp.array([-1.0, 0.8, 1.2, 0.7])}
Y = jnp.array([-0.4, -0.7, jnp.nan, 1.1, 0.9, 1.6])  # the third point is missing
OBSERVED = ~jnp.isnan(Y)
OFFSET = jnp.array([0.1, -0.2, 0.3, 0.0, 0.2, -0.1])
NOISES = {2: jnp.asarray(0.3), 3: jnp.array([0.2, 0.3, 0.4, 0.25, 0.5, 0.35])}  # scalar and per point

log_likelihood_jit = jax.jit(log_likelihood, static_argnums=1)
smooth_jit = jax.jit(smooth, static_argnums=1)


def paths(k, steps=T):
    return jnp.array(list(itertools.product(range(k), repeat=steps)))  # (k^T, T)


def enumerated_log_joint(theta, k, y, noise_variance, observed, offset):
    """``log p(y, path)`` ``(k^T,)`` for every regime path, written out term by term (no recursion)."""
    levels, stay = levels_and_stay(theta, k)
    every = paths(k, y.shape[0])
    log_a = jnp.log(transition_matrix(stay, k))
    log_prior = -jnp.log(k) + jnp.sum(log_a[every[:, :-1], every[:, 1:]], axis=1)
    variance = jnp.broadcast_to(noise_variance, y.shape)
    mean = offset + levels[every]
    log_points = -0.5 * (jnp.log(2 * jnp.pi * variance) + (jnp.where(observed, y, 0.0) - mean) ** 2 / variance)
    return log_prior + jnp.sum(jnp.where(observed, log_points, 0.0), axis=1)


def emission_log_likelihoods(theta, k, y, noise_variance, observed, offset):
    levels, _ = levels_and_stay(theta, k)
    variance = np.broadcast_to(np.asarray(noise_variance, np.float64), y.shape)[:, None]
    mean = np.asarray(offset, np.float64)[:, None] + np.asarray(levels, np.float64)[None, :]
    log_points = -0.5 * (np.log(2 * np.pi * variance) + (np.asarray(y, np.float64)[:, None] - mean) ** 2 / variance)
    return np.where(np.asarray(observed)[:, None], log_points, 0.0)


# ---------------------------------------------------------------------------
# The component
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3])
def test_the_component_describes_its_hyperparameters_and_refuses_a_state_space_form(k):
    component = regimes(k)
    gaps = tuple(f"gap_{j}" for j in range(2, k + 1))
    assert component.hyper_names == ("level_1", *gaps, "stay")
    assert (component.name, component.kind, component.dim, component.role) == (f"regimes({k})", "regimes", k, "regimes")
    np.testing.assert_array_equal(component.observation, np.zeros(k))
    with pytest.raises(CompositionError, match="not linear-Gaussian"):
        component.transition(jnp.zeros(HYPER_SIZE), 0.1, None)
    with pytest.raises(CompositionError, match="not linear-Gaussian"):
        component.initial(jnp.zeros(HYPER_SIZE), None)
    # the prior medians: level 0, gaps 0.674 * gap_scale, stay 0.75
    theta = component.settings(jnp.zeros(k + 1))
    np.testing.assert_allclose(theta, [0.0, *[0.6744898] * (k - 1), 0.75, *[0.0] * (HYPER_SIZE - k - 1)], rtol=1e-5)


@pytest.mark.parametrize("k", [1, 4, 2.0, True])
def test_a_number_of_regimes_outside_two_and_three_is_refused(k):
    with pytest.raises(CompositionError, match="regimes.2. or regimes.3."):
        regimes(k)


def test_a_scale_that_is_not_positive_is_refused():
    with pytest.raises(CompositionError, match="gap_scale must be a positive number"):
        regimes(2, gap_scale=0.0)


def test_levels_are_cumulative_gaps_and_rows_of_the_transition_matrix_sum_to_one():
    levels, stay = levels_and_stay(THETAS[3], 3)
    np.testing.assert_allclose(levels, [-1.0, -0.2, 1.0], rtol=1e-6)
    assert float(stay) == pytest.approx(0.7)
    matrix = transition_matrix(0.7, 3)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(jnp.diag(matrix), 0.7, rtol=1e-6)
    np.testing.assert_allclose(matrix[0, 1], 0.15, rtol=1e-6)


# ---------------------------------------------------------------------------
# Exact inference against enumeration and the HMM oracle
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3])
def test_log_likelihood_equals_enumeration_over_every_regime_path(k):
    theta, noise = THETAS[k], NOISES[k]
    exact = jax.scipy.special.logsumexp(enumerated_log_joint(theta, k, Y, noise, OBSERVED, OFFSET))
    np.testing.assert_allclose(log_likelihood_jit(theta, k, Y, noise, OBSERVED, OFFSET), exact, **DENSITY)
    # without an offset (the default is 0)
    exact = jax.scipy.special.logsumexp(enumerated_log_joint(theta, k, Y, noise, OBSERVED, jnp.zeros(T)))
    np.testing.assert_allclose(log_likelihood_jit(theta, k, Y, noise, OBSERVED), exact, **DENSITY)


@pytest.mark.parametrize("k", [2, 3])
def test_log_likelihood_equals_the_hmm_forward_oracle(k):
    theta, noise = THETAS[k], NOISES[k]
    emissions = emission_log_likelihoods(theta, k, Y, noise, OBSERVED, OFFSET)
    _, stay = levels_and_stay(theta, k)
    oracle = hmm_forward(jnp.full(k, 1.0 / k), transition_matrix(stay, k), emissions)
    np.testing.assert_allclose(log_likelihood_jit(theta, k, Y, noise, OBSERVED, OFFSET), oracle.log_evidence,
                               **DENSITY)
    # the last smoothed row is the last filtered row
    np.testing.assert_allclose(smooth_jit(theta, k, Y, noise, OBSERVED, OFFSET)[-1], oracle.filtered_probabilities[-1],
                               rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # interface/vmap checks: compile-bound, run in CI's slow tier
def test_a_batch_of_settings_is_one_vmap():
    thetas = jnp.stack([THETAS[3], THETAS[3].at[3].set(0.55), THETAS[3].at[1].set(0.0)])
    batched = jax.jit(jax.vmap(lambda theta: log_likelihood(theta, 3, Y, NOISES[3], OBSERVED, OFFSET)))(thetas)
    looped = [log_likelihood_jit(theta, 3, Y, NOISES[3], OBSERVED, OFFSET) for theta in thetas]
    np.testing.assert_allclose(batched, looped, **DENSITY)
    probabilities = jax.vmap(lambda theta: smooth(theta, 3, Y, NOISES[3], OBSERVED, OFFSET))(thetas)
    assert probabilities.shape == (3, T, 3)


def test_a_missing_point_contributes_nothing_but_the_chain_still_moves():
    theta, noise = THETAS[2], NOISES[2]
    everything_missing = log_likelihood_jit(theta, 2, Y, noise, jnp.zeros(T, bool), OFFSET)
    assert float(everything_missing) == 0.0
    # dropping the missing point from the series instead would skip a step of the chain: a different value
    kept = jnp.array([0, 1, 3, 4, 5])
    shorter = log_likelihood_jit(theta, 2, Y[kept], noise, OBSERVED[kept], OFFSET[kept])
    assert abs(float(shorter - log_likelihood_jit(theta, 2, Y, noise, OBSERVED, OFFSET))) > 1e-3


@pytest.mark.parametrize("k", [2, 3])
def test_smoothed_regime_probabilities_equal_enumeration(k):
    theta, noise = THETAS[k], NOISES[k]
    log_joint = enumerated_log_joint(theta, k, Y, noise, OBSERVED, OFFSET)
    weights = jax.nn.softmax(log_joint)
    every = paths(k)
    exact = jnp.stack([jnp.stack([jnp.sum(weights * (every[:, t] == j)) for j in range(k)]) for t in range(T)])
    probabilities = smooth_jit(theta, k, Y, noise, OBSERVED, OFFSET)
    assert probabilities.shape == (T, k)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probabilities, exact, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------
# Derivatives (the grammar's Laplace approximation takes a Hessian)
# ---------------------------------------------------------------------------


def _objective(k):
    def objective(theta, noise_variance):
        return log_likelihood(theta, k, Y, noise_variance, OBSERVED, OFFSET)

    return objective


@pytest.mark.slow  # compile-bound (7 s each); keeps the default run under 10 min on 2 cores
@pytest.mark.parametrize("k", [2, 3])
def test_gradient_matches_enumeration_and_the_hessian_is_finite_at_the_prior_medians_and_at_stay_near_one(k):
    component = regimes(k)
    objective = _objective(k)
    gradient = jax.jit(jax.grad(objective, argnums=(0, 1)))
    hessian = jax.jit(jax.hessian(objective, argnums=(0, 1)))
    noise = jnp.full(T, 0.3)
    medians = component.settings(jnp.zeros(k + 1))
    near_one = component.settings(jnp.zeros(k + 1).at[k].set(8.0))  # stay = 1 - 5e-7
    assert float(near_one[k]) > 0.999999
    one = medians.at[k].set(1.0)  # the edge of the prior's support
    equal_levels = medians.at[1:k].set(0.0)  # gaps of 0: every level the same
    for theta in (medians, near_one, one, equal_levels):
        for tree in (gradient(theta, noise), hessian(theta, noise)):
            assert ppl.testing.finite(tree), f"non-finite derivative at theta={theta}"

    def enumerated(theta, noise_variance):
        return jax.scipy.special.logsumexp(enumerated_log_joint(theta, k, Y, noise_variance, OBSERVED, OFFSET))

    exact = jax.grad(enumerated, argnums=(0, 1))(medians, noise)
    for ours, theirs in zip(gradient(medians, noise), exact):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_derivatives_ignore_what_missing_points_hold():
    def objective(theta, noise_variance, offset):
        return log_likelihood(theta, 2, Y, noise_variance, OBSERVED, offset)

    noise = jnp.full(T, 0.3).at[2].set(jnp.nan)  # a missing point may carry NaN anywhere
    offset = OFFSET.at[2].set(jnp.nan)
    value, gradient = jax.jit(jax.value_and_grad(objective, argnums=(0, 1, 2)))(THETAS[2], noise, offset)
    assert np.isfinite(float(value)) and ppl.testing.finite(gradient)
    assert float(gradient[1][2]) == 0.0 and float(gradient[2][2]) == 0.0
    assert ppl.testing.finite(jax.jit(jax.hessian(objective, argnums=(0, 1, 2)))(THETAS[2], noise, offset))


# ---------------------------------------------------------------------------
# A particle filter on the same chain estimates the exact evidence
# ---------------------------------------------------------------------------

SMC_STEPS = 40
SMC_LEVELS = {2: jnp.array([-1.0, 1.0]), 3: jnp.array([-1.0, 0.0, 1.5])}
SMC_STAY, SMC_NOISE = 0.9, 0.6


@pytest.mark.parametrize("k", [2, 3])
def test_particle_filter_evidence_is_within_four_standard_errors_of_the_forward_algorithm(k):
    chain = hmm(k, SMC_STEPS)
    assert hmm(k, SMC_STEPS) is chain  # one object per (k, steps): compiled programs are shared
    levels = SMC_LEVELS[k]
    ys = chain.simulate(jax.random.key(k), jnp.int32(-1), levels, SMC_STAY, SMC_NOISE).choices["y"]
    theta = jnp.concatenate([levels[:1], jnp.diff(levels), jnp.array([SMC_STAY])])
    theta = jnp.pad(theta, (0, HYPER_SIZE - theta.shape[0]))
    exact = log_likelihood_jit(theta, k, ys, SMC_NOISE**2, jnp.ones(SMC_STEPS, bool))

    def run(key):
        return smc(key, chain, {"y": ys}, jnp.int32(-1), levels, SMC_STAY, SMC_NOISE, n=1000).log_evidence

    runs = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(10 + k), 16))
    assert np.all(np.isfinite(runs))
    estimate = ppl.infer.combine_log_evidence(runs)
    value, se = float(estimate.log_evidence), float(estimate.standard_error)
    assert 0 < se < 0.15, f"standard error {se} too large for the test to mean anything"
    assert abs(value - float(exact)) < 4 * se, f"estimate {value} vs exact {float(exact)} (se {se})"


@pytest.mark.slow  # interface/vmap checks: compile-bound, run in CI's slow tier
def test_the_hmm_step_obeys_the_interface_contracts():
    chain = hmm(2, 5)
    args = (jnp.int32(-1), SMC_LEVELS[2], SMC_STAY, SMC_NOISE)
    check_interface(chain, args, {"y": jnp.linspace(-1.0, 1.0, 5)})
    trace = chain.simulate(KEY, *args)
    # the score is the chain's path probability plus the Normal observations
    regime = trace.choices["regime"]
    log_a = jnp.log(transition_matrix(SMC_STAY, 2))
    expected = (-jnp.log(2.0) + jnp.sum(log_a[regime[:-1], regime[1:]])
                + jnp.sum(jax.scipy.stats.norm.logpdf(trace.choices["y"], SMC_LEVELS[2][regime], SMC_NOISE)))
    np.testing.assert_allclose(trace.score, expected, **DENSITY)


# ---------------------------------------------------------------------------
# Forecasts
# ---------------------------------------------------------------------------


def test_forecast_paths_match_the_exact_predictive_mean_and_variance():
    k, n, horizon, noise = 3, 20_000, 3, 0.04
    theta = THETAS[3]
    last = jnp.array([0.2, 0.5, 0.3])
    samples = jax.jit(forecast_paths, static_argnums=(2, 4, 6))(KEY, theta, k, last, horizon, noise, n)
    assert samples.shape == (n, horizon)
    levels, stay = (np.asarray(a, np.float64) for a in levels_and_stay(theta, k))
    matrix = np.asarray(transition_matrix(stay, k), np.float64)
    probabilities = np.asarray(last, np.float64)
    for h in range(horizon):
        probabilities = probabilities @ matrix  # the chain moves once before the first forecast
        mean = probabilities @ levels
        variance = probabilities @ levels**2 - mean**2 + noise
        column = np.asarray(samples[:, h], np.float64)
        sample_variance = column.var()
        fourth = np.mean((column - column.mean()) ** 4)
        assert abs(column.mean() - mean) < 4 * np.sqrt(variance / n), f"step {h}"
        assert abs(sample_variance - variance) < 4 * np.sqrt((fourth - sample_variance**2) / n), f"step {h}"


def test_forecast_paths_take_a_variance_per_step_and_a_certain_regime_stays_on_its_level():
    theta = jnp.array([0.0, 2.0, 1.0, 0.0])  # stay = 1: the regime never changes
    samples = forecast_paths(KEY, theta, 2, jnp.array([0.0, 1.0]), 4, jnp.array([0.0, 0.0, 0.0, 1.0]), 50)
    np.testing.assert_allclose(samples[:, :3], 2.0)
    assert float(jnp.std(samples[:, 3])) > 0.5
    with pytest.raises(CompositionError, match="horizon must be a positive Python int"):
        forecast_paths(KEY, theta, 2, jnp.array([0.0, 1.0]), 0, 0.1, 10)


# ---------------------------------------------------------------------------
# The explicit generative model
# ---------------------------------------------------------------------------

U = jnp.linspace(0.0, 1.0, 8)


@pytest.mark.parametrize("k", [2, 3])
def test_the_explicit_model_returns_the_level_of_each_point_s_regime(k):
    component = regimes(k)
    trace = component.model.simulate(jax.random.key(3), U)
    values = trace.retval
    assert values.shape == (8,)
    assert len(np.unique(np.asarray(values))) <= k
    levels, stay = levels_and_stay(_hyper(trace, component), k)
    path = trace.choices["regimes/regime"]
    assert path.shape == (8,)
    np.testing.assert_allclose(values, levels[path], rtol=1e-6)
    # the score: the hyperparameters' priors, a uniform first regime, then the chain's transitions
    hyper_score = sum(prior.log_prob(trace.choices[f"hyper/{name}"]) for name, prior in component.priors)
    log_a = jnp.log(transition_matrix(stay, k))
    expected = hyper_score - jnp.log(k) + jnp.sum(log_a[path[:-1], path[1:]])
    np.testing.assert_allclose(trace.score, expected, **DENSITY)


def _hyper(trace, component):
    values = [trace.choices[f"hyper/{name}"] for name in component.hyper_names]
    return jnp.pad(jnp.stack(values), (0, HYPER_SIZE - len(values)))


@pytest.mark.slow  # interface checks: compile-bound, run in CI's slow tier
@pytest.mark.parametrize("k", [2, 3])
def test_the_explicit_model_obeys_the_interface_contracts(k):
    model = regimes(k).model
    check_interface(model, (U,), {"hyper/stay": 0.95, "regimes/regime": jnp.array([0, 0, 1, 1, 1, 0, 0, 1])})
    if k == 2:  # one vmap check is enough: both models run the same code
        check_vmap_matches_loop(model, (U,), KEY, n=64)


# ---------------------------------------------------------------------------
# In the grammar: scored exactly by the forward algorithm, explained, forecast
# ---------------------------------------------------------------------------

from stdlib import sequences as seq  # noqa: E402
from stdlib.sequences.components import TimeScale  # noqa: E402
from stdlib.sequences.grammar import Grammar  # noqa: E402

GRAMMAR = Grammar((seq.level(), seq.linear_trend(), seq.white_noise(), regimes(2)), depth=2, candidates=8)


def test_regimes_combine_only_with_white_noise_and_never_with_a_changepoint():
    def valid(expression):
        return bool(GRAMMAR.slots_of(GRAMMAR.space.encode(expression))[2])

    assert valid("regimes(2)") and valid(("+", "regimes(2)", "white_noise"))
    assert not valid(("+", "regimes(2)", "linear_trend")) and not valid(("+", "level", "regimes(2)"))
    assert not valid(("changepoint", "regimes(2)", "white_noise"))
    assert valid(("+", "level", "linear_trend")) and valid(("changepoint", "level", "level"))


@pytest.mark.slow  # compile-bound (8-20 s); keeps the default run under 10 min on 2 cores
def test_the_grammar_scores_a_regimes_structure_by_the_forward_algorithm():
    code = GRAMMAR.space.encode(("+", "white_noise", "regimes(2)"))
    kinds, sides, _ = GRAMMAR.slots_of(code)
    standard = jnp.array([[0.4, 0.0, 0.0], [-0.3, 0.6, 1.1]])  # white noise's scale; regimes' three settings
    thetas = GRAMMAR.thetas(kinds, standard)
    y = jnp.array([0.1, -0.2, 0.0, 1.8, 2.2, jnp.nan, 1.9, 0.2, -0.1, 0.0])
    observed = ~jnp.isnan(y)
    u = jnp.linspace(0.0, 1.0, y.shape[0])
    noise = jnp.asarray(0.3)
    got = GRAMMAR.candidate_log_likelihoods(kinds, sides, thetas, noise, u, TimeScale(9.0, 1 / 9), jnp.nan_to_num(y),
                                            observed)
    slot = int(np.flatnonzero(np.asarray(kinds) == 4)[0])  # regimes(2) is the fourth component
    white = float(thetas[1 - slot][0])
    expected = log_likelihood(thetas[slot], 2, jnp.nan_to_num(y), noise**2 + white**2, observed)
    assert got.shape == (GRAMMAR.candidate_count(10),)
    np.testing.assert_allclose(np.asarray(got), float(expected), **DENSITY)


SWITCHING = np.where(np.repeat([0, 1, 0, 1, 0, 1], [15, 12, 18, 10, 14, 11]) == 1, 2.0, 0.0) \
    + 0.3 * np.random.default_rng(1).normal(size=80)


@pytest.mark.slow  # ~60 s: discover compiles its scorer
def test_discover_explains_a_switching_series_by_regimes():
    explained = seq.discover(jax.random.key(0), SWITCHING, budget=4, progress=False, name="switching",
                             components=(seq.level(), seq.random_walk(), seq.ar(1), regimes(2)))
    assert explained.structure == "regimes(2)", explained
    assert explained.posterior[0][1] > 0.9
    (fit,) = explained.components
    assert fit["kind"] == "regimes" and np.allclose(fit["mean"], explained.fit)
    assert np.sqrt(np.mean((explained.fit - SWITCHING) ** 2)) < 0.4
    text = explained.report()
    assert "Switching between 2 levels" in text, text
    paths = explained.forecast(jax.random.key(1), 6, 300)
    assert paths.shape == (300, 6) and np.all(np.isfinite(paths))
    # the last regime is the high one (2.0), which the chain keeps for a while: the first forecast is near it
    assert abs(float(np.median(paths[:, 0])) - 2.0) < 0.4
