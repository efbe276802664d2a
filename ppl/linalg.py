"""Dense linear algebra for small matrices, in plain XLA operations (no LAPACK calls on the CPU).

Inference in ppl factorises many small matrices at once: a Laplace Hessian per
structure, a filter covariance per changepoint candidate, all under ``vmap``.
``jnp.linalg`` hands each batch to LAPACK through a custom call, and on the CPU
jaxlib 0.10.2 runs a large enough batch (``batch * cost >= 2e5`` flops) by
scheduling chunks on XLA's intra-op thread pool and *blocking* a pool thread
until they finish (``jax::ParallelBatchMap``). When XLA runs as many
independent LAPACK calls at once as the pool has threads (two, on a 2-core
machine), every thread blocks waiting for work that no thread is free to run,
and the process hangs for ever. The smallest program we found that hangs
(in about half the runs on 2 cores; never with one core)::

    a = jax.random.normal(key, (64, 32, 32)); b = jax.random.normal(key, (64, 32, 32))
    solve = lambda m, r: solve_triangular(jnp.tril(m) + 4 * jnp.eye(32), r, lower=True)
    jax.jit(lambda a, b: sum(solve(x, y).sum() for x, y in [(a, b), (b, a), (a + b, b), (a - b, a)]))

jaxlib 0.11.2 compiles that parallel path out of open-source builds; until ppl can
require it, the functions here compute the same results with ordinary XLA
operations, so they never enter LAPACK (``discover`` on the Nile ran 111 s with
them and 117 s with LAPACK on a 2-core CPU; single operations were not timed
apart). Every function takes arrays with any
leading batch dimensions, like ``jnp.linalg``. :func:`cholesky` and
:func:`solve_triangular` loop over the ``n`` columns, so they take any size;
:func:`solve` and :func:`slogdet` unroll their elimination and :func:`eigh` its
rotation rounds, so larger matrices than ``UNROLLED_LIMIT`` go to ``jnp.linalg``
(a program unrolled twice under Laplace's second derivatives grows quickly).

Example::

    >>> import jax.numpy as jnp
    >>> from ppl import linalg
    >>> a = jnp.array([[4.0, 2.0], [2.0, 3.0]])
    >>> lower = linalg.cholesky(a)
    >>> bool(jnp.allclose(lower @ lower.T, a))
    True
    >>> bool(jnp.allclose(a @ linalg.solve(a, jnp.array([1.0, 2.0])), jnp.array([1.0, 2.0])))
    True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["UNROLLED_LIMIT", "cholesky", "solve_triangular", "cho_solve", "solve", "slogdet", "eigh"]

UNROLLED_LIMIT = 16
"""The largest matrix :func:`solve`, :func:`slogdet` and :func:`eigh` handle here; larger ones go to
``jnp.linalg`` (LAPACK on the CPU)."""

JACOBI_SWEEPS = 10
"""Jacobi sweeps in :func:`eigh`; convergence is quadratic, ample for ``n <= UNROLLED_LIMIT``."""


def _size(a: jax.Array) -> int:
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"ppl.linalg expects square matrices in the last two axes, got shape {a.shape}.")
    return a.shape[-1]


def _as_columns(b: jax.Array, n: int) -> tuple[jax.Array, bool]:
    """``b`` as ``(..., n, m)`` and whether it was a vector ``(..., n)`` (numpy's rule: a vector if 1-D)."""
    vector = b.ndim == 1
    if vector:
        b = b[:, None]
    if b.shape[-2] != n:
        raise ValueError(f"ppl.linalg: the right-hand side has {b.shape[-2]} rows, the matrix has {n}.")
    return b, vector


def cholesky(a: jax.Array) -> jax.Array:
    """The lower Cholesky factor ``L`` of a symmetric positive-definite ``a`` ``(..., n, n)``: ``a = L L^T``.

    Reads only the lower triangle. Like ``jnp.linalg.cholesky``, a matrix that is not positive definite
    gives NaNs (test with ``jnp.isfinite``), not an error. A loop over the ``n`` columns (right-looking: each
    takes its column off the remaining Schur complement), so the program's size does not grow with ``n``.
    """
    n = _size(a)
    index = jnp.arange(n)
    strictly_lower = jnp.tril(a, -1)
    remaining = strictly_lower + jnp.swapaxes(strictly_lower, -1, -2) + a * jnp.eye(n, dtype=a.dtype)

    def column(j, carry):
        remaining, lower = carry
        pick = (index == j).astype(a.dtype)
        values = jnp.sum(remaining * pick, axis=-1)  # column j of the remaining (symmetric) matrix
        pivot = jnp.sqrt(jnp.sum(values * pick, axis=-1, keepdims=True))
        values = jnp.where(index >= j, values / pivot, 0.0)
        remaining = remaining - values[..., :, None] * values[..., None, :]
        return remaining, lower + values[..., :, None] * pick

    return lax.fori_loop(0, n, column, (remaining, jnp.zeros_like(remaining)))[1]


def solve_triangular(a: jax.Array, b: jax.Array, lower: bool = True, transpose: bool = False) -> jax.Array:
    """``x`` with ``a x = b`` (or ``a^T x = b`` if ``transpose``) for triangular ``a`` ``(..., n, n)``.

    ``b`` is ``(..., n, m)``, or ``(n,)`` for one vector. Only the triangle named by ``lower`` is read. A loop
    over the ``n`` rows (substitution), so the program's size does not grow with ``n``.
    """
    n = _size(a)
    if transpose:
        a, lower = jnp.swapaxes(a, -1, -2), not lower
    b, vector = _as_columns(b, n)
    batch = jnp.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    index = jnp.arange(n)

    def row(step, x):
        i = step if lower else n - 1 - step
        pick = (index == i).astype(a.dtype)
        coefficients = jnp.sum(a * pick[:, None], axis=-2)  # row i of a, (..., n)
        diagonal = jnp.sum(coefficients * pick, axis=-1)
        known = (index < i) if lower else (index > i)
        coefficients = jnp.where(known, coefficients, 0.0)
        value = (jnp.sum(b * pick[:, None], axis=-2) - jnp.sum(coefficients[..., :, None] * x, axis=-2))
        return x + pick[:, None] * (value / diagonal[..., None])[..., None, :]

    x = lax.fori_loop(0, n, row, jnp.zeros(batch + b.shape[-2:], jnp.result_type(a, b)))
    return x[..., 0] if vector else x


def cho_solve(lower: jax.Array, b: jax.Array) -> jax.Array:
    """``x`` with ``(L L^T) x = b``, from the Cholesky factor ``L = cholesky(a)``."""
    return solve_triangular(lower, solve_triangular(lower, b, lower=True), lower=True, transpose=True)


def _eliminate(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Gaussian elimination with partial pivoting: ``(U, c, swaps)`` with ``U x = c`` equivalent to ``a x = b``."""
    n = a.shape[-1]
    augmented = jnp.concatenate([a, b], axis=-1)
    swaps = jnp.zeros(a.shape[:-2], jnp.int32)
    index = jnp.arange(n)
    for k in range(n - 1):
        pivot = k + jnp.argmax(jnp.abs(augmented[..., k:, k]), axis=-1)  # (...,)
        swaps = swaps + (pivot != k)
        # swap rows k and pivot with a permutation (one matmul of a small matrix)
        target = jnp.where(index == k, pivot[..., None], jnp.where(index == pivot[..., None], k, index))
        permutation = (target[..., :, None] == index).astype(a.dtype)
        augmented = permutation @ augmented
        factors = augmented[..., k + 1:, k] / augmented[..., k, k, None]
        augmented = augmented.at[..., k + 1:, :].add(-factors[..., None] * augmented[..., k, None, :])
    return augmented[..., :n], augmented[..., n:], swaps


def solve(a: jax.Array, b: jax.Array) -> jax.Array:
    """``x`` with ``a x = b`` for a general square ``a`` ``(..., n, n)``; ``b`` is ``(..., n, m)`` or ``(n,)``.

    Gaussian elimination with partial pivoting, as LAPACK's ``gesv``.
    """
    n = _size(a)
    if n > UNROLLED_LIMIT:
        return jnp.linalg.solve(a, b)
    b, vector = _as_columns(b, n)
    batch = jnp.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a, b = jnp.broadcast_to(a, batch + a.shape[-2:]), jnp.broadcast_to(b, batch + b.shape[-2:])
    upper, right, _ = _eliminate(a, b)
    x = solve_triangular(upper, right, lower=False)
    return x[..., 0] if vector else x


def slogdet(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(sign, log|det a|)`` for a square ``a`` ``(..., n, n)``, as ``jnp.linalg.slogdet``."""
    n = _size(a)
    if n > UNROLLED_LIMIT:
        return jnp.linalg.slogdet(a)
    upper, _, swaps = _eliminate(a, jnp.zeros(a.shape[:-1] + (0,), a.dtype))
    diagonal = jnp.diagonal(upper, axis1=-2, axis2=-1)
    sign = jnp.prod(jnp.sign(diagonal), axis=-1) * jnp.where(swaps % 2 == 1, -1.0, 1.0).astype(a.dtype)
    return sign, jnp.sum(jnp.log(jnp.abs(diagonal)), axis=-1)


def _round_robin(n: int) -> list[list[tuple[int, int]]]:
    """The pairs of ``0..n-1`` in ``n - 1`` rounds (``n`` rounded up to even) of disjoint pairs (a tournament)."""
    players = list(range(n + n % 2))
    rounds = []
    for _ in range(len(players) - 1):
        pairs = [(players[i], players[-1 - i]) for i in range(len(players) // 2)]
        rounds.append([(min(p, q), max(p, q)) for p, q in pairs if max(p, q) < n])
        players = [players[0], players[-1], *players[1:-1]]
    return rounds


def _rotate(a: jax.Array, vectors: jax.Array, pairs: list[tuple[int, int]]):
    """Jacobi rotations zeroing ``a[p, q]`` for disjoint pairs at once: ``a <- J^T a J``, ``vectors <- vectors J``."""
    n = a.shape[-1]
    first, second = np.array([p for p, _ in pairs]), np.array([q for _, q in pairs])
    app, aqq, apq = a[..., first, first], a[..., second, second], a[..., first, second]
    small = jnp.abs(apq) <= jnp.finfo(a.dtype).tiny
    theta = (aqq - app) / jnp.where(small, 1.0, 2.0 * apq)
    tangent = jnp.sign(theta) / (jnp.abs(theta) + jnp.sqrt(theta * theta + 1.0))
    tangent = jnp.where(small, 0.0, jnp.where(theta == 0, 1.0, tangent))
    cosine = lax.rsqrt(tangent * tangent + 1.0)
    sine = tangent * cosine
    # J = (identity off the pairs) + sum_k cos_k (e_p e_p^T + e_q e_q^T) + sin_k (e_p e_q^T - e_q e_p^T)
    diagonal = np.zeros((len(pairs), n, n))
    skew = np.zeros((len(pairs), n, n))
    for k, (p, q) in enumerate(pairs):
        diagonal[k, p, p] = diagonal[k, q, q] = 1.0
        skew[k, p, q], skew[k, q, p] = 1.0, -1.0
    rest = np.eye(n) - diagonal.sum(0)
    rotation = (rest + jnp.einsum("...k,kij->...ij", cosine, diagonal.astype(a.dtype))
                + jnp.einsum("...k,kij->...ij", sine, skew.astype(a.dtype)))
    return jnp.swapaxes(rotation, -1, -2) @ a @ rotation, vectors @ rotation


def eigh(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Eigenvalues ``(..., n)`` (ascending) and eigenvectors ``(..., n, n)`` (columns) of a symmetric ``a``.

    Jacobi rotations (``JACOBI_SWEEPS`` sweeps over all pairs, each sweep ``n - 1`` rounds of disjoint pairs
    rotated at once), as ``jnp.linalg.eigh``; the input is symmetrised first.
    ``a = vectors @ diag(values) @ vectors.T``.
    """
    n = _size(a)
    if n > UNROLLED_LIMIT:
        return jnp.linalg.eigh(a)
    a = 0.5 * (a + jnp.swapaxes(a, -1, -2))
    vectors = jnp.broadcast_to(jnp.eye(n, dtype=a.dtype), a.shape)
    rounds = _round_robin(n)

    def sweep(_, carry):
        for pairs in rounds:
            carry = _rotate(*carry, pairs)
        return carry

    if n > 1:
        a, vectors = lax.fori_loop(0, JACOBI_SWEEPS, sweep, (a, vectors))
    values = jnp.diagonal(a, axis1=-2, axis2=-1)
    order = jnp.argsort(values, axis=-1)
    values = jnp.take_along_axis(values, order, axis=-1)
    vectors = jnp.take_along_axis(vectors, order[..., None, :], axis=-1)
    return values, vectors
