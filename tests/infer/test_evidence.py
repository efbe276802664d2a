"""Evidence helpers: exact identities, -inf safety, and calibration of the standard error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist
from ppl.infer import evidence
from ppl.testing import normal_normal_log_evidence

IDENTITY_TOL = dict(rtol=1e-5, atol=1e-5)
# jitted once each (a jitted function compiles in one go, faster than op by op)
log_mean_exp = jax.jit(evidence.log_mean_exp)
normalized_weights = jax.jit(evidence.normalized_weights)
effective_sample_size = jax.jit(evidence.effective_sample_size)
standard_error = jax.jit(evidence.log_mean_exp_standard_error)


def test_log_mean_exp_matches_numpy_and_does_not_overflow():
    values = jax.random.normal(jax.random.key(0), (3, 50)) * 5.0
    expected = np.log(np.mean(np.exp(np.asarray(values, np.float64)), axis=-1))
    np.testing.assert_allclose(log_mean_exp(values), expected, **IDENTITY_TOL)
    np.testing.assert_allclose(log_mean_exp(jnp.array([1000.0, 1000.0])), 1000.0, **IDENTITY_TOL)
    np.testing.assert_allclose(log_mean_exp(jnp.array([-1000.0, -1000.0])), -1000.0, **IDENTITY_TOL)


def test_minus_infinity_weights_give_documented_values_not_nan():
    some = jnp.array([-jnp.inf, 0.0, jnp.log(3.0)])
    np.testing.assert_allclose(log_mean_exp(some), np.log(4.0 / 3.0), **IDENTITY_TOL)
    np.testing.assert_allclose(normalized_weights(some), [0.0, 0.25, 0.75], **IDENTITY_TOL)

    none = jnp.full(4, -jnp.inf)
    assert log_mean_exp(none) == -jnp.inf
    np.testing.assert_array_equal(normalized_weights(none), np.zeros(4))
    assert effective_sample_size(none) == 0.0
    assert standard_error(none) == jnp.inf
    grad = jax.grad(lambda lw: log_mean_exp(lw))(some)
    assert np.all(np.isfinite(grad))


def test_effective_sample_size_bounds():
    np.testing.assert_allclose(effective_sample_size(jnp.zeros(7)), 7.0, **IDENTITY_TOL)
    np.testing.assert_allclose(effective_sample_size(jnp.array([0.0, -200.0, -200.0])), 1.0, **IDENTITY_TOL)
    log_weights = jnp.log(jnp.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(effective_sample_size(log_weights), 100.0 / 30.0, **IDENTITY_TOL)


def test_standard_error_is_the_delta_method_with_the_sample_variance():
    log_weights = jax.random.normal(jax.random.key(1), (200,))
    w = np.exp(np.asarray(log_weights, np.float64))
    expected = np.sqrt(np.var(w, ddof=1) / (len(w) * np.mean(w) ** 2))
    np.testing.assert_allclose(standard_error(log_weights), expected, rtol=1e-4)
    assert standard_error(jnp.zeros(1)) == jnp.inf


def test_helpers_work_on_a_batch_axis_and_under_jit():
    log_weights = jax.random.normal(jax.random.key(2), (4, 30))
    batched = jax.jit(evidence.effective_sample_size)(log_weights)
    looped = jnp.stack([effective_sample_size(row) for row in log_weights])
    np.testing.assert_allclose(batched, looped, **IDENTITY_TOL)
    assert normalized_weights(log_weights).shape == (4, 30)


@ppl.model
def location(count):
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ppl.sample("y", dist.Normal(mu, 0.5).expand([count]).to_event(1))


Y = jnp.array([0.8, 1.1, 0.4])
EXACT = float(normal_normal_log_evidence(Y, 0.0, 1.0, 0.5))


@pytest.fixture(scope="module")
def independent_runs():
    """200 independent importance runs of 300 particles each (one vmapped program)."""
    keys = jax.random.split(jax.random.key(3), 200)
    run = jax.jit(jax.vmap(lambda k: ppl.infer.importance(k, location, {"y": Y}, 3, n=300)))
    return run(keys)


def test_reported_standard_error_matches_the_spread_between_runs(independent_runs):
    spread = float(jnp.std(independent_runs.log_evidence, ddof=1))
    reported = float(jnp.mean(independent_runs.log_evidence_standard_error))
    # the spread of 200 runs is known to ~ +-10% (1/sqrt(2 * 199) = 5% per sd)
    assert 0.8 < reported / spread < 1.25, (reported, spread)


def test_combined_runs_estimate_the_exact_evidence(independent_runs):
    combined = evidence.combine_log_evidence(independent_runs.log_evidence)
    np.testing.assert_allclose(combined.log_evidence, evidence.log_mean_exp(independent_runs.log_evidence))
    spread = float(jnp.std(independent_runs.log_evidence, ddof=1)) / np.sqrt(200)
    assert 0.8 < float(combined.standard_error) / spread < 1.25
    assert abs(float(combined.log_evidence) - EXACT) < 4 * float(combined.standard_error)
    assert float(combined.standard_error) < 0.01  # the bound is tight enough to fail
