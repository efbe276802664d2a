"""Property tests: simulate, assess, generate and update agree with each other."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import growing, plain, stroke, two_strokes

import ppl
from ppl import dist, testing

KEYS = [jax.random.key(s) for s in range(3)]
DENSITY_TOL = dict(rtol=1e-6, atol=1e-5)


def test_assess_of_simulated_choices_is_the_score(case):
    model, args, _ = case
    for key in KEYS:
        testing.check_assess_matches_simulate(model, args, key, DENSITY_TOL)


def test_generate_fully_constrained_weight_is_the_score(case):
    model, args, _ = case
    for key in KEYS:
        testing.check_generate_fully_constrained(model, args, key, DENSITY_TOL)


def test_generate_unconstrained_weight_is_zero_and_matches_simulate(case):
    model, args, _ = case
    testing.check_generate_unconstrained(model, args, KEYS[0], DENSITY_TOL)


def test_generate_partially_constrained_weight_is_the_constrained_density():
    # plain: x ~ N(0, s), y ~ Gamma(2, 1), z ~ N(x, y); constrain x and z, sample y
    trace, log_weight = plain.generate(KEYS[1], {"x": 0.4, "z": -1.0}, 1.5)
    y = trace.choices["y"]
    expected = dist.Normal(0.0, 1.5).log_prob(0.4) + dist.Normal(0.4, y).log_prob(-1.0)
    np.testing.assert_allclose(log_weight, expected, **DENSITY_TOL)
    np.testing.assert_allclose(trace.score, expected + dist.Gamma(2.0, 1.0).log_prob(y), **DENSITY_TOL)
    # nested: constrain one sub-model's width only
    trace, log_weight = two_strokes.generate(KEYS[1], {"b/width": 1.2}, jnp.zeros(2))
    np.testing.assert_allclose(log_weight, dist.LogNormal(0.0, 0.3).log_prob(1.2), **DENSITY_TOL)


def test_update_without_changes_has_zero_weight(case):
    model, args, _ = case
    testing.check_update_without_changes(model, args, KEYS[0], DENSITY_TOL)


def test_update_with_a_change_returns_the_exact_score_difference(case):
    model, args, change = case
    testing.check_update_with_changes(model, args, KEYS[0], change, DENSITY_TOL)


def test_check_interface_catches_a_broken_generative_function():
    class Broken(ppl.Model):
        """Adds a term to the density only when it samples (so simulate and assess disagree)."""

        def body(self, context, *args):
            if context.key is not None:
                context.factor(1.0)
            return super().body(context, *args)

    broken = Broken(plain.fn, name="broken")
    with pytest.raises(AssertionError, match="assess"):
        testing.check_interface(broken, (1.5,))


def test_factors_enter_score_and_weights():
    @ppl.model
    def soft(target):
        x = ppl.sample("x", dist.Normal(0.0, 1.0))
        ppl.factor(-((x - target) ** 2))
        return x

    testing.check_interface(soft, (1.0,), changes={"x": 0.5}, factors=True)
    trace, log_weight = soft.generate(KEYS[0], {}, 1.0)
    np.testing.assert_allclose(log_weight, -((trace.retval - 1.0) ** 2), rtol=1e-6)
    with pytest.raises(ppl.errors.ModelDefinitionError, match="outside a model"):
        ppl.factor(1.0)


def test_update_with_new_arguments_rescores():
    trace = two_strokes.simulate(KEYS[0], jnp.zeros(2))
    new_trace, log_weight = two_strokes.update(KEYS[1], trace, {}, jnp.ones(2))
    assert new_trace.args[0].tolist() == [1.0, 1.0]
    np.testing.assert_allclose(log_weight, new_trace.score - trace.score, atol=1e-5)
    np.testing.assert_allclose(new_trace.retval, trace.retval + 1.0, rtol=1e-6)


def test_update_that_visits_new_addresses_subtracts_their_proposal_density():
    trace = growing.simulate(KEYS[0], 2)
    new_trace, log_weight = growing.update(KEYS[1], trace, {}, 3)
    assert new_trace.choices.addresses() == ("x_0", "x_1", "x_2")
    fresh = dist.Normal(trace.retval, 1.0).log_prob(new_trace.choices["x_2"])
    np.testing.assert_allclose(log_weight, new_trace.score - trace.score - fresh, atol=1e-5)
    # and the reverse move drops x_2 (the discard) with weight p(x')/p(x)
    back, back_weight = growing.update(KEYS[2], new_trace, {}, 2)
    assert back.choices.addresses() == ("x_0", "x_1")
    np.testing.assert_allclose(back_weight, back.score - new_trace.score, atol=1e-5)


def test_submodel_choices_live_under_the_parent_address():
    trace = two_strokes.simulate(KEYS[0], jnp.zeros(2))
    assert trace.choices.addresses() == ("a/delta", "a/width", "b/delta", "b/width")
    np.testing.assert_allclose(
        trace.retval, trace.choices["a/delta"] + trace.choices["b/delta"], rtol=1e-6
    )
    sub_score = sum(
        stroke.assess(trace.choices[name], start).log_density
        for name, start in (("a", jnp.zeros(2)), ("b", trace.choices["a/delta"]))
    )
    np.testing.assert_allclose(trace.score, sub_score, **DENSITY_TOL)


def test_models_nest_to_any_depth():
    @ppl.model
    def four():
        first = ppl.sample("first", two_strokes, jnp.zeros(2))
        return ppl.sample("second", two_strokes, first)

    trace = four.simulate(KEYS[0])
    assert "second/b/delta" in trace.choices.addresses()
    np.testing.assert_allclose(four.assess(trace.choices).log_density, trace.score, **DENSITY_TOL)


def test_masked_out_values_do_not_count():
    @ppl.model
    def masked():
        return ppl.sample("y", dist.Normal(0.0, 1.0).expand([2]).mask(jnp.array([True, False])))

    log_density, _ = masked.assess({"y": jnp.array([0.0, 100.0])})
    np.testing.assert_allclose(log_density, dist.Normal(0.0, 1.0).log_prob(0.0), rtol=1e-6)


def test_same_key_same_trace():
    a = two_strokes.simulate(KEYS[0], jnp.zeros(2))
    b = two_strokes.simulate(KEYS[0], jnp.zeros(2))
    c = two_strokes.simulate(KEYS[1], jnp.zeros(2))
    np.testing.assert_array_equal(a.choices["b/delta"], b.choices["b/delta"])
    assert not np.array_equal(a.choices["b/delta"], c.choices["b/delta"])
    assert isinstance(a, ppl.Trace) and a.args[0].shape == (2,)
