"""Resamplers: unbiased offspring counts, each with its variance guarantee."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppl.infer.resample import RESAMPLERS, resample

WEIGHTS = jnp.array([0.05, 0.3, 0.0, 0.15, 0.22, 0.08, 0.2])
N = WEIGHTS.shape[0]
LOG_WEIGHTS = jnp.log(WEIGHTS) + 3.0  # unnormalised, with a -inf


def offspring_counts(method, repeats=4000):
    keys = jax.random.split(jax.random.key(0), repeats)
    ancestors = jax.jit(jax.vmap(lambda k: resample(k, LOG_WEIGHTS, method)))(keys)
    return jax.vmap(lambda a: jnp.bincount(a, length=N))(ancestors), ancestors


@pytest.mark.parametrize("method", sorted(RESAMPLERS))
def test_offspring_counts_are_unbiased(method):
    counts, ancestors = offspring_counts(method)
    assert ancestors.dtype == jnp.int32 and ancestors.shape == (4000, N)
    assert int(ancestors.min()) >= 0 and int(ancestors.max()) < N
    assert np.all(np.asarray(counts[:, 2]) == 0)  # zero weight, never chosen
    mean = np.asarray(counts.mean(0))
    se = np.asarray(counts.std(0)) / np.sqrt(counts.shape[0]) + 1e-9
    expected = N * np.asarray(WEIGHTS)
    assert np.all(np.abs(mean - expected) < 4 * se + 1e-6), (mean, expected)


@pytest.mark.parametrize("method", ["systematic", "residual"])
def test_low_variance_resamplers_keep_the_floor(method):
    counts, _ = offspring_counts(method, repeats=500)
    floor = np.floor(N * np.asarray(WEIGHTS) + 1e-6)
    assert np.all(np.asarray(counts) >= floor)
    if method == "systematic":
        assert np.all(np.asarray(counts) <= np.ceil(N * np.asarray(WEIGHTS) - 1e-6))


def test_variance_is_ordered():
    variances = {m: float(offspring_counts(m)[0].var(0).sum()) for m in RESAMPLERS}
    assert variances["systematic"] < variances["stratified"] < variances["multinomial"]
    assert variances["residual"] < variances["multinomial"]


def test_large_population_and_degenerate_weights():
    n = 100_000
    log_weights = jax.random.normal(jax.random.key(1), (n,))
    for method in RESAMPLERS:
        ancestors = jax.jit(lambda k, w, m=method: resample(k, w, m))(jax.random.key(2), log_weights)
        assert ancestors.shape == (n,) and 0 <= int(ancestors.min()) and int(ancestors.max()) < n
    one_hot = jnp.full((5,), -jnp.inf).at[3].set(0.0)
    for method in RESAMPLERS:
        assert resample(jax.random.key(0), one_hot, method).tolist() == [3] * 5
    uniform = jnp.zeros(8)
    assert resample(jax.random.key(0), uniform, "systematic").tolist() == list(range(8))
    assert resample(jax.random.key(0), uniform, "residual").tolist() == list(range(8))


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="'systematic'"):
        resample(jax.random.key(0), jnp.zeros(3), "sistematic")
