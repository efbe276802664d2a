"""Sequence combinators: ppl.unfold, ppl.seq, ppl.changepoint."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist, testing

DENSITY_TOL = dict(rtol=1e-5, atol=1e-5)
KEY = jax.random.key(0)

# ---------------------------------------------------------------------------
# shared models (module level, so compiled programs are shared)
# ---------------------------------------------------------------------------

STEP_TRACES = []


@ppl.model
def noisy_walk(t, position, scale):
    """x_t ~ N(x_{t-1}, scale); y_t ~ N(x_t, 0.5)."""
    STEP_TRACES.append(t)
    x = ppl.sample("x", dist.Normal(position, scale))
    ppl.sample("y", dist.Normal(x, 0.5))
    return x


WALK = ppl.unfold(noisy_walk, steps=6)


@ppl.model
def soft_walk(t, position):
    x = ppl.sample("x", dist.Normal(position, 1.0))
    ppl.factor(-0.1 * x**2)
    return x


@ppl.model
def walker_2d(t, state, dt):
    """A pytree state (position, velocity) and a choice under a sub-model."""
    position, velocity = state
    velocity = ppl.sample("velocity", dist.Normal(velocity, 0.1).to_event(1))
    ppl.sample("seen", dist.Normal(position, 0.2).to_event(1))
    return position + dt * velocity, velocity


@ppl.model
def outer_step(t, start):
    inner = ppl.sample("inner", ppl.unfold(soft_walk, 3), start)
    return inner[-1]


NESTED = ppl.unfold(outer_step, 4)


@ppl.model
def flat(n):
    level = ppl.sample("level", dist.Normal(0.0, 1.0))
    return jnp.full(n, level)


@ppl.model
def trend(n):
    slope = ppl.sample("slope", dist.Normal(0.0, 1.0))
    return slope * jnp.arange(n)


@ppl.model
def low(n):
    return jnp.zeros(n)


@ppl.model
def high(n):
    return jnp.full(n, 2.0)


SEQ = ppl.seq(flat, trend)
NAMED_SEQ = ppl.seq(rise=trend, fall=flat)
THREE_PIECES = ppl.changepoint(flat, trend, flat)


@ppl.model
def step_series(data_length):
    """Observations outside a changepoint between two known levels."""
    mean = ppl.sample("mean", ppl.changepoint(low=low, high=high), data_length)
    ppl.sample("obs", dist.Normal(mean, 1.0).to_event(1))
    return mean


def _normal(loc, scale, value):
    return dist.Normal(loc, scale).log_prob(value)


# ---------------------------------------------------------------------------
# unfold: interface properties
# ---------------------------------------------------------------------------

UNFOLD_CASES = {
    "walk": (WALK, (0.0, 1.5), {"x": jnp.linspace(-1.0, 1.0, 6)}, False),
    "factor": (ppl.unfold(soft_walk, 5), (0.3,), {"x": jnp.ones(5)}, True),
    "pytree_state": (
        ppl.unfold(walker_2d, 4),
        ((jnp.zeros(2), jnp.ones(2)), 0.1),
        {"seen": jnp.zeros((4, 2))},
        False,
    ),
    "nested": (NESTED, (0.0,), {"inner/x": jnp.ones((4, 3))}, True),
}


@pytest.mark.parametrize("name", sorted(UNFOLD_CASES))
def test_unfold_passes_the_interface_checks(name):
    chain, args, changes, factors = UNFOLD_CASES[name]
    testing.check_interface(chain, args, changes=changes, factors=factors, tol=DENSITY_TOL)


def test_unfold_vmap_matches_loop():
    testing.check_vmap_matches_loop(WALK, (0.0, 1.5), KEY, n=200, tol=DENSITY_TOL)


def test_unfold_score_is_the_sum_of_step_densities():
    trace = WALK.simulate(KEY, 0.5, 1.5)
    x, y = trace.choices["x"], trace.choices["y"]
    previous = jnp.concatenate([jnp.array([0.5]), x[:-1]])
    expected = jnp.sum(_normal(previous, 1.5, x) + _normal(x, 0.5, y))
    np.testing.assert_allclose(trace.score, expected, **DENSITY_TOL)
    assert x.shape == y.shape == trace.retval.shape == (6,)
    np.testing.assert_array_equal(trace.retval, x)  # the state after step t is x_t
    assert trace.args == (0.5, 1.5)


def test_unfold_generate_weight_is_the_observed_density():
    ys = jnp.array([0.1, 0.4, -0.2, 0.0, 0.3, 1.0])
    trace, log_weight = WALK.generate(KEY, {"y": ys}, 0.0, 1.0)
    np.testing.assert_array_equal(trace.choices["y"], ys)
    np.testing.assert_allclose(log_weight, jnp.sum(_normal(trace.choices["x"], 0.5, ys)), **DENSITY_TOL)


def test_unfold_update_of_one_time_step_rescores_exactly():
    trace = WALK.simulate(KEY, 0.0, 1.0)
    changes = {"x": trace.choices["x"].at[2].set(3.0)}
    new_trace, log_weight = WALK.update(KEY, trace, changes)
    assert float(new_trace.choices["x"][2]) == 3.0
    np.testing.assert_array_equal(new_trace.choices["y"], trace.choices["y"])
    np.testing.assert_allclose(log_weight, new_trace.score - trace.score, **DENSITY_TOL)
    assessed = WALK.assess(new_trace.choices, 0.0, 1.0).log_density
    np.testing.assert_allclose(new_trace.score, assessed, **DENSITY_TOL)


def test_unfold_nested_inside_a_model_stacks_under_its_address():
    @ppl.model
    def tracked():
        ppl.sample("chain", WALK, 0.0, 1.0)

    trace = tracked.simulate(KEY)
    assert trace.choices.addresses() == ("chain/x", "chain/y")
    assert trace.choices["chain/x"].shape == (6,)
    nested = NESTED.simulate(KEY, 0.0)
    assert nested.choices["inner/x"].shape == (4, 3)
    np.testing.assert_array_equal(nested.retval, nested.choices["inner/x"][:, -1])


# ---------------------------------------------------------------------------
# unfold: what a particle filter needs
# ---------------------------------------------------------------------------


def test_incremental_scores_sum_to_the_score():
    for chain, args, _, _ in UNFOLD_CASES.values():
        trace = chain.simulate(KEY, *args)
        increments = chain.incremental_scores(trace)
        assert increments.shape == (chain.steps,)
        np.testing.assert_allclose(jnp.sum(increments), trace.score, **DENSITY_TOL)


def test_incremental_scores_match_step_densities():
    trace = WALK.simulate(KEY, 0.5, 1.5)
    x, y = trace.choices["x"], trace.choices["y"]
    previous = jnp.concatenate([jnp.array([0.5]), x[:-1]])
    expected = _normal(previous, 1.5, x) + _normal(x, 0.5, y)
    np.testing.assert_allclose(jax.jit(WALK.incremental_scores)(trace), expected, **DENSITY_TOL)


def test_a_filter_can_advance_particles_with_step_generate():
    """Scan over t, vmap over particles: step.generate at t, fed the choices at t
    and each particle's previous state, reproduces the chain's per-step scores."""
    keys = jax.random.split(KEY, 8)
    traces = jax.vmap(lambda k: WALK.simulate(k, 0.0, 1.0))(keys)

    def advance(states, t):
        constraints = jax.vmap(WALK.choices_at, in_axes=(0, None))(traces.choices, t)

        def step(key, constraints_t, state):
            return WALK.step.generate(key, constraints_t, t, state, 1.0)

        generated = jax.vmap(step)(keys, constraints, states)
        return generated.trace.retval, generated.log_weight

    _, weights = jax.jit(lambda: jax.lax.scan(advance, jnp.zeros(8), jnp.arange(WALK.steps)))()
    expected = jax.vmap(WALK.incremental_scores)(traces)
    np.testing.assert_allclose(weights.T, expected, **DENSITY_TOL)


def test_choices_at_slices_every_leaf():
    trace = ppl.unfold(walker_2d, 4).simulate(KEY, (jnp.zeros(2), jnp.ones(2)), 0.1)
    at_two = ppl.unfold(walker_2d, 4).choices_at(trace.choices, 2)
    assert at_two.addresses() == ("seen", "velocity")
    np.testing.assert_array_equal(at_two["velocity"], trace.choices["velocity"][2])
    assert WALK.step is noisy_walk and WALK.steps == 6


# ---------------------------------------------------------------------------
# unfold: compile time does not grow with steps
# ---------------------------------------------------------------------------


def _equation_count(chain):
    simulate = jax.make_jaxpr(lambda key: chain.simulate(key, 0.0, 1.0))(KEY)
    observed = jnp.zeros(chain.steps)
    generate = jax.make_jaxpr(lambda key, ys: chain.generate(key, {"y": ys}, 0.0, 1.0))(KEY, observed)
    return len(simulate.jaxpr.eqns), len(generate.jaxpr.eqns)


def test_program_size_does_not_grow_with_steps():
    assert _equation_count(ppl.unfold(noisy_walk, 10)) == _equation_count(ppl.unfold(noisy_walk, 10_000))


def test_the_step_is_traced_once_whatever_the_number_of_steps():
    for steps in (10, 10_000):
        del STEP_TRACES[:]
        jax.make_jaxpr(lambda key: ppl.unfold(noisy_walk, steps).simulate(key, 0.0, 1.0))(KEY)
        assert len(STEP_TRACES) == 1


# ---------------------------------------------------------------------------
# unfold: bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [0, -3])
def test_unfold_rejects_non_positive_steps(steps):
    with pytest.raises(ppl.errors.CompositionError, match=rf"steps >= 1 .* got steps={steps}"):
        ppl.unfold(noisy_walk, steps)


@pytest.mark.parametrize("steps", [2.5, True, jnp.array(3)])
def test_unfold_rejects_steps_that_are_not_python_ints(steps):
    with pytest.raises(ppl.errors.CompositionError, match="steps as a Python int"):
        ppl.unfold(noisy_walk, steps)


def test_unfold_rejects_a_step_that_is_not_a_generative_function():
    with pytest.raises(ppl.errors.CompositionError, match="Decorate the step function with @ppl.model"):
        ppl.unfold(lambda t, s: s, 3)


def test_unfold_without_an_initial_state():
    with pytest.raises(ppl.errors.CompositionError, match=r"called as unfold\(noisy_walk\)\(init_state"):
        WALK.simulate(KEY)


def test_unfold_constraint_without_the_time_axis_names_the_address():
    message = r"address 'y'.*leading time axis of length 6.*shape \(5,\)"
    with pytest.raises(ppl.errors.ShapeError, match=message):
        WALK.generate(KEY, {"y": jnp.zeros(5)}, 0.0, 1.0)
    with pytest.raises(ppl.errors.ShapeError, match=r"address 'chain/x'.*shape \(\)"):
        outer = ppl.model(lambda: ppl.sample("chain", WALK, 0.0, 1.0), name="outer")
        outer.generate(KEY, {"chain/x": 1.0})


def test_unfold_wrong_per_step_shape_says_shapes_are_per_step():
    with pytest.raises(ppl.errors.ShapeError, match=r"got shape \(2,\).*shapes above are what remains"):
        WALK.generate(KEY, {"y": jnp.zeros((6, 2))}, 0.0, 1.0)


def test_unfold_state_that_changes_dtype():
    message = r"given int32\[\] and returned float32\[\].*0.0 rather than 0"
    with pytest.raises(ppl.errors.CompositionError, match=message):
        WALK.simulate(KEY, 0, 1.0)


def test_unfold_nan_observation_names_the_time_step():
    ys = jnp.zeros(6).at[4].set(jnp.nan)
    with pytest.raises(ppl.errors.NonFiniteError, match=r"address 'y'.*first at time step t=4"):
        WALK.generate(KEY, {"y": ys}, 0.0, 1.0)


def test_unfold_off_support_observation_raises_eagerly_and_is_minus_inf_under_jit():
    @ppl.model
    def counts(t, rate):
        ppl.sample("n", dist.Poisson(rate))
        return rate

    chain = ppl.unfold(counts, 4)
    bad = jnp.array([1, 0, -1, 2])
    with pytest.raises(ppl.errors.SupportError, match=r"address 'n'.*value -1.*time step t=2"):
        chain.generate(KEY, {"n": bad}, 2.0)
    jitted = jax.jit(lambda n: chain.generate(KEY, {"n": n}, 2.0).log_weight)
    assert float(jitted(bad)) == -np.inf
    good = jnp.array([1, 0, 3, 2])
    np.testing.assert_allclose(jitted(good), jnp.sum(dist.Poisson(2.0).log_prob(good)), **DENSITY_TOL)


def test_unfold_assess_with_a_missing_choice():
    with pytest.raises(ppl.errors.MissingChoiceError, match="address 'y'"):
        WALK.assess({"x": jnp.zeros(6)}, 0.0, 1.0)


def test_unfold_misspelled_constraint():
    with pytest.raises(ppl.errors.UnknownAddressError, match="Did you mean 'y'"):
        WALK.generate(KEY, {"yy": jnp.zeros(6)}, 0.0, 1.0)


# ---------------------------------------------------------------------------
# seq
# ---------------------------------------------------------------------------


@ppl.model
def seq_of_flat_and_trend():
    return ppl.sample("series", SEQ, 4)


@pytest.mark.parametrize(
    "composite, changes",
    [(SEQ, {"1/slope": 0.4}), (NAMED_SEQ, {"rise/slope": -0.2, "fall/level": 1.0})],
    ids=["positional", "named"],
)
def test_seq_passes_the_interface_checks(composite, changes):
    testing.check_interface(composite, (3,), changes=changes, tol=DENSITY_TOL)


def test_seq_vmap_matches_loop():
    testing.check_vmap_matches_loop(seq_of_flat_and_trend, (), KEY, n=200, tol=DENSITY_TOL)


def test_seq_concatenates_outputs_in_time_and_scores_per_part():
    trace = NAMED_SEQ.simulate(KEY, 3)
    slope, level = trace.choices["rise/slope"], trace.choices["fall/level"]
    expected = jnp.concatenate([slope * jnp.arange(3), jnp.full(3, level)])
    np.testing.assert_allclose(trace.retval, expected, **DENSITY_TOL)
    parts = NAMED_SEQ.incremental_scores(trace)
    expected_parts = jnp.stack([_normal(0.0, 1.0, slope), _normal(0.0, 1.0, level)])
    np.testing.assert_allclose(parts, expected_parts, **DENSITY_TOL)
    np.testing.assert_allclose(jnp.sum(parts), trace.score, **DENSITY_TOL)
    assert list(NAMED_SEQ.parts) == ["rise", "fall"] and NAMED_SEQ.name == "seq(rise=trend, fall=flat)"


def test_seq_of_pytrees_and_of_unfolds():
    @ppl.model
    def pair(n):
        return {"a": jnp.zeros((n, 2)), "b": jnp.full(n, ppl.sample("b", dist.Normal(0.0, 1.0)))}

    trace = ppl.seq(pair, pair).simulate(KEY, 2)
    assert trace.retval["a"].shape == (4, 2) and trace.retval["b"].shape == (4,)
    two_walks = ppl.seq(WALK, ppl.unfold(noisy_walk, 3))
    testing.check_interface(two_walks, (0.0, 1.0), tol=DENSITY_TOL)
    assert two_walks.simulate(KEY, 0.0, 1.0).retval.shape == (9,)


def test_seq_bad_input():
    with pytest.raises(ppl.errors.CompositionError, match="at least one part, got none"):
        ppl.seq()
    with pytest.raises(ppl.errors.CompositionError, match="all positionally .* or all by keyword"):
        ppl.seq(flat, after=trend)
    with pytest.raises(ppl.errors.CompositionError, match="part '1' is int 3.*@ppl.model"):
        ppl.seq(flat, 3)

    @ppl.model
    def scalar(n):
        return ppl.sample("z", dist.Normal(0.0, 1.0))

    @ppl.model
    def wide(n):
        return jnp.zeros((n, 2))

    message = r"part '1' its return value has no time axis.*'1': float32\[\]"
    with pytest.raises(ppl.errors.CompositionError, match=message):
        ppl.seq(flat, scalar).simulate(KEY, 3)
    message = r"shape after the time axis differs.*float32\[3, 2\]"
    with pytest.raises(ppl.errors.CompositionError, match=message):
        ppl.seq(flat, wide).simulate(KEY, 3)


# ---------------------------------------------------------------------------
# changepoint
# ---------------------------------------------------------------------------


@ppl.model
def three_pieces_of_eight():
    return ppl.sample("series", THREE_PIECES, 8)


def test_changepoint_passes_the_interface_checks():
    # boundary_1 = 7 is valid whatever boundary_0 (in 1..6) was sampled
    changes = {"boundary_1": 7, "1/slope": 0.3}
    testing.check_interface(THREE_PIECES, (8,), changes=changes, tol=DENSITY_TOL)
    testing.check_interface(step_series, (10,), changes={"mean/boundary_0": 3}, tol=DENSITY_TOL)


def test_changepoint_vmap_matches_loop():
    testing.check_vmap_matches_loop(three_pieces_of_eight, (), KEY, n=200, tol=DENSITY_TOL)


def test_changepoint_output_is_piecewise_and_the_score_includes_the_boundary_prior():
    trace, _ = THREE_PIECES.generate(KEY, {"boundary_0": 2, "boundary_1": 5}, 8)
    c = trace.choices
    pieces = [jnp.full(2, c["0/level"]), c["1/slope"] * jnp.arange(2, 5), jnp.full(3, c["2/level"])]
    expected = jnp.concatenate(pieces)
    np.testing.assert_allclose(trace.retval, expected, **DENSITY_TOL)
    np.testing.assert_array_equal(THREE_PIECES.segment_index(trace), [0, 0, 1, 1, 1, 2, 2, 2])
    # prior: boundary_0 ~ U{1..6}, boundary_1 ~ U{boundary_0 + 1 .. 7}
    boundary_prior = -jnp.log(6.0) - jnp.log(5.0)
    parts = THREE_PIECES.part_scores(trace)
    np.testing.assert_allclose(trace.score, jnp.sum(parts) + boundary_prior, **DENSITY_TOL)
    assert THREE_PIECES.boundaries == ("boundary_0", "boundary_1")


def test_changepoint_boundary_prior_is_the_documented_one():
    """Sampled boundaries follow the prior that scores them: b0 ~ U{1..6}, b1 | b0 ~ U{b0+1..7}."""
    n = 6000
    traces = jax.jit(jax.vmap(lambda k: three_pieces_of_eight.simulate(k)))(jax.random.split(KEY, n))
    b0 = np.asarray(traces.choices["series/boundary_0"])
    b1 = np.asarray(traces.choices["series/boundary_1"])
    assert np.all((1 <= b0) & (b0 < b1) & (b1 <= 7))
    frequencies = np.bincount(b0, minlength=8)[1:7] / n
    standard_error = np.sqrt((1 / 6) * (5 / 6) / n)
    np.testing.assert_array_less(np.abs(frequencies - 1 / 6), 5 * standard_error)
    # E[b1] = E[(b0 + 1 + 7) / 2] = (3.5 + 8) / 2
    assert abs(b1.mean() - 5.75) < 5 * b1.std() / np.sqrt(n)


def test_changepoint_boundary_can_be_constrained_and_inferred():
    data = jnp.array([0.3, -0.5, 0.1, 0.4, 2.2, 1.6, 2.5, 1.9, 2.4, 2.1])
    boundaries = jnp.arange(1, 10)
    # exact posterior by enumeration: generate with the boundary constrained
    def joint_density(b):
        return step_series.generate(KEY, {"mean/boundary_0": b, "obs": data}, 10).log_weight

    def by_hand(b):  # log U{1..9}(b) + sum_t log N(data_t; 0 before b, 2 from b on, 1)
        return -jnp.log(9.0) + jnp.sum(_normal(jnp.where(jnp.arange(10) < b, 0.0, 2.0), 1.0, data))

    joint = jax.vmap(joint_density)(boundaries)
    np.testing.assert_allclose(joint, jax.vmap(by_hand)(boundaries), **DENSITY_TOL)
    posterior = jax.nn.softmax(joint)
    assert int(boundaries[jnp.argmax(posterior)]) == 4
    exact_mean = float(jnp.sum(posterior * boundaries))
    # importance sampling from the prior over the boundary
    importance = jax.jit(jax.vmap(lambda k: step_series.generate(k, {"obs": data}, 10)))
    traces, log_weights = importance(jax.random.split(KEY, 4000))
    weights = jax.nn.softmax(log_weights)
    sampled = traces.choices["mean/boundary_0"]
    estimate = float(jnp.sum(weights * sampled))
    ess = float(1.0 / jnp.sum(weights**2))
    posterior_sd = float(jnp.sqrt(jnp.sum(posterior * (boundaries - exact_mean) ** 2)))
    assert abs(estimate - exact_mean) < 5 * posterior_sd / np.sqrt(ess)


def test_changepoint_bad_input():
    with pytest.raises(ppl.errors.CompositionError, match="at least two segments .* got 1"):
        ppl.changepoint(flat)
    with pytest.raises(ppl.errors.CompositionError, match="cannot use 'boundary_0' as a part name"):
        ppl.changepoint(boundary_0=flat, later=trend)

    @ppl.model
    def shorter(n):
        return jnp.zeros(n - 1)

    message = r"same shape \(T, ...\).*'0': float32\[5\], '1': float32\[4\]"
    with pytest.raises(ppl.errors.CompositionError, match=message):
        ppl.changepoint(flat, shorter).simulate(KEY, 5)
    with pytest.raises(ppl.errors.CompositionError, match="3 segments needs a series of at least 3.*T=2"):
        THREE_PIECES.simulate(KEY, 2)
    message = r"address 'boundary_1'.*1 <= boundary_0 < ... < boundary_1 <= T - 1 = 7"
    with pytest.raises(ppl.errors.SupportError, match=message):
        THREE_PIECES.generate(KEY, {"boundary_0": 5, "boundary_1": 5}, 8)
