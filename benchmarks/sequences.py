"""Structure discovery on real series: what ``stdlib.sequences.discover`` finds, how well it forecasts, how fast.

Run::

    python -m benchmarks.sequences            # the full protocol; writes docs/sequences_benchmark.md
    python -m benchmarks.sequences --quick    # smoke run (budget 2, 200 forecast paths); writes nothing
                                              # unless --output is given

Two series shipped with statsmodels (no download), fixed seeds:

- **Nile** (annual flow at Aswan, 1871-1970, 100 points; the flow dropped after
  the first Aswan dam, 1898/1899). ``discover(key(0), volume, t=year,
  budget=6)``. Reported: the best structure and its posterior probability; for
  the best structure, the posterior probability that 1898 is the last year
  before the change (``Explanation._changepoint(0)``, exact enumeration over
  every year given the structure's Laplace mode) and the 95% set (the fewest
  most probable years whose probabilities reach 0.95); wall time of the whole
  ``discover`` call (``time.perf_counter``, including tracing and compilation);
  distinct structures scored and structures per second.
- **CO2** (Mauna Loa, weekly, resampled to month starts and gaps interpolated):
  train 1958-03..1991-12 (406 months), test 1992-01..2001-12 (120 months).
  ``discover(key(0), train, periods=(12,), budget=6)``; 120-month forecast from
  1,000 sample paths (``forecast_table``): RMSE of the per-month median against
  the test months, and the coverage of the central 95% interval (fraction of
  test months inside it). Baselines fitted on the same train months in the same
  run with statsmodels (``disp=False``): ``SARIMAX(order=(1,1,1),
  seasonal_order=(0,1,1,12))`` and ``UnobservedComponents(level="local linear
  trend", seasonal=12)``; point forecast = ``get_forecast(120).predicted_mean``,
  95% interval = ``conf_int(alpha=0.05)``.
- **Recovery.** ``--seeds`` (default 10) series of 96 monthly points simulated
  from five structures of the grammar with fixed settings (``RECOVERY_CASES``:
  a line and a yearly cycle, a level shift, an AR(1) and a cycle, a line and an
  AR(1), a random walk; seed ``s`` simulates case ``s % 5``); ``discover(key(s),
  y, periods=(12,), budget=6)``. Recovered: the most probable structure has the
  generating components on the same sides of any changepoint (``Grammar.signature``).
  Target (issue): at least 9 of 10. **Held out:** seeds 0-9 were the
  development (validation) set, looked at while changing the search and the
  scorer; seeds 10-19 were held out until 2026-12-07, when their misses (11
  and 12, search misses) led to the ``prune`` move, so they are development
  seeds now too. Seeds 20-29 were held out until 2026-12-08, when their misses
  (21 and 25: the generating structure one swap from the best, never scored)
  were looked at to develop the refinement pass after the search
  (``discover(refine=1)``), so they are development seeds now as well. The
  report uses seeds ``--first-seed`` (default 30) onwards, never looked at
  before the run that writes the report.
- **Anytime.** Nile again with the same key and budget 2; the best score of
  the budget-6 run's steps (``found.history[found.steps]``) must be >= that of
  the budget-2 run's. (The refinement after the steps is not anytime in the
  budget: each run refines around its own best. Its scores are reported too.)

Speed columns: *discover total* is the wall time of the call (tracing and XLA
compilation of the scorer included: a first call for a series shape compiles,
later calls of the same shape reuse it); *CPU s* is the process's CPU time over
the same call, every thread counted (on a machine shared with other work the wall
time includes waiting for a core, so the report also prints the load average);
*search seconds* is
``found.seconds``, the search's own clock, which starts after the first
(compiling) step; *structures/s* is ``found.scored[-1] / found.seconds`` (all
distinct structures scored, divided by the post-compile seconds: this counts the
initial population and first step, scored before the clock started, so it
overstates the rate); *structures/s (timed steps)* counts only those scored
while the clock ran, ``(scored[-1] - scored[1]) / seconds``.

A stage that runs longer than ``--stage-limit`` seconds (default 1200) dumps
every thread's Python traceback to stderr and exits with status 1, so a hang is
reported rather than waited on. (Before ``ppl.linalg``, with jaxlib 0.10.2 on a
2-core CPU, the CO2 ``discover`` deadlocked: both XLA:CPU intra-op threads
blocked inside the batched triangular solve's ``ParallelBatchMap``
(``lapack_strsm_ffi``), waiting for chunks they had queued on their own pool.
The scorer now compiles without LAPACK calls; see ``ppl/linalg.py``. The report
prints the cores the process had and ``XLA_FLAGS``.)
The report also names the git commit and a hash of the library files the run
imported (``ppl/``, ``stdlib/sequences/``), which may carry uncommitted edits.

Targets (from the issue) are printed next to the results: CO2 RMSE < 0.85 ppm;
95% coverage in 90-99%; CO2 ``discover`` under 60 s on a 2-core CPU.
Numbers are printed as measured, on the machine named in the output.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import hashlib
import os
import pathlib
import platform
import subprocess
import sys
import time

import jax
import numpy as np

import ppl
from benchmarks import common

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "sequences_benchmark.md"
TITLE = "Structure discovery on real series (stdlib.sequences.discover)"
HORIZON = 120
NILE_CHANGE = 1898
TARGET_RMSE = 0.85
TARGET_COVERAGE = (0.90, 0.99)
TARGET_SECONDS = 60.0


def cpu_description() -> str:
    """The CPU model (``/proc/cpuinfo``), the cores this process may use, and library versions."""
    model, cores = common.cpu_model(), common.available_cores()
    import pandas
    import statsmodels

    device = jax.devices()[0]
    return (f"{model}, {cores} cores available to the process; JAX backend {jax.default_backend()} "
            f"({getattr(device, 'device_kind', device.platform)}); Python {platform.python_version()}, "
            f"jax {jax.__version__}, statsmodels {statsmodels.__version__}, pandas {pandas.__version__}; "
            f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '(unset)')!r}")


def code_version() -> str:
    """The git commit, whether the tree has edits, and a hash of the library sources this run imports."""
    def git(*args):
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else "?"

    digest = hashlib.sha256()
    files = sorted([*(ROOT / "ppl").rglob("*.py"), *(ROOT / "stdlib" / "sequences").glob("*.py")])
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    dirty = " with uncommitted edits" if git("status", "--porcelain", "--", "ppl", "stdlib/sequences") else ""
    return f"commit {git('rev-parse', '--short', 'HEAD')}{dirty}; sources sha256 {digest.hexdigest()[:12]}"


@contextlib.contextmanager
def stage(name: str, limit: float):
    """Announce a stage; if it runs past ``limit`` seconds dump every thread's traceback and exit(1)."""
    print(f"-- {name} (started {time.strftime('%H:%M:%S')}; limit {limit:.0f} s)", flush=True)
    faulthandler.dump_traceback_later(limit, exit=True, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def smallest_set(candidates: np.ndarray, probabilities: np.ndarray, mass: float = 0.95) -> tuple[np.ndarray, float]:
    """The fewest highest-probability candidates whose probabilities reach ``mass``, sorted; and their total."""
    order = np.argsort(-probabilities, kind="stable")
    cumulative = np.cumsum(probabilities[order])
    count = int(np.searchsorted(cumulative, mass) + 1)
    count = min(count, len(order))
    return np.sort(candidates[order[:count]]), float(cumulative[count - 1])


def rates(found) -> tuple[float, float]:
    """Structures per second: all scored / post-compile seconds, and only those scored while the clock ran."""
    scored = np.asarray(found.scored)
    if found.seconds <= 0:
        return float("nan"), float("nan")
    timed = scored[-1] - scored[1] if len(scored) > 1 else 0
    return float(scored[-1] / found.seconds), float(timed / found.seconds)


def timed_discover(key, y, **kwargs):
    from stdlib.sequences.discover import discover

    start, cpu = time.perf_counter(), time.process_time()
    explanation = discover(key, y, **kwargs)
    # wall seconds, and CPU seconds of every thread of this process (less sensitive to other load on the machine)
    return explanation, time.perf_counter() - start, time.process_time() - cpu


def nile(steps: int) -> dict:
    import statsmodels.api as sm

    data = sm.datasets.nile.load_pandas().data
    years = data["year"].to_numpy(dtype=float)
    volume = data["volume"].to_numpy(dtype=float)
    key = jax.random.key(0)
    explanation, seconds, cpu_seconds = timed_discover(key, volume, t=years, budget=ppl.infer.Budget(steps=steps),
                                                       name="nile")
    found = explanation.found
    rate, timed_rate = rates(found)
    row = {
        "points": len(volume),
        "steps": int(found.steps),
        "structure": explanation.structure,
        "probability": explanation.posterior[0][1],
        "posterior": explanation.posterior[:5],
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "search_seconds": float(found.seconds),
        "scored": int(found.scored[-1]),
        "rate": rate,
        "timed_rate": timed_rate,
        "best_score": float(found.scores[0]),
        "history": np.asarray(found.history).tolist(),
    }
    changepoint = explanation._changepoint(explanation._best)
    if changepoint is None:
        row["changepoint"] = None
    else:
        candidates, probabilities = (np.asarray(a) for a in changepoint)
        candidate_years = years[0] + candidates  # index = year - 1871
        at = probabilities[candidate_years == NILE_CHANGE]
        chosen, mass = smallest_set(candidate_years, probabilities)
        row["changepoint"] = {
            "p_1898": float(at.sum()) if at.size else 0.0,
            "mode": int(candidate_years[int(np.argmax(probabilities))]),
            "p_mode": float(probabilities.max()),
            "set95": [int(y) for y in chosen],
            "set95_mass": mass,
            "total": float(probabilities.sum()),
        }
    return row, key, volume, years


RECOVERY_LENGTH = 96  # monthly points (eight years)
HELD_OUT_SEED = 30  # recovery seeds 0-29 were looked at while developing (see the module docstring)
RECOVERY_CASES = (  # (the generating structure, as space.encode takes it; its formula)
    (("+", "linear_trend", "periodic(12)"), "0.03 t + sin(2 pi t / 12) + N(0, 0.3^2)"),
    (("changepoint", "level", "level"), "0 up to t = 55, then 1.5; + N(0, 0.4^2)"),
    (("+", "ar(1)", "periodic(12)"), "AR(1) (phi 0.8, innovations 0.4) + sin(2 pi t / 12) + N(0, 0.1^2)"),
    (("+", "linear_trend", "ar(1)"), "0.06 t + AR(1) (phi 0.6, innovations 0.4) + N(0, 0.1^2)"),
    ("random_walk", "a random walk (steps N(0, 0.3^2)) + N(0, 0.1^2)"),
)


def simulated(case: int, seed: int) -> np.ndarray:
    """Recovery case ``case`` (see ``RECOVERY_CASES``) simulated with NumPy seed ``seed``, ``RECOVERY_LENGTH``
    points at ``t = 0, 1, ...`` (monthly, so the natural period is 12)."""
    rng = np.random.default_rng(seed)
    t = np.arange(RECOVERY_LENGTH, dtype=float)

    def autoregression(phi, scale):
        values = np.zeros(RECOVERY_LENGTH)
        values[0] = rng.normal(0.0, scale / np.sqrt(1 - phi**2))
        for i in range(1, RECOVERY_LENGTH):
            values[i] = phi * values[i - 1] + rng.normal(0.0, scale)
        return values

    cycle = np.sin(2 * np.pi * t / 12)
    if case == 0:
        return 0.03 * t + cycle + rng.normal(0.0, 0.3, t.size)
    if case == 1:
        return np.where(t > 55, 1.5, 0.0) + rng.normal(0.0, 0.4, t.size)
    if case == 2:
        return autoregression(0.8, 0.4) + cycle + rng.normal(0.0, 0.1, t.size)
    if case == 3:
        return 0.06 * t + autoregression(0.6, 0.4) + rng.normal(0.0, 0.1, t.size)
    return np.cumsum(rng.normal(0.0, 0.3, t.size)) + rng.normal(0.0, 0.1, t.size)


def recovery(seeds, steps: int) -> dict:
    """``discover`` on ``seeds`` simulated series (seed ``s`` simulates case ``s % len(RECOVERY_CASES)``, with
    periods=(12,)): whether the most probable structure is the generating one (same components on the same
    sides, however the tree is written)."""
    rows = []
    seeds = range(seeds) if isinstance(seeds, int) else list(seeds)
    for seed in seeds:
        case = seed % len(RECOVERY_CASES)
        expression, formula = RECOVERY_CASES[case]
        y = simulated(case, seed)
        explanation, seconds, _ = timed_discover(jax.random.key(seed), y, periods=(12,), progress=False,
                                                 budget=ppl.infer.Budget(steps=steps), name=f"simulated {seed}")
        grammar = explanation.grammar
        truth = grammar.signature(grammar.space.encode(expression))
        best = grammar.signature(explanation.found.codes[explanation._best])
        ranks = [i for i, group in enumerate(explanation._groups)
                 if grammar.signature(explanation.found.codes[group[3][0]]) == truth]
        rows.append({"seed": seed, "truth": grammar.space.describe(grammar.space.encode(expression)),
                     "formula": formula, "found": explanation.structure, "probability": explanation.posterior[0][1],
                     "recovered": best == truth, "seconds": seconds,
                     "truth_rank": ranks[0] + 1 if ranks else None,
                     "truth_probability": explanation._groups[ranks[0]][1] if ranks else 0.0})
        print(f"recovery seed {seed}: truth {rows[-1]['truth']}, found {rows[-1]['found']} "
              f"(p={rows[-1]['probability']:.2f}), {seconds:.1f} s", flush=True)
    return {"rows": rows, "recovered": sum(r["recovered"] for r in rows), "seeds": len(rows)}


def anytime(key, volume, years, long_row: dict, short_steps: int) -> dict:
    explanation, seconds, _ = timed_discover(key, volume, t=years, budget=ppl.infer.Budget(steps=short_steps),
                                             name="nile")
    found = explanation.found
    short = float(found.history[found.steps])  # the best after the steps, before the refinement
    long = float(long_row["history"][long_row["steps"]])
    return {"short_steps": short_steps, "short_score": short, "short_structure": explanation.structure,
            "short_refined": float(found.scores[0]), "short_seconds": seconds, "long_steps": long_row["steps"],
            "long_score": long, "long_refined": long_row["best_score"], "long_structure": long_row["structure"],
            "ok": long >= short}


def co2_data():
    import statsmodels.api as sm

    d = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().interpolate()
    train = d["1958-03":"1991-12"].asfreq("MS")
    test = d["1992-01":"2001-12"]
    if len(test) != HORIZON:
        raise RuntimeError(f"expected {HORIZON} test months, got {len(test)}")
    if train.isna().any() or test.isna().any():
        raise RuntimeError("the CO2 split has missing months after interpolation")
    return train, test


def coverage(lower, upper, truth) -> float:
    truth = np.asarray(truth, float)
    return float(np.mean((truth >= np.asarray(lower, float)) & (truth <= np.asarray(upper, float))))


def rmse(prediction, truth) -> float:
    return float(np.sqrt(np.mean((np.asarray(prediction, float) - np.asarray(truth, float)) ** 2)))


def co2(steps: int, paths: int, figures: pathlib.Path | None = None) -> dict:
    train, test = co2_data()
    key = jax.random.key(0)
    explanation, seconds, cpu_seconds = timed_discover(key, train, periods=(12,),
                                                       budget=ppl.infer.Budget(steps=steps), name="co2")
    found = explanation.found
    rate, timed_rate = rates(found)
    start = time.perf_counter()
    table = explanation.forecast_table(jax.random.key(1), HORIZON, n=paths, levels=(95,))
    forecast_seconds = time.perf_counter() - start
    structure = explanation.structure
    if figures is not None:
        figures.mkdir(parents=True, exist_ok=True)
        explanation.plot(str(figures / "sequences_co2.png"), horizon=HORIZON, key=jax.random.key(1))
    return {
        "train": len(train),
        "test": len(test),
        "train_range": f"{train.index[0]:%Y-%m}..{train.index[-1]:%Y-%m}",
        "test_range": f"{test.index[0]:%Y-%m}..{test.index[-1]:%Y-%m}",
        "steps": int(found.steps),
        "paths": paths,
        "structure": structure,
        "probability": explanation.posterior[0][1],
        "posterior": explanation.posterior[:5],
        "has_trend": "trend" in structure,
        "has_period": "periodic(12)" in structure,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "search_seconds": float(found.seconds),
        "scored": int(found.scored[-1]),
        "rate": rate,
        "timed_rate": timed_rate,
        "forecast_seconds": forecast_seconds,
        "rmse": rmse(table.median, test),
        "coverage": coverage(table.lower[95], table.upper[95], test),
    }, train, test


def baselines(train, test) -> list[dict]:
    from statsmodels.tsa.statespace.sarimax import SARIMAX
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    models = {
        "SARIMA(1,1,1)(0,1,1)12": lambda: SARIMAX(train, order=(1, 1, 1), seasonal_order=(0, 1, 1, 12)),
        "UnobservedComponents(local linear trend, seasonal=12)":
            lambda: UnobservedComponents(train, level="local linear trend", seasonal=12),
    }
    rows = []
    for name, make in models.items():
        start = time.perf_counter()
        fitted = make().fit(disp=False)
        forecast = fitted.get_forecast(HORIZON)
        interval = np.asarray(forecast.conf_int(alpha=0.05))
        seconds = time.perf_counter() - start
        rows.append({"name": name, "rmse": rmse(forecast.predicted_mean, test),
                     "coverage": coverage(interval[:, 0], interval[:, 1], test), "seconds": seconds})
    return rows


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def posterior_text(posterior) -> str:
    return "; ".join(f"`{text}` {p:.3f}" for text, p, _ in posterior)


def report(results: dict, quick: bool) -> str:
    n, c, a, base, r = results["nile"], results["co2"], results["anytime"], results["baselines"], results["recovery"]
    lines = [f"## {TITLE}", "",
             f"Measured on {results['machine']}. Code: {results['version']}" + (" (quick mode: smoke test only, not the protocol's numbers)."
                                                   if quick else "."),
             f"Run started {results['started']}; the whole script took {results['total_seconds']:.0f} s. "
             f"Load average (1 min) at start {results['load'][0]:.2f}, at end {results['load'][1]:.2f}: wall times "
             "on a shared machine include waiting for the cores; CPU seconds are the process's own."
             + (f" {results['note']}" if results.get("note") else ""),
             "", "### Nile (100 annual flows, 1871-1970)", "",
             common.markdown_table(
                 ["budget (steps)", "best structure", "probability", "discover total (wall s, incl. compile)",
                  "discover CPU s (all threads)", "search seconds (after 1st step)", "structures scored",
                  "structures/s", "structures/s (timed steps)"],
                 [[n["steps"], f"`{n['structure']}`", f"{n['probability']:.3f}", f"{n['seconds']:.1f}",
                   f"{n['cpu_seconds']:.1f}", f"{n['search_seconds']:.1f}", n["scored"], f"{n['rate']:.2f}",
                   f"{n['timed_rate']:.2f}"]]),
             "", f"Posterior (top 5): {posterior_text(n['posterior'])}.", ""]
    cp = n["changepoint"]
    if cp is None:
        lines.append("The best structure has no changepoint, so there is no changepoint posterior to report "
                     "(the expected change after 1898 was not found by the best structure).")
    else:
        lines.append(f"Changepoint of the best structure (last year before the change): P(1898) = "
                     f"{cp['p_1898']:.3f}; most probable year {cp['mode']} (p = {cp['p_mode']:.3f}); 95% set "
                     f"{cp['set95']} (mass {cp['set95_mass']:.3f}; the probabilities sum to {cp['total']:.3f}).")
    co2_rows = [["ppl `discover` (median of paths; central 95%)", f"{c['rmse']:.3f}", f"{100 * c['coverage']:.1f}%",
                 (f"discover {c['seconds']:.1f} wall ({c['cpu_seconds']:.1f} CPU; search {c['search_seconds']:.1f} "
                 f"after the compiling step); forecast {c['forecast_seconds']:.1f}")]]
    co2_rows += [[f"statsmodels {b['name']}", f"{b['rmse']:.3f}", f"{100 * b['coverage']:.1f}%",
                  f"{b['seconds']:.1f} (fit + forecast)"] for b in base]
    co2_rows.append(["target (issue)", f"< {TARGET_RMSE}", (f"{100 * TARGET_COVERAGE[0]:.0f}-"
                     f"{100 * TARGET_COVERAGE[1]:.0f}%"), f"discover < {TARGET_SECONDS:.0f} on a 2-core CPU"])
    lines += ["", (f"### CO2 (Mauna Loa, monthly; train {c['train_range']}, {c['train']} months; "
                  f"test {c['test_range']}, {c['test']} months)"), "",
              common.markdown_table(["forecaster", "RMSE (ppm)", "95% coverage", "seconds"], co2_rows), "",
              (f"`discover`: budget {c['steps']} steps, {c['paths']} forecast paths; best structure "
              f"`{c['structure']}` (p = {c['probability']:.3f}); names a trend: {'yes' if c['has_trend'] else 'no'}; "
              f"names a 12-month period: {'yes' if c['has_period'] else 'no'}; {c['scored']} structures scored, "
              f"{c['rate']:.2f} structures/s ({c['timed_rate']:.2f} in the timed steps)."),
              f"Posterior (top 5): {posterior_text(c['posterior'])}.", "",
              ("Against the targets: "
              f"RMSE {c['rmse']:.3f} < {TARGET_RMSE}: {verdict(c['rmse'] < TARGET_RMSE)}; "
              f"coverage {100 * c['coverage']:.1f}% in {100 * TARGET_COVERAGE[0]:.0f}-{100 * TARGET_COVERAGE[1]:.0f}%: "
              f"{verdict(TARGET_COVERAGE[0] <= c['coverage'] <= TARGET_COVERAGE[1])}; "
              f"discover {c['seconds']:.1f} s < {TARGET_SECONDS:.0f} s: {verdict(c['seconds'] < TARGET_SECONDS)} "
              f"(on this machine: {results['cores']} cores)."),
              "", (f"### Recovery: simulated series ({r['seeds']} held-out seeds, {RECOVERY_LENGTH} monthly points, "
                   "periods=(12,), budget 6)"), "",
              (f"Seeds {r['rows'][0]['seed']}-{r['rows'][-1]['seed']}; seeds 0-{HELD_OUT_SEED - 1} were the "
               "development set (looked at while changing the search and the scorer)."), "",
              common.markdown_table(["seed", "generating structure", "simulated as", "found", "probability",
                                     "recovered", "generating structure's rank (probability)", "seconds"],
                                    [[row["seed"], f"`{row['truth']}`", row["formula"], f"`{row['found']}`",
                                      f"{row['probability']:.2f}", "yes" if row["recovered"] else "**no**",
                                      (f"{row['truth_rank']} ({row['truth_probability']:.2f})"
                                       if row["truth_rank"] else "not scored"),
                                      f"{row['seconds']:.1f}"] for row in r["rows"]]), "",
              (f"Recovered {r['recovered']} of {r['seeds']} (target: at least 9 of 10): "
               f"{verdict(r['recovered'] >= 0.9 * r['seeds'])}. Recovered means the most probable structure has "
               "the generating components on the same sides of any changepoint, however the tree is written."),
              "", "### Anytime (Nile, same key)", "",
              (f"Best score of the steps with budget {a['short_steps']}: {a['short_score']:.3f} "
              f"({a['short_seconds']:.1f} s, compilation reused); with budget {a['long_steps']}: {a['long_score']:.3f}. "
              f"Longer >= shorter: {'yes' if a['ok'] else '**no**'}. After the refinement: "
              f"{a.get('short_refined', a['short_score']):.3f} (`{a['short_structure']}`) and "
              f"{a.get('long_refined', a['long_score']):.3f} (`{a['long_structure']}`)."),
              f"Nile best-so-far score per step (budget {a['long_steps']}): "
              + ", ".join(f"{v:.2f}" for v in n["history"]) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: budget 2, 200 forecast paths")
    parser.add_argument("--output", type=pathlib.Path, default=None,
                        help=f"where to write the Markdown (default: {PAGE.relative_to(ROOT)} for a full run, "
                             "nothing for --quick)")
    parser.add_argument("--stage-limit", type=float, default=1200.0,
                        help="seconds a stage may run before every thread's traceback is dumped and the run exits")
    parser.add_argument("--note", default="", help="a sentence added to the report (e.g. the machine's load)")
    parser.add_argument("--seeds", type=int, default=10, help="simulated series in the recovery check")
    parser.add_argument("--first-seed", dest="first_seed", type=int, default=HELD_OUT_SEED,
                        help=f"the recovery check's first seed (default {HELD_OUT_SEED}: seeds below it were used "
                             "while developing)")
    parser.add_argument("--figures", type=pathlib.Path, default=None,
                        help="a folder for the CO2 figure (default: docs/figures for a full run)")
    args = parser.parse_args(argv)
    steps, paths = (2, 200) if args.quick else (6, 1000)
    anytime_steps = (1, 2) if args.quick else (2, 6)

    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    begin = time.perf_counter()
    load_start = os.getloadavg()[0]
    machine = cpu_description()
    version = code_version()
    print(f"== {TITLE}\n{machine}\n{version}", flush=True)

    with stage(f"Nile, budget {anytime_steps[1]}", args.stage_limit):
        nile_row, key, volume, years = nile(anytime_steps[1])
    print(f"nile: {nile_row['structure']} (p={nile_row['probability']:.3f}), {nile_row['seconds']:.1f} s, "
          f"changepoint {nile_row['changepoint']}", flush=True)
    with stage(f"Nile, budget {anytime_steps[0]} (anytime check)", args.stage_limit):
        anytime_row = anytime(key, volume, years, nile_row, anytime_steps[0])
    print(f"anytime: budget {anytime_row['short_steps']} best {anytime_row['short_score']:.3f}, budget "
          f"{anytime_row['long_steps']} best {anytime_row['long_score']:.3f}", flush=True)
    figures = args.figures if args.figures is not None else (None if args.quick else ROOT / "docs" / "figures")
    with stage(f"CO2, budget {steps}, {paths} forecast paths", args.stage_limit):
        co2_row, train, test = co2(steps, paths, figures)
    print(f"co2: {co2_row['structure']}, RMSE {co2_row['rmse']:.3f}, coverage {co2_row['coverage']:.3f}, "
          f"{co2_row['seconds']:.1f} s", flush=True)
    with stage(f"recovery, {args.seeds} simulated series", args.stage_limit * 2):
        recovery_row = recovery(range(args.first_seed, args.first_seed + args.seeds), 2 if args.quick else 6)
    print(f"recovery: {recovery_row['recovered']} of {recovery_row['seeds']}", flush=True)
    with stage("CO2 baselines (statsmodels)", args.stage_limit):
        baseline_rows = baselines(train, test)
    for b in baseline_rows:
        print(f"{b['name']}: RMSE {b['rmse']:.3f}, coverage {b['coverage']:.3f}", flush=True)

    results = {"machine": machine, "version": version, "started": started, "total_seconds": time.perf_counter() - begin,
               "load": (load_start, os.getloadavg()[0]),
               "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
               "note": args.note, "nile": nile_row, "anytime": anytime_row, "co2": co2_row,
               "baselines": baseline_rows, "recovery": recovery_row}
    markdown = report(results, args.quick)
    print(markdown, flush=True)
    output = args.output if args.output is not None else (None if args.quick else PAGE)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("# Sequences benchmark\n\nWritten by `python -m benchmarks.sequences` (see its docstring "
                          "for the protocol).\n\n" + markdown)
        print(f"wrote {output}", flush=True)
    return results


if __name__ == "__main__":
    main()
