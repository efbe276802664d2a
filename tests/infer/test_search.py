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
FEATURES = {"level": jnp.ones(T), "trend": TIME - 0.5, "periodic": jnp.sin(2 * jnp.pi * 3 * TIME)}
traced = []


@ppl.model
def level(t):
    return ppl.sample("c", dist.Normal(0.0, PRIOR_STD["level"])) * FEATURES["level"]


@ppl.model
def trend(t):
    return ppl.sample("slope", dist.Normal(0.0, PRIOR_STD["trend"])) * FEATURES["trend"]


@ppl.model
def periodic(t):
    return ppl.sample("amplitude", dist.Normal(0.0, PRIOR_STD["periodic"])) * FEATURES["periodic"]


SPACE = ppl.Space(
    terminals={"level": level, "trend": trend, "periodic": periodic},
    operators={"+": lambda a, b: a + b},
    depth=3,
    observe=lambda f, t: traced.append(1) or dist.Normal(f, NOISE).to_event(1),  # counts traces
)
TRUTH = SPACE.encode(("+", "trend", "periodic"))


def simulate(seed):
    """Data from trend + periodic with clearly non-zero parameters."""
    truth = {"node_1/trend/slope": 1.5, "node_2/periodic/amplitude": 0.8}
    trace, _ = SPACE.model.generate(jax.random.key(100 + seed), truth, TRUTH, TIME)
    return trace.choices["obs"]


def terms(description):
    return sorted(description.split(" + "))


def exact_log_evidence(code, y):
    """Closed form: every structure of this grammar is a linear-Gaussian regression."""
    used = [SPACE.kinds[kind] for kind in np.asarray(code) if 0 < kind <= SPACE.num_terminals]
    design = jnp.stack([FEATURES[name] for name in used], axis=1)
    covariance = jnp.diag(jnp.array([PRIOR_STD[name] ** 2 for name in used]))
    return linear_regression_log_evidence(design, y, jnp.zeros(len(used)), covariance, NOISE)


@pytest.fixture(scope="module")
def found():
    return [ppl.infer.search(jax.random.key(seed), SPACE, {"obs": simulate(seed)}, TIME, budget=20,
                             population=16, n=512) for seed in range(10)]


def test_recovers_the_generating_structure_in_nine_of_ten_seeds(found):
    recovered = [terms(result.describe()[0]) == ["periodic", "trend"] for result in found]
    assert sum(recovered) >= 9, [result.describe()[:2] for result in found]


def test_scores_are_prior_plus_exact_evidence(found):
    for seed in (0, 1):
        result, y = found[seed], simulate(seed)
        for code, score, log_evidence in zip(result.codes[:3], result.scores[:3], result.log_evidence[:3]):
            np.testing.assert_allclose(score, log_evidence + SPACE.log_prior(code), rtol=1e-5)
            # importance with 512 prior particles in <= 3 dimensions: within a nat of the closed form
            assert abs(log_evidence - exact_log_evidence(code, y)) < 1.0


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
    best = SPACE.describe(codes[int(jnp.argmax(scores))])
    assert terms(best) == ["periodic", "trend"]


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


def many_particles(key, space, code, obs, *args):
    return ppl.infer.importance(key, space.model, obs, code, *args, n=4096).log_evidence


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
