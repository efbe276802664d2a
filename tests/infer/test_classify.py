"""classify: exact posteriors over hypotheses, recovery, batching, chunking, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist
from ppl.testing import normal_normal_log_evidence

KEY = jax.random.key(0)
POINTS = 10
MEANS = (-2.0, 0.0, 2.0)
PRIOR_STD, NOISE_STD = 0.3, 1.0


@ppl.model
def location(mean):
    mu = ppl.sample("mu", dist.Normal(mean, PRIOR_STD))
    ppl.sample("y", dist.Normal(mu, NOISE_STD).expand([POINTS]).to_event(1))


def closed_over(mean):
    @ppl.model(name=f"location_{mean}")
    def model():
        mu = ppl.sample("mu", dist.Normal(mean, PRIOR_STD))
        ppl.sample("y", dist.Normal(mu, NOISE_STD).expand([POINTS]).to_event(1))

    return model


STACKED = {f"mean {m}": (location, (jnp.asarray(m),)) for m in MEANS}  # one model: vmapped hypotheses
SEPARATE = {f"mean {m}": closed_over(m) for m in MEANS}  # three models: traced in turn


def exact_log_evidence(y):
    return np.stack(
        [jax.vmap(lambda one, m=m: normal_normal_log_evidence(one, m, PRIOR_STD, NOISE_STD))(y) for m in MEANS], -1
    )


@pytest.fixture(scope="module")
def simulated():
    """200 observations, each drawn from a hypothesis chosen uniformly at random."""
    labels = jax.random.randint(jax.random.key(1), (200,), 0, len(MEANS))
    keys = jax.random.split(jax.random.key(2), 200)
    y = jax.vmap(lambda k, label: location.simulate(k, jnp.asarray(MEANS)[label]).choices["y"])(keys, labels)
    return np.asarray(labels), y


@pytest.fixture(scope="module")
def stacked_result(simulated):
    _, y = simulated
    return ppl.infer.classify(KEY, STACKED, {"y": y}, n=4000)


def generating(array, labels):
    return np.asarray(array)[np.arange(len(labels)), labels]


def test_log_evidence_matches_exact_within_reported_error(simulated, stacked_result):
    # the generating hypothesis's evidence (prior importance sampling cannot reach the far
    # tails, where a wrong hypothesis's evidence is underestimated but its probability is ~0)
    labels, y = simulated
    assert stacked_result.log_evidence.shape == (200, 3)
    error = np.abs(generating(stacked_result.log_evidence, labels) - generating(exact_log_evidence(y), labels))
    z = error / generating(stacked_result.log_evidence_standard_error, labels)
    assert np.all(z <= 4), z.max()
    assert np.mean(z <= 2) >= 0.9, np.mean(z <= 2)


def test_probabilities_match_exact_posterior(simulated, stacked_result):
    _, y = simulated
    exact = exact_log_evidence(y)
    exact_posterior = np.exp(exact - jax.scipy.special.logsumexp(exact, axis=-1, keepdims=True))
    probabilities = np.asarray(stacked_result.probabilities)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    # delta method: d p_k = p_k (d log Z_k - sum_j p_j d log Z_j); bound each d log Z by 4 se
    bound = 4 * exact_posterior * 2 * np.asarray(stacked_result.log_evidence_standard_error).max(-1, keepdims=True)
    assert np.all(np.abs(probabilities - exact_posterior) <= bound + 1e-3)


def test_recovers_generating_hypothesis_in_95_percent(simulated, stacked_result):
    labels, y = simulated
    accuracy = np.mean(np.asarray(stacked_result.best) == labels)
    exact_best = exact_log_evidence(y).argmax(-1)
    assert accuracy >= 0.95, accuracy
    assert np.mean(np.asarray(stacked_result.best) == exact_best) >= 0.99  # the Bayes classifier's answers


def test_mapping_interface(stacked_result):
    assert list(stacked_result) == list(STACKED) and len(stacked_result) == 3
    np.testing.assert_array_equal(stacked_result["mean 0.0"], stacked_result.probabilities[:, 1])
    with pytest.raises(KeyError, match="the hypotheses are"):
        stacked_result["mean 7"]
    assert set(dict(stacked_result)) == set(STACKED)


def test_numpy_conversion_gives_the_probabilities(simulated, stacked_result):
    labels, _ = simulated
    array = np.asarray(stacked_result)
    assert array.shape == (200, 3) and array.dtype == np.float32
    np.testing.assert_array_equal(array, np.asarray(stacked_result.probabilities))
    np.testing.assert_array_equal(array.argmax(-1), np.asarray(stacked_result.best))
    assert np.asarray(stacked_result, dtype=np.float64).dtype == np.float64
    assert np.mean(array.argmax(-1) == labels) >= 0.95


def test_separate_models_give_the_stacked_answer(simulated, stacked_result):
    _, y = simulated
    separate = ppl.infer.classify(KEY, SEPARATE, {"y": y[:20]}, n=4000)
    np.testing.assert_allclose(separate.log_evidence, stacked_result.log_evidence[:20], atol=1e-4)


def test_chunking_and_batch_position_do_not_change_answers(simulated, stacked_result):
    _, y = simulated
    chunked = ppl.infer.classify(KEY, STACKED, {"y": y}, n=4000, chunk_size=64)  # ragged: 200 = 3*64 + 8
    np.testing.assert_allclose(chunked.log_evidence, stacked_result.log_evidence, atol=1e-5)
    on_the_device = ppl.infer.classify(KEY, STACKED, {"y": y}, n=4000, chunk_size=64, devices="all")
    np.testing.assert_array_equal(on_the_device.log_evidence, chunked.log_evidence)  # one device: the same program
    single = ppl.infer.classify(KEY, STACKED, {"y": y[0]}, n=4000)
    assert single.probabilities.shape == (3,)
    np.testing.assert_allclose(single.log_evidence, stacked_result.log_evidence[0], atol=1e-5)


def test_prior_shifts_the_posterior(simulated):
    _, y = simulated
    uniform = ppl.infer.classify(KEY, STACKED, {"y": y[:5]}, n=1000)
    prior = dict(zip(STACKED, (0.8, 0.1, 0.1)))
    weighted = ppl.infer.classify(KEY, STACKED, {"y": y[:5]}, n=1000, prior=prior)
    expected = uniform.log_posterior + jnp.log(jnp.array([0.8, 0.1, 0.1]))
    expected = expected - jax.scipy.special.logsumexp(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(weighted.log_posterior, expected, atol=1e-5)


def test_custom_estimators(simulated):

    def scalar(key, model, obs, *args):
        return ppl.infer.importance(key, model, obs, *args, n=2000).log_evidence

    def smc(key, model, obs, *args):
        return ppl.infer.smc(key, model, obs, *args, n=500, history=False)

    labels, y = simulated
    exact = generating(exact_log_evidence(y[:3]), labels[:3])
    result = ppl.infer.classify(KEY, STACKED, {"y": y[:3]}, estimator=scalar)
    assert np.all(np.isnan(result.log_evidence_standard_error))
    np.testing.assert_allclose(generating(result.log_evidence, labels[:3]), exact, atol=0.1)
    tempered = ppl.infer.classify(KEY, STACKED, {"y": y[:3]}, estimator=smc)
    np.testing.assert_allclose(generating(tempered.log_evidence, labels[:3]), exact, atol=0.1)


def test_runs_inside_jit(simulated, stacked_result):
    _, y = simulated
    jitted = jax.jit(lambda key, y: ppl.infer.classify(key, STACKED, {"y": y}, n=4000).log_evidence)
    np.testing.assert_allclose(jitted(KEY, y[:10]), stacked_result.log_evidence[:10], atol=1e-5)


def test_ten_thousand_observations_ten_hypotheses_trace_once():
    traces = []

    @ppl.model
    def level(mean):
        traces.append(1)
        mu = ppl.sample("mu", dist.Normal(mean, 0.3))
        ppl.sample("y", dist.Normal(mu, 1.0))

    hypotheses = {f"level {k}": (level, (jnp.asarray(float(k)),)) for k in range(10)}
    labels = jax.random.randint(jax.random.key(3), (10_000,), 0, 10)
    y = labels + 0.3 * jax.random.normal(jax.random.key(4), (10_000,))
    result = ppl.infer.classify(KEY, hypotheses, {"y": y}, n=64, chunk_size=2_000)
    assert result.probabilities.shape == (10_000, 10)
    # shape detection, counting the draws, the one program: no loop over data or classes
    assert len(traces) <= 3
    assert np.mean(np.asarray(result.best) == np.asarray(labels)) > 0.85


def test_bad_input():
    with pytest.raises(ppl.errors.InferenceError, match="at least two"):
        ppl.infer.classify(KEY, {"only": location}, {"y": jnp.zeros(POINTS)}, 0.0)
    with pytest.raises(ppl.errors.InferenceError, match="sum to 1"):
        ppl.infer.classify(KEY, STACKED, {"y": jnp.zeros(POINTS)}, prior={name: 0.5 for name in STACKED})
    with pytest.raises(ppl.errors.NonFiniteError, match="observation 1"):
        ppl.infer.classify(KEY, STACKED, {"y": jnp.zeros((2, POINTS)).at[1, 2].set(jnp.nan)})
    with pytest.raises(ppl.errors.ShapeError, match=r"\(B, \*\(10,\)\)"):
        ppl.infer.classify(KEY, STACKED, {"y": jnp.zeros((2, POINTS + 1))})
    with pytest.raises(ppl.errors.ModelDefinitionError, match="generative function"):
        ppl.infer.classify(KEY, {"a": location, "b": lambda: None}, {"y": jnp.zeros(POINTS)})
    with pytest.raises(ppl.errors.InferenceError, match="splits a batch of observations"):
        ppl.infer.classify(KEY, STACKED, {"y": jnp.zeros(POINTS)}, devices="all")
    with pytest.raises(ppl.errors.InferenceError, match="devices must be None, 'all'"):
        ppl.infer.classify(KEY, STACKED, {"y": jnp.zeros((2, POINTS))}, devices="gpu")
