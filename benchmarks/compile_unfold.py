"""Compile time of ``ppl.unfold`` does not grow with the number of steps.

Traces and compiles ``jit(simulate)`` of a noisy random walk for 10 and 10,000
steps, and prints a table: trace+lower time, XLA compile time, and the run time
of one compiled call. For contrast it does the same for the same chain written
as an unrolled Python loop (``f"x_{i}"`` addresses), whose program grows with
the number of steps. Prints only; writes nothing.

Run: ``python -m benchmarks.compile_unfold``
"""

from __future__ import annotations

import time

import jax

import ppl
from ppl import dist


@ppl.model
def noisy_walk(t, position, scale):
    x = ppl.sample("x", dist.Normal(position, scale))
    ppl.sample("y", dist.Normal(x, 0.5))
    return x


def unrolled_walk(steps: int) -> ppl.Model:
    @ppl.model(name=f"unrolled_walk_{steps}")
    def walk(position, scale):
        for i in range(steps):
            position = ppl.sample(f"x_{i}", dist.Normal(position, scale))
            ppl.sample(f"y_{i}", dist.Normal(position, 0.5))
        return position

    return walk


def measure(model: ppl.GenerativeFunction, compiles: int = 1, repeats: int = 5) -> dict[str, float]:
    """Seconds to trace+lower and to compile (best of ``compiles``) and to run (best of
    ``repeats``) ``jit(simulate)``; and the number of top-level jaxpr equations."""
    key = jax.random.key(0)
    trace_seconds, compile_seconds = [], []
    for _ in range(compiles):  # a fresh jit each time, so nothing is cached
        simulate = jax.jit(lambda k: model.simulate(k, 0.0, 1.0).score)
        start = time.perf_counter()
        lowered = simulate.lower(key)
        traced = time.perf_counter()
        compiled = lowered.compile()
        trace_seconds.append(traced - start)
        compile_seconds.append(time.perf_counter() - traced)
    jax.block_until_ready(compiled(key))
    runs = []
    for _ in range(repeats):
        begin = time.perf_counter()
        jax.block_until_ready(compiled(key))
        runs.append(time.perf_counter() - begin)
    equations = len(jax.make_jaxpr(lambda k: model.simulate(k, 0.0, 1.0).score)(key).jaxpr.eqns)
    return dict(
        trace=min(trace_seconds), compile=min(compile_seconds), run=min(runs), equations=equations
    )


def main() -> None:
    rows = [
        (f"ppl.unfold, {steps:,} steps", measure(ppl.unfold(noisy_walk, steps), compiles=3))
        for steps in (10, 10_000)
    ]
    rows += [(f"unrolled loop, {steps:,} steps", measure(unrolled_walk(steps))) for steps in (10, 50)]
    print(f"jax {jax.__version__}, backend {jax.default_backend()} ({jax.devices()[0].device_kind})")
    header = f"{'model':<28}{'jaxpr eqns':>12}{'trace (s)':>12}{'compile (s)':>13}{'run (ms)':>11}"
    print(header)
    print("-" * len(header))
    for label, row in rows:
        print(
            f"{label:<28}{row['equations']:>12}{row['trace']:>12.3f}{row['compile']:>13.3f}"
            f"{1e3 * row['run']:>11.3f}"
        )
    ratio = rows[1][1]["compile"] / rows[0][1]["compile"]
    print(f"\nunfold compile time, 10,000 vs 10 steps: x{ratio:.2f}")


if __name__ == "__main__":
    main()
