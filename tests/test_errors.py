"""Every user mistake gets a ppl.errors exception naming the model and the address."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import mixed, two_strokes

import ppl
from ppl import dist, errors

KEY = jax.random.key(0)
START = jnp.zeros(2)


@ppl.model
def twice():
    ppl.sample("x", dist.Normal(0.0, 1.0))
    ppl.sample("x", dist.Normal(0.0, 1.0))


@ppl.model
def rates():
    return ppl.sample("rate", dist.Gamma(2.0, 2.0))


def check(err, *, model, address, mentions=()):
    message = str(err.value)
    assert err.value.model == model and err.value.address == address
    assert f"'{model}'" in message and f"'{address}'" in message
    for text in mentions:
        assert text in message, message


def test_address_used_twice():
    with pytest.raises(errors.DuplicateAddressError) as err:
        twice.simulate(KEY)
    check(err, model="twice", address="x", mentions=["twice"])


def test_address_used_twice_inside_a_submodel_names_the_full_address():
    @ppl.model
    def outer():
        ppl.sample("inner", twice)

    with pytest.raises(errors.DuplicateAddressError) as err:
        outer.simulate(KEY)
    check(err, model="outer", address="inner/x")


@pytest.mark.parametrize("method", ["generate", "assess", "update"])
def test_unknown_address_suggests_the_closest(method):
    trace = two_strokes.simulate(KEY, START)
    typo = {"b/delat": jnp.zeros(2)}
    with pytest.raises(errors.UnknownAddressError) as err:
        if method == "generate":
            two_strokes.generate(KEY, typo, START)
        elif method == "assess":
            two_strokes.assess(trace.choices.merge(typo), START)
        else:
            two_strokes.update(KEY, trace, typo)
    check(err, model="two_strokes", address="b/delat", mentions=["Did you mean 'b/delta'?"])


def test_wrong_shape():
    with pytest.raises(errors.ShapeError) as err:
        two_strokes.generate(KEY, {"a/delta": jnp.zeros(3)}, START)
    check(err, model="two_strokes", address="a/delta", mentions=["(2,)", "(3,)"])


@pytest.mark.parametrize(
    "address, value, mentions",
    [
        ("coin", jnp.array(0.5), ["non-integer"]),
        ("which", "two", ["number or array"]),
        ("count", jnp.array(1 + 2j), ["complex"]),
    ],
)
def test_wrong_dtype(address, value, mentions):
    with pytest.raises(errors.DtypeError) as err:
        mixed.generate(KEY, {address: value}, 0.3)
    check(err, model="mixed", address=address, mentions=mentions)


def test_bool_for_a_continuous_distribution_and_traced_float_for_a_discrete_one():
    with pytest.raises(errors.DtypeError) as err:
        two_strokes.generate(KEY, {"a/width": jnp.array(True)}, START)
    check(err, model="two_strokes", address="a/width", mentions=["bool"])
    with pytest.raises(errors.DtypeError) as err:
        jax.jit(lambda v: mixed.generate(KEY, {"which": v}, 0.3))(1.0)
    check(err, model="mixed", address="which", mentions=["int32"])


@pytest.mark.parametrize("value", [-1.0, 0.0])
def test_outside_the_support(value):
    with pytest.raises(errors.SupportError) as err:
        two_strokes.generate(KEY, {"b/width": value}, START)
    check(err, model="two_strokes", address="b/width", mentions=["support"])


def test_discrete_value_outside_the_support():
    with pytest.raises(errors.SupportError) as err:
        mixed.generate(KEY, {"which": 7}, 0.3)
    check(err, model="mixed", address="which")


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf, -jnp.inf])
def test_nan_and_inf(bad):
    with pytest.raises(errors.NonFiniteError) as err:
        two_strokes.generate(KEY, {"a/delta": jnp.array([0.0, bad])}, START)
    check(err, model="two_strokes", address="a/delta", mentions=["NaN or inf"])


def test_assess_with_missing_choices():
    with pytest.raises(errors.MissingChoiceError) as err:
        two_strokes.assess({"a/delta": jnp.zeros(2), "a/width": 1.0}, START)
    check(err, model="two_strokes", address="b/delta", mentions=["'b/delta': value", "generate"])


def test_sampling_something_that_is_not_a_distribution_or_model():
    @ppl.model
    def wrong():
        return ppl.sample("x", lambda: 1.0)

    with pytest.raises(errors.InvalidSampleTargetError) as err:
        wrong.simulate(KEY)
    check(err, model="wrong", address="x", mentions=["@ppl.model"])


def test_errors_are_raised_at_trace_time_under_jit():
    traces = []

    def program(key):
        traces.append(1)
        return two_strokes.generate(key, {"a/detla": jnp.zeros(2)}, START).log_weight

    with pytest.raises(errors.UnknownAddressError):
        jax.jit(program)(KEY)
    assert traces == [1]  # raised while tracing; nothing was compiled or run


def test_traced_values_off_the_support_score_minus_infinity_not_nan():
    score = jax.jit(lambda w: two_strokes.generate(KEY, {"a/width": w}, START).log_weight)
    assert float(score(-1.0)) == -np.inf
    assert float(score(jnp.nan)) == -np.inf
    assert np.isfinite(float(score(1.0)))


def test_bad_distribution_parameters():
    @ppl.model
    def negative_scale():
        a = ppl.sample("a", dist.Normal(0.0, 1.0))
        return ppl.sample("x", dist.Normal(a, -1.0))

    with pytest.raises(errors.ParameterError) as err:
        negative_scale.simulate(KEY)
    message = str(err.value)
    assert err.value.model == "negative_scale" and "'negative_scale'" in message
    assert "scale" in message and "after address 'a'" in message


def test_bad_parameters_are_caught_even_with_numpyro_validation_off():
    from numpyro.distributions.distribution import validation_enabled

    @ppl.model
    def negative_scale():
        return ppl.sample("x", dist.Normal(0.0, -1.0))

    with validation_enabled(False), pytest.raises(errors.ParameterError) as err:
        negative_scale.simulate(KEY)
    check(err, model="negative_scale", address="x", mentions=["scale"])


def test_language_misuse():
    with pytest.raises(errors.ModelDefinitionError, match="outside a model"):
        ppl.sample("x", dist.Normal(0.0, 1.0))
    with pytest.raises(errors.ModelDefinitionError, match="simulate"):
        two_strokes(START)

    @ppl.model
    def slashed():
        ppl.sample("a/b", dist.Normal(0.0, 1.0))

    with pytest.raises(errors.ModelDefinitionError, match="contains '/'"):
        slashed.simulate(KEY)
    with pytest.raises(errors.ModelDefinitionError) as err:
        two_strokes.generate(KEY, {"a": 1.0}, START)
    check(err, model="two_strokes", address="a", mentions=["'a/<choice>'"])


def test_errors_are_also_builtin_exceptions():
    assert issubclass(errors.UnknownAddressError, KeyError)
    assert issubclass(errors.ShapeError, ValueError)
    assert issubclass(errors.InvalidSampleTargetError, TypeError)
    err = errors.UnknownAddressError("never visited", model="m", address="x")
    assert str(err) == "In model 'm', address 'x': never visited"  # not KeyError's repr
