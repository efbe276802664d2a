"""ppl.Space: a bounded-depth grammar of compositions encoded as fixed-shape arrays."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist, errors, testing
from stdlib.sequences import simple

KEY = jax.random.key(0)
TOL = dict(rtol=1e-5, atol=1e-4)

# --- a small time-series grammar (stdlib.sequences.simple) ---------------------------------
T = 24
TIMES = jnp.arange(T, dtype=jnp.float32) / T
NOISE = 0.1
TERMINALS = simple.TERMINALS  # level, trend (slope * t), periodic(4)
OPERATORS = simple.OPERATORS  # +, *, changepoint (time ~ U(0, 1))
level, trend, changepoint = TERMINALS["level"], TERMINALS["trend"], OPERATORS["changepoint"]
space = simple.space(TERMINALS, OPERATORS, depth=3, noise=NOISE)

# --- a tiny space for exact enumeration ----------------------------------------------------
tiny = ppl.Space({"a": level, "b": trend}, {"+": lambda a, b: a + b}, depth=3,
                 p_operator=[0.3, 0.6], terminal_probs=[0.25, 0.75])
TINY_CODES = np.asarray(tiny.enumerate())


def code_of(expression, within=space):
    return within.encode(expression)


# --- encoding ------------------------------------------------------------------------------


def test_encoding_is_a_heap_layout_tree():
    code = code_of(("+", "trend", ("changepoint", "trend", "level")))
    # kinds: 0 empty, 1 level, 2 trend, 3 periodic(4), 4 +, 5 *, 6 changepoint
    assert code.dtype == jnp.int32 and code.tolist() == [4, 2, 6, 0, 0, 2, 1]
    assert space.kinds == ("", "level", "trend", "periodic(4)", "+", "*", "changepoint")
    assert space.size == 7 and space.count() == 3 + 3 * (3 + 3 * 9) ** 2 == 2703


@pytest.mark.parametrize(
    "expression, text",
    [
        ("trend", "trend"),
        (("+", "trend", ("changepoint", "trend", "level")), "trend + changepoint(trend, level)"),
        (("+", ("+", "trend", "periodic(4)"), ("changepoint", "trend", "level")),
         "trend + periodic(4) + changepoint(trend, level)"),
        (("*", ("+", "trend", "level"), "periodic(4)"), "(trend + level) * periodic(4)"),
        (("+", "trend", ("*", "level", "periodic(4)")), "trend + level * periodic(4)"),
        (("changepoint", ("+", "level", "trend"), "periodic(4)"), "changepoint(level + trend, periodic(4))"),
    ],
)
def test_describe_writes_infix_and_function_notation(expression, text):
    assert space.describe(code_of(expression)) == text


def test_describe_parenthesises_non_associative_operators():
    minus = ppl.Space({"a": level, "b": trend}, {"-": lambda x, y: x - y}, depth=3)
    assert minus.describe(minus.encode(("-", "a", ("-", "a", "b")))) == "a - (a - b)"
    assert minus.describe(minus.encode(("-", ("-", "a", "b"), "a"))) == "a - b - a"


BAD_CODES = [
    (np.array([1, 0, 0]), r"shape \(7,\)"),
    (np.array([4.0, 2, 1, 0, 0, 0, 0]), "integer"),
    (np.array([9, 0, 0, 0, 0, 0, 0]), "kind 9"),
    (np.array([0, 0, 0, 0, 0, 0, 0]), "root"),
    (np.array([4, 2, 0, 0, 0, 0, 0]), "empty child"),
    (np.array([2, 1, 1, 0, 0, 0, 0]), "non-empty child"),
    (np.array([4, 2, 1, 1, 0, 0, 0]), "non-empty child"),
    (np.array([4, 4, 1, 4, 2, 0, 0]), "bottom level"),
]


@pytest.mark.parametrize("code, message", BAD_CODES)
def test_codes_outside_the_space_raise_composition_error(code, message):
    with pytest.raises(errors.CompositionError, match=message):
        space.validate(code)
    if code.shape == (7,) and code.dtype.kind == "i":
        with pytest.raises(errors.CompositionError, match=message):
            space.model.simulate(KEY, jnp.asarray(code), TIMES)
        with pytest.raises(errors.CompositionError, match=message):
            space.describe(code)
        # traced: no error is possible, the prior says -inf
        assert float(jax.jit(space.log_prior)(code)) == -np.inf
    else:  # shape and dtype are static: checked even under jit (log_prior takes batches too)
        with pytest.raises(errors.CompositionError, match=message.replace(r"\(7,\)", r"\(\.\.\., 7\)")):
            jax.jit(space.log_prior)(code)


def test_encode_rejects_unknown_names_and_bad_arity():
    with pytest.raises(errors.CompositionError, match="Did you mean 'trend'"):
        space.encode(("+", "trnd", "level"))
    with pytest.raises(errors.CompositionError, match="two operands"):
        space.encode("+")
    with pytest.raises(errors.CompositionError, match="deeper"):
        space.encode(("+", ("+", ("+", "level", "level"), "level"), "level"))


def test_space_definition_errors():
    with pytest.raises(errors.CompositionError, match="p_operator"):
        ppl.Space(TERMINALS, OPERATORS, depth=3, p_operator=1.0)
    with pytest.raises(errors.CompositionError, match="p_operator"):
        ppl.Space(TERMINALS, OPERATORS, depth=3, p_operator=[0.5])
    with pytest.raises(errors.CompositionError, match="terminal_probs"):
        ppl.Space(TERMINALS, OPERATORS, depth=3, terminal_probs=[0.5, 0.5])
    with pytest.raises(errors.CompositionError, match="depth"):
        ppl.Space(TERMINALS, OPERATORS, depth=0)
    with pytest.raises(errors.CompositionError, match="generative function"):
        ppl.Space({"level": lambda t: t}, OPERATORS, depth=2)
    with pytest.raises(errors.CompositionError, match="without '/'"):
        ppl.Space({"a/b": level}, OPERATORS, depth=2)


# --- prior -----------------------------------------------------------------------------------


def test_log_prior_is_normalised_over_every_valid_code():
    for grammar, codes in ((tiny, TINY_CODES), (space, np.asarray(space.enumerate()))):
        assert len({tuple(c) for c in codes.tolist()}) == len(codes) == grammar.count()
        log_priors = grammar.log_prior(codes)
        assert bool(jnp.all(jnp.isfinite(log_priors)))
        np.testing.assert_allclose(jnp.exp(jax.scipy.special.logsumexp(log_priors)), 1.0, rtol=1e-5)
    # every other array of kinds is outside the tiny space: -inf and invalid
    every = np.array(list(itertools.product(range(len(tiny.kinds)), repeat=tiny.size)), np.int32)
    valid = np.asarray(tiny.is_valid(every))
    assert valid.sum() == tiny.count()
    assert np.all(np.isneginf(np.asarray(tiny.log_prior(every))[~valid]))


def test_a_hand_computed_prior():
    # (b + a): root operator at level 0 (0.3), then b and a at level 1 (0.4 * 0.75, 0.4 * 0.25)
    code = tiny.encode(("+", "b", "a"))
    np.testing.assert_allclose(tiny.log_prior(code), np.log(0.3 * 0.4 * 0.75 * 0.4 * 0.25), rtol=1e-6)


def test_sample_draws_from_the_prior():
    n = 40_000
    samples = np.asarray(jax.jit(jax.vmap(tiny.sample))(jax.random.split(KEY, n)))
    index = {tuple(c): i for i, c in enumerate(TINY_CODES.tolist())}
    counts = np.bincount([index[tuple(c)] for c in samples.tolist()], minlength=len(TINY_CODES))
    probs = np.exp(np.asarray(tiny.log_prior(TINY_CODES), np.float64))
    standard_errors = np.sqrt(probs * (1 - probs) / n)
    assert np.max(np.abs(counts / n - probs) / standard_errors) < 5.0


# --- moves -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def population():
    """3,000 codes of the time-series space and every move applied to each (one compiled call)."""
    codes = np.asarray(space.enumerate())
    codes = jnp.asarray(codes[np.random.default_rng(0).integers(0, len(codes), 3000)])

    def moves(key, code):
        keys = jax.random.split(key, 4)
        return dict(replace=space.replace(keys[0], code), insert=space.insert(keys[1], code),
                    delete=space.delete(keys[2], code), propose=space.propose(keys[3], code))

    return codes, jax.jit(jax.vmap(moves))(jax.random.split(jax.random.key(1), len(codes)), codes)


@pytest.mark.parametrize("move", ["replace", "insert", "delete", "propose"])
def test_moves_return_valid_codes(population, move):
    codes, moves = population
    moved = moves[move][0] if move == "propose" else moves[move]
    assert moved.shape == codes.shape and moved.dtype == jnp.int32
    assert bool(jnp.all(space.is_valid(moved)))
    changed = np.any(np.asarray(moved != codes), axis=1)
    operators_before, operators_after = (np.sum(np.asarray(space.is_operator(c)), 1) for c in (codes, moved))
    if move == "delete":  # an operator is removed whenever there is one
        assert np.array_equal(changed, operators_before > 0)
        assert np.all(operators_after[changed] < operators_before[changed])
    elif move == "insert":  # one more operator wherever there is room
        assert np.array_equal(operators_after == operators_before + 1, changed) and changed.any()
    elif move == "propose":
        _, forward, backward = moves[move]
        assert bool(jnp.all(jnp.isfinite(forward) & jnp.isfinite(backward)))
    else:
        assert 0.5 < changed.mean() < 1.0


def test_swap_changes_exactly_one_terminal_into_another():
    from ppl.compose import space_moves

    codes = np.asarray(space.enumerate())[:2000]
    swapped = np.asarray(jax.jit(jax.vmap(lambda k, c: space_moves.swap(space, k, c)))(
        jax.random.split(jax.random.key(3), len(codes)), jnp.asarray(codes)))
    assert bool(jnp.all(space.is_valid(swapped)))
    differs = swapped != codes
    assert np.all(differs.sum(axis=1) == 1)  # every code has a terminal, and one node changes
    rows, nodes = np.nonzero(differs)
    terminal = lambda values: (values >= 1) & (values <= space.num_terminals)  # noqa: E731
    assert np.all(terminal(codes[rows, nodes]) & terminal(swapped[rows, nodes]))
    # every other terminal is reachable from a single-terminal code, uniformly
    single = jnp.asarray(codes[0])
    assert terminal(np.asarray(single)[:1]).all()
    draws = np.asarray(jax.jit(jax.vmap(lambda k: space_moves.swap(space, k, single)))(
        jax.random.split(jax.random.key(4), 3000)))[:, 0]
    counts = np.bincount(draws, minlength=space.num_terminals + 1)[1: space.num_terminals + 1]
    others = np.delete(counts, int(single[0]) - 1)
    assert counts[int(single[0]) - 1] == 0 and np.all(np.abs(others / 3000 - 1 / len(others)) < 0.05)


def test_grow_joins_a_terminal_with_the_first_operator_as_high_as_it_fits():
    from ppl.compose import space_moves

    codes = np.asarray(space.enumerate())[::5][:2000]
    grown = np.asarray(jax.jit(jax.vmap(lambda k, c: space_moves.grow(space, k, c)))(
        jax.random.split(jax.random.key(6), len(codes)), jnp.asarray(codes)))
    assert bool(jnp.all(space.is_valid(grown)))
    room = np.asarray(jax.vmap(lambda c: space_moves.insertable(space, c))(jnp.asarray(codes)))
    operators = lambda c: np.sum(np.asarray(space.is_operator(jnp.asarray(c))), axis=1)  # noqa: E731
    assert np.array_equal(operators(grown), operators(codes) + room.any(axis=1))
    whole = room[:, 0]  # the whole structure fits one level lower: it becomes the first operator's operand
    assert np.all(grown[whole, 0] == space.num_terminals + 1)


def test_prune_removes_one_terminal_and_lifts_its_sibling():
    from ppl.compose import space_moves

    codes = np.asarray(space.enumerate())[::5][:2000]
    pruned = np.asarray(jax.jit(jax.vmap(lambda k, c: space_moves.prune(space, k, c)))(
        jax.random.split(jax.random.key(8), len(codes)), jnp.asarray(codes)))
    assert bool(jnp.all(space.is_valid(pruned)))
    terminals = lambda c: np.sum((c >= 1) & (c <= space.num_terminals), axis=1)  # noqa: E731
    single = terminals(codes) == 1
    assert np.array_equal(pruned[single], codes[single])
    assert np.array_equal(terminals(pruned[~single]), terminals(codes[~single]) - 1)
    # the terminals left are the original ones but one (as multisets)
    for before, after in zip(codes[~single][:300], pruned[~single][:300]):
        left = list(before[(before >= 1) & (before <= space.num_terminals)])
        for kind in after[(after >= 1) & (after <= space.num_terminals)]:
            left.remove(kind)
        assert len(left) == 1
    # level + (trend * periodic): each of the three terminals is removed, about equally often
    code = jnp.asarray(space.encode(("+", "level", ("*", "trend", "periodic(4)"))))
    draws = np.asarray(jax.jit(jax.vmap(lambda k: space_moves.prune(space, k, code)))(
        jax.random.split(jax.random.key(9), 3000)))
    outcomes = sorted(space.describe(row) for row in draws)
    counts = {text: outcomes.count(text) for text in set(outcomes)}
    assert set(counts) == {"trend * periodic(4)", "level + periodic(4)", "level + trend"}, counts
    assert all(abs(count / 3000 - 1 / 3) < 0.04 for count in counts.values()), counts


@pytest.mark.slow  # compile-bound (~20 s); keeps the default run under 10 min on 2 cores
def test_neighbours_hold_every_swap_prune_and_grow_and_nothing_else():
    from ppl.compose import space_moves

    codes = jnp.asarray(np.asarray(space.enumerate())[::11][:400])
    every = np.asarray(jax.jit(jax.vmap(lambda c: space_moves.neighbours(space, c)))(codes))  # (n, M, L)
    count = space.num_terminals
    assert every.shape == (len(codes), space.size * count + space.size - 1 + 2 * space.size * count, space.size)
    assert bool(jnp.all(space.is_valid(every)))
    # every random swap, prune and grow is one of the rows
    for index, move in enumerate((space_moves.swap, space_moves.prune, space_moves.grow)):
        keys = jax.random.split(jax.random.key(10 + index), len(codes))
        drawn = np.asarray(jax.jit(jax.vmap(lambda k, c, move=move: move(space, k, c)))(keys, codes))
        assert np.all(np.any(np.all(every == drawn[:, None, :], axis=-1), axis=1)), move.__name__
    # and every row changes one terminal, removes one or adds one with the first operator (or is the code)
    terminals = lambda c: np.sum((c >= 1) & (c <= count), axis=-1)  # noqa: E731
    firsts = lambda c: np.sum(c == count + 1, axis=-1)  # noqa: E731
    original = np.asarray(codes)[:, None, :]
    same_size = (terminals(every) == terminals(original)) & np.all((every == original) | (
        (every >= 1) & (every <= count) & (original >= 1) & (original <= count)), axis=-1)
    swapped = same_size & (np.sum(every != original, axis=-1) <= 1)
    pruned = terminals(every) == terminals(original) - 1
    grown = (terminals(every) == terminals(original) + 1) & (firsts(every) == firsts(original) + 1)
    assert np.all(swapped | pruned | grown)
    text = {space.describe(row) for row in np.asarray(space_moves.neighbours(space, code_of(("+", "level", "trend"))))}
    assert {"periodic(4) + trend", "level + level", "level", "trend", "level + trend + periodic(4)"} <= text


def test_neighbour_mixes_swaps_with_the_moves():
    from ppl.compose import space_moves

    codes = jnp.asarray(np.asarray(space.enumerate())[::7][:1000])
    keys = jax.random.split(jax.random.key(5), len(codes))
    moved = np.asarray(jax.jit(jax.vmap(lambda k, c: space_moves.neighbour(space, k, c)))(keys, codes))
    assert bool(jnp.all(space.is_valid(moved)))
    one_terminal_changed = ((moved != np.asarray(codes)).sum(axis=1) == 1)
    assert 0.25 < one_terminal_changed.mean() < 0.8  # swaps (30%), plus replace moves that redraw one leaf


def test_delete_undoes_insert():
    from ppl.compose.space_moves import delete_at, insert_at, insertable

    n = 2000
    codes = np.asarray(jax.jit(jax.vmap(space.sample))(jax.random.split(jax.random.key(2), n)))
    rng = np.random.default_rng(1)
    allowed = np.asarray(jax.vmap(lambda c: insertable(space, c))(codes))
    room = allowed.any(axis=1)
    nodes = np.array([rng.choice(np.flatnonzero(row)) if row.any() else 0 for row in allowed])
    sides, operators, terminals = rng.integers(0, 2, n), rng.integers(4, 7, n), rng.integers(1, 4, n)

    @jax.jit
    @jax.vmap
    def grow_and_shrink(code, node, side, operator, terminal):
        grown = insert_at(space, code, node, side, operator, terminal)
        return grown, delete_at(space, grown, node, side)

    grown, shrunk = grow_and_shrink(codes, nodes, sides, operators, terminals)
    assert room.sum() > 1000 and bool(jnp.all(space.is_valid(grown[room])))
    np.testing.assert_array_equal(np.asarray(grown)[room, nodes[room]], operators[room])
    np.testing.assert_array_equal(np.asarray(shrunk)[room], codes[room])


def test_log_proposal_is_exact():
    log_q = jax.jit(jax.vmap(tiny.log_proposal))  # over pairs (old, new)
    codes = jnp.asarray(TINY_CODES)
    for i in (0, 3, 17, len(codes) - 1):  # q(. | old) sums to one over the whole space
        olds = jnp.broadcast_to(codes[i], codes.shape)
        np.testing.assert_allclose(jnp.exp(jax.scipy.special.logsumexp(log_q(olds, codes))), 1.0, rtol=1e-5)
    # propose returns log q both ways, and its frequencies match q
    start, n = codes[3], 30_000
    starts = jnp.broadcast_to(start, (n, tiny.size))
    new, forward, backward = jax.jit(jax.vmap(tiny.propose))(jax.random.split(KEY, n), starts)
    np.testing.assert_allclose(forward, log_q(starts, new), **TOL)
    np.testing.assert_allclose(backward, log_q(new, starts), **TOL)
    index = {tuple(c): j for j, c in enumerate(TINY_CODES.tolist())}
    counts = np.bincount([index[tuple(c)] for c in np.asarray(new).tolist()], minlength=len(codes))
    probs = np.exp(np.asarray(log_q(jnp.broadcast_to(start, codes.shape), codes), np.float64))
    assert np.all(counts[probs == 0] == 0)
    seen = probs > 0
    standard_errors = np.sqrt(probs[seen] * (1 - probs[seen]) / n)
    assert np.max(np.abs(counts[seen] / n - probs[seen]) / standard_errors) < 5.0


# --- the model ---------------------------------------------------------------------------------


CODE = code_of(("+", "trend", ("changepoint", "periodic(4)", "level")))


def test_model_interface_checks():
    testing.check_interface(space.model, (CODE, TIMES), changes={"node_2/changepoint/time": 0.3})
    testing.check_interface(space.model, (code_of("periodic(4)"), TIMES), changes={"node_0/periodic(4)/phase": 1.0})
    # jit + vmap on a depth-2 space of the same grammar (a smaller program to compile)
    shallow = ppl.Space(TERMINALS, OPERATORS, depth=2, observe=lambda f, t: dist.Normal(f, NOISE).to_event(1))
    testing.check_vmap_matches_loop(shallow.model, (shallow.encode(("changepoint", "trend", "level")), TIMES), KEY,
                                    n=100)


def _prior_of_inactive(choices, code):
    """Sum of the prior densities of the kinds a code does not use, at every node (auxiliary variables)."""
    total = 0.0
    for i in range(space.size):
        for name, kind in {**TERMINALS, "changepoint": changepoint}.items():
            address = f"node_{i}/{name}"
            if address not in choices or space.kinds.index(name) == int(code[i]):
                continue
            args = (TIMES,) if name in TERMINALS else (TIMES, TIMES, TIMES)
            total = total + kind.assess(choices[address], *args).log_density
    return total


def test_model_score_is_the_active_terminals_operators_and_observation():
    trace = space.model.simulate(KEY, CODE, TIMES)
    c = trace.choices
    slope, amplitude, phase = c["node_1/trend/slope"], c["node_5/periodic(4)/amplitude"], c["node_5/periodic(4)/phase"]
    value, time = c["node_6/level/value"], c["node_2/changepoint/time"]
    weight = jax.nn.sigmoid((TIMES - time) * 50.0)
    f = slope * TIMES + (1 - weight) * amplitude * jnp.sin(2 * jnp.pi * 4 * TIMES + phase) + weight * value
    expected = (dist.Normal(0, 1).log_prob(slope) + dist.HalfNormal(1.0).log_prob(amplitude)
                + dist.Uniform(0, 2 * jnp.pi).log_prob(phase) + dist.Normal(0, 1).log_prob(value)
                + dist.Uniform(0, 1).log_prob(time) + dist.Normal(f, NOISE).log_prob(c["obs"]).sum())
    np.testing.assert_allclose(trace.retval, f, **TOL)
    # the inactive kinds are auxiliary variables under their prior (the convention of ppl.context)
    np.testing.assert_allclose(trace.score, expected + _prior_of_inactive(c, CODE), **TOL)
    # the choice map has one fixed structure: every node holds every terminal (and operator above the bottom)
    assert len(c.addresses()) == 7 * 4 + 3 * 1 + 1
    assert trace.choices.addresses() == space.model.simulate(KEY, code_of("level"), TIMES).choices.addresses()


def test_assess_with_a_concrete_code_needs_only_the_active_choices():
    y = jnp.sin(TIMES)
    choices = {"node_1/trend/slope": 0.5, "node_5/periodic(4)/amplitude": 1.0, "node_5/periodic(4)/phase": 0.2,
               "node_6/level/value": -0.3, "node_2/changepoint/time": 0.4, "obs": y}
    log_density, _ = space.model.assess(choices, CODE, TIMES)
    # the full choice map adds the inactive kinds' prior densities (without them they integrate to one)
    full = space.model.simulate(KEY, CODE, TIMES).choices.merge(choices)
    inactive = _prior_of_inactive(full, CODE)
    np.testing.assert_allclose(log_density + inactive, space.model.assess(full, CODE, TIMES).log_density, **TOL)
    np.testing.assert_allclose(log_density + inactive,
                               jax.jit(lambda c: space.model.assess(c, CODE, TIMES).log_density)(full), **TOL)
    with pytest.raises(errors.MissingChoiceError) as err:
        space.model.assess({k: v for k, v in choices.items() if k != "node_2/changepoint/time"}, CODE, TIMES)
    assert err.value.address == "node_2/changepoint/time"


def test_update_to_a_new_code_rescores_exactly():
    trace = space.model.simulate(KEY, CODE, TIMES)
    other = code_of(("*", "level", "trend"))
    new_trace, delta = space.model.update(jax.random.key(1), trace, {}, other, TIMES)
    np.testing.assert_allclose(new_trace.score, space.model.assess(trace.choices, other, TIMES).log_density, **TOL)
    np.testing.assert_allclose(delta, new_trace.score - trace.score, **TOL)
    np.testing.assert_allclose(new_trace.retval, trace.choices["node_1/level/value"] * trace.choices["node_2/trend/slope"]
                               * TIMES, **TOL)


def test_active_choices_mask_what_counts():
    trace = space.model.simulate(KEY, CODE, TIMES)
    mask = space.active_choices(trace.choices, CODE)
    active = sorted(a for a, m in mask.items() if bool(jnp.all(m)))
    assert active == ["node_1/trend/slope", "node_2/changepoint/time", "node_5/periodic(4)/amplitude",
                      "node_5/periodic(4)/phase", "node_6/level/value", "obs"]
    assert mask["obs"].shape == (T,)


def test_observe_may_be_a_model_with_its_own_latents():
    @ppl.model
    def noisy(f, t):
        scale = ppl.sample("scale", dist.HalfNormal(0.3))
        return ppl.sample("y", dist.Normal(f, scale).to_event(1))

    with_noise = ppl.Space(TERMINALS, OPERATORS, depth=2, observe=noisy)
    code = with_noise.encode(("+", "trend", "level"))
    trace = with_noise.model.simulate(KEY, code, TIMES)
    assert {"obs/scale", "obs/y"} <= set(trace.choices.addresses())
    testing.check_assess_matches_simulate(with_noise.model, (code, TIMES), KEY)
    y = trace.choices["obs/y"]
    _, log_weight = with_noise.model.generate(KEY, {"obs": {"y": y, "scale": 0.2}}, code, TIMES)
    np.testing.assert_allclose(log_weight, dist.HalfNormal(0.3).log_prob(0.2)
                               + dist.Normal(trace.retval, 0.2).log_prob(y).sum(), **TOL)


def test_errors_inside_a_node_name_the_full_address():
    with pytest.raises(errors.ShapeError) as err:
        space.model.generate(KEY, {"node_1/trend/slope": jnp.ones(3)}, CODE, TIMES)
    assert err.value.model == "space" and err.value.address == "node_1/trend/slope"
    with pytest.raises(errors.UnknownAddressError, match="Did you mean 'node_1/trend/slope'"):
        space.model.generate(KEY, {"node_1/trend/slop": 1.0}, CODE, TIMES)
    with pytest.raises(errors.ShapeError) as err:
        space.model.generate(KEY, {"obs": jnp.ones(T + 1)}, CODE, TIMES)
    assert err.value.address == "obs"


def test_operators_must_return_the_terminals_shape():
    broken = ppl.Space(TERMINALS, {"sum": lambda a, b: jnp.sum(a + b)}, depth=2)
    with pytest.raises(errors.CompositionError, match="same structure, shape and dtype"):
        broken.model.simulate(KEY, broken.encode("level"), TIMES)


def test_scoring_1000_distinct_compositions_compiles_once():
    y = 0.5 * TIMES + 0.3 * jnp.sin(2 * jnp.pi * 4 * TIMES)
    traced = []

    def score(key, code):
        traced.append(1)  # runs only while jax traces
        return space.model.generate(key, {"obs": y}, code, TIMES).log_weight + space.log_prior(code)

    batched = jax.jit(jax.vmap(score))
    codes = np.asarray(space.enumerate())[np.random.default_rng(0).permutation(space.count())]
    first, second = jnp.asarray(codes[:1000]), jnp.asarray(codes[1000:2000])
    assert len({tuple(c) for c in codes[:2000].tolist()}) == 2000  # 2,000 distinct compositions
    keys = jax.random.split(KEY, 1000)
    scores_first = batched(keys, first)
    scores_second = batched(keys, second)
    assert len(traced) == 1  # one trace, so one compilation, for both batches
    assert bool(jnp.all(jnp.isfinite(scores_first))) and bool(jnp.all(jnp.isfinite(scores_second)))
    for i in (0, 1, 999):  # the batch agrees with scoring one composition at a time
        np.testing.assert_allclose(scores_first[i], score(keys[i], first[i]), rtol=1e-4, atol=1e-3)
