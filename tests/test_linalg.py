"""ppl.linalg: the same results as jnp.linalg (values and derivatives), and no LAPACK call in the programs
that inference compiles (jaxlib 0.10.2's batched LAPACK kernels can deadlock XLA:CPU's thread pool)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppl import linalg


def _matrices(size, batch=(3,), seed=0):
    keys = jax.random.split(jax.random.key(seed), 2)
    general = jax.random.normal(keys[0], (*batch, size, size)) + 2.0 * jnp.eye(size)
    positive = general @ jnp.swapaxes(general, -1, -2) + size * jnp.eye(size)
    right = jax.random.normal(keys[1], (*batch, size, 2))
    return general, positive, right


@jax.jit
def _ours(general, positive, right):
    lower = linalg.cholesky(positive)
    return (lower, linalg.solve_triangular(lower, right), linalg.solve_triangular(jnp.swapaxes(lower, -1, -2), right,
            lower=False), linalg.cho_solve(lower, right), linalg.solve(general, right),
            linalg.solve(general[0], right[0, :, 0]), linalg.slogdet(general), linalg.eigh(positive))


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_factorisations_and_solves_match_jnp_linalg(size):
    general, positive, right = _matrices(size)
    lower, forward, backward, normal, solved, solved_vector, (sign, log_det), (values, vectors) = _ours(
        general, positive, right)
    np.testing.assert_allclose(lower, jnp.linalg.cholesky(positive), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(forward,
                               jax.scipy.linalg.solve_triangular(lower, right, lower=True), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(backward,
                               jax.scipy.linalg.solve_triangular(lower, right, lower=True, trans=1),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(normal, jnp.linalg.solve(positive, right), rtol=1e-4, atol=1e-5)
    # general systems: compare residuals (pivoting order may differ from LAPACK's)
    np.testing.assert_allclose(general @ solved, right, atol=1e-4)
    np.testing.assert_allclose(solved_vector, jnp.linalg.solve(general[0], right[0, :, 0]),
                               rtol=1e-3, atol=1e-4)
    expected_sign, expected = jnp.linalg.slogdet(general)
    np.testing.assert_array_equal(sign, expected_sign)
    np.testing.assert_allclose(log_det, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(values, jnp.linalg.eigh(positive)[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(vectors @ (values[..., None] * jnp.swapaxes(vectors, -1, -2)), positive,
                               rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(jnp.swapaxes(vectors, -1, -2) @ vectors, jnp.broadcast_to(jnp.eye(size), vectors.shape),
                               atol=1e-5)


def test_indefinite_matrices_give_nan_like_lapack_and_eigh_sees_negative_values():
    indefinite = jnp.array([[1.0, 2.0], [2.0, 1.0]])
    assert not bool(jnp.all(jnp.isfinite(linalg.cholesky(indefinite))))
    np.testing.assert_allclose(linalg.eigh(indefinite)[0], [-1.0, 3.0], atol=1e-6)
    np.testing.assert_allclose(linalg.eigh(jnp.diag(jnp.array([3.0, -2.0, 0.0])))[0], [-2.0, 0.0, 3.0])


def test_derivatives_match_jnp_linalg():
    """Laplace differentiates through these twice (jacfwd of grad): first and second derivatives agree."""
    _, positive, right = _matrices(4, batch=())

    def ours(scale):
        lower = linalg.cholesky(positive * scale[0] + jnp.diag(scale))
        return jnp.sum(jnp.log(jnp.diag(lower))) + jnp.sum(linalg.solve_triangular(lower, right[:, 0]) ** 2)

    def reference(scale):
        lower = jnp.linalg.cholesky(positive * scale[0] + jnp.diag(scale))
        projected = jax.scipy.linalg.solve_triangular(lower, right[:, 0], lower=True)
        return jnp.sum(jnp.log(jnp.diag(lower))) + jnp.sum(projected**2)

    at = jnp.array([1.0, 0.5, 2.0, 1.5])
    np.testing.assert_allclose(jax.jit(jax.grad(ours))(at), jax.jit(jax.grad(reference))(at), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.hessian(ours))(at), jax.jit(jax.hessian(reference))(at), rtol=1e-3, atol=1e-4)
    general = positive - 3.0 * jnp.eye(4)
    np.testing.assert_allclose(jax.jit(jax.jacfwd(lambda m: linalg.solve(m, right[:, 0])))(general),
                               jax.jit(jax.jacfwd(lambda m: jnp.linalg.solve(m, right[:, 0])))(general), rtol=1e-3, atol=1e-4)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="square"):
        linalg.cholesky(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="rows"):
        linalg.solve(jnp.eye(2), jnp.ones(3))


def test_larger_matrices_fall_back_to_jnp_linalg_and_the_loops_take_any_size():
    general, positive, right = _matrices(linalg.UNROLLED_LIMIT + 1, batch=())
    np.testing.assert_allclose(linalg.solve(general, right), jnp.linalg.solve(general, right), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(linalg.eigh(positive)[0], jnp.linalg.eigh(positive)[0], rtol=1e-5)
    _, positive, right = _matrices(40, batch=())
    lower = jax.jit(linalg.cholesky)(positive)
    np.testing.assert_allclose(lower, jnp.linalg.cholesky(positive), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(jax.jit(linalg.cho_solve)(lower, right), jnp.linalg.solve(positive, right),
                               rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_the_series_scorer_compiles_without_lapack_calls():
    """The structure scorer ``discover`` compiles (the Laplace evidence over the collapsed grammar model,
    vmapped over changepoint candidates) lowers to plain XLA: no ``lapack_*`` custom call, so no batched
    LAPACK kernel can block the CPU thread pool (this program hung on 2 cores with ``jnp.linalg``)."""
    from stdlib import sequences as seq
    from stdlib.sequences.discover import default_grammar

    series = seq.prepare(np.sin(np.arange(40.0)) + 0.1 * np.arange(40.0))
    grammar = default_grammar(tuple(seq.default_components(series, (6, 12))), 3, 16)
    # the most regression columns the grammar makes: four cycles of three harmonics (24 columns)
    code = grammar.space.encode(("changepoint", ("+", "periodic(6)", "periodic(12)"),
                                 ("+", "periodic(12)", "periodic(6)")))
    obs = {"obs": {"value": jnp.asarray(series.values)}}
    arguments = tuple(map(jnp.asarray, series.arguments()))
    text = jax.jit(lambda key, code, obs, arguments: grammar.score(key, None, obs, code, *arguments).log_evidence
                   ).lower(jax.random.key(0), code, obs, arguments).as_text()
    assert "lapack" not in text.lower()
