"""SMC: particle filters against Kalman / HMM-forward evidences, tempered SMC against
conjugate evidences, SBC, numerical failure, validation, jit/vmap and caching.

Tolerances: an evidence is compared with 4 standard errors measured from the
spread of independent replicate runs (vmapped in one call, pooled with
``combine_log_evidence``); identities (trace scores) at float32 density tolerance.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist
from ppl.infer.smc import smc
from ppl.testing import (
    hmm_log_evidence,
    kalman_filter,
    linear_regression_log_evidence,
    normal_normal_log_evidence,
    rank_uniformity_pvalue,
    sbc_ranks,
)

KEY = jax.random.key(0)
DENSITY = dict(rtol=1e-5, atol=1e-3)

# ---------------------------------------------------------------------------
# Models (module level, so compiled programs are shared between tests)
# ---------------------------------------------------------------------------

A, Q, R = 0.9, 0.5, 1.0
STEPS = 100


@ppl.model
def linear_gaussian(t, x):
    x = ppl.sample("x", dist.Normal(A * x, Q))
    ppl.sample("y", dist.Normal(x, R))
    return x


STATE_SPACE = ppl.unfold(linear_gaussian, STEPS)
YS = STATE_SPACE.simulate(jax.random.key(11), 0.0).choices["y"]


def kalman(ys):
    eye = jnp.eye(1)
    return kalman_filter(ys[:, None], jnp.zeros(1), Q**2 * eye, A * eye, Q**2 * eye, eye, R**2 * eye)


INITIAL = jnp.array([0.6, 0.3, 0.1])
TRANSITION = jnp.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]])
EMISSION = jnp.array([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.05, 0.15, 0.8]])
HMM_STEPS = 50


@ppl.model
def hmm_step(t, z):
    probabilities = jnp.where(t == 0, INITIAL, TRANSITION[z])
    z = ppl.sample("z", dist.Categorical(probabilities))
    ppl.sample("y", dist.Categorical(EMISSION[z]))
    return z


HMM = ppl.unfold(hmm_step, HMM_STEPS)
HMM_YS = HMM.simulate(jax.random.key(12), jnp.int32(0)).choices["y"]


@ppl.model
def location(count):
    mu = ppl.sample("mu", dist.Normal(0.5, 2.0))
    ppl.sample("y", dist.Normal(mu, 1.0).expand([count]).to_event(1))
    return mu


Y = jnp.array([1.2, 0.7, 2.1, 1.6, 0.9, 1.4, 1.1, 0.2])


@ppl.model
def regression(design):
    w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    ppl.sample("y", dist.Normal(design @ w, 0.5).to_event(1))


DESIGN = jnp.stack([jnp.ones(20), jnp.linspace(-1.0, 1.0, 20)], axis=1)
RESPONSE = DESIGN @ jnp.array([0.3, -0.8]) + 0.5 * jax.random.normal(jax.random.key(7), (20,))


def move_mu(target):
    return ppl.infer.mcmc.random_walk(target, ["mu"], 0.4)


def move_w(target):
    return ppl.infer.mcmc.random_walk(target, ["w"], 0.15)


def move_x(target):
    return ppl.infer.mcmc.random_walk(target, ["x"], 0.5)


def replicate_log_evidences(run, replicates, key=KEY):
    """The log evidences of ``replicates`` independent runs, vmapped in one call."""
    log_evidences = jax.jit(jax.vmap(run))(jax.random.split(key, replicates))
    assert np.all(np.isfinite(log_evidences))
    return log_evidences


def replicate_evidence(run, replicates, key=KEY):
    """Pooled estimate and between-run standard error of ``replicates`` vmapped runs."""
    return ppl.infer.combine_log_evidence(replicate_log_evidences(run, replicates, key))


def assert_within_four_standard_errors(estimate, exact, largest_se):
    value, se = float(estimate.log_evidence), float(estimate.standard_error)
    assert 0 < se < largest_se, f"standard error {se} too large for the test to mean anything"
    assert abs(value - float(exact)) < 4 * se, f"estimate {value} vs exact {float(exact)} (se {se})"


def assert_scores_match(model, traces, *args):
    log_density = jax.jit(jax.vmap(lambda c: model.assess(c, *args).log_density))(traces.choices)
    np.testing.assert_allclose(log_density, traces.score, **DENSITY)


# ---------------------------------------------------------------------------
# Particle filters: exact evidences
# ---------------------------------------------------------------------------


def test_state_space_evidence_within_four_standard_errors_of_the_kalman_filter():
    runs = replicate_log_evidences(lambda k: smc(k, STATE_SPACE, {"y": YS}, 0.0, n=1000).log_evidence, 32)
    exact = kalman(YS).log_evidence
    assert_within_four_standard_errors(ppl.infer.combine_log_evidence(runs), exact, 0.15)
    # one run at n = 1,000 is within half a nat (root-mean-square error over the runs)
    assert float(jnp.sqrt(jnp.mean((runs - exact) ** 2))) < 0.5


def test_one_filter_run_returns_weighted_trajectories():
    result = smc(KEY, STATE_SPACE, {"y": YS}, 0.0, n=1000)
    exact = kalman(YS)
    assert abs(float(result.log_evidence - exact.log_evidence)) < 1.5  # ~4.5 run-to-run sd
    np.testing.assert_allclose(jnp.sum(result.log_evidence_increments), result.log_evidence, rtol=1e-5)
    assert result.traces.choices["x"].shape == (1000, STEPS)
    np.testing.assert_array_equal(result.traces.choices["y"], jnp.broadcast_to(YS, (1000, STEPS)))
    assert result.traces.args == (0.0,)
    assert_scores_match(STATE_SPACE, result.traces, 0.0)
    np.testing.assert_allclose(result.traces.retval, result.traces.choices["x"])
    # the final states are the filtering distribution p(x_T-1 | y): its mean and spread
    mean = float(jnp.sum(result.weights * result.states))
    kalman_mean, kalman_std = float(exact.filtered_means[-1, 0]), float(jnp.sqrt(exact.filtered_covariances[-1, 0, 0]))
    ess = float(result.effective_sample_sizes[-1])
    assert abs(mean - kalman_mean) < 4 * kalman_std / np.sqrt(ess)
    np.testing.assert_array_equal(result.states, result.traces.choices["x"][:, -1])
    # resampling is triggered by the ESS, never after the last step
    ess_per_step = np.asarray(result.effective_sample_sizes)
    np.testing.assert_array_equal(np.asarray(result.resampled)[:-1], ess_per_step[:-1] < 500)
    assert not result.resampled[-1]
    assert result.ancestors.shape == (STEPS, 1000)


def test_hmm_evidence_within_four_standard_errors_of_the_forward_algorithm():
    estimate = replicate_evidence(lambda k: smc(k, HMM, {"y": HMM_YS}, jnp.int32(0), n=500).log_evidence, 32)
    exact = hmm_log_evidence(HMM_YS, INITIAL, TRANSITION, EMISSION)
    assert_within_four_standard_errors(estimate, exact, 0.1)


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "method", ["residual", pytest.param("stratified", marks=SLOW), pytest.param("multinomial", marks=SLOW)]
)
def test_every_resampling_method_estimates_the_evidence(method):
    run = lambda k: smc(k, STATE_SPACE, {"y": YS}, 0.0, n=1000, resample=method).log_evidence  # noqa: E731
    assert_within_four_standard_errors(replicate_evidence(run, 16), kalman(YS).log_evidence, 0.2)


def test_ess_zero_never_resamples_and_ess_one_resamples_after_every_step():
    chain = ppl.unfold(linear_gaussian, 6)
    obs = {"y": YS[:6]}
    never = smc(KEY, chain, obs, 0.0, n=64, ess=0.0)
    always = smc(KEY, chain, obs, 0.0, n=64, ess=1.0)
    assert not never.resampled.any()
    np.testing.assert_array_equal(never.ancestors, jnp.broadcast_to(jnp.arange(64), (6, 64)))
    np.testing.assert_array_equal(always.resampled, [True] * 5 + [False])
    # without resampling the filter is importance sampling with the prior: weights = likelihoods
    likelihood = dist.Normal(never.traces.choices["x"], R).log_prob(YS[:6]).sum(axis=1)
    np.testing.assert_allclose(never.log_weights, likelihood, rtol=1e-5, atol=1e-4)


def test_rejuvenation_keeps_the_evidence_and_moves_the_particles():
    result = smc(KEY, STATE_SPACE, {"y": YS}, 0.0, n=1000, rejuvenate=move_x, moves=2)
    assert abs(float(result.log_evidence - kalman(YS).log_evidence)) < 1.5
    assert_scores_match(STATE_SPACE, result.traces, 0.0)
    rates = np.asarray(result.acceptance_rates)
    resampled = np.asarray(result.resampled)
    assert np.all(np.isnan(rates[~resampled])) and np.all((rates[resampled] > 0.2) & (rates[resampled] < 1.0))


def test_rejuvenation_at_every_step_keeps_the_evidence():
    # resample when the ESS is low, move every step: weighted particles move too
    runs = jax.jit(jax.vmap(lambda k: smc(k, STATE_SPACE, {"y": YS}, 0.0, n=500, rejuvenate=move_x,
                                          rejuvenate_when="always").log_evidence))(jax.random.split(KEY, 8))
    estimate = ppl.infer.combine_log_evidence(runs)
    assert abs(float(estimate.log_evidence - kalman(YS).log_evidence)) < 4 * float(estimate.standard_error) + 0.05
    result = smc(KEY, STATE_SPACE, {"y": YS}, 0.0, n=500, rejuvenate=move_x, rejuvenate_when="always")
    rates = np.asarray(result.acceptance_rates)
    assert np.all((rates > 0.2) & (rates < 1.0))  # a move at every step, resampled or not
    assert not np.all(np.asarray(result.resampled))
    with pytest.raises(ppl.errors.InferenceError, match="rejuvenate_when"):
        smc(KEY, STATE_SPACE, {"y": YS}, 0.0, n=8, rejuvenate=move_x, rejuvenate_when="sometimes")


@pytest.mark.slow  # compile-bound (8-20 s); keeps the default run under 10 min on 2 cores
def test_seq_is_filtered_part_by_part():
    @ppl.model
    def static_level(x0):
        level = ppl.sample("level", dist.Normal(0.5, 2.0))
        ppl.sample("y", dist.Normal(level, 1.0).expand([4]).to_event(1))
        return jnp.full((4,), level)

    first, second = ppl.unfold(linear_gaussian, 20), ppl.unfold(linear_gaussian, 10)
    composite = ppl.seq(rise=first, flat=static_level, fall=second)
    truth = composite.simulate(jax.random.key(3), 0.0).choices
    obs = {address: truth[address] for address in ("rise/y", "flat/y", "fall/y")}
    # the parts are independent given the arguments: the evidence is the product of theirs
    exact = (
        kalman(truth["rise/y"]).log_evidence
        + normal_normal_log_evidence(truth["flat/y"], 0.5, 2.0, 1.0)
        + kalman(truth["fall/y"]).log_evidence
    )
    runs = jax.jit(jax.vmap(lambda k: smc(k, composite, obs, 0.0, n=500)))(jax.random.split(KEY, 16))
    assert_within_four_standard_errors(ppl.infer.combine_log_evidence(runs.log_evidence), exact, 0.1)
    result = jax.tree.map(lambda leaf: leaf[0], runs)  # one run
    assert result.effective_sample_sizes.shape == (31,)
    assert result.traces.retval.shape == (500, 34)
    assert result.traces.choices["flat/level"].shape == (500,)
    assert set(result.states) == {"rise", "fall"}
    assert_scores_match(composite, result.traces, 0.0)


# ---------------------------------------------------------------------------
# Tempered SMC on static models
# ---------------------------------------------------------------------------


def test_tempered_normal_normal_evidence():
    run = lambda k: smc(k, location, {"y": Y}, 8, n=500, rejuvenate=move_mu).log_evidence  # noqa: E731
    estimate = replicate_evidence(run, 16)
    assert_within_four_standard_errors(estimate, normal_normal_log_evidence(Y, 0.5, 2.0, 1.0), 0.05)


def test_tempered_linear_regression_evidence_and_schedule():
    def run(key):
        return smc(key, regression, {"y": RESPONSE}, DESIGN, n=400, rejuvenate=move_w, moves=2)

    runs = jax.jit(jax.vmap(run))(jax.random.split(KEY, 16))
    exact = linear_regression_log_evidence(DESIGN, RESPONSE, jnp.zeros(2), jnp.eye(2), 0.5)
    assert_within_four_standard_errors(ppl.infer.combine_log_evidence(runs.log_evidence), exact, 0.1)
    result = jax.tree.map(lambda leaf: leaf[0], runs)  # one run; inside jit the stages are padded
    stages = int(np.argmax(np.asarray(result.temperatures) == 1.0)) + 1
    temperatures = np.asarray(result.temperatures)
    assert stages >= 3 and np.all(np.diff(temperatures[:stages]) > 0) and np.all(temperatures[stages:] == 1.0)
    assert np.all(np.isnan(np.asarray(result.effective_sample_sizes)[stages:]))
    np.testing.assert_array_equal(np.asarray(result.log_evidence_increments)[stages:], 0.0)
    # each stage but the last keeps the conditional ESS at ess * n: after resampling, the ESS
    np.testing.assert_allclose(result.effective_sample_sizes[: stages - 1], 200, rtol=0.02)
    rates = np.asarray(result.acceptance_rates)[:stages]
    assert np.all((rates > 0.1) & (rates < 1))
    np.testing.assert_allclose(jnp.sum(result.log_evidence_increments), result.log_evidence, rtol=1e-5)
    assert_scores_match(regression, result.traces, DESIGN)
    assert result.ancestors is None and result.states is None


@pytest.mark.slow
def test_tempered_changepoint_evidence_by_enumeration():
    @ppl.model
    def level(length):
        return jnp.full((length,), ppl.sample("level", dist.Normal(0.0, 2.0)))

    shift = ppl.changepoint(before=level, after=level)

    @ppl.model
    def series(length):
        mean = ppl.sample("mean", shift, length)
        ppl.sample("y", dist.Normal(mean, 0.5).to_event(1))

    length = 10
    ys = jnp.concatenate([jnp.full(4, -1.0), jnp.full(6, 1.5)]) + 0.5 * jax.random.normal(jax.random.key(5), (length,))
    times = jnp.arange(length)

    def given_boundary(boundary):  # y | boundary is Gaussian: two shared levels plus noise
        before = (times < boundary).astype(float)
        covariance = 0.25 * jnp.eye(length) + 4.0 * (jnp.outer(before, before) + jnp.outer(1 - before, 1 - before))
        return dist.MultivariateNormal(jnp.zeros(length), covariance).log_prob(ys)

    boundaries = jnp.arange(1, length)
    exact = jax.scipy.special.logsumexp(jax.vmap(given_boundary)(boundaries)) - jnp.log(length - 1.0)

    def move_levels(target):
        return ppl.infer.mcmc.random_walk(target, ["mean/before/level", "mean/after/level"], 0.3)

    run = lambda k: smc(k, series, {"y": ys}, length, n=500, rejuvenate=move_levels).log_evidence  # noqa: E731
    assert_within_four_standard_errors(replicate_evidence(run, 32), exact, 0.15)


# ---------------------------------------------------------------------------
# Simulation-based calibration
# ---------------------------------------------------------------------------

SBC_STEPS = 4
SBC_CHAIN = ppl.unfold(linear_gaussian, SBC_STEPS)


def _posterior_draws(key, result, draws):
    indices = jax.random.categorical(key, result.log_weights, shape=(draws,))
    return jax.tree.map(lambda leaf: leaf[indices], result.traces.choices)


def test_filter_posterior_is_calibrated():
    def posterior(key, observed):
        run_key, draw_key = jax.random.split(key)
        result = smc(run_key, SBC_CHAIN, observed, 0.0, n=500)
        return _posterior_draws(draw_key, result, 99)

    ranks = sbc_ranks(
        jax.random.key(21), SBC_CHAIN, (0.0,), posterior, latents=["x"], observations=["y"], simulations=200, draws=99
    )
    assert ranks["x"].shape == (200, SBC_STEPS)
    assert rank_uniformity_pvalue(ranks, draws=99) > 1e-3


@pytest.mark.slow
def test_tempered_posterior_is_calibrated():
    def posterior(key, observed):
        run_key, draw_key = jax.random.split(key)
        result = smc(run_key, location, observed, 8, n=500, rejuvenate=move_mu, moves=2)
        return _posterior_draws(draw_key, result, 99)

    ranks = sbc_ranks(
        jax.random.key(22), location, (8,), posterior, latents=["mu"], observations=["y"], simulations=300, draws=99
    )
    assert rank_uniformity_pvalue(ranks, draws=99) > 1e-3


# ---------------------------------------------------------------------------
# Numerical failure
# ---------------------------------------------------------------------------


@ppl.model
def blocked_at_three(t, x, wall):
    x = ppl.sample("x", dist.Normal(x, 1.0))
    ppl.sample("y", dist.Normal(x, 1.0))
    ppl.factor(jnp.where((t == 3) & wall, -jnp.inf, 0.0))
    return x


BLOCKED = ppl.unfold(blocked_at_three, 6)


@ppl.model
def nan_at_two(t, x, poison):
    x = ppl.sample("x", dist.Normal(x, 1.0))
    ppl.sample("y", dist.Normal(x, 1.0))
    ppl.factor(jnp.where(t == 2, jnp.log(poison), 0.0))
    return x


def test_zero_weight_everywhere_raises_inference_error_naming_the_step():
    with pytest.raises(ppl.errors.InferenceError, match="zero weight .* from step 3 on"):
        smc(KEY, BLOCKED, {"y": jnp.zeros(6)}, 0.0, jnp.array(True), n=16)
    assert np.isfinite(smc(KEY, BLOCKED, {"y": jnp.zeros(6)}, 0.0, jnp.array(False), n=16).log_evidence)


def test_zero_weight_under_jit_is_the_documented_minus_infinity():
    run = jax.jit(lambda key, wall: smc(key, BLOCKED, {"y": jnp.zeros(6)}, 0.0, wall, n=16))
    result = run(KEY, jnp.array(True))
    assert result.log_evidence == -jnp.inf
    np.testing.assert_array_equal(result.weights, np.zeros(16))
    increments = np.asarray(result.log_evidence_increments)
    assert np.all(np.isfinite(increments[:3])) and np.all(np.isneginf(increments[3:]))
    np.testing.assert_array_equal(result.effective_sample_sizes[3:], np.zeros(3))
    assert not np.isnan(np.asarray(result.traces.score)).any()


def test_nan_weights_raise_inference_error():
    chain = ppl.unfold(nan_at_two, 5)
    with pytest.raises(ppl.errors.InferenceError, match="NaN .* at step 2"):
        smc(KEY, chain, {"y": jnp.zeros(5)}, 0.0, jnp.array(-1.0), n=8)


def test_tempering_with_an_impossible_observation_raises():
    @ppl.model
    def bounded():
        low = ppl.sample("low", dist.Uniform(0.0, 1.0))
        ppl.sample("y", dist.Uniform(low, low + 1.0))

    with pytest.raises(ppl.errors.SupportError, match="address 'y'"):
        smc(KEY, bounded, {"y": jnp.array(2.5)}, n=16)  # no particle can explain y = 2.5
    result = smc(KEY, bounded, {"y": jnp.array(0.9)}, n=200)  # half the prior particles have L = 0
    assert np.isfinite(result.log_evidence)
    assert abs(float(result.log_evidence) - float(jnp.log(0.9))) < 0.2  # p(y) = P(low < 0.9)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def test_bad_observations_raise_the_core_errors_before_running():
    with pytest.raises(ppl.errors.UnknownAddressError, match="Did you mean 'y'"):
        smc(KEY, STATE_SPACE, {"yy": YS}, 0.0, n=8)
    with pytest.raises(ppl.errors.ShapeError, match="leading time axis of length 100"):
        smc(KEY, STATE_SPACE, {"y": YS[:50]}, 0.0, n=8)
    with pytest.raises(ppl.errors.NonFiniteError, match="t=7"):
        smc(KEY, STATE_SPACE, {"y": YS.at[7].set(jnp.nan)}, 0.0, n=8)
    with pytest.raises(ppl.errors.InferenceError, match="no observations"):
        smc(KEY, STATE_SPACE, {}, 0.0, n=8)
    with pytest.raises(ppl.errors.UnknownAddressError, match="Did you mean 'mu'|never visits"):
        smc(KEY, location, {"y": Y, "muu": 1.0}, 8, n=8)


def test_bad_settings_raise_clear_errors():
    obs = {"y": YS}
    with pytest.raises(ppl.errors.InferenceError, match="positive Python int"):
        smc(KEY, STATE_SPACE, obs, 0.0, n=0)
    with pytest.raises(ppl.errors.PPLError, match="unknown resampling method 'systemic'"):
        smc(KEY, STATE_SPACE, obs, 0.0, n=8, resample="systemic")
    with pytest.raises(ppl.errors.InferenceError, match=r"number in \[0, 1\]"):
        smc(KEY, STATE_SPACE, obs, 0.0, n=8, ess=1.5)
    with pytest.raises(ppl.errors.InferenceError, match="0 < ess < 1"):
        smc(KEY, location, {"y": Y}, 8, n=8, ess=1.0)
    with pytest.raises(ppl.errors.InferenceError, match="target -> kernel"):
        smc(KEY, STATE_SPACE, obs, 0.0, n=8, rejuvenate="random_walk")
    with pytest.raises(ppl.errors.ModelDefinitionError, match="generative function"):
        smc(KEY, lambda t: None, obs, n=8)


def test_tempered_smc_moves_every_latent_of_a_model_wrapping_an_unfold():
    # tempering splits prior and likelihood choice by choice, inside the unfold's scan, and
    # mala(target) (addresses=None) moves the start and the whole stacked state path
    steps = 10
    short = ppl.unfold(linear_gaussian, steps)

    @ppl.model
    def wrapped():
        start = ppl.sample("start", dist.Normal(0.0, 1.0))
        return ppl.sample("chain", short, start)

    ys = YS[:steps]
    move = lambda target: ppl.infer.mcmc.mala(target, step_size=0.3)  # noqa: E731
    runs = jax.jit(jax.vmap(lambda k: smc(k, wrapped, {"chain/y": ys}, n=300, rejuvenate=move, moves=2).log_evidence))(
        jax.random.split(jax.random.key(5), 8))
    estimate = ppl.infer.combine_log_evidence(runs)
    eye = jnp.eye(1)
    # x_0 = A start + N(0, Q^2) with start ~ N(0, 1)
    exact = kalman_filter(ys[:, None], jnp.zeros(1), (A**2 + Q**2) * eye, A * eye, Q**2 * eye, eye, R**2 * eye)
    assert abs(float(estimate.log_evidence) - float(exact.log_evidence)) < 4 * float(estimate.standard_error) + 0.05


# ---------------------------------------------------------------------------
# jit, vmap, chunks, caching
# ---------------------------------------------------------------------------


def test_inside_jit_it_matches_the_eager_call():
    eager = smc(KEY, HMM, {"y": HMM_YS}, jnp.int32(0), n=200)
    jitted = jax.jit(lambda key, ys: smc(key, HMM, {"y": ys}, jnp.int32(0), n=200))(KEY, HMM_YS)
    np.testing.assert_allclose(jitted.log_weights, eager.log_weights, rtol=1e-6)
    np.testing.assert_array_equal(jitted.traces.choices["z"], eager.traces.choices["z"])


def test_the_progress_chunks_give_the_same_result(capsys):
    chain = ppl.unfold(linear_gaussian, 30)  # chunks of 2 steps
    whole = smc(KEY, chain, {"y": YS[:30]}, 0.0, n=100, progress=False)
    chunked = smc(KEY, chain, {"y": YS[:30]}, 0.0, n=100, progress=True)
    np.testing.assert_array_equal(chunked.traces.choices["x"], whole.traces.choices["x"])
    np.testing.assert_array_equal(chunked.log_evidence_increments, whole.log_evidence_increments)
    assert "smc" in capsys.readouterr().err  # the bar was drawn


def test_history_false_keeps_only_the_final_states():
    full = smc(KEY, HMM, {"y": HMM_YS}, jnp.int32(0), n=200)
    final = smc(KEY, HMM, {"y": HMM_YS}, jnp.int32(0), n=200, history=False)
    assert final.traces is None and final.ancestors is None
    np.testing.assert_array_equal(final.states, full.states)
    np.testing.assert_array_equal(final.log_weights, full.log_weights)


def test_the_accelerator_settings_give_the_same_results(monkeypatch):
    # off the CPU: branch-free resampling (select) and a log-depth trace-back; same numbers
    from ppl.infer import filtering

    chain = ppl.unfold(linear_gaussian, 12)
    run = lambda: smc(KEY, chain, {"y": YS[:12]}, 0.0, n=64, rejuvenate=move_x)  # noqa: E731
    on_cpu = run()
    monkeypatch.setattr(filtering, "backend_defaults", lambda backend: dict(gate="select", lineage="associative"))
    on_gpu = run()
    np.testing.assert_array_equal(on_gpu.ancestors, on_cpu.ancestors)
    np.testing.assert_allclose(on_gpu.traces.choices["x"], on_cpu.traces.choices["x"], rtol=1e-6)
    np.testing.assert_allclose(on_gpu.log_evidence, on_cpu.log_evidence, rtol=1e-6)
    np.testing.assert_allclose(on_gpu.acceptance_rates, on_cpu.acceptance_rates)


def test_lineages_by_scan_and_by_associative_scan_agree():
    from ppl.infer.filtering import lineages

    ancestors = jax.random.randint(jax.random.key(4), (37, 50), 0, 50).astype(jnp.int32)
    by_scan = jax.jit(lambda a: lineages(a, "scan"))(ancestors)
    np.testing.assert_array_equal(by_scan, jax.jit(lambda a: lineages(a, "associative"))(ancestors))
    # the last row is the final particles; each earlier row follows the ancestors back
    np.testing.assert_array_equal(by_scan[-1], np.arange(50))
    np.testing.assert_array_equal(by_scan[-2], ancestors[-1])
    np.testing.assert_array_equal(by_scan[10], ancestors[11][by_scan[11]])


def test_repeated_calls_with_new_data_do_not_retrace():
    traced = []

    @ppl.model
    def counted(t, x):
        traced.append(1)
        x = ppl.sample("x", dist.Normal(x, 1.0))
        ppl.sample("y", dist.Normal(x, 1.0))
        return x

    chain = ppl.unfold(counted, 10)
    smc(KEY, chain, {"y": jnp.zeros(10)}, jnp.asarray(0.0), n=32)
    first = len(traced)
    for seed in range(1, 3):
        smc(jax.random.key(seed), chain, {"y": jnp.full(10, float(seed))}, jnp.asarray(0.5 * seed), n=32)
    assert len(traced) == first
    smc(KEY, chain, {"y": jnp.zeros(10)}, jnp.asarray(0.0), n=33)  # a new n compiles anew
    assert len(traced) > first


def test_tempering_stages_compile_once():
    traced = []

    @ppl.model
    def counted(count):
        traced.append(1)
        mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        ppl.sample("y", dist.Normal(mu, 1.0).expand([count]).to_event(1))

    smc(KEY, counted, {"y": Y}, 8, n=32, rejuvenate=move_mu)
    first = len(traced)
    result = smc(jax.random.key(1), counted, {"y": Y + 1.0}, 8, n=32, rejuvenate=move_mu)
    assert len(traced) == first
    # an eager run returns exactly the stages it ran
    temperatures = np.asarray(result.temperatures)
    assert temperatures[-1] == 1.0 and np.all(np.diff(temperatures) > 0)
    assert result.effective_sample_sizes.shape == result.log_evidence_increments.shape == temperatures.shape
    assert result.traces.choices["mu"].shape == (32,) and result.traces.args == (8,)
    assert_scores_match(counted, result.traces, 8)
    # inside jit (one lax.while_loop, stages padded) the run is the same
    jitted = jax.jit(lambda key: smc(key, counted, {"y": Y + 1.0}, 8, n=32, rejuvenate=move_mu))(jax.random.key(1))
    np.testing.assert_allclose(jitted.traces.choices["mu"], result.traces.choices["mu"], rtol=1e-6)
    np.testing.assert_allclose(jitted.temperatures[: len(temperatures)], temperatures, rtol=1e-6)


# ---------------------------------------------------------------------------
# Benchmarks (smoke tests)
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_benchmark_b2_quick_runs_and_reports_every_system(tmp_path, capsys):
    from benchmarks import __main__ as harness

    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\n<!-- b1:start -->\nB1 stays\n<!-- b1:end -->\n")
    assert harness.main(["--quick", "--only", "b2", "--output", str(page), "--repeats", "1", "--no-progress"]) == 0
    text = page.read_text()
    assert "<!-- b2:start -->" in text and "B1 stays" in text
    for column in ("hand-written JAX (ms)", "ppl / JAX", "NumPyro (hand-built) / JAX", "compile T=10 (s)"):
        assert column in text
    assert "| 20 |" in capsys.readouterr().out


@pytest.mark.slow
def test_gpu_filter_script_runs_on_the_cpu(tmp_path, monkeypatch, capsys):
    import json

    from benchmarks import gpu_filter

    monkeypatch.setenv("OUT", str(tmp_path))
    assert gpu_filter.main(["--small"]) == 0
    report = json.loads((tmp_path / "gpu_filter.json").read_text())
    assert report["correctness"]["ok"] and len(report["rows"]) == 16
    assert "naive: searchsorted default, every step" in capsys.readouterr().out


@pytest.mark.slow  # compile-bound (8-20 s); keeps the default run under 10 min on 2 cores
def test_tempering_handles_latents_that_read_an_observation():
    # tempering scales each observed choice's density in the run itself, so a latent or a
    # factor downstream of an observation is no problem: the evidence is exact in expectation
    @ppl.model
    def downstream():
        y = ppl.sample("y", dist.Normal(0.0, 1.0))
        ppl.sample("z", dist.Normal(y, 0.1))

    @ppl.model
    def factor_reads_observation():
        x = ppl.sample("x", dist.Normal(0.0, 1.0))
        y = ppl.sample("y", dist.Normal(x, 1.0))
        ppl.factor(-(y**2))

    exact = {downstream: dist.Normal(0.0, 1.0).log_prob(2.0),
             factor_reads_observation: dist.Normal(0.0, jnp.sqrt(2.0)).log_prob(2.0) - 4.0}
    for model, log_evidence in exact.items():
        runs = jax.vmap(lambda k, m=model: smc(k, m, {"y": 2.0}, n=500).log_evidence)(jax.random.split(KEY, 8))
        estimate = ppl.infer.combine_log_evidence(runs)
        assert abs(float(estimate.log_evidence) - float(log_evidence)) < 4 * float(estimate.standard_error) + 1e-3
