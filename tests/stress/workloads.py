"""Long, varied workloads, each run in a child process by ``tests/stress/test_native_faults.py``.

A native fault (a segfault inside XLA, an out-of-memory kill) takes the whole
process with it, so no assert can see it. Each workload here runs many calls
with varied data and shapes in one process; the test fails when the process
ends by a signal or with a non-zero exit code.

Run one by hand: ``python tests/stress/workloads.py digits`` (from the repository root).
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import ppl  # first: ppl.xla_flags must act before JAX starts its CPU backend
from ppl import dist


def _digit_images():
    """scikit-learn's 8x8 digits when installed (the test extra has it), else prototype renderings."""
    from stdlib import digits

    try:
        return digits.load_sklearn()
    except ImportError:
        models = digits.prototypes(size=(8, 8))
        keys = jax.random.split(jax.random.key(0), 300)
        labels = np.arange(300) % 10
        images = jax.vmap(lambda k, c: models.model.simulate(k, models.of(c)).choices["image"])(
            keys, jnp.asarray(labels))
        return np.asarray(images), labels


def _corrupt(kind: str, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    images = images.copy()
    n, height, width = images.shape
    if kind == "noise 0.25" or kind == "noise 0.5":
        images = images + float(kind.split()[1]) * rng.standard_normal(images.shape)
    elif kind in ("blot", "erasure"):
        rows, cols = rng.integers(0, height - 2, n), rng.integers(0, width - 2, n)
        for i in range(n):
            images[i, rows[i] : rows[i] + 3, cols[i] : cols[i] + 3] = 1.0 if kind == "blot" else 0.0
    elif kind == "flips":
        flip = rng.random(images.shape) < 0.05
        images = np.where(flip, 1.0 - np.round(images), images)
    return np.clip(images, 0.0, 1.0).astype(np.float32)


def digits_workload() -> None:
    """``digits.classify`` on a dozen batches (sizes, corruptions, chunking), zero-shot and after ``fit``."""
    from stdlib import digits

    images, labels = _digit_images()
    images = (images / max(1.0, float(images.max()))).astype(np.float32)
    rng = np.random.default_rng(0)
    prototypes = digits.prototypes(size=(8, 8))
    budget = digits.Budget(steps=8)
    batches = [(16, "clean", 32), (20, "clean", 32), (7, "noise 0.25", 32), (32, "noise 0.5", 32),
               (50, "blot", 32), (1, "clean", None), (24, "erasure", 8), (13, "flips", 8),
               (40, "clean", 8), (3, "noise 0.5", None)]
    for index, (size, corruption, chunk) in enumerate(batches):
        chosen = rng.choice(len(images), size, replace=False)
        batch = _corrupt(corruption, images[chosen], rng)
        result = digits.classify(jax.random.key(index), prototypes, batch, budget, chunk_size=chunk)
        probabilities = np.asarray(result)
        assert probabilities.shape == (size, 10) and np.all(np.isfinite(probabilities)), corruption
    # the flow of a user: fit from a few examples per class, then classify batch after batch
    train = np.concatenate([np.flatnonzero(labels == c)[:2] for c in range(10)])
    models = digits.fit(jax.random.key(1), images[train], labels[train], budget=digits.Budget(steps=8, restarts=1, keep=0))
    test = np.setdiff1d(np.arange(len(images)), train)[:250]
    for start in range(0, 250, 50):
        result = digits.classify(jax.random.key(100 + start), models, images[test[start : start + 50]], budget,
                                 chunk_size=25)
        assert np.asarray(result).shape == (50, 10)


@ppl.model
def regression(design):
    weights = ppl.sample("w", dist.Normal(0.0, 1.0).expand([design.shape[1]]).to_event(1))
    noise = ppl.sample("noise", dist.HalfNormal(1.0))
    ppl.sample("y", dist.Normal(design @ weights, noise).to_event(1))


@ppl.model
def walk(t, x):
    x = ppl.sample("x", dist.Normal(x, 1.0))
    ppl.sample("y", dist.Normal(x, 0.5))
    return x


def inference_workload() -> None:
    """importance (chunked and not), smc (filter and tempered), map, search and classify on documented models."""
    rng = np.random.default_rng(1)
    for points, features in [(20, 2), (50, 3), (7, 1)]:
        design = jnp.asarray(rng.standard_normal((points, features)), jnp.float32)
        y = design @ jnp.ones(features) + 0.3 * jnp.asarray(rng.standard_normal(points), jnp.float32)
        for n, chunk in [(1000, None), (10_000, 3_000), (5_000, 5_000)]:
            result = ppl.infer.importance(jax.random.key(n), regression, {"y": y}, design, n=n, chunk_size=chunk)
            assert np.isfinite(float(result.log_evidence))
        fit = ppl.infer.map(jax.random.key(2), regression, {"y": y}, design, restarts=4, steps=50)
        assert np.isfinite(float(fit.log_joint))
        tempered = ppl.infer.smc(jax.random.key(3), regression, {"y": y}, design, n=200)
        assert np.isfinite(float(tempered.log_evidence))
    for steps in (5, 20, 64):
        chain = ppl.unfold(walk, steps=steps)
        ys = jnp.asarray(rng.standard_normal(steps), jnp.float32)
        for n in (100, 1000):
            result = ppl.infer.smc(jax.random.key(steps), chain, {"y": ys}, 0.0, n=n)
            assert np.isfinite(float(result.log_evidence))
    models = {"narrow": (regression, ()), "wide": (regression, ())}
    design = jnp.asarray(rng.standard_normal((10, 2)), jnp.float32)
    ys = jnp.asarray(rng.standard_normal((30, 10)), jnp.float32)
    for chunk in (None, 8):
        result = ppl.infer.classify(jax.random.key(4), models, {"y": ys}, design, n=300, chunk_size=chunk)
        assert np.asarray(result).shape == (30, 2)
    _search_workload(rng)


def _search_workload(rng) -> None:
    @ppl.model
    def level(t):
        return jnp.full(t.shape, ppl.sample("level", dist.Normal(0.0, 2.0)))

    @ppl.model
    def trend(t):
        return ppl.sample("slope", dist.Normal(0.0, 1.0)) * t

    space = ppl.Space(terminals={"level": level, "trend": trend}, operators={"+": lambda a, b: a + b}, depth=3,
                      observe=lambda value, t: dist.Normal(value, 0.3).to_event(1))
    for points in (20, 50):
        t = jnp.linspace(0.0, 1.0, points)
        y = 1.0 + 2.0 * t + 0.3 * jnp.asarray(rng.standard_normal(points), jnp.float32)
        result = ppl.infer.search(jax.random.key(points), space, {"obs": y}, t, budget=6, population=8, n=100)
        assert np.isfinite(result.scores[0]) and result.history[-1] >= result.history[0]


def known_bad_patterns() -> None:
    """Programs that XLA:CPU's YNN fusions crash on CPUs without AVX-512 (jaxlib 0.10.2): a fused
    reduction over a non-innermost axis of a rank-7 array reshaped inside the fusion."""
    key_a, key_b = jax.random.split(jax.random.key(0))
    for batch in ((20, 10, 1), (4, 3, 2), (1, 1, 1)):
        a = jax.random.normal(key_a, batch + (3, 6, 4, 2))
        b = jax.random.normal(key_b, batch + (72, 2))
        out = jax.jit(lambda a, b, s=batch: -(a * b.reshape(s + (3, 6, 4, 2))).sum(5))(a, b)
        assert out.shape == batch + (3, 6, 2) and bool(jnp.all(jnp.isfinite(out)))


WORKLOADS = {"digits": digits_workload, "inference": inference_workload, "known_bad": known_bad_patterns}


if __name__ == "__main__":
    name = sys.argv[1]
    start = time.perf_counter()
    WORKLOADS[name]()
    print(f"workload {name} finished in {time.perf_counter() - start:.1f} s")
