"""Importance sampling: exact evidences, proposals, errors, jit/vmap and compilation caching."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist
from ppl.infer.importance import particle_block
from ppl.testing import (
    beta_bernoulli_log_evidence,
    linear_regression_log_evidence,
    normal_normal_log_evidence,
    normal_normal_posterior,
)

KEY = jax.random.key(0)
N = 20_000  # one particle count (and so one compiled program) per model, shared by the tests
N_REGRESSION = 100_000


@ppl.model
def location(count):
    mu = ppl.sample("mu", dist.Normal(0.5, 2.0))
    ppl.sample("y", dist.Normal(mu, 1.0).expand([count]).to_event(1))
    return mu


@ppl.model
def coin(count):
    p = ppl.sample("p", dist.Beta(2.0, 3.0))
    ppl.sample("flips", dist.Bernoulli(p).expand([count]).to_event(1))


@ppl.model
def regression(design):
    w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([design.shape[1]]).to_event(1))
    ppl.sample("y", dist.Normal(design @ w, 0.5).to_event(1))


Y = jnp.array([1.2, 0.7, 2.1, 1.6, 0.9])
FLIPS = jnp.array([1, 0, 1, 1, 1, 0, 1, 1])
DESIGN = jnp.stack([jnp.ones(20), jnp.linspace(-1.0, 1.0, 20)], axis=1)
RESPONSE = DESIGN @ jnp.array([0.3, -0.8]) + 0.5 * jax.random.normal(jax.random.key(7), (20,))


def _within_four_standard_errors(result, exact):
    estimate, se = float(result.log_evidence), float(result.log_evidence_standard_error)
    assert se < 0.05, f"standard error {se} too large for the test to mean anything"
    assert abs(estimate - exact) < 4 * se, f"estimate {estimate} vs exact {exact} (se {se})"


def test_normal_normal_evidence_and_posterior_mean():
    result = ppl.infer.importance(KEY, location, {"y": Y}, 5, n=N)
    _within_four_standard_errors(result, float(normal_normal_log_evidence(Y, 0.5, 2.0, 1.0)))
    mean, std = normal_normal_posterior(Y, 0.5, 2.0, 1.0)
    estimate = jnp.sum(result.weights * result.traces.choices["mu"])
    assert abs(float(estimate - mean)) < 4 * float(std) / np.sqrt(float(result.effective_sample_size))
    np.testing.assert_allclose(result.traces.retval, result.traces.choices["mu"])


def test_beta_bernoulli_evidence():
    result = ppl.infer.importance(KEY, coin, {"flips": FLIPS}, 8, n=N)
    _within_four_standard_errors(result, float(beta_bernoulli_log_evidence(FLIPS, 2.0, 3.0)))


def test_linear_regression_evidence():
    result = ppl.infer.importance(KEY, regression, {"y": RESPONSE}, DESIGN, n=N_REGRESSION)
    exact = linear_regression_log_evidence(DESIGN, RESPONSE, jnp.zeros(2), jnp.eye(2), 0.5)
    _within_four_standard_errors(result, float(exact))


def test_result_shapes_and_shared_observations_and_arguments():
    result = ppl.infer.importance(KEY, regression, {"y": RESPONSE}, DESIGN, n=N_REGRESSION)
    assert result.traces.choices["w"].shape == (N_REGRESSION, 2)
    # the observed values and the arguments are the same for every particle: stored once
    assert result.traces.choices["y"].shape == (20,) and result.observations.addresses() == ("y",)
    np.testing.assert_array_equal(result.observations["y"], RESPONSE)
    assert result.traces.args[0] is DESIGN
    assert result.log_weights.shape == result.weights.shape == result.traces.score.shape == (N_REGRESSION,)
    np.testing.assert_allclose(jnp.sum(result.weights), 1.0, rtol=1e-5)
    # the log weight of a prior particle is the likelihood: score minus the prior of w
    prior = dist.Normal(0.0, 1.0).log_prob(result.traces.choices["w"]).sum(-1)
    np.testing.assert_allclose(result.log_weights, result.traces.score - prior, rtol=1e-5, atol=1e-4)
    # one particle is a complete trace of the model; particle_axes maps over all of them
    third = ppl.infer.select_particles(result, 2)
    np.testing.assert_allclose(regression.assess(third.choices, DESIGN).log_density, result.traces.score[2], rtol=1e-5)
    assess = lambda trace: regression.assess(trace.choices, *trace.args).log_density  # noqa: E731
    scores = jax.jit(jax.vmap(assess, in_axes=(ppl.infer.particle_axes(result),)))(result.traces)
    np.testing.assert_allclose(scores, result.traces.score, rtol=1e-5, atol=1e-4)


# --- proposals --------------------------------------------------------------


@ppl.model
def exact_posterior_proposal(obs, count):
    mean, std = normal_normal_posterior(obs["y"], 0.5, 2.0, 1.0)
    ppl.sample("mu", dist.Normal(mean, std))


def test_the_exact_posterior_as_proposal_gives_every_particle_weight_p_of_y():
    # log w = log p(mu, y) - log p(mu | y) = log p(y) for every particle: an identity
    result = ppl.infer.importance(KEY, location, {"y": Y}, 5, n=50, proposal=exact_posterior_proposal)
    exact = normal_normal_log_evidence(Y, 0.5, 2.0, 1.0)
    np.testing.assert_allclose(result.log_weights, jnp.full(50, exact), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(result.effective_sample_size, 50.0, rtol=1e-4)


@ppl.model
def two_latents():
    scale = ppl.sample("scale", dist.LogNormal(0.0, 0.3))
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ppl.sample("y", dist.Normal(mu, scale))


@ppl.model
def proposes_mu_only(obs):
    ppl.sample("mu", dist.Normal(obs["y"] * 0.5, 0.8))


def test_a_partial_proposal_is_unbiased():
    obs = {"y": jnp.array(0.4)}
    with_proposal = ppl.infer.importance(KEY, two_latents, obs, n=40_000, proposal=proposes_mu_only)
    prior_only = ppl.infer.importance(jax.random.key(1), two_latents, obs, n=40_000)
    difference = float(with_proposal.log_evidence - prior_only.log_evidence)
    se = float(jnp.hypot(with_proposal.log_evidence_standard_error, prior_only.log_evidence_standard_error))
    assert se < 0.02 and abs(difference) < 4 * se
    # the proposal made mu, the prior made scale
    assert with_proposal.traces.choices["scale"].shape == (40_000,)


def test_proposal_errors():
    @ppl.model
    def proposes_observed(obs):
        ppl.sample("y", dist.Normal(0.0, 1.0))

    @ppl.model
    def proposes_typo(obs):
        ppl.sample("muu", dist.Normal(0.0, 1.0))

    with pytest.raises(ppl.errors.InferenceError, match="observed"):
        ppl.infer.importance(KEY, two_latents, {"y": 0.4}, n=4, proposal=proposes_observed)
    with pytest.raises(ppl.errors.UnknownAddressError, match="Did you mean 'mu'"):
        ppl.infer.importance(KEY, two_latents, {"y": 0.4}, n=4, proposal=proposes_typo)
    with pytest.raises(ppl.errors.ModelDefinitionError, match="proposal"):
        ppl.infer.importance(KEY, two_latents, {"y": 0.4}, n=4, proposal=lambda obs: None)


# --- validation and numerical failure -----------------------------------------


def test_bad_observations_raise_the_core_errors_before_running():
    with pytest.raises(ppl.errors.InferenceError, match="no observations"):
        ppl.infer.importance(KEY, location, {}, 5, n=N)
    with pytest.raises(ppl.errors.UnknownAddressError, match="Did you mean 'y'"):
        ppl.infer.importance(KEY, location, {"yy": Y}, 5, n=N)
    with pytest.raises(ppl.errors.NonFiniteError, match="address 'y'"):
        ppl.infer.importance(KEY, location, {"y": Y.at[2].set(jnp.nan)}, 5, n=N)
    with pytest.raises(ppl.errors.ShapeError, match="address 'y'"):
        ppl.infer.importance(KEY, location, {"y": Y[:3]}, 5, n=N)
    with pytest.raises(ppl.errors.SupportError, match="address 'flips'"):
        ppl.infer.importance(KEY, coin, {"flips": FLIPS.at[0].set(2)}, 8, n=N)
    with pytest.raises(ppl.errors.InferenceError, match="positive Python int"):
        ppl.infer.importance(KEY, location, {"y": Y}, 5, n=0)
    with pytest.raises(ppl.errors.ModelDefinitionError, match="generative function"):
        ppl.infer.importance(KEY, lambda: None, {"y": Y}, n=10)


@ppl.model
def impossible(x):
    ppl.sample("y", dist.Normal(0.0, 1.0))
    ppl.factor(jnp.where(x > 0, -jnp.inf, 0.0))


@ppl.model
def produces_nan(x):
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ppl.sample("y", dist.Normal(mu, 1.0))
    ppl.factor(jnp.log(x - 1.0) * 0.0)  # NaN for x < 1


def test_zero_total_weight_and_nan_weights_raise_inference_error():
    with pytest.raises(ppl.errors.InferenceError, match="zero weight"):
        ppl.infer.importance(KEY, impossible, {"y": 0.1}, jnp.array(1.0), n=8)
    with pytest.raises(ppl.errors.InferenceError, match="8 of 8 particles have a NaN"):
        ppl.infer.importance(KEY, produces_nan, {"y": 0.1}, jnp.array(0.5), n=8)


def test_zero_total_weight_under_jit_is_the_documented_minus_infinity():
    run = jax.jit(lambda key, x: ppl.infer.importance(key, impossible, {"y": 0.1}, x, n=8))
    result = run(KEY, jnp.array(1.0))
    assert result.log_evidence == -jnp.inf
    np.testing.assert_array_equal(result.weights, np.zeros(8))
    assert result.effective_sample_size == 0.0 and result.log_evidence_standard_error == jnp.inf
    assert np.isfinite(run(KEY, jnp.array(-1.0)).log_evidence)


# --- jit, vmap, caching, the particle axis -------------------------------------


def test_inside_jit_and_vmap_it_matches_the_eager_call():
    eager = ppl.infer.importance(KEY, location, {"y": Y}, 5, n=N)
    jitted = jax.jit(lambda key, y: ppl.infer.importance(key, location, {"y": y}, 5, n=N))(KEY, Y)
    np.testing.assert_allclose(jitted.log_weights, eager.log_weights, rtol=1e-6)
    keys = jnp.stack([KEY, jax.random.key(1)])
    batched = jax.jit(jax.vmap(lambda key: ppl.infer.importance(key, location, {"y": Y}, 5, n=N)))(keys)
    assert batched.log_evidence.shape == (2,)
    np.testing.assert_allclose(batched.log_weights[0], eager.log_weights, rtol=1e-6)


def test_repeated_calls_with_new_data_do_not_retrace():
    traced = []

    @ppl.model
    def counted(design):
        traced.append(1)
        w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        ppl.sample("y", dist.Normal(design @ w, 0.5).to_event(1))

    for seed in range(3):
        key = jax.random.key(seed)
        ppl.infer.importance(key, counted, {"y": RESPONSE + seed}, DESIGN + seed, n=32)
    per_compile = 2  # one trace counts the particle's draws (ppl.infer.particle_keys), one is the program
    assert len(traced) == per_compile
    ppl.infer.importance(KEY, counted, {"y": RESPONSE}, DESIGN, n=33)  # a new n compiles anew
    assert len(traced) == 2 * per_compile


def test_python_number_arguments_are_static():
    # `count` sets a shape, so it must be a compile-time constant
    small = ppl.infer.importance(KEY, location, {"y": Y[:2]}, 2, n=N)
    large = ppl.infer.importance(KEY, location, {"y": Y}, 5, n=N)
    assert small.traces.choices["y"].shape == (2,) and large.traces.choices["y"].shape == (5,)
    assert small.traces.args == (2,)


def test_blocks_of_particles_concatenate_to_the_whole():
    obs = ppl.ChoiceMap({"y": Y})

    @jax.jit
    def blocks():
        block = lambda start, size: particle_block(KEY, start, size, location, None, obs, (5,))  # noqa: E731
        return block(0, 10), block(0, 4), block(4, 6)

    whole, first, rest = blocks()
    np.testing.assert_array_equal(whole.log_weights, jnp.concatenate([first.log_weights, rest.log_weights]))
    np.testing.assert_array_equal(
        whole.choices["mu"], jnp.concatenate([first.choices["mu"], rest.choices["mu"]])
    )


def test_resampling_draws_particles_in_proportion_to_their_weights():
    result = ppl.infer.importance(KEY, location, {"y": Y}, 5, n=N)
    draws = ppl.infer.importance_resample(jax.random.key(1), result, 4_000)
    assert draws.choices["mu"].shape == (4_000,) and draws.choices["y"].shape == (5,) and draws.args == (5,)
    mean, std = normal_normal_posterior(Y, 0.5, 2.0, 1.0)
    ess = float(result.effective_sample_size)
    assert abs(float(jnp.mean(draws.choices["mu"]) - mean)) < 4 * float(std) * np.sqrt(1 / ess + 1 / 4_000)
    assess = lambda trace: location.assess(trace.choices, 5).log_density  # noqa: E731
    log_density = jax.jit(jax.vmap(assess, in_axes=(ppl.infer.particle_axes(result),)))(draws)
    np.testing.assert_allclose(log_density, draws.score, rtol=1e-5, atol=1e-4)


def test_benchmark_b1_quick_runs_and_reports_every_system(tmp_path, capsys):
    from benchmarks import __main__ as harness

    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\n<!-- b3:start -->\nB3 stays\n<!-- b3:end -->\n")
    assert harness.main(["--quick", "--only", "b1", "--output", str(page), "--sizes", "64", "--repeats", "1"]) == 0
    text = page.read_text()
    assert "<!-- b1:start -->" in text and "B3 stays" in text  # each benchmark owns its section
    for column in ("hand-written JAX (ms)", "ppl / JAX", "NumPyro / JAX"):
        assert column in text
    assert "| 64 |" in capsys.readouterr().out


def test_particle_keys_give_independent_standard_normals_across_particles_and_sites():
    from ppl.infer.importance import particle_keys

    def two_sites(key):
        first, second = jax.random.split(key)
        return jnp.concatenate([jax.random.normal(first, (2,)), jax.random.normal(jax.random.fold_in(second, 3), (1,))])

    @jax.jit
    def draws():
        return jax.vmap(two_sites)(particle_keys(KEY, 0, 40_000)), jax.vmap(two_sites)(particle_keys(KEY, 100, 5))

    z, same = draws()  # z: (particles, 3 values)
    bound = 4.0 / np.sqrt(40_000)
    np.testing.assert_allclose(jnp.mean(z, 0), 0.0, atol=bound)
    np.testing.assert_allclose(jnp.std(z, 0), 1.0, atol=2 * bound)
    correlations = np.corrcoef(np.concatenate([z[1:], z[:-1]], axis=1).T)  # within and across neighbours
    np.testing.assert_allclose(correlations - np.eye(6), 0.0, atol=bound)
    # a block of keys equals the same slice of all the keys
    np.testing.assert_array_equal(same, z[100:105])


def test_the_written_out_threefry_is_bit_for_bit_jaxs():
    from jax.extend.random import threefry2x32_p

    from ppl.infer.particle_keys import _threefry2x32

    words = jax.random.bits(jax.random.key(5), (4, 1000), jnp.uint32)
    expected = threefry2x32_p.bind(words[0, 0], words[1, 0], words[2], words[3])
    got = jax.jit(_threefry2x32)(words[0, 0], words[1, 0], words[2], words[3])
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_progress_bars_show_only_when_enabled_or_long(capsys, monkeypatch):
    from ppl.infer.progress import progress_bar, progress_enabled

    with progress_bar(3, "quick") as bar:  # default: appears only after 2 s
        for _ in range(3):
            bar.update()
    assert bar.count == 3 and capsys.readouterr().err == ""
    with progress_bar(2, "shown", enabled=True) as bar:
        bar.update(2)
    assert "shown" in capsys.readouterr().err
    monkeypatch.setenv("PPL_PROGRESS", "0")
    assert not progress_enabled() and progress_enabled(True)
    with progress_bar(2, "hidden", delay=0.0) as bar:
        bar.update(2)
    assert capsys.readouterr().err == ""


def test_looped_particle_keys_draw_the_same_bits_as_unrolled():
    from ppl.infer.particle_keys import particle_keys

    def draws(unrolled):
        keys = particle_keys(KEY, 3, 5, unrolled=unrolled)
        return jax.jit(jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 7), (3,))))(keys)

    np.testing.assert_array_equal(draws(True), draws(False))
