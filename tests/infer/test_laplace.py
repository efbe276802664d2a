"""ppl.infer.laplace: exact on linear-Gaussian models (conjugate, regression, Kalman through an unfold),
inactive structure integrated exactly, jit/vmap, one compilation, and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist
from ppl.testing import kalman_filter, linear_regression_log_evidence, normal_normal_log_evidence

KEY = jax.random.key(0)
traced = []


@ppl.model
def location(count):
    traced.append(1)
    mu = ppl.sample("mu", dist.Normal(0.5, 2.0))
    ppl.sample("y", dist.Normal(mu, 1.0).expand([count]).to_event(1))


def test_conjugate_normal_is_exact_and_compiles_once():
    y = jnp.array([1.2, 0.7, 2.1, 1.6, 0.9])
    result = ppl.infer.laplace(KEY, location, {"y": y}, 5)
    np.testing.assert_allclose(result.log_evidence, normal_normal_log_evidence(y, 0.5, 2.0, 1.0), atol=1e-4)
    assert int(result.dimension) == 1 and float(result.gradient_norm) < 1e-3
    assert float(result.log_evidence_standard_error) == 0.0
    # the mode is the posterior mean (Gaussian), in the trace
    posterior_mean = (0.5 / 4.0 + y.sum()) / (1 / 4.0 + 5)
    np.testing.assert_allclose(result.trace.choices["mu"], posterior_mean, atol=1e-4)
    before = len(traced)
    again = ppl.infer.laplace(jax.random.key(1), location, {"y": y + 1.0}, 5)
    assert len(traced) == before  # new data of the same shape: no new trace, no new compilation
    np.testing.assert_allclose(again.log_evidence, normal_normal_log_evidence(y + 1.0, 0.5, 2.0, 1.0), atol=1e-4)


def test_newton_stops_at_the_mode():
    """On a quadratic log density one Newton step lands on the mode: the loop stops there (the start, the
    step, and the check that no full step would add NEWTON_TOLERANCE), far below its cap, with the same
    evidence as a capped run."""
    y = jnp.array([1.2, 0.7, 2.1, 1.6, 0.9])
    exact = normal_normal_log_evidence(y, 0.5, 2.0, 1.0)
    long = ppl.infer.laplace(KEY, location, {"y": y}, 5, steps=0, newton=30)
    short = ppl.infer.laplace(KEY, location, {"y": y}, 5, steps=0, newton=2)
    assert int(long.newton_steps) <= 4 and int(short.newton_steps) <= 3
    np.testing.assert_allclose(long.log_evidence, exact, atol=1e-4)
    np.testing.assert_allclose(short.log_evidence, exact, atol=1e-4)


@ppl.model
def regression(design):
    weights = ppl.sample("w", dist.Normal(0.0, 1.5).expand([design.shape[1]]).to_event(1))
    ppl.sample("y", dist.Normal(design @ weights, 0.4).to_event(1))


def test_linear_regression_is_exact():
    design = jax.random.normal(jax.random.key(2), (30, 3))
    y = design @ jnp.array([1.0, -0.5, 0.3]) + 0.4 * jax.random.normal(jax.random.key(3), (30,))
    result = ppl.infer.laplace(KEY, regression, {"y": y}, design)
    exact = linear_regression_log_evidence(design, y, jnp.zeros(3), 1.5**2 * jnp.eye(3), 0.4)
    np.testing.assert_allclose(result.log_evidence, exact, atol=1e-3)


A, Q, R = 0.8, 0.6, 0.5


@ppl.model
def linear_gaussian(t, x):
    x = ppl.sample("x", dist.Normal(A * x, Q))
    ppl.sample("y", dist.Normal(x, R))
    return x


CHAIN = ppl.unfold(linear_gaussian, 25)


@ppl.model
def started():
    start = ppl.sample("start", dist.Normal(0.0, 1.0))
    return ppl.sample("chain", CHAIN, start)


def test_kalman_evidence_through_a_nested_unfold():
    ys = CHAIN.simulate(jax.random.key(4), 0.0).choices["y"]
    eye = jnp.eye(1)
    exact = kalman_filter(ys[:, None], jnp.zeros(1), (A**2 + Q**2) * eye, A * eye, Q**2 * eye, eye, R**2 * eye)
    result = ppl.infer.laplace(KEY, started, {"chain/y": ys})
    assert int(result.dimension) == 26
    np.testing.assert_allclose(result.log_evidence, exact.log_evidence, atol=2e-3)


@ppl.model
def narrow():
    return ppl.sample("x", dist.Normal(-1.0, 0.5))


@ppl.model
def wide():
    scale = ppl.sample("scale", dist.HalfNormal(1.0))  # non-Gaussian in u: integrated exactly when inactive
    return ppl.sample("x", dist.Normal(1.0, 2.0 * scale))


PICK = ppl.either(narrow, wide, probs=[0.4, 0.6])


@ppl.model
def observed_pick():
    x = ppl.sample("f", PICK)
    ppl.sample("y", dist.Normal(x, 0.3))


def test_inactive_alternatives_integrate_exactly():
    # index fixed to the narrow alternative: the evidence is that alternative's, exactly,
    # whatever the inactive one holds (its HalfNormal scale is not Gaussian in u)
    y = jnp.asarray(-0.6)
    result = ppl.infer.laplace(KEY, observed_pick, {"f/index": 0, "y": y})
    exact = jnp.log(0.4) + dist.Normal(-1.0, jnp.sqrt(0.5**2 + 0.3**2)).log_prob(y)
    np.testing.assert_allclose(result.log_evidence, exact, atol=1e-4)
    assert int(result.dimension) == 1
    # under vmap over the index (traced activity), the same numbers
    both = jax.vmap(lambda k: ppl.infer.laplace(KEY, observed_pick, {"f/index": k, "y": y}).log_evidence)(
        jnp.arange(2))
    np.testing.assert_allclose(both[0], exact, atol=1e-4)
    assert np.isfinite(both[1])


def test_max_dimension_gathers_the_active_coordinates():
    # the Hessian over the active coordinates only (3 latents, at most 2 active) gives the same estimate;
    # a structure with more active dimensions than max_dimension gets nan, not a wrong number
    y = jnp.asarray(-0.6)

    def evidences(max_dimension):
        estimate = ppl.infer.Laplace(max_dimension=max_dimension)
        return jax.vmap(lambda k: estimate(KEY, observed_pick, {"f/index": k, "y": y}))(jnp.arange(2))

    full, gathered, narrow_only = evidences(None), evidences(2), evidences(1)
    np.testing.assert_allclose(gathered.log_evidence, full.log_evidence, rtol=1e-5)
    np.testing.assert_array_equal(gathered.dimension, [1, 2])
    np.testing.assert_allclose(narrow_only.log_evidence[0], full.log_evidence[0], rtol=1e-5)
    assert np.isnan(narrow_only.log_evidence[1])
    for key, value in full.trace.choices.items():
        np.testing.assert_allclose(gathered.trace.choices[key], value, rtol=1e-4, atol=1e-5)


def test_as_classify_estimator_and_inside_jit():
    models = {"narrow": ppl.model(lambda: ppl.sample("y", dist.Normal(ppl.sample("x", dist.Normal(0.0, 0.5)), 0.3)),
                                  name="narrow_y"),
              "wide": ppl.model(lambda: ppl.sample("y", dist.Normal(ppl.sample("x", dist.Normal(0.0, 3.0)), 0.3)),
                                name="wide_y")}
    ys = jnp.array([0.1, 2.5, -4.0])
    result = ppl.infer.classify(KEY, models, {"y": ys}, estimator=ppl.infer.laplace)
    exact = np.stack([dist.Normal(0.0, np.hypot(s, 0.3)).log_prob(ys) for s in (0.5, 3.0)], -1)
    np.testing.assert_allclose(result.log_evidence, exact, atol=1e-4)
    jitted = jax.jit(lambda y: ppl.infer.laplace(KEY, location, {"y": y}, 5).log_evidence)(jnp.ones(5))
    np.testing.assert_allclose(jitted, normal_normal_log_evidence(jnp.ones(5), 0.5, 2.0, 1.0), atol=1e-4)


def test_errors():
    @ppl.model
    def coin():
        p = ppl.sample("p", dist.Beta(2.0, 2.0))
        return ppl.sample("heads", dist.Bernoulli(p))

    with pytest.raises(ppl.errors.InferenceError, match="'heads'.*discrete"):
        ppl.infer.laplace(KEY, coin, {})
    with pytest.raises(ppl.errors.InferenceError, match="restarts"):
        ppl.infer.laplace(KEY, location, {"y": jnp.ones(3)}, 3, restarts=0)
    with pytest.raises(ppl.errors.InferenceError, match="max_dimension"):
        ppl.infer.laplace(KEY, location, {"y": jnp.ones(3)}, 3, max_dimension=0)
    with pytest.raises(ppl.errors.UnknownAddressError):
        ppl.infer.laplace(KEY, location, {"yy": jnp.ones(3)}, 3)


def test_init_sets_the_starting_points_of_the_restarts():
    y = jnp.array([1.2, 0.7, 2.1, 1.6, 0.9])
    # no Adam and no Newton step: the result sits at the better of the two given starting points
    start = ppl.infer.laplace(KEY, location, {"y": y}, 5, restarts=2, steps=0, newton=0,
                              init={"mu": jnp.array([9.0, 1.0])})
    np.testing.assert_allclose(start.trace.choices["mu"], 1.0)
    # Newton steps from a given start reach the exact (Gaussian) answer
    exact = ppl.infer.laplace(KEY, location, {"y": y}, 5, restarts=1, steps=0, newton=3, init={"mu": jnp.array([9.0])})
    np.testing.assert_allclose(exact.log_evidence, normal_normal_log_evidence(y, 0.5, 2.0, 1.0), atol=1e-4)
    with pytest.raises(ppl.errors.InferenceError, match="leading axis of length restarts=2"):
        ppl.infer.laplace(KEY, location, {"y": y}, 5, restarts=2, init={"mu": jnp.array([1.0])})
