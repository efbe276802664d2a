"""The interface under jax.jit, jax.vmap (over keys and over stacked traces) and jax.grad."""

import jax
import jax.numpy as jnp
import numpy as np
from conftest import MODELS, plain, two_strokes

from ppl import dist, testing


def test_jit_vmap_over_1000_keys_matches_a_python_loop(case):
    model, args, _ = case
    testing.check_vmap_matches_loop(model, args, jax.random.key(7), n=1000, loop=3)


def test_generate_and_update_vmap_over_stacked_traces():
    model, args, change = MODELS["nested"]
    keys = jax.random.split(jax.random.key(0), 64)
    traces = jax.vmap(lambda k: model.simulate(k, *args))(keys)
    updated, weights = jax.jit(jax.vmap(lambda k, t: model.update(k, t, change)))(keys, traces)
    assert weights.shape == (64,)
    np.testing.assert_allclose(weights, updated.score - traces.score, rtol=1e-5, atol=1e-4)
    obs = {"b/width": 1.0}
    generated, log_weights = jax.jit(jax.vmap(lambda k: model.generate(k, obs, *args)))(keys)
    np.testing.assert_allclose(log_weights, dist.LogNormal(0.0, 0.3).log_prob(1.0) * jnp.ones(64), rtol=1e-5)
    assert np.all(generated.choices["b/width"] == 1.0)


def test_traced_constraints_under_jit():
    @jax.jit
    def weight(value):
        return two_strokes.generate(jax.random.key(0), {"a/delta": value}, jnp.zeros(2)).log_weight

    np.testing.assert_allclose(weight(jnp.zeros(2)), dist.Normal(0.0, 1.0).log_prob(0.0) * 2, rtol=1e-6)


def test_grad_of_assess_matches_the_analytic_gradient():
    trace = plain.simulate(jax.random.key(3), 1.5)

    def log_density(choices, scale):
        return plain.assess(choices, scale).log_density

    grad_choices, grad_scale = jax.grad(log_density, argnums=(0, 1))(trace.choices, 1.5)
    x, y, z = (trace.choices[a] for a in "xyz")
    # log p = N(x; 0, s) + Gamma(y; 2, 1) + N(z; x, y)
    np.testing.assert_allclose(grad_choices["x"], -x / 1.5**2 + (z - x) / y**2, rtol=1e-4)
    np.testing.assert_allclose(grad_choices["z"], -(z - x) / y**2, rtol=1e-4)
    np.testing.assert_allclose(grad_choices["y"], 1 / y - 1 - 1 / y + (z - x) ** 2 / y**3, rtol=1e-4)
    np.testing.assert_allclose(grad_scale, -1 / 1.5 + x**2 / 1.5**3, rtol=1e-4)


def test_grad_through_nested_models_and_jit():
    trace = two_strokes.simulate(jax.random.key(0), jnp.zeros(2))
    grad = jax.jit(jax.grad(lambda c: two_strokes.assess(c, jnp.zeros(2)).log_density))(trace.choices)
    finite = jax.tree_util.tree_map(lambda g: bool(jnp.all(jnp.isfinite(g))), grad)
    assert all(jax.tree_util.tree_leaves(finite))
    # d/d a/delta: -a + (b_start=a ... b_delta independent of a) -> just -a/1
    np.testing.assert_allclose(grad["a/delta"], -trace.choices["a/delta"], rtol=1e-5)
