"""stdlib.sequences.discover: bad input raises clear errors (fast), the augmented filter is exact, and
discover's explanation is complete and consistent on a simulated series (slow: one scorer compile)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl.cli import main as cli_main, read_series
from ppl.errors import DataError
from stdlib import sequences as seq
from stdlib.sequences import statespace


# -- bad input (no compilation) ------------------------------------------------------------------------


@pytest.mark.parametrize(("y", "t", "message"), [
    (np.arange(4.0), None, "at least"),
    (["a", "b", "c", "d", "e", "f", "g"], None, "numeric"),
    (np.full(10, np.nan), None, "every value"),
    (np.arange(8.0), np.array([0, 1, 2, 3, 3, 5, 6, 7.0]), "strictly increasing"),
    (np.arange(8.0), np.arange(7.0), "one time per value"),
    (np.ones(8), None, "constant"),
    (np.ones((4, 3)), None, "one-dimensional"),
])
def test_bad_series_raise_data_errors(y, t, message):
    with pytest.raises(DataError, match=message):
        seq.prepare(y, t)


def test_a_period_longer_than_the_series_is_refused():
    series = seq.prepare(np.sin(np.arange(20.0)))
    with pytest.raises(DataError, match="longer than the series"):
        seq.default_components(series, periods=(40,))


def test_dates_give_steps_and_the_season_and_extend_continues_them():
    pd = pytest.importorskip("pandas")
    y = pd.Series(np.arange(30.0) + np.sin(np.arange(30.0)), index=pd.date_range("2000-01-01", periods=30, freq="MS"))
    series = seq.prepare(y)
    assert series.season == 12 and series.times[1] - series.times[0] == 1.0
    more = series.extended(pd.Series([1.0, np.nan], index=pd.date_range("2002-07-01", periods=2, freq="MS")))
    assert list(more.times[-2:]) == [30.0, 31.0] and not more.observed[-1]
    assert more.u[29] == pytest.approx(1.0) and more.mean == series.mean


def test_cli_names_the_columns_that_exist(tmp_path, capsys):
    path = tmp_path / "data.csv"
    path.write_text("year,volume\n1,2\n2,3\n")
    with pytest.raises(DataError, match="year, volume"):
        read_series(str(path), "flow")
    assert cli_main(["explain-series", str(path), "--column", "flow"]) == 2
    assert "its columns are: year, volume" in capsys.readouterr().err


def test_regression_filter_is_the_exact_gaussian_marginal():
    """y = X beta + (state-space part): the augmented filter's log p(y) equals the dense Gaussian's, with
    missing points."""
    length, dim = 10, 2
    keys = jax.random.split(jax.random.key(3), 4)
    transition = jnp.array([[0.9, 0.2], [0.0, 0.7]])
    model = statespace.StateSpace(jnp.broadcast_to(transition, (length, dim, dim)).at[0].set(jnp.eye(dim)),
                                  jnp.broadcast_to(0.1 * jnp.eye(dim), (length, dim, dim)).at[0].set(0.0),
                                  jnp.broadcast_to(jnp.array([1.0, 0.5]), (length, dim)), jnp.asarray(0.2),
                                  jnp.array([0.3, -0.1]), jnp.eye(dim))
    design = jax.random.normal(keys[0], (length, 3))
    scales = jnp.array([1.0, 2.0, 0.5])
    y = jax.random.normal(keys[1], (length,))
    observed = jnp.arange(length) % 4 != 1
    value = statespace.regression_log_likelihood(model, y, design, scales, observed)
    # dense: x_k = A^k x_0 + sum_j A^(k-j) w_j
    f, h = np.asarray(transition, np.float64), np.array([1.0, 0.5])
    powers = [np.linalg.matrix_power(f, k) for k in range(length)]
    covariance = np.array([[h @ (powers[i] @ powers[j].T + sum(0.1 * powers[i - m] @ powers[j - m].T
                                                               for m in range(1, min(i, j) + 1))) @ h
                            for j in range(length)] for i in range(length)])
    x = np.asarray(design * scales, np.float64)
    covariance += x @ x.T + 0.2 * np.eye(length)
    mean = np.array([h @ powers[k] @ np.array([0.3, -0.1]) for k in range(length)])
    keep = np.asarray(observed)
    residual = (np.asarray(y, np.float64) - mean)[keep]
    sub = covariance[np.ix_(keep, keep)]
    expected = -0.5 * (keep.sum() * np.log(2 * np.pi) + np.linalg.slogdet(sub)[1] + residual @ np.linalg.solve(sub, residual))
    assert float(value) == pytest.approx(expected, abs=2e-3)


@pytest.mark.slow  # compile-bound (8-20 s); keeps the default run under 10 min on 2 cores
def test_sequential_scoring_matches_vectorised_scoring():
    t = jnp.linspace(0.0, 1.0, 12)

    @ppl.model
    def level(t):
        return ppl.sample("c", ppl.dist.Normal(0.0, 1.0)) * jnp.ones_like(t)

    @ppl.model
    def trend(t):
        return ppl.sample("slope", ppl.dist.Normal(0.0, 1.0)) * (t - 0.5)

    space = ppl.Space({"level": level, "trend": trend}, {"+": lambda a, b: a + b}, depth=2,
                      observe=lambda f, t: ppl.dist.Normal(f, 0.1).to_event(1))
    codes = jnp.stack([space.encode(s) for s in ("level", "trend", ("+", "level", "trend"))])
    obs = {"obs": 0.5 + (t - 0.5)}
    batched = ppl.infer.score_structures(jax.random.key(0), space, codes, obs, t, score=ppl.infer.laplace)
    sequential = ppl.infer.score_structures(jax.random.key(0), space, codes, obs, t, score=ppl.infer.laplace,
                                            vectorize=False)
    assert jnp.allclose(batched[0], sequential[0], atol=1e-3)


# -- discover, end to end (slow: the scorer compiles once, ~60 s) ---------------------------------------


@pytest.fixture(scope="module")
def explanation():
    rng = np.random.default_rng(0)
    t = np.arange(48.0)
    y = 0.08 * t + 1.0 * np.sin(2 * np.pi * t / 12) + 0.15 * rng.normal(size=48)
    y[[5, 17]] = np.nan
    components = (seq.level(), seq.linear_trend(), seq.random_walk(), seq.periodic(12.0, 2))
    return seq.discover(jax.random.key(0), y, components=components, budget=8, progress=False,
                        name="simulated"), y


@pytest.mark.slow
def test_discover_explains_a_trend_and_a_cycle(explanation, tmp_path):
    explained, y = explanation
    assert explained.structure in ("linear_trend + periodic(12)", "periodic(12) + linear_trend"), explained
    probabilities = [p for _, p, _ in explained.posterior]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
    # the components sum to the fit, which follows the data
    fits = explained.components
    assert {f["name"] for f in fits} == {"linear_trend", "periodic(12)"}
    assert np.allclose(sum(f["mean"] for f in fits), explained.fit)
    seen = np.isfinite(y)
    assert np.sqrt(np.mean((explained.fit[seen] - y[seen]) ** 2)) < 0.3
    assert all(np.all(f["lower"] <= f["mean"]) and np.all(f["mean"] <= f["upper"]) for f in fits)
    # forecasts: shape, and the 95% band covers the continuation of the generating curve
    paths = explained.forecast(jax.random.key(1), 12, 400)
    assert paths.shape == (400, 12) and np.all(np.isfinite(paths))
    table = explained.forecast_table(jax.random.key(1), 12, 400)
    future = np.arange(48.0, 60.0)
    truth = 0.08 * future + np.sin(2 * np.pi * future / 12)
    assert np.mean((table.lower[95] <= truth) & (truth <= table.upper[95])) >= 0.75
    assert np.all(table.lower[95] <= table.lower[80]) and np.all(table.upper[80] <= table.upper[95])
    text = explained.report()
    assert "period of 12" in text and "rising" in text
    path = tmp_path / "figure.png"
    explained.plot(str(path), horizon=6)
    assert path.stat().st_size > 1000


@pytest.mark.slow
def test_extend_continues_the_search_with_more_data(explanation):
    explained, _ = explanation
    t = np.arange(48.0, 54.0)
    more = explained.extend(jax.random.key(2), 0.08 * t + np.sin(2 * np.pi * t / 12), budget=1)
    assert more.series.length == 54
    assert "periodic(12)" in more.structure and "linear_trend" in more.structure
