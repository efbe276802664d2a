"""ppl.infer.summary and ppl.infer.to_arviz: the numbers against NumPy and NumPyro, the ArviZ layout, the errors.

One small model, run once per algorithm (module-scoped fixtures), so the file compiles three small programs.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.diagnostics
import pytest

import ppl
from ppl import dist
from ppl.infer.classify import Classification
from ppl.infer.mcmc import Chain
from ppl.infer.search import SearchResult

OBS = {"y": jnp.array([0.8, 1.2, 1.0])}
QUANTILES = (0.05, 0.5, 0.95)


@ppl.model
def location():
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ppl.sample("v", dist.Normal(mu, 1.0).expand([2]))
    ppl.sample("y", dist.Normal(mu, 0.5).expand([3]))


@ppl.model
def walk(t, x):
    x = ppl.sample("x", dist.Normal(x, 1.0))
    ppl.sample("y", dist.Normal(x, 0.5))
    return x


@pytest.fixture(scope="module")
def particles():
    return ppl.infer.importance(jax.random.key(0), location, OBS, n=200)


@pytest.fixture(scope="module")
def chains(particles):
    """3 chains x 100 draws, from the best particle (cheaper than an eager generate)."""
    trace = ppl.infer.select_particles(particles, int(jnp.argmax(particles.log_weights)))
    kernel = ppl.infer.random_walk(location, ["mu", "v"], 0.7)
    return jax.vmap(lambda key: ppl.infer.chain(key, kernel, trace, steps=100))(jax.random.split(jax.random.key(2), 3))


@pytest.fixture(scope="module")
def filtered():
    return ppl.infer.smc(jax.random.key(3), ppl.unfold(walk, steps=3), {"y": jnp.array([0.1, 0.4, 0.2])}, 0.0, n=64)


def _rows(table, address, count):
    return np.stack([table.values[table.names.index(f"{address}[{i}]")] for i in range(count)])


# ---------------------------------------------------------------------------
# summary: the numbers
# ---------------------------------------------------------------------------


def test_particle_summary_is_the_weighted_mean_sd_and_quantiles_of_the_particles(particles):
    table = ppl.infer.summary(particles)
    weights = np.exp(np.asarray(particles.log_weights, np.float64))
    weights /= weights.sum()
    assert table.names == ("mu", "v[0]", "v[1]")  # the observed y is left out
    assert table.columns == ("mean", "sd", "5%", "50%", "95%")
    for name, values in (("mu", particles.traces.choices["mu"]), ("v[0]", particles.traces.choices["v"][:, 0])):
        values = np.asarray(values, np.float64)
        mean = np.sum(weights * values)
        row = table[name]
        np.testing.assert_allclose(row["mean"], mean, rtol=1e-10)
        np.testing.assert_allclose(row["sd"], np.sqrt(np.sum(weights * (values - mean) ** 2)), rtol=1e-10)
        expected = np.quantile(values, QUANTILES, weights=weights, method="inverted_cdf")
        np.testing.assert_array_equal([row["5%"], row["50%"], row["95%"]], expected)
    assert table.overall["particles"] == 200
    assert ppl.infer.summary(particles, observed=OBS).names == table.names  # importance knows its observations
    for name in ("effective_sample_size", "log_evidence", "log_evidence_standard_error"):
        np.testing.assert_allclose(table.overall[name], float(getattr(particles, name)), rtol=1e-5)
    lines = str(table).splitlines()
    assert "200 particles" in lines[0] and "±" in lines[0]
    assert len({len(line) for line in lines[1:]}) == 1  # aligned columns


def test_chain_summary_matches_numpy_and_numpyro_diagnostics(chains):
    table = ppl.infer.summary(chains, observed=OBS)
    assert table.names == ("mu", "v[0]", "v[1]")
    assert table.columns == ("mean", "sd", "5%", "50%", "95%", "ess", "r_hat")
    draws = np.asarray(chains.choices["v"], np.float64)  # (3, 100, 2)
    pooled = draws.reshape(300, 2)
    rows = _rows(table, "v", 2)
    np.testing.assert_allclose(rows[:, 0], pooled.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(rows[:, 1], pooled.std(axis=0), rtol=1e-10)
    np.testing.assert_allclose(rows[:, 2:5], np.quantile(pooled, QUANTILES, axis=0).T, rtol=1e-10)
    np.testing.assert_allclose(rows[:, 5], numpyro.diagnostics.effective_sample_size(draws), rtol=1e-10)
    np.testing.assert_allclose(rows[:, 6], numpyro.diagnostics.split_gelman_rubin(draws), rtol=1e-10)
    assert table.overall["chains"] == 3 and table.overall["draws"] == 100
    np.testing.assert_allclose(table.overall["acceptance_rate"], float(jnp.mean(chains.accepted)), rtol=1e-6)
    assert "y[0]" in ppl.infer.summary(chains).names  # unnamed, the observations are choices like any other


def test_one_chain_is_one_chain_and_ess_of_an_ar1_chain_is_numpyros():
    phi, steps = 0.8, 400
    noise = np.random.default_rng(0).normal(size=steps)
    x = np.zeros(steps)
    for i in range(1, steps):
        x[i] = phi * x[i - 1] + noise[i]
    chain = Chain(None, ppl.ChoiceMap({"x": x}), np.zeros(steps), np.ones(steps), np.ones(()))
    row = ppl.infer.summary(chain, quantiles=[0.25, 0.75])["x"]
    assert set(row) == {"mean", "sd", "25%", "75%", "ess", "r_hat"}
    np.testing.assert_allclose(row["ess"], numpyro.diagnostics.effective_sample_size(x[None]), rtol=1e-10)
    assert 0.5 < row["ess"] / (steps * (1 - phi) / (1 + phi)) < 2.0  # AR(1): n (1 - phi) / (1 + phi)
    assert ppl.infer.summary(chain).overall["chains"] == 1


def test_smc_summary_names_the_missing_standard_error(filtered):
    table = ppl.infer.summary(filtered, observed=["y"])
    assert table.names == ("x[0]", "x[1]", "x[2]")
    assert "log_evidence_standard_error" not in table.overall
    assert "combine_log_evidence" in table.title
    np.testing.assert_allclose(table.overall["log_evidence"], float(filtered.log_evidence), rtol=1e-6)


# ---------------------------------------------------------------------------
# to_arviz: the layout
# ---------------------------------------------------------------------------


def test_particles_to_arviz_round_trip(particles):
    idata = ppl.infer.to_arviz(particles)
    assert idata.posterior["mu"].dims == ("chain", "draw")
    assert idata.posterior["v"].shape == (1, 200, 2)
    np.testing.assert_array_equal(idata.posterior["v"].values[0], particles.traces.choices["v"])
    assert "y" not in idata.posterior
    np.testing.assert_array_equal(idata.observed_data["y"].values, OBS["y"])
    stats = idata.sample_stats
    log_weights = np.asarray(particles.log_weights, np.float64)
    expected = log_weights - np.log(np.sum(np.exp(log_weights)))
    np.testing.assert_allclose(stats["log_weight"].values[0], expected, rtol=1e-8)
    np.testing.assert_allclose(np.exp(stats["log_weight"].values).sum(), 1.0, rtol=1e-10)
    for name in ("log_evidence", "log_evidence_standard_error", "effective_sample_size"):
        assert stats[name].dims == ("chain",)
        np.testing.assert_allclose(stats[name].values[0], float(getattr(particles, name)), rtol=1e-5)
    assert idata.posterior.attrs["inference_method"] == "importance"


def test_chains_to_arviz_round_trip(chains):
    idata = ppl.infer.to_arviz(chains, observed=["y"])
    assert idata.posterior["mu"].shape == (3, 100) and idata.posterior["v"].shape == (3, 100, 2)
    np.testing.assert_array_equal(idata.posterior["v"].values, chains.choices["v"])
    assert "y" not in idata.posterior
    np.testing.assert_array_equal(idata.observed_data["y"].values, OBS["y"])
    np.testing.assert_array_equal(idata.sample_stats["lp"].values, chains.scores)
    np.testing.assert_array_equal(idata.sample_stats["acceptance_rate"].values, chains.accepted)


def test_smc_to_arviz_and_a_result_without_traces(filtered, particles):
    idata = ppl.infer.to_arviz(filtered, observed={"y": None})
    assert idata.posterior["x"].shape == (1, 64, 3) and "y" in idata.observed_data
    assert "log_evidence_standard_error" not in idata.sample_stats
    weights_only = ppl.infer.to_arviz(particles._replace(traces=None))  # as importance(..., keep="weights")
    assert "posterior" not in weights_only.groups() and "log_weight" in weights_only.sample_stats
    assert ppl.infer.summary(particles._replace(traces=None)).names == ()


def test_structure_posteriors_to_arviz_and_summary():
    classified = Classification.from_log_evidence(("low", "high", "flat"), jnp.array([-3.0, -1.0, -2.5]))
    idata = ppl.infer.to_arviz(classified)
    probability = idata.sample_stats["probability"]
    np.testing.assert_allclose(probability.values.sum(), 1.0, rtol=1e-6)
    assert list(probability["name"].values) == ["low", "high", "flat"]
    np.testing.assert_allclose(probability.values[0], classified.probabilities, rtol=1e-6)
    assert ppl.infer.summary(classified)["high"]["probability"] == pytest.approx(float(classified["high"]))

    batch = Classification.from_log_evidence(("a", "b"), jnp.array([[0.0, 1.0], [2.0, 0.0]]))
    assert ppl.infer.to_arviz(batch).sample_stats["probability"].dims == ("chain", "draw", "observation")
    np.testing.assert_allclose(ppl.infer.summary(batch)["b[1]"]["probability"], float(batch["b"][1]), rtol=1e-6)

    space = ppl.Space(terminals={"level": walk, "trend": walk}, operators={"+": lambda a, b: a + b}, depth=2)
    codes = np.stack([space.encode(("+", "level", "trend")), space.encode("trend"), space.encode("level")])
    scores = np.array([2.0, 0.5, -1.0])
    probabilities = np.exp(scores - np.log(np.sum(np.exp(scores))))
    found = SearchResult(codes=codes, scores=scores, log_evidence=scores + 1.0, probabilities=probabilities,
                         history=scores[:1], scored=np.array([3]), steps=0, seconds=0.0, space=space)
    idata = ppl.infer.to_arviz(found)
    np.testing.assert_array_equal(idata.posterior["structure"].values[0], codes)
    assert list(idata.posterior["description"].values) == found.describe()
    np.testing.assert_allclose(idata.sample_stats["probability"].values.sum(), 1.0, rtol=1e-10)
    table = ppl.infer.summary(found)
    assert table.names == tuple(found.describe()) and table.columns == ("probability", "log_evidence", "score")


def test_nested_addresses_keep_their_slash_or_take_a_separator():
    chain = Chain(None, ppl.ChoiceMap({"a/x": np.zeros((4, 2))}), np.zeros(4), np.ones(4), np.ones(()))
    assert ppl.infer.to_arviz(chain).posterior["a/x"].dims == ("chain", "draw", "a/x_dim_0")
    assert ppl.infer.to_arviz(chain, separator=".").posterior["a.x"].dims == ("chain", "draw", "a.x_dim_0")
    assert ppl.infer.summary(chain).names == ("a/x[0]", "a/x[1]")


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_unsupported_input_and_bad_arguments_raise_ppl_errors(particles, chains):
    for convert in (ppl.infer.summary, ppl.infer.to_arviz):
        with pytest.raises(ppl.errors.InferenceError, match="Chain.*ImportanceResult.*SMCResult.*SearchResult"):
            convert({"mu": np.zeros(3)})
        batch = jax.tree_util.tree_map(lambda leaf: jnp.stack([leaf, leaf]), particles)
        with pytest.raises(ppl.errors.InferenceError, match="batch of runs"):
            convert(batch)
        with pytest.raises(ppl.errors.UnknownAddressError, match="Did you mean 'mu'"):
            convert(chains, observed=["muu"])
    with pytest.raises(ppl.errors.InferenceError, match=r"\[0, 1\]"):
        ppl.infer.summary(particles, quantiles=(5, 50, 95))


def test_missing_arviz_raises_missing_dependency_and_summary_still_works(monkeypatch, particles):
    monkeypatch.setitem(sys.modules, "arviz", None)  # import arviz now fails
    with pytest.raises(ppl.errors.MissingDependencyError, match=r'pip install "ppl\[arviz\]"') as error:
        ppl.infer.to_arviz(particles)
    assert isinstance(error.value, ImportError)
    assert ppl.infer.summary(particles).names == ("mu", "v[0]", "v[1]")
