"""B4 - search over compositions: structures scored per second, and one compilation for all.

The time-series grammar of ``docs/composition.md``, from
:mod:`stdlib.sequences.simple` (terminals ``level``, ``trend`` centred on the
axis, ``periodic`` with 4 cycles; operators ``+``, ``*``, ``changepoint``;
depth 3: 2,703 structures) on a 200-point series simulated from
``trend + periodic``. Each structure is scored by
``ppl.infer.score_structures``: its structure prior plus an importance-sampling
estimate of ``log p(series | structure)`` with ``N`` particles, a whole batch of
different structures in one compiled call.

Measured, in one process:

- ``ppl batch``: 1,024 distinct structures scored in batches of ``B`` (one
  compiled program reused by every batch); the model's traces are counted, so
  the table shows that 1,024 structures compile once.
- ``per-structure jit``: the obvious alternative without fixed-shape codes:
  each structure a separate Python program (its code a compile-time constant),
  jitted and run; timed on a few structures (compile + run), per structure.
- ``ppl.infer.search``: the stochastic beam, ``B`` structures per step; scored
  per second over the whole run (moves, scoring, selection, host archive).
- the same batches and search with ``score=ppl.infer.Laplace(...)`` (MAP search:
  each structure's evidence by the Laplace approximation at its MAP, found by
  Adam restarts and Newton steps), side by side with importance sampling.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from benchmarks import common
from ppl import dist
from stdlib.sequences import simple

NAME = "b4"
TITLE = "B4 - search over compositions: structures scored per second (time-series grammar, 200 points)"
POINTS = 200
PARTICLES = 256
BATCH = 64
DISTINCT = 1_024  # 16 full batches: one batch shape, one compilation
NAIVE = 4
SEARCH_STEPS = 30
LAPLACE = ppl.infer.Laplace(restarts=2, steps=100)
TIME_AXIS = jnp.linspace(0.0, 1.0, POINTS)
traces: list[int] = []


def observe(f, t):
    traces.append(1)  # once per trace of space.model
    return dist.Normal(f, 0.3).to_event(1)


SPACE = simple.space(
    {"level": simple.level, "trend": simple.trend(origin=0.5), "periodic": simple.periodic(4)},
    depth=3,
    noise=observe,
)


def series() -> jax.Array:
    truth = SPACE.encode(("+", "trend", "periodic"))
    values = {"node_1/trend/slope": 1.2, "node_2/periodic/amplitude": 0.7, "node_2/periodic/phase": 1.0}
    trace, _ = SPACE.model.generate(jax.random.key(1), values, truth, TIME_AXIS)
    return trace.choices["obs"]


def _naive_score(code: np.ndarray, y: jax.Array) -> float:
    """One structure as its own program: the code is a Python constant, so every structure compiles."""
    frozen = tuple(int(kind) for kind in code)

    @jax.jit
    def score(key, y):
        fixed = jnp.asarray(frozen, jnp.int32)
        evidence = ppl.infer.importance(key, SPACE.model, {"obs": y}, fixed, TIME_AXIS, n=PARTICLES).log_evidence
        return SPACE.log_prior(fixed) + evidence

    return float(score(jax.random.key(0), y))


def run(options: common.Options) -> list[dict]:
    y = series()
    distinct = 256 if options.quick else DISTINCT
    codes = np.asarray(SPACE.enumerate())[np.random.default_rng(0).permutation(SPACE.count())[:distinct]]
    batches = [jnp.asarray(codes[i : i + BATCH]) for i in range(0, distinct, BATCH)]
    key = jax.random.key(0)

    traces.clear()
    start = time.perf_counter()
    common.block(ppl.infer.score_structures(key, SPACE, batches[0], {"obs": y}, TIME_AXIS, n=PARTICLES))
    first_call = time.perf_counter() - start
    start = time.perf_counter()
    scores = [common.block(ppl.infer.score_structures(key, SPACE, batch, {"obs": y}, TIME_AXIS, n=PARTICLES)[0])
              for batch in batches]
    batch_seconds = time.perf_counter() - start
    traced = len(traces)
    best = SPACE.describe(codes[int(np.argmax(np.concatenate([np.asarray(s) for s in scores])))])

    naive = 2 if options.quick else NAIVE
    start = time.perf_counter()
    for code in codes[:naive]:
        _naive_score(code, y)
    naive_seconds = (time.perf_counter() - start) / naive

    steps = 5 if options.quick else SEARCH_STEPS
    ppl.infer.search(key, SPACE, {"obs": y}, TIME_AXIS, budget=1, population=BATCH, n=PARTICLES)  # compile
    found = ppl.infer.search(key, SPACE, {"obs": y}, TIME_AXIS, budget=steps, population=BATCH, n=PARTICLES,
                             progress=options.progress)

    laplace_batches = batches[:2] if options.quick else batches[:4]
    start = time.perf_counter()
    common.block(ppl.infer.score_structures(key, SPACE, laplace_batches[0], {"obs": y}, TIME_AXIS, score=LAPLACE))
    laplace_first = time.perf_counter() - start
    start = time.perf_counter()
    laplace_scores = [common.block(ppl.infer.score_structures(key, SPACE, batch, {"obs": y}, TIME_AXIS,
                                                              score=LAPLACE)[0]) for batch in laplace_batches]
    laplace_seconds = (time.perf_counter() - start) / (len(laplace_batches) * BATCH)
    laplace_best = SPACE.describe(codes[int(np.argmax(np.concatenate([np.asarray(s) for s in laplace_scores])))])
    ppl.infer.search(key, SPACE, {"obs": y}, TIME_AXIS, budget=1, population=BATCH, score=LAPLACE)  # compile
    laplace_found = ppl.infer.search(key, SPACE, {"obs": y}, TIME_AXIS, budget=steps, population=BATCH, score=LAPLACE,
                                     progress=options.progress)
    return [
        {
            "distinct": distinct,
            "first_call": first_call,
            "batch_rate": distinct / batch_seconds,
            "traced": traced,
            "best_of_batch": best,
            "naive_seconds": naive_seconds,
            "naive": naive,
            "search_rate": steps * BATCH / found.seconds,
            "search_steps": steps,
            "search_best": found.describe()[0],
            "search_scored": int(found.scored[-1]),
            "history": found.history,
            "laplace_first_call": laplace_first,
            "laplace_seconds_per_structure": laplace_seconds,
            "laplace_best_of_batch": laplace_best,
            "laplace_search_seconds_per_structure": laplace_found.seconds / (steps * BATCH),
            "laplace_search_best": laplace_found.describe()[0],
            "laplace_search_scored": int(laplace_found.scored[-1]),
        }
    ]


def report(rows: list[dict], options: common.Options) -> str:
    row = rows[0]
    naive_rate = 1.0 / row["naive_seconds"]
    table = common.markdown_table(
        ["way", "structures scored per second", "compilations", "notes"],
        [
            [f"ppl `score_structures`, batches of {BATCH}", f"{row['batch_rate']:.0f}",
             f"1 (the model traced {row['traced']} times for {row['distinct']:,} distinct structures)",
             f"first call (trace + compile + run) {row['first_call']:.1f} s; best: `{row['best_of_batch']}`"],
            ["per-structure `jit` (code a constant)", f"{naive_rate:.2f}", "one per structure",
             f"{row['naive_seconds']:.2f} s per structure, mean of {row['naive']}"],
            [f"ppl `search`, population {BATCH}", f"{row['search_rate']:.0f}", "1",
             f"{row['search_steps']} steps, {row['search_scored']} distinct structures scored; best: "
             f"`{row['search_best']}`"],
            [f"ppl `score_structures` with `score=Laplace`, batches of {BATCH}",
             f"{1 / row['laplace_seconds_per_structure']:.0f}", "1",
             f"first call {row['laplace_first_call']:.1f} s; best: `{row['laplace_best_of_batch']}`"],
            [f"ppl `search` with `score=Laplace`, population {BATCH}",
             f"{1 / row['laplace_search_seconds_per_structure']:.0f}", "1",
             f"{row['search_steps']} steps, {row['laplace_search_scored']} distinct structures scored; best: "
             f"`{row['laplace_search_best']}`"],
        ],
    )
    curve = ", ".join(f"{value:.1f}" for value in row["history"][:: max(1, len(row["history"]) // 8)])
    return "\n\n".join(
        [
            f"## {TITLE}",
            f"Measured on {common.machine_description()}" + (" (quick mode: smoke test only)." if options.quick else "."),
            f"Grammar: terminals `level`, `trend`, `periodic` (amplitude, phase); operators `+`, `*`, "
            f"`changepoint` (latent time); depth 3, {SPACE.count():,} structures. Series: {POINTS} points from "
            f"`trend + periodic`, noise 0.3. Each structure: prior + importance evidence with {PARTICLES} "
            f"particles, or prior + Laplace evidence at the MAP ({LAPLACE.restarts} Adam restarts of "
            f"{LAPLACE.steps} steps, {LAPLACE.newton} Newton steps).",
            table,
            f"Scoring in batches is {row['batch_rate'] / naive_rate:,.0f}x the rate of compiling each structure "
            "separately: a code is an ordinary int32 argument, so one compiled program serves every structure. "
            f"Search best-so-far score (every few steps): {curve}.",
            "On a GPU, `python -m benchmarks --only b4 --device gpu` runs the same measurement (its section is "
            "`b4-gpu`)." if options.device == "cpu" else "Measured on the GPU.",
        ]
    )
