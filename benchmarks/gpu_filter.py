"""The B2 particle filter on whatever backend JAX finds (made for a GPU): correctness and µs per step.

Run: ``python -m benchmarks.gpu_filter`` (``--small`` for a CPU smoke test).
Finishes in under 3 minutes including compilation. It

(a) checks ``ppl.infer.smc``'s log evidence on this backend against the exact
    Kalman filter (16 independent runs, vmapped in one call, pooled with
    ``combine_log_evidence``: within 4 standard errors; and one large run);
(b) measures microseconds per time step, at n = 1,000 and 100,000 particles,
    of: ppl's filter (``history=False`` and the default ``history=True``, and
    with the other resampling gate), and hand-written JAX filters (one
    ``lax.scan``, vectorised over particles) resampling systematically at
    every step with ``jnp.searchsorted`` (default method: the naive filter;
    ``method="scan_unrolled"``) or with ppl's counting resampler, the naive
    filter with ESS-triggered resampling in ``lax.cond`` (B2's CPU version),
    and with no resampling at all (the floor);
(c) prints a Markdown table and, when the ``OUT`` environment variable is set,
    writes everything to ``$OUT/gpu_filter.json``.

Model: ``x_t ~ Normal(0.9 x_(t-1), 1)``, ``y_t ~ Normal(x_t, 1)`` (benchmarks/b2_filter.py).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import b2_filter as b2
from benchmarks import common
from ppl.infer import filtering
from ppl.infer.evidence import combine_log_evidence
from ppl.infer.resample import resample_systematic
from ppl.infer.smc import smc

TARGET_US_PER_STEP = 40.0  # ppl at n = 100,000 on an H100/H200
TARGET_SPEEDUP = 15.0  # over the naive hand-written filter at n = 100,000


def searchsorted_systematic(method: str):
    def resampler(key, log_weights):
        n = log_weights.shape[0]
        cumulative = jnp.cumsum(jax.nn.softmax(log_weights))
        points = (jnp.arange(n) + jax.random.uniform(key)) / n
        return jnp.minimum(jnp.searchsorted(cumulative, points, method=method), n - 1)

    return resampler


def handwritten(resampler, threshold: float):
    """``threshold=1.01`` resamples after every step; ``0.0`` never."""
    return jax.jit(b2.bootstrap_filter(b2.handwritten_propagate, resampler, threshold), static_argnames="n")


def ppl_system(chain, history: bool, gate: str | None = None):
    """ppl's filter; ``gate`` overrides the per-backend resampling gate ("cond" / "select")."""

    def run(key, ys, n):
        original = filtering.backend_defaults
        if gate is not None:
            filtering.backend_defaults = lambda backend: dict(original(backend), gate=gate)
        try:
            result = smc(key, chain, {"y": ys}, 0.0, n=n, history=history, progress=False)
        finally:
            filtering.backend_defaults = original
        return result.log_evidence, result.log_weights

    return run


def systems(chain) -> dict:
    default_gate = filtering.backend_defaults(jax.default_backend())["gate"]
    other_gate = "cond" if default_gate == "select" else "select"
    return {
        "ppl smc (history=False)": ppl_system(chain, False),
        "ppl smc (history=True, default)": ppl_system(chain, True),
        f"ppl smc (history=False, gate={other_gate})": ppl_system(chain, False, other_gate),
        "naive: searchsorted default, every step": handwritten(searchsorted_systematic("scan"), 1.01),
        "naive, ESS-triggered (lax.cond)": handwritten(searchsorted_systematic("scan"), 0.5),
        "searchsorted scan_unrolled, every step": handwritten(searchsorted_systematic("scan_unrolled"), 1.01),
        "ppl's counting resampler, every step": handwritten(resample_systematic, 1.01),
        "no resampling (floor)": handwritten(resample_systematic, 0.0),
    }


def check_correctness(steps: int, n_check: int, n_large: int) -> dict:
    ys = b2.observations(steps)
    exact = b2.exact_log_evidence(ys)
    chain = b2.make_chain(steps)
    runs = jax.jit(jax.vmap(lambda k: smc(k, chain, {"y": ys}, 0.0, n=n_check).log_evidence))(
        jax.random.split(jax.random.key(1), 16)
    )
    pooled = combine_log_evidence(runs)
    large = float(smc(jax.random.key(2), chain, {"y": ys}, 0.0, n=n_large, progress=False).log_evidence)
    within = abs(float(pooled.log_evidence) - exact) < 4 * float(pooled.standard_error)
    # a run's spread shrinks like 1 / sqrt(n): 4 of the small runs' sd, scaled to n_large
    tolerance = max(0.05, 4 * float(np.std(np.asarray(runs))) * (n_check / n_large) ** 0.5)
    return dict(
        exact=exact,
        pooled=float(pooled.log_evidence),
        standard_error=float(pooled.standard_error),
        within_4_se=bool(within),
        large_n=n_large,
        large_run=large,
        large_run_error=large - exact,
        large_run_tolerance=tolerance,
        ok=bool(within and np.isfinite(large) and abs(large - exact) < tolerance),
    )


def measure(steps: int, sizes, repeats: int) -> list[dict]:
    ys = b2.observations(steps)
    chain = b2.make_chain(steps)
    rows = []
    for n in sizes:
        calls_by_system = systems(chain)
        keys = iter(jax.random.split(jax.random.key(n), 10_000))
        calls = {name: (lambda f=f: f(next(keys), ys, n=n)) for name, f in calls_by_system.items()}
        compile_start = time.perf_counter()
        seconds = common.time_interleaved(calls, repeats, warmup=2)
        elapsed = time.perf_counter() - compile_start
        for name in calls_by_system:
            rows.append(dict(system=name, n=n, steps=steps, us_per_step=1e6 * common.median(seconds[name]) / steps))
        print(f"  n={n:,}: measured in {elapsed:.1f} s", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict], sizes) -> str:
    by = {(r["system"], r["n"]): r["us_per_step"] for r in rows}
    names = list(dict.fromkeys(r["system"] for r in rows))
    naive = "naive: searchsorted default, every step"
    body = []
    for name in names:
        cells = [f"{by[(name, n)]:.1f}" for n in sizes]
        speedups = [f"{by[(naive, n)] / by[(name, n)]:.1f}x" for n in sizes]
        body.append([name, *cells, *speedups])
    header = ["filter", *[f"µs/step n={n:,}" for n in sizes], *[f"naive / this, n={n:,}" for n in sizes]]
    return common.markdown_table(header, body)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_filter", description=__doc__)
    parser.add_argument("--small", action="store_true", help="CPU smoke test: small sizes")
    options = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if options.small:
        sizes, steps, repeats, check = (100, 1000), 50, 3, dict(steps=50, n_check=200, n_large=2000)
    else:
        sizes, steps, repeats, check = (1_000, 100_000), 200, 10, dict(steps=100, n_check=1_000, n_large=100_000)
    start = time.perf_counter()
    device = common.machine_description()
    print(f"# B2 particle filter on {device}", flush=True)
    correctness = check_correctness(**check)
    print(
        f"correctness: pooled log evidence {correctness['pooled']:.3f} +- {correctness['standard_error']:.3f} "
        f"(16 runs, n={check['n_check']:,}), exact (Kalman) {correctness['exact']:.3f}; one run at "
        f"n={correctness['large_n']:,}: error {correctness['large_run_error']:+.3f} "
        f"(tolerance {correctness['large_run_tolerance']:.3f}) -> "
        + ("OK" if correctness["ok"] else "FAILED"),
        flush=True,
    )
    rows = measure(steps, sizes, repeats)
    print(f"\nT = {steps} steps, median of {repeats} interleaved calls after compilation:\n")
    print(table(rows, sizes))
    largest = max(sizes)
    by = {(r["system"], r["n"]): r["us_per_step"] for r in rows}
    ppl_large = by[("ppl smc (history=False)", largest)]
    speedup = by[("naive: searchsorted default, every step", largest)] / ppl_large
    verdict = (
        f"\nppl at n={largest:,}: {ppl_large:.1f} µs/step (target <= {TARGET_US_PER_STEP:.0f} on an H100/H200), "
        f"{speedup:.1f}x faster than the naive filter (target >= {TARGET_SPEEDUP:.0f}x)."
    )
    print(verdict)
    total = time.perf_counter() - start
    print(f"total {total:.0f} s", flush=True)
    if os.environ.get("OUT"):
        path = pathlib.Path(os.environ["OUT"]) / "gpu_filter.json"
        path.write_text(
            json.dumps(
                dict(device=device, backend=jax.default_backend(), steps=steps, sizes=list(sizes), repeats=repeats,
                     correctness=correctness, rows=rows, table=table(rows, sizes), verdict=verdict.strip(),
                     seconds=total),
                indent=2,
            )
        )
        print(f"wrote {path}")
    return 0 if correctness["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
