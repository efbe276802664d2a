"""ppl.either: a discrete latent choice among alternatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist, errors, testing

KEY = jax.random.key(0)
TOL = dict(rtol=1e-5, atol=1e-5)


@ppl.model
def near(mean):
    return ppl.sample("x", dist.Normal(mean - 2.0, 1.0))


@ppl.model
def far(mean):
    scale = ppl.sample("scale", dist.LogNormal(0.0, 0.3))
    return ppl.sample("x", dist.Normal(mean + 2.0, 0.5 * scale))


PROBS = jnp.array([0.3, 0.7])
choice = ppl.either(near, far, probs=PROBS)


@ppl.model
def observed(mean):
    x = ppl.sample("f", choice, mean)
    return ppl.sample("y", dist.Normal(x, 1.0))


def test_interface_checks():
    testing.check_interface(choice, (0.5,), changes={"index": 1})
    testing.check_interface(choice, (0.5,), changes={"1/scale": 1.3, "index": 0}, key=jax.random.key(3))
    testing.check_interface(observed, (0.5,), changes={"f/index": 0, "f/0/x": 0.1})
    testing.check_vmap_matches_loop(choice, (0.5,), KEY, n=200)
    testing.check_vmap_matches_loop(observed, (0.5,), KEY, n=200)


def test_score_is_the_index_prior_plus_every_alternative_under_its_prior():
    # the inactive-structure convention (ppl.context): the alternative not chosen is an
    # auxiliary variable, drawn from and scored under its prior
    for seed in range(6):
        trace = choice.simulate(jax.random.key(seed), 0.5)
        k = int(trace.choices["index"])
        scores = [branch.assess(trace.choices[str(j)], 0.5).log_density for j, branch in enumerate((near, far))]
        np.testing.assert_allclose(trace.score, jnp.log(PROBS[k]) + scores[0] + scores[1], **TOL)
        np.testing.assert_allclose(trace.retval, trace.choices[f"{k}/x"], **TOL)
        # every alternative's choices are in the trace, whichever is chosen
        assert trace.choices.addresses() == ("0/x", "1/scale", "1/x", "index")


def test_index_frequencies_match_probs():
    n = 20_000
    traces = jax.jit(jax.vmap(lambda k: choice.simulate(k, 0.0)))(jax.random.split(KEY, n))
    frequency = float(jnp.mean(traces.choices["index"] == 1))
    standard_error = np.sqrt(0.7 * 0.3 / n)
    assert abs(frequency - 0.7) < 5 * standard_error


def test_importance_weights_give_the_mixture_evidence():
    # p(y) = sum_k probs_k N(y; m_k, sqrt(s_k^2 + 1)); far's scale is integrated by Monte Carlo too,
    # so compare against a many-sample estimate of the exact mixture density.
    y, mean, n = 1.7, 0.5, 40_000
    keys = jax.random.split(jax.random.key(7), n)
    _, log_weights = jax.jit(jax.vmap(lambda k: observed.generate(k, {"y": y}, mean)))(keys)
    log_evidence = jax.scipy.special.logsumexp(log_weights) - jnp.log(n)
    scales = 0.5 * jnp.exp(0.3 * jax.random.normal(jax.random.key(8), (400_000,)))
    far_density = jnp.mean(jnp.exp(dist.Normal(mean + 2.0, jnp.sqrt(scales**2 + 1.0)).log_prob(y)))
    near_density = jnp.exp(dist.Normal(mean - 2.0, jnp.sqrt(2.0)).log_prob(y))
    exact = jnp.log(0.3 * near_density + 0.7 * far_density)
    weights = jnp.exp(log_weights - jnp.max(log_weights))
    relative_error = jnp.std(weights) / jnp.mean(weights) / jnp.sqrt(n)  # delta-method s.e. of log Z
    assert abs(float(log_evidence - exact)) < 5 * float(relative_error) + 2e-3


def test_assess_with_a_concrete_index_needs_only_the_chosen_alternative():
    log_density, retval = choice.assess({"index": 0, "0/x": 0.1}, 0.5)
    np.testing.assert_allclose(log_density, jnp.log(0.3) + dist.Normal(-1.5, 1.0).log_prob(0.1), **TOL)
    assert float(retval) == pytest.approx(0.1)
    # values given for the inactive alternative are scored under its prior (without them it
    # integrates to one); an inactive alternative is given whole or not at all
    with_inactive, _ = choice.assess({"index": 0, "0/x": 0.1, "1/x": 5.0, "1/scale": 1.2}, 0.5)
    inactive = far.assess({"x": 5.0, "scale": 1.2}, 0.5).log_density
    np.testing.assert_allclose(with_inactive, log_density + inactive, **TOL)
    with pytest.raises(errors.MissingChoiceError) as err:
        choice.assess({"index": 0, "0/x": 0.1, "1/x": 5.0}, 0.5)
    assert err.value.address == "1/scale"
    with pytest.raises(errors.SupportError) as err:
        choice.assess({"index": 0, "0/x": 0.1, "1/scale": -1.0}, 0.5)
    assert err.value.address == "1/scale"
    with pytest.raises(errors.MissingChoiceError) as err:
        choice.assess({"index": 1, "0/x": 0.1}, 0.5)
    assert err.value.address == "1/scale"


def test_assess_under_jit_needs_every_alternative():
    assess = jax.jit(lambda c: choice.assess(c, 0.5).log_density)
    with pytest.raises(errors.MissingChoiceError, match="every alternative") as err:
        assess(ppl.ChoiceMap({"index": 0, "0/x": 0.1}))
    assert err.value.address == "1/scale"
    trace = choice.simulate(KEY, 0.5)
    np.testing.assert_allclose(assess(trace.choices), trace.score, **TOL)


def test_inactive_alternatives_are_auxiliary_variables_under_their_prior():
    # constrain the inactive alternative: the value is kept and scored under its prior
    trace, log_weight = choice.generate(KEY, {"index": 0, "1/x": 3.0}, 0.5)
    assert float(trace.choices["1/x"]) == 3.0
    far_x = dist.Normal(2.5, 0.5 * trace.choices["1/scale"]).log_prob(3.0)
    np.testing.assert_allclose(log_weight, jnp.log(0.3) + far_x, **TOL)
    # switching the index activates them; the weight is the exact score change
    new_trace, delta = choice.update(jax.random.key(1), trace, {"index": 1})
    expected = (jnp.log(0.7) + far.assess(trace.choices["1"], 0.5).log_density
                + near.assess(trace.choices["0"], 0.5).log_density)
    np.testing.assert_allclose(new_trace.score, expected, **TOL)
    np.testing.assert_allclose(delta, new_trace.score - trace.score, **TOL)
    assert float(new_trace.retval) == 3.0


def test_keyword_alternatives_nest_under_their_names():
    named = ppl.either(close=near, distant=far, probs=[0.5, 0.5])

    @ppl.model
    def outer():
        return ppl.sample("pick", named, 0.0)

    trace = outer.simulate(KEY)
    assert trace.choices.addresses() == ("pick/close/x", "pick/distant/scale", "pick/distant/x", "pick/index")
    mixed = ppl.either(near, other=far)
    assert mixed.names == ("0", "other")
    testing.check_interface(outer, (), changes={"pick/index": 1})


def test_a_traced_index_outside_the_range_scores_minus_infinity():
    trace = choice.simulate(KEY, 0.5)
    score = jax.jit(lambda k: choice.assess(trace.choices.set("index", k), 0.5).log_density)
    assert float(score(jnp.int32(5))) == -np.inf
    assert np.isfinite(float(score(jnp.int32(1))))


def test_concrete_index_errors_name_the_index_address():
    with pytest.raises(errors.SupportError) as err:
        choice.assess({"index": 2, "0/x": 0.0}, 0.5)
    assert err.value.address == "index"
    with pytest.raises(errors.DtypeError):
        choice.generate(KEY, {"index": 0.5}, 0.5)
    with pytest.raises(errors.MissingChoiceError, match="index"):
        choice.assess({"0/x": 0.0}, 0.5)
    with pytest.raises(errors.UnknownAddressError, match="Did you mean '0/x'"):
        choice.generate(KEY, {"0/xx": 0.0}, 0.5)


@pytest.mark.parametrize(
    "probs, message",
    [
        ([0.5, 0.3], "sum to one"),
        ([0.5, 0.25, 0.25], r"shape \(2,\)"),
        ([[0.5, 0.5]], r"shape \(2,\)"),
        ([1.5, -0.5], "non-negative"),
        ([float("nan"), 1.0], "finite"),
        (["a", "b"], "numbers"),
    ],
)
def test_bad_probs_raise_composition_error(probs, message):
    with pytest.raises(errors.CompositionError, match=message):
        ppl.either(near, far, probs=probs)


def test_probs_within_tolerance_are_accepted():
    ppl.either(near, far, probs=[0.3, 0.7 + 5e-7])
    with pytest.raises(errors.CompositionError):
        ppl.either(near, far, probs=[0.3, 0.7 + 5e-6])


def test_bad_alternatives_raise_composition_error():
    with pytest.raises(errors.CompositionError, match="at least one"):
        ppl.either()
    with pytest.raises(errors.CompositionError, match="generative function"):
        ppl.either(near, lambda m: m)
    with pytest.raises(errors.CompositionError, match="'index'"):
        ppl.either(index=near)


def test_alternatives_returning_different_shapes_or_dtypes_raise():
    @ppl.model
    def vector(mean):
        return ppl.sample("v", dist.Normal(mean, 1.0).expand([3]).to_event(1))

    @ppl.model
    def count(mean):
        return ppl.sample("n", dist.Poisson(2.0))

    for other, shown in ((vector, "float32[3]"), (count, "int32[]")):
        with pytest.raises(errors.CompositionError, match="same structure, shape and dtype") as err:
            ppl.either(near, other).simulate(KEY, 0.5)
        assert shown in str(err.value)
