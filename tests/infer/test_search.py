"""search over a Space: recovery of a known structure, anytime behaviour, one compilation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist
from ppl.testing import linear_regression_log_evidence

T = 40
TIME = jnp.linspace(0.0, 1.0, T)
NOISE = 0.3
PRIOR_STD = {"level": 1.0, "trend": 2.0, "periodic": 1.0}
FEATURES = {"level": jnp.ones_like, "trend": lambda t: t - 0.5, "periodic": lambda t: jnp.sin(2 * jnp.pi * 3 * t)}
traced = []


@ppl.model
def level(t):
    return ppl.sample("c", dist.Normal(0.0, PRIOR_STD["level"])) * FEATURES["level"](t)


@ppl.model
def trend(t):
    return ppl.sample("slope", dist.Normal(0.0, PRIOR_STD["trend"])) * FEATURES["trend"](t)


@ppl.model
def periodic(t):
    return ppl.sample("amplitude", dist.Normal(0.0, PRIOR_STD["periodic"])) * FEATURES["periodic"](t)


SPACE = ppl.Space(
    terminals={"level": level, "trend": trend, "periodic": periodic},
    operators={"+": lambda a, b: a + b},
    depth=3,
    observe=lambda f, t: traced.append(1) or dist.Normal(f, NOISE).to_event(1),  # counts traces
)
TRUTH = SPACE.encode(("+", "trend", "periodic"))


def simulate(seed, time=TIME):
    """Data from trend + periodic with clearly non-zero parameters."""
    truth = {"node_1/trend/slope": 1.5, "node_2/periodic/amplitude": 0.8}
    trace, _ = SPACE.model.generate(jax.random.key(100 + seed), truth, TRUTH, time)
    return trace.choices["obs"]


def terms(description):
    return sorted(description.split(" + "))


def exact_log_evidence(code, y, time=TIME):
    """Closed form: every structure of this grammar is a linear-Gaussian regression."""
    used = [SPACE.kinds[kind] for kind in np.asarray(code) if 0 < kind <= SPACE.num_terminals]
    design = jnp.stack([FEATURES[name](time) for name in used], axis=1)
    covariance = jnp.diag(jnp.array([PRIOR_STD[name] ** 2 for name in used]))
    return linear_regression_log_evidence(design, y, jnp.zeros(len(used)), covariance, NOISE)


@pytest.fixture(scope="module")
def found():
    return [ppl.infer.search(jax.random.key(seed), SPACE, {"obs": simulate(seed)}, TIME, budget=20,
                             population=16, n=512) for seed in range(10)]


@pytest.mark.slow  # the shared fixture runs ten searches (~15 s); run by .ci/run's slow pass
def test_recovers_the_generating_structure_in_nine_of_ten_seeds(found):
    recovered = [terms(result.describe()[0]) == ["periodic", "trend"] for result in found]
    assert sum(recovered) >= 9, [result.describe()[:2] for result in found]


@pytest.mark.slow  # the shared fixture runs ten searches (~15 s); run by .ci/run's slow pass
def test_scores_are_prior_plus_exact_evidence(found):
    for seed in (0, 1):
        result, y = found[seed], simulate(seed)
        for code, score, log_evidence in zip(result.codes[:3], result.scores[:3], result.log_evidence[:3]):
            np.testing.assert_allclose(score, log_evidence + SPACE.log_prior(code), rtol=1e-5)
            # importance with 512 prior particles in <= 3 dimensions: within a nat of the closed form
            assert abs(log_evidence - exact_log_evidence(code, y)) < 1.0


@pytest.mark.slow  # the shared fixture runs ten searches (~15 s); run by .ci/run's slow pass
def test_history_is_anytime_and_longer_runs_extend_shorter_ones(found):
    y = simulate(0)
    short = ppl.infer.search(jax.random.key(0), SPACE, {"obs": y}, TIME, budget=5, population=16, n=512)
    long = found[0]
    assert long.history.shape == (21,) and long.scored.shape == (21,)
    assert np.all(np.diff(long.history) >= 0) and np.all(np.diff(long.scored) >= 0)
    np.testing.assert_array_equal(short.history, long.history[:6])
    assert long.scores[0] >= short.scores[0] and long.scores[0] == long.history[-1]
    assert long.probabilities.sum() <= 1.0 and np.all(np.diff(long.probabilities) <= 0)


def test_seconds_budget_stops_and_reports():
    result = ppl.infer.search(jax.random.key(1), SPACE, {"obs": simulate(1)}, TIME,
                              budget=ppl.infer.Budget(steps=1000, seconds=0.5), population=16, n=512)
    assert 1 <= result.steps < 1000 and result.history.shape == (result.steps + 1,)


def test_every_structure_scores_in_one_compiled_call():
    codes = SPACE.enumerate()
    assert codes.shape[0] == SPACE.count() == 147
    before = len(traced)
    scores, log_evidence = ppl.infer.score_structures(jax.random.key(2), SPACE, codes, {"obs": simulate(2)}, TIME, n=64)
    assert scores.shape == (147,) and bool(jnp.all(jnp.isfinite(scores)))
    # a few traces (one counts a particle's draws), however many structures: not one per structure
    assert len(traced) - before <= 3


def test_proposals_go_to_structures_not_scored_before():
    """With identify=, a step re-proposes members whose proposal was already scored. Here terms are
    identified by their set (``trend + level`` is ``level + trend``; 7 non-empty sets of 3 terms): the 4 + 2 x 4
    scoring slots of two steps reach all 7 for every key, where plain proposals, re-scoring known sets, do not."""
    y = simulate(4)
    identify = lambda code: frozenset(SPACE.kinds[k] for k in code if 0 < k <= SPACE.num_terminals)  # noqa: E731
    reached = np.array([[len({identify(code) for code in ppl.infer.search(
        jax.random.key(seed), SPACE, {"obs": y}, TIME, budget=2, population=4, n=64, keep=100, **extra).codes})
        for extra in ({"identify": identify}, {})] for seed in range(8)])
    assert np.all(reached[:, 0] == 7) and reached[:, 1].sum() < 8 * 7, reached


def test_a_custom_proposal_plugs_in():
    from ppl.compose import space_moves

    calls = []

    def swap_only(key, code):
        calls.append(1)  # traced once per compilation, not per call
        return space_moves.swap(SPACE, key, code)

    start = jnp.stack([SPACE.encode("level")] * 2 + [SPACE.encode("trend")] * 2)
    result = ppl.infer.search(jax.random.key(6), SPACE, {"obs": simulate(6)}, TIME, budget=2, population=4,
                              n=64, init=start, propose=swap_only, keep=100)
    # swaps keep one-terminal codes one-terminal: only the three single terms can ever be scored
    assert {tuple(SPACE.describe(code).split(" + ")) for code in result.codes} <= {("level",), ("trend",),
                                                                                      ("periodic",)}
    assert len(calls) >= 1


def stay(key, code):
    """A proposal that never moves: the steps score nothing beyond the first population."""
    return code


def four_nats_a_term(code):
    """A structure prior of ``-4`` nats per term (``-inf`` outside the space)."""
    return jnp.where(SPACE.is_valid(code), -4.0 * jnp.sum((code > 0) & (code <= SPACE.num_terminals)), -jnp.inf)


@pytest.mark.slow  # compile-bound (~20 s); keeps the default run under 10 min on 2 cores
def test_refinement_scores_the_neighbours_the_steps_missed_without_compiling_again():
    """The steps here cannot leave the first population (``propose=stay``), whose best is one swap or one
    grow away from the generating ``trend + periodic``: ``refine=1`` scores the best structure's whole
    neighbourhood, finds it, then scores the new best's neighbourhood, with the steps' compiled scorer."""
    from ppl.compose import space_moves

    y, identify = simulate(7), lambda code: tuple(terms(SPACE.describe(code)))  # noqa: E731
    start = jnp.stack([SPACE.encode(e) for e in ("level", "trend", ("+", "trend", "level"), ("+", "level", "level"))])
    settings = dict(budget=2, population=4, n=64, init=start, propose=stay, identify=identify,
                    log_prior=four_nats_a_term, keep=100)
    plain = ppl.infer.search(jax.random.key(7), SPACE, {"obs": y}, TIME, **settings)
    assert ("periodic", "trend") not in {identify(code) for code in plain.codes}
    before = len(traced)
    refined = ppl.infer.search(jax.random.key(7), SPACE, {"obs": y}, TIME, refine=1, **settings)
    assert len(traced) == before  # the refinement's batches reuse the steps' compilation
    assert terms(refined.describe()[0]) == ["periodic", "trend"], refined
    assert refined.rounds >= 1 and refined.history.shape == refined.scored.shape == (2 + refined.rounds + 1,)
    assert np.all(np.diff(refined.history) >= 0) and refined.history[-1] == refined.scores[0] > plain.scores[0]
    np.testing.assert_array_equal(refined.history[:3], plain.history)
    # the first population's best structure has every neighbour in the space scored, each structure once
    best = jnp.asarray(plain.codes[0])
    assert {identify(code) for code in np.asarray(space_moves.neighbours(SPACE, best))} <= {
        identify(code) for code in refined.codes}
    assert len({identify(code) for code in refined.codes}) == len(refined.codes)


def test_a_custom_structure_prior_plugs_in():
    """``log_prior=`` replaces the space's prior in every score: here no code with a ``periodic`` term is
    allowed, and the others weigh ``-terms`` nats."""
    periodic = SPACE.kind_id("periodic")

    def fewer_terms(code):
        terminals = jnp.sum((code > 0) & (code <= SPACE.num_terminals))
        return jnp.where(jnp.any(code == periodic) | ~SPACE.is_valid(code), -jnp.inf, -1.0 * terminals)

    result = ppl.infer.search(jax.random.key(2), SPACE, {"obs": simulate(2)}, TIME, budget=2, population=4, n=64,
                              keep=100, log_prior=fewer_terms)
    finite = np.isfinite(result.scores)
    assert finite.any() and not any("periodic" in SPACE.describe(code) for code in result.codes[finite])
    np.testing.assert_allclose(result.scores[finite], result.log_evidence[finite]
                               + np.asarray(jax.vmap(fewer_terms)(jnp.asarray(result.codes[finite]))), rtol=1e-6)


def test_bad_calls():
    y = simulate(0)
    with pytest.raises(ppl.errors.InferenceError, match="Budget"):
        ppl.infer.search(jax.random.key(0), SPACE, {"obs": y}, TIME, budget=2.5)
    unobserved = ppl.Space(terminals={"level": level}, depth=1)
    with pytest.raises(ppl.errors.InferenceError, match="observe="):
        ppl.infer.search(jax.random.key(0), unobserved, {"obs": y}, TIME, budget=2)
    with pytest.raises(ppl.errors.NonFiniteError):
        ppl.infer.search(jax.random.key(0), SPACE, {"obs": y.at[3].set(jnp.nan)}, TIME, budget=2)
    with pytest.raises(ppl.errors.InferenceError, match="population"):
        ppl.infer.search(jax.random.key(0), SPACE, {"obs": y}, TIME, budget=2, population=0)


def many_particles(key, model, obs, *args):
    return ppl.infer.importance(key, model, obs, *args, n=4096)  # an object with .log_evidence


def test_a_custom_score_plugs_in():
    y = simulate(3)
    codes = jnp.stack([SPACE.encode(("+", "trend", "periodic")), SPACE.encode("trend"),
                       SPACE.encode(("+", "level", ("+", "trend", "periodic")))])
    scores, log_evidence = ppl.infer.score_structures(jax.random.key(5), SPACE, codes, {"obs": y}, TIME,
                                                      score=many_particles)
    exact = np.array([exact_log_evidence(code, y) for code in codes])
    np.testing.assert_allclose(log_evidence, exact, atol=1.0)  # prior particles, up to 3 latents
    np.testing.assert_allclose(scores, log_evidence + SPACE.log_prior(codes), rtol=1e-6)


def test_tempered_smc_on_a_deep_composition():
    # 24 draws per particle: compiles in seconds (looped hashes), and estimates the evidence
    y, code = simulate(0), SPACE.encode(("+", "trend", "periodic"))
    result = ppl.infer.smc(jax.random.key(6), SPACE.model, {"obs": y}, code, TIME, n=256)
    assert abs(float(result.log_evidence) - float(exact_log_evidence(code, y))) < 1.0


# ---------------------------------------------------------------------------
# MAP search: structures scored by the Laplace evidence at their MAP
# ---------------------------------------------------------------------------

LONG = jnp.linspace(0.0, 1.0, 200)
LAPLACE = ppl.infer.Laplace(restarts=2, steps=50)


@pytest.fixture(scope="module")
def laplace_scores():
    """Every structure of the space, Laplace-scored on 200 points of seed 0, in one call."""
    codes = SPACE.enumerate()
    y = simulate(0, LONG)
    before = len(traced)
    scores, log_evidence = ppl.infer.score_structures(jax.random.key(0), SPACE, codes, {"obs": y}, LONG,
                                                      score=LAPLACE)
    return codes, y, np.asarray(scores), np.asarray(log_evidence), len(traced) - before


@pytest.mark.slow  # ~30 s with its fixture; run by .ci/run's slow pass
def test_laplace_score_is_the_closed_form_evidence_of_every_linear_gaussian_structure(laplace_scores):
    codes, y, scores, log_evidence, traces = laplace_scores
    exact = np.array([exact_log_evidence(code, y, LONG) for code in codes])
    assert np.max(np.abs(log_evidence - exact)) < 0.5, np.max(np.abs(log_evidence - exact))
    np.testing.assert_allclose(scores, log_evidence + np.asarray(SPACE.log_prior(codes)), rtol=1e-5)
    # 147 structures, one compiled program: the model is traced a fixed number of times (the
    # optimiser's scan, the Hessian, ...), and new data of the same shape traces nothing
    assert traces <= 12, traces
    other = simulate(1, LONG)
    before = len(traced)
    ppl.infer.score_structures(jax.random.key(1), SPACE, codes, {"obs": other}, LONG, score=LAPLACE)
    assert len(traced) == before


@pytest.mark.slow  # ~30 s with its fixture; run by .ci/run's slow pass
def test_structures_that_denote_the_same_function_score_alike(laplace_scores):
    codes, _, _, log_evidence, _ = laplace_scores
    index = {tuple(np.asarray(code)): i for i, code in enumerate(codes)}
    pairs = [(("+", "trend", "periodic"), ("+", "periodic", "trend")),
             (("+", "level", ("+", "trend", "periodic")), ("+", ("+", "periodic", "level"), "trend")),
             (("+", "trend", "level"), ("+", "level", "trend"))]
    for first, second in pairs:
        a, b = (index[tuple(np.asarray(SPACE.encode(e)))] for e in (first, second))
        assert abs(log_evidence[a] - log_evidence[b]) < 0.5, (first, second, log_evidence[a], log_evidence[b])


@pytest.mark.slow
def test_map_search_ranks_the_generating_structure_first_in_nine_of_ten_seeds():
    found = [ppl.infer.search(jax.random.key(seed), SPACE, {"obs": simulate(seed, LONG)}, LONG, budget=15,
                              population=16, score=LAPLACE) for seed in range(10)]
    recovered = [terms(result.describe()[0]) == ["periodic", "trend"] for result in found]
    assert sum(recovered) >= 9, [result.describe()[:2] for result in found]


@pytest.mark.slow
def test_tempered_smc_with_rejuvenation_over_a_population_of_codes():
    # vmapped over codes in one program; the kernel moves every continuous latent of
    # space.model (addresses=None), active or not
    y = simulate(0)
    codes = jnp.stack([SPACE.encode(e) for e in [("+", "trend", "periodic"), "trend",
                                                 ("+", "level", ("+", "trend", "periodic")), ("+", "periodic", "level")]])
    move = lambda target: ppl.infer.mcmc.random_walk(target, scale=0.1)  # noqa: E731
    run = jax.jit(jax.vmap(lambda c: ppl.infer.smc(jax.random.key(0), SPACE.model, {"obs": y}, c, TIME, n=256,
                                                   rejuvenate=move, moves=3).log_evidence))
    log_evidence = np.asarray(run(codes))
    exact = np.array([exact_log_evidence(code, y) for code in codes])
    assert np.max(np.abs(log_evidence - exact)) < 1.5, log_evidence - exact
