"""ppl.features, ppl.log_compatibility, ppl.product_of_experts, ppl.register_product."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist, testing

KEY = jax.random.key(0)
TOL = dict(rtol=1e-5, atol=1e-5)

# Concepts over three feature channels: shape (round, cylinder, box), colour (RGB), motion (speed, m/s).
PURPLE = {"colour": dist.Normal(jnp.array([0.55, 0.1, 0.65]), 0.08).to_event(1)}
RED = {"colour": dist.Normal(jnp.array([0.85, 0.1, 0.1]), 0.08).to_event(1)}
BLUE = {"colour": dist.Normal(jnp.array([0.1, 0.2, 0.85]), 0.08).to_event(1)}
JAR = {
    "shape": dist.Categorical(probs=jnp.array([0.15, 0.75, 0.1])),
    "colour": dist.Normal(0.5, 0.3).expand([3]).to_event(1),
    "motion": dist.Normal(0.0, 0.1),
}
APPLE = {
    "shape": dist.Categorical(probs=jnp.array([0.85, 0.1, 0.05])),
    "colour": dist.Normal(jnp.array([0.75, 0.3, 0.1]), 0.12).to_event(1),
    "motion": dist.Normal(0.0, 0.1),
}
STATIONARY = {"motion": dist.Normal(0.0, 0.05)}
DANCING = {"motion": dist.Normal(2.0, 0.5)}


@ppl.model
def purple():
    """A concept with a latent of its own: how strongly red and blue it is."""
    shade = ppl.sample("shade", dist.Normal(0.6, 0.05))
    return {"colour": dist.Normal(jnp.stack([shade, 0.1, shade + 0.05]), 0.08).to_event(1)}


@ppl.model
def dancing():
    speed = ppl.sample("speed", dist.LogNormal(jnp.log(2.0), 0.2))
    return {"motion": dist.Normal(speed, 0.5), "shape": dist.Categorical(logits=jnp.zeros(3))}


PURPLE_DANCING_JAR = ppl.features(purple=purple, jar=JAR, dancing=dancing)


def _sum_log_probs(distributions, value):
    return sum(d.log_prob(value) for d in distributions)


# ---------------------------------------------------------------------------
# Closed forms: prod_i p_i(x) = Z p*(x) at every x
# ---------------------------------------------------------------------------

PAIRS = {
    "normal": (dist.Normal(0.3, 0.5), dist.Normal(-1.0, 2.0)),
    "batched normal": (dist.Normal(jnp.array([0.0, 1.0]), 0.5), dist.Normal(2.0, jnp.array([1.0, 3.0]))),
    "diagonal": (
        dist.Normal(jnp.array([0.1, 0.2, 0.3]), jnp.array([0.5, 1.0, 2.0])).to_event(1),
        dist.Normal(1.0, 0.7).expand([3]).to_event(1),
    ),
    "batched diagonal": (
        dist.Normal(jnp.arange(6.0).reshape(2, 3), 1.0).to_event(1),
        dist.Normal(jnp.zeros(3), 2.0).to_event(1).expand([2]),
    ),
    "multivariate": (
        dist.MultivariateNormal(jnp.array([0.0, 1.0]), jnp.array([[1.0, 0.3], [0.3, 0.5]])),
        dist.MultivariateNormal(jnp.array([1.0, -1.0]), jnp.array([[2.0, -0.4], [-0.4, 1.0]])),
    ),
    "categorical": (
        dist.Categorical(probs=jnp.array([0.2, 0.5, 0.3])),
        dist.Categorical(logits=jnp.array([1.0, -2.0, 0.5])),
    ),
    "batched categorical": (
        dist.Categorical(probs=jnp.array([[0.2, 0.8], [0.6, 0.4]])),
        dist.Categorical(probs=jnp.array([0.5, 0.5])).expand([2]),
    ),
    "bernoulli": (dist.Bernoulli(probs=0.9), dist.Bernoulli(logits=-1.0)),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_product_times_normaliser_is_the_product_of_densities(name):
    a, b = PAIRS[name]
    product, log_z = ppl.product_of_experts(a, b)
    assert product.batch_shape == a.batch_shape and product.event_shape == a.event_shape
    assert log_z.shape == a.batch_shape
    if a.support.is_discrete:
        categories = a.logits.shape[-1] if "categorical" in name else 2
        values = jnp.arange(categories).reshape((-1,) + (1,) * len(a.batch_shape))
    else:
        values = product.sample(KEY, (5,))
    np.testing.assert_allclose(_sum_log_probs([a, b], values), log_z + product.log_prob(values), **TOL)


def test_three_normal_experts_fold_to_the_grid_integral():
    experts = [dist.Normal(0.0, 1.0), dist.Normal(1.5, 0.5), dist.Normal(-0.5, 2.0)]
    product, log_z = ppl.product_of_experts(*experts)
    grid = jnp.linspace(-10.0, 10.0, 20001)
    integral = np.trapezoid(np.exp(np.asarray(_sum_log_probs(experts, grid), np.float64)), np.asarray(grid))
    np.testing.assert_allclose(np.exp(float(log_z)), integral, rtol=1e-4)
    np.testing.assert_allclose(_sum_log_probs(experts, grid[::500]), log_z + product.log_prob(grid[::500]), **TOL)


def test_three_categorical_experts_fold_to_the_sum_of_products():
    probs = jnp.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.3, 0.3, 0.4]])
    product, log_z = ppl.product_of_experts(*[dist.Categorical(probs=p) for p in probs])
    np.testing.assert_allclose(jnp.exp(log_z), jnp.sum(jnp.prod(probs, axis=0)), **TOL)
    np.testing.assert_allclose(product.probs, jnp.prod(probs, axis=0) / jnp.sum(jnp.prod(probs, axis=0)), **TOL)


def test_three_multivariate_experts_match_a_monte_carlo_integral():
    # Z = E_{x ~ p1}[p2(x) p3(x)]; the bound is 5 reported standard errors.
    p1 = dist.MultivariateNormal(jnp.zeros(2), jnp.array([[1.0, 0.5], [0.5, 1.0]]))
    p2 = dist.MultivariateNormal(jnp.array([0.5, 0.0]), 2.0 * jnp.eye(2))
    p3 = dist.Normal(jnp.array([0.0, 0.5]), 1.5).to_event(1)
    p3_full = dist.MultivariateNormal(p3.base_dist.loc, 1.5**2 * jnp.eye(2))
    _, log_z = ppl.product_of_experts(p1, p2, p3_full)
    x = p1.sample(KEY, (200_000,))
    terms = np.exp(np.asarray(p2.log_prob(x) + p3.log_prob(x), np.float64))
    estimate, standard_error = terms.mean(), terms.std() / np.sqrt(len(terms))
    exact = np.exp(float(log_z))
    assert abs(exact - estimate) < 5 * standard_error, (exact, estimate, standard_error)


def test_categories_that_share_no_support_give_minus_infinity_not_nan():
    a = {"shape": dist.Categorical(probs=jnp.array([1.0, 0.0]))}
    b = {"shape": dist.Categorical(probs=jnp.array([0.0, 1.0]))}
    assert float(ppl.log_compatibility(a, b)) == -np.inf
    trace = ppl.features(a=a, b=b).simulate(KEY)
    assert float(trace.score) == -np.inf and int(trace.retval["shape"]) in (0, 1)


# ---------------------------------------------------------------------------
# log_compatibility and the motivating example
# ---------------------------------------------------------------------------


def test_purple_jar_is_compatible_and_stationary_dancing_is_not():
    purple_jar = float(ppl.log_compatibility(PURPLE, JAR))
    stationary_dancing = float(ppl.log_compatibility(STATIONARY, DANCING))
    assert purple_jar > -1.0
    assert purple_jar - stationary_dancing > np.log(1000.0)  # at least three orders of magnitude
    red_apple, blue_apple = float(ppl.log_compatibility(RED, APPLE)), float(ppl.log_compatibility(BLUE, APPLE))
    assert red_apple - blue_apple > np.log(1e6)
    still_jar = float(ppl.log_compatibility(STATIONARY, JAR))
    dancing_jar = float(ppl.log_compatibility(DANCING, JAR))
    assert still_jar - dancing_jar > np.log(1000.0)


def test_compatibility_sums_the_shared_channels_and_is_zero_without_overlap():
    assert float(ppl.log_compatibility(PURPLE, STATIONARY)) == 0.0
    assert float(ppl.log_compatibility(JAR)) == 0.0 and float(ppl.log_compatibility()) == 0.0
    expected = sum(ppl.product_of_experts(JAR[c], APPLE[c])[1] for c in ("shape", "colour", "motion"))
    np.testing.assert_allclose(ppl.log_compatibility(JAR, APPLE), expected, **TOL)
    three = ppl.log_compatibility(PURPLE, JAR, STATIONARY)
    pairwise = ppl.log_compatibility(PURPLE, JAR) + ppl.log_compatibility(STATIONARY, JAR)
    np.testing.assert_allclose(three, pairwise, **TOL)


# ---------------------------------------------------------------------------
# The composite
# ---------------------------------------------------------------------------


def test_features_passes_the_interface_checks_with_its_compatibility_factor():
    changes = {"purple/shade": 0.5, "motion": 0.3}
    testing.check_interface(PURPLE_DANCING_JAR, (), changes=changes, factors=True, tol=TOL)
    testing.check_vmap_matches_loop(PURPLE_DANCING_JAR, (), KEY, n=64)


def test_unconstrained_generate_weight_is_the_log_compatibility():
    trace, log_weight = PURPLE_DANCING_JAR.generate(KEY, {})
    assert set(trace.choices.addresses()) == {"purple/shade", "dancing/speed", "colour", "motion", "shape"}
    purple_says = purple.assess({"shade": trace.choices["purple/shade"]}).retval
    dancing_says = dancing.assess({"speed": trace.choices["dancing/speed"]}).retval
    np.testing.assert_allclose(log_weight, ppl.log_compatibility(purple_says, JAR, dancing_says), **TOL)
    assert float(log_weight) < -3.0  # a dancing jar is an unlikely thing


def test_observed_features_are_scored_by_every_part_that_predicts_them():
    observed = {"colour": jnp.array([0.5, 0.2, 0.6]), "motion": jnp.array(1.2), "shape": jnp.array(1)}
    trace, log_weight = PURPLE_DANCING_JAR.generate(KEY, observed)
    purple_says = purple.assess({"shade": trace.choices["purple/shade"]}).retval
    dancing_says = dancing.assess({"speed": trace.choices["dancing/speed"]}).retval
    expected = sum(
        prediction[channel].log_prob(value)
        for channel, value in observed.items()
        for prediction in (purple_says, JAR, dancing_says)
        if channel in prediction
    )
    np.testing.assert_allclose(log_weight, expected, **TOL)


def test_parts_receive_the_composite_arguments_and_nest_inside_models():
    @ppl.model
    def near(x):
        return {"y": dist.Normal(x, 1.0)}

    @ppl.model
    def far(x):
        offset = ppl.sample("offset", dist.Normal(3.0, 0.1))
        return {"y": dist.Normal(x + offset, 1.0)}

    composite = ppl.features(near=near, far=far)

    @ppl.model
    def scene(x):
        return ppl.sample("thing", composite, x)

    trace = scene.simulate(KEY, 2.0)
    assert trace.choices.addresses() == ("thing/far/offset", "thing/y")
    offset = trace.choices["thing/far/offset"]
    expected = (
        dist.Normal(3.0, 0.1).log_prob(offset)
        + dist.Normal(2.0, 1.0).log_prob(trace.retval["y"])
        + dist.Normal(2.0 + offset, 1.0).log_prob(trace.retval["y"])
    )
    np.testing.assert_allclose(trace.score, expected, **TOL)
    with pytest.raises(ppl.errors.MissingChoiceError, match="thing/y"):
        scene.assess({"thing/far/offset": 3.0}, 2.0)


# ---------------------------------------------------------------------------
# Registering a closed form
# ---------------------------------------------------------------------------


class Rate(dist.Exponential):
    """A test-local family, so registering it leaves every other family untouched."""


def test_a_registered_rule_serves_features_and_wrapped_predictions():
    @ppl.register_product(Rate, Rate)
    def rate_product(a, b):
        rate = a.rate + b.rate
        return Rate(rate), jnp.log(a.rate) + jnp.log(b.rate) - jnp.log(rate)

    a = Rate(jnp.array([1.0, 2.0])).to_event(1)
    b = Rate(0.5).expand([2]).to_event(1)
    product, log_z = ppl.product_of_experts(a, b)
    assert product.event_shape == (2,) and log_z.shape == ()
    values = jnp.array([[0.3, 1.7], [2.0, 0.1]])
    np.testing.assert_allclose(_sum_log_probs([a, b], values), log_z + product.log_prob(values), **TOL)
    composite = ppl.features(a={"wait": a}, b={"wait": b})
    _, log_weight = composite.generate(KEY, {})
    np.testing.assert_allclose(log_weight, log_z, **TOL)


class BadRate(dist.Exponential):
    """A test-local family whose registered rule is broken."""


def test_a_rule_returning_the_wrong_thing_is_a_clear_error():
    @ppl.register_product(BadRate, BadRate)
    def broken(a, b):
        return a.rate * b.rate, jnp.zeros(5)

    with pytest.raises(ppl.errors.CompositionError, match="rule for BadRate and BadRate returned") as caught:
        ppl.features(a={"wait": BadRate(1.0)}, b={"wait": BadRate(2.0)}).simulate(KEY)
    assert caught.value.address == "wait"


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def _simulate(**parts):
    return lambda: ppl.features(**parts).simulate(KEY)


@ppl.model
def returns_a_number():
    return ppl.sample("x", dist.Normal(0.0, 1.0))


@ppl.model
def predicts_motion_twice_the_size():
    return {"motion": dist.Normal(jnp.zeros(2), 1.0)}


BAD = {
    "incompatible types": (
        _simulate(a={"x": dist.Normal(0.0, 1.0)}, b={"x": dist.Categorical(probs=jnp.ones(3) / 3)}),
        "part 'a' predicts Normal and part 'b' predicts CategoricalProbs.*same family.*register_product",
        "x",
    ),
    "incompatible batch shapes": (
        _simulate(still=STATIONARY, twice=predicts_motion_twice_the_size),
        r"batch shape \(\) .* batch shape \(2,\).*same shape",
        "motion",
    ),
    "batch versus event shape": (
        _simulate(a={"c": dist.Normal(jnp.zeros(3), 1.0)}, b={"c": PURPLE["colour"]}),
        r"batch shape \(3,\) and event shape \(\).*event shape \(3,\).*to_event\(1\)",
        "c",
    ),
    "different categories": (
        _simulate(jar=JAR, odd={"shape": dist.Categorical(probs=jnp.ones(4) / 4)}),
        "cannot multiply: the predictions have 3 and 4 categories",
        "shape",
    ),
    "no closed form": (
        _simulate(a={"t": dist.Gamma(2.0, 1.0)}, b={"t": dist.Gamma(3.0, 1.0)}),
        "no closed-form product of Gamma and Gamma.*register_product",
        "t",
    ),
    "channel named like a part": (
        _simulate(motion=STATIONARY, dancing=DANCING),
        "also the name of a part.*Name the part after what it is",
        "motion",
    ),
    "part returns no dict": (
        _simulate(number=returns_a_number),
        "gave ArrayImpl.*predicts a dict",
        "number",
    ),
    "prediction is no distribution": (
        lambda: ppl.features(a={"x": 1.0}),
        "predicts channel 'x' as float",
        None,
    ),
    "channel name with a slash": (
        lambda: ppl.log_compatibility({"a/b": dist.Normal(0.0, 1.0)}),
        "channel named 'a/b'.*without '/'",
        None,
    ),
    "part is a plain function": (
        lambda: ppl.features(jar=lambda: JAR),
        "part 'jar' is function.*@ppl.model",
        None,
    ),
    "no parts": (lambda: ppl.features(), "at least one part", None),
    "compatibility of a model": (
        lambda: ppl.log_compatibility(purple, JAR),
        r"generative function 'purple'.*purple.simulate\(key, \*args\).retval",
        None,
    ),
    "product of a non-distribution": (
        lambda: ppl.product_of_experts(dist.Normal(0.0, 1.0), 2.0),
        "distribution 2 is float",
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_raises_a_composition_error(name):
    thunk, message, address = BAD[name]
    with pytest.raises(ppl.errors.CompositionError, match=message) as caught:
        thunk()
    assert caught.value.address == address


def test_errors_inside_a_nested_composite_carry_the_full_address():
    @ppl.model
    def scene():
        return ppl.sample("thing", ppl.features(a={"x": dist.Gamma(1.0, 1.0)}, b={"x": dist.Gamma(1.0, 1.0)}))

    with pytest.raises(ppl.errors.CompositionError, match="In model 'scene', address 'thing/x'"):
        scene.simulate(KEY)
