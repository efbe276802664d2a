"""Gradient MAP: known modes of conjugate models, enumeration, robustness, errors, caching."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ppl
from ppl import dist, testing

# ---------------------------------------------------------------------------
# Five independent conjugate pieces in one model (one compiled program), each
# latent with a different support: real, positive, interval, simplex, and a
# real vector inside a sub-model.
# ---------------------------------------------------------------------------

DESIGN = jnp.array([[1.0, -0.5], [1.0, 0.3], [1.0, 1.2], [1.0, -1.4], [1.0, 0.8]])
PRIOR_COV = jnp.eye(2) * 2.0
ALPHA = jnp.array([2.0, 3.0, 4.0])


@ppl.model
def coefficients():
    return ppl.sample("w", dist.MultivariateNormal(jnp.zeros(2), PRIOR_COV))


@ppl.model
def conjugate():
    mu = ppl.sample("mu", dist.Normal(1.0, 2.0))
    ppl.sample("y", dist.Normal(mu, 0.5).expand([4]))
    rate = ppl.sample("rate", dist.Gamma(3.0, 2.0))
    ppl.sample("counts", dist.Poisson(rate).expand([5]))
    p = ppl.sample("p", dist.Beta(2.0, 3.0))
    ppl.sample("successes", dist.Binomial(20, p))
    weights = ppl.sample("weights", dist.Dirichlet(ALPHA))
    ppl.sample("labels", dist.Categorical(weights).expand([6]))
    w = ppl.sample("coef", coefficients)
    ppl.sample("z", dist.Normal(DESIGN @ w, 0.5).to_event(1))


OBS = {
    "y": jnp.array([0.9, 1.4, 0.3, 1.1]),
    "counts": jnp.array([2, 0, 3, 1, 2]),
    "successes": 7,
    "labels": jnp.array([0, 2, 2, 1, 2, 0]),
    "z": jnp.array([0.3, 1.1, 2.0, -1.0, 1.5]),
}


@pytest.fixture(scope="module")
def conjugate_map():
    # init="uniform": the prior's Gamma/Beta/Dirichlet samplers would triple the compile time
    return ppl.infer.map(jax.random.key(0), conjugate, OBS, restarts=8, steps=1000, init="uniform", history=True)


def test_map_finds_the_known_modes_of_conjugate_models(conjugate_map):
    choices = conjugate_map.trace.choices
    normal_mode, _ = testing.normal_normal_posterior(OBS["y"], 1.0, 2.0, 0.5)
    gamma_mode = (3.0 + 8 - 1) / (2.0 + 5)
    beta_mode = (2.0 + 7 - 1) / (2.0 + 3.0 + 20 - 2)
    counts = jnp.array([2.0, 1.0, 3.0])
    dirichlet_mode = (ALPHA + counts - 1) / (ALPHA.sum() + 6 - 3)
    regression_mode, _ = testing.linear_regression_posterior(DESIGN, OBS["z"], jnp.zeros(2), PRIOR_COV, 0.5)
    np.testing.assert_allclose(choices["mu"], normal_mode, atol=1e-3)
    np.testing.assert_allclose(choices["rate"], gamma_mode, atol=1e-3)
    np.testing.assert_allclose(choices["p"], beta_mode, atol=1e-3)
    np.testing.assert_allclose(choices["weights"], dirichlet_mode, atol=1e-3)
    np.testing.assert_allclose(choices["coef/w"], regression_mode, atol=1e-3)


def test_map_result_is_consistent(conjugate_map):
    result = conjugate_map
    assert result.restarts.log_joint.shape == (8,)
    assert result.restarts.history.shape == (8, 1000)
    assert result.restarts.traces.choices["coef/w"].shape == (8, 2)
    np.testing.assert_array_equal(result.restarts.failed, False)
    log_joint, _ = jax.jit(conjugate.assess)(result.trace.choices)
    np.testing.assert_allclose(result.log_joint, log_joint, rtol=1e-6)
    np.testing.assert_allclose(result.trace.score, log_joint, rtol=1e-6)
    assert float(result.log_joint) == float(jnp.max(result.restarts.log_joint))
    # every restart improves on its starting point, and has converged (its last steps agree)
    history = np.asarray(result.restarts.history)
    assert np.all(np.asarray(result.restarts.log_joint) > history[:, 0])
    np.testing.assert_allclose(result.restarts.log_joint, history[:, -1], atol=1e-3)
    # the observations are untouched
    np.testing.assert_array_equal(result.trace.choices["labels"], OBS["labels"])


# ---------------------------------------------------------------------------
# Discrete latents: enumerated when small, or fixed by the caller
# ---------------------------------------------------------------------------


@ppl.model
def two_clusters():
    """y ~ N(+mu, 1) or N(-mu, 1) by a latent sign; mu ~ N(0, 3)."""
    sign = ppl.sample("sign", dist.Bernoulli(0.3))
    mu = ppl.sample("mu", dist.Normal(0.0, 3.0))
    ppl.sample("y", dist.Normal(jnp.where(sign == 1, mu, -mu), 1.0).expand([4]))


def test_map_enumerates_a_small_discrete_latent():
    y = jnp.array([2.0, 2.5, 1.5, 2.0])
    result = ppl.infer.map(jax.random.key(1), two_clusters, {"y": y}, restarts=2, steps=600)
    # both configurations share the continuous optimum |mu| = sum(y) / (n + 1/9); sign=1 has the larger prior 0.3 vs 0.7,
    # but with mu ~ N(0, 3) symmetric the joint mode is at sign=0, mu = -|mu|.
    magnitude = float(jnp.sum(y) / (4 + 1 / 9))
    assert result.restarts.log_joint.shape == (4,)  # 2 configurations x 2 restarts, configuration-major
    np.testing.assert_array_equal(result.restarts.traces.choices["sign"], [0, 0, 1, 1])
    assert int(result.trace.choices["sign"]) == 0
    np.testing.assert_allclose(result.trace.choices["mu"], -magnitude, atol=1e-3)
    np.testing.assert_allclose(result.restarts.traces.choices["mu"][2:], magnitude, atol=1e-3)
    gap = jnp.log(0.7) - jnp.log(0.3)
    np.testing.assert_allclose(result.restarts.log_joint[0] - result.restarts.log_joint[2], gap, atol=1e-4)


def test_map_with_the_discrete_latent_fixed_by_the_caller():
    y = jnp.array([2.0, 2.5, 1.5, 2.0])
    result = ppl.infer.map(jax.random.key(1), two_clusters, {"y": y, "sign": 1}, restarts=2, steps=600)
    assert result.restarts.log_joint.shape == (2,)
    assert result.restarts.history is None  # history=False by default
    np.testing.assert_allclose(result.trace.choices["mu"], float(jnp.sum(y) / (4 + 1 / 9)), atol=1e-3)


def test_map_rejects_discrete_latents_it_cannot_enumerate():
    @ppl.model
    def counts():
        n = ppl.sample("n", dist.Poisson(3.0))
        ppl.sample("y", dist.Normal(n, 1.0))

    with pytest.raises(ppl.errors.InferenceError, match="'n' is a discrete latent.*Poisson.*obs"):
        ppl.infer.map(jax.random.key(0), counts, {"y": 1.0})

    @ppl.model
    def many_coins():
        ppl.sample("coins", dist.Bernoulli(0.5).expand([12]))

    with pytest.raises(ppl.errors.InferenceError, match="4096 value combinations"):
        ppl.infer.map(jax.random.key(0), many_coins, {})


# ---------------------------------------------------------------------------
# Non-finite values
# ---------------------------------------------------------------------------


@ppl.model
def nan_plateau():
    """log p is NaN for x > 1.5, but its gradient there is the prior's (finite)."""
    x = ppl.sample("x", dist.Normal(0.0, 1.0))
    ppl.factor(jnp.where(x > 1.5, jnp.nan, 0.0))


@ppl.model
def nan_gradient():
    """log p and its gradient are NaN for x > 1.5 (sqrt of a negative number)."""
    x = ppl.sample("x", dist.Normal(0.0, 1.0))
    ppl.factor(jnp.sqrt(1.5 - x))


def test_a_nan_log_joint_with_a_finite_gradient_is_only_recorded():
    result = ppl.infer.map(jax.random.key(3), nan_plateau, {}, restarts=64, steps=300, history=True)
    history = np.asarray(result.restarts.history)
    started_in_nan = np.isnan(history[:, 0])
    assert 0 < started_in_nan.sum() < 64  # P(x > 1.5) = 0.067 under the prior
    np.testing.assert_array_equal(result.restarts.failed, False)
    np.testing.assert_allclose(result.restarts.traces.choices["x"], 0.0, atol=1e-3)


def test_restarts_with_a_nan_gradient_fail_and_report_their_start():
    result = ppl.infer.map(jax.random.key(3), nan_gradient, {}, restarts=64, steps=300)
    failed = np.asarray(result.restarts.failed)
    starts = np.asarray(result.restarts.traces.choices["x"])
    assert 0 < failed.sum() < 64
    assert np.all(starts[failed] > 1.5)  # the prior draws that started in the NaN region
    assert np.all(np.asarray(result.restarts.log_joint)[failed] == -np.inf)
    grid = jnp.linspace(-3.0, 1.5, 450001)
    mode = grid[jnp.argmax(dist.Normal(0.0, 1.0).log_prob(grid) + jnp.sqrt(1.5 - grid))]
    np.testing.assert_allclose(result.trace.choices["x"], mode, atol=1e-3)
    assert np.isfinite(float(result.log_joint))


def test_map_raises_when_no_restart_is_finite():
    @ppl.model
    def impossible():
        ppl.sample("x", dist.Normal(0.0, 1.0))
        ppl.factor(-jnp.inf)

    with pytest.raises(ppl.errors.InferenceError, match="every one of the 2 restarts of map failed"):
        ppl.infer.map(jax.random.key(0), impossible, {}, restarts=2, steps=3)


def test_map_checks_observations_before_compiling():
    with pytest.raises(ppl.errors.UnknownAddressError, match="Did you mean 'counts'"):
        ppl.infer.map(jax.random.key(0), conjugate, {**OBS, "count": 1})
    with pytest.raises(ppl.errors.SupportError):
        ppl.infer.map(jax.random.key(0), conjugate, {**OBS, "counts": -jnp.ones(5, jnp.int32)})
    with pytest.raises(ppl.errors.InferenceError, match="restarts >= 1"):
        ppl.infer.map(jax.random.key(0), conjugate, OBS, restarts=0)


# ---------------------------------------------------------------------------
# Compiled once
# ---------------------------------------------------------------------------


def test_map_compiles_once_for_new_data_and_keys():
    runs = []

    @ppl.model
    def counted(n):
        runs.append(1)
        scale = ppl.sample("scale", dist.LogNormal(0.0, 1.0))
        ppl.sample("y", dist.Normal(0.0, scale).expand([n]))

    optimizer = optax.adam(0.1)
    first = ppl.infer.map(jax.random.key(0), counted, {"y": jnp.ones(3)}, 3, restarts=2, steps=200, optimizer=optimizer)
    traced = len(runs)
    second = ppl.infer.map(jax.random.key(1), counted, {"y": 2 * jnp.ones(3)}, 3, restarts=2, steps=200, optimizer=optimizer)
    assert len(runs) == traced  # same shapes: the plan and the compiled program are reused
    with pytest.raises(ppl.errors.NonFiniteError, match="address 'y'"):  # obs still checked every call
        ppl.infer.map(jax.random.key(1), counted, {"y": jnp.array([1.0, jnp.nan, 0.0])}, 3, restarts=2, steps=200, optimizer=optimizer)
    assert len(runs) == traced
    # the mode of scale: argmax of LogNormal(0, 1) prior times N(0, scale) likelihood
    for result, y in ((first, 1.0), (second, 2.0)):
        grid = jnp.linspace(0.05, 5.0, 200001)
        log_joint = dist.LogNormal(0.0, 1.0).log_prob(grid) + 3 * dist.Normal(0.0, grid).log_prob(y)
        np.testing.assert_allclose(result.trace.choices["scale"], grid[jnp.argmax(log_joint)], atol=1e-3)


# ---------------------------------------------------------------------------
# On compositions
# ---------------------------------------------------------------------------

step_traces = []


@ppl.model
def ar_step(t, x, rho):
    step_traces.append(1)
    x = ppl.sample("x", dist.Normal(rho * x, 0.5))
    ppl.sample("y", dist.Normal(x, 0.3))
    return x


AR = ppl.unfold(ar_step, 12)


@ppl.model
def nested():
    """An unfold inside a model, with latents upstream of it: MAP sees every choice."""
    rho = ppl.sample("rho", dist.Uniform(-1.0, 1.0))
    start = ppl.sample("start", dist.Normal(0.0, 1.0))
    return ppl.sample("path", AR, start, rho)


def test_map_on_a_nested_composition_compiles_once_and_is_a_mode():
    ys = AR.simulate(jax.random.key(3), 0.0, 0.8).choices["y"]
    optimizer = optax.adam(0.05)
    first = ppl.infer.map(jax.random.key(0), nested, {"path/y": ys}, restarts=4, steps=400, optimizer=optimizer)
    assert first.trace.choices["path/x"].shape == (12,)
    traced = len(step_traces)
    second = ppl.infer.map(jax.random.key(1), nested, {"path/y": ys + 0.1}, restarts=4, steps=400, optimizer=optimizer)
    assert len(step_traces) == traced  # new data of the same shape: no new trace, no new compilation
    # a mode: the gradient of the log joint in the choices' own space is (nearly) zero
    for result, y in ((first, ys), (second, ys + 0.1)):
        latents = {a: result.trace.choices[a] for a in ("rho", "start", "path/x")}
        gradient = jax.grad(lambda v: nested.assess({**v, "path/y": y}).log_density)(latents)
        assert all(float(jnp.max(jnp.abs(g))) < 0.05 for g in jax.tree_util.tree_leaves(gradient)), gradient
