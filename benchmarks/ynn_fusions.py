"""The speed cost of ppl's XLA flag (``ppl.xla_flags``: XLA's YNN fusions off on the CPU).

``python -m benchmarks.ynn_fusions [--quick] [--rounds 2]`` runs B1-B4 and the
digits' images/s in child processes, alternately with YNN fusions on (jaxlib's
default, ``PPL_XLA_FLAGS=off``) and off (ppl's default), ``rounds`` times
each, and reports every timed row side by side. The flag is read once per
process, so each setting needs its own process. Results go to the
``ynn-fusions`` section of ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict

from benchmarks import common

SETTINGS = {"YNN fusions on (jaxlib default)": "off", "YNN fusions off (ppl's default)": ""}
BENCHMARKS = ("b1", "b2", "b3", "b4")


def child(quick: bool) -> list[dict]:
    """Every timed row of B1-B4 (ppl's systems only) and the digits' images/s, in this process."""
    import importlib

    import jax
    import numpy as np

    import ppl  # noqa: F401  (sets or leaves XLA_FLAGS)
    from benchmarks.__main__ import discover

    rows = []
    options = common.Options(quick=quick, progress=False)
    modules = discover()
    for name in BENCHMARKS:
        for row in importlib.import_module(modules[name]).run(options):
            if name == "b4":  # structures per second -> seconds per structure
                rows += [dict(benchmark="b4", system="ppl", what="score_structures, per structure",
                              seconds=1 / row["batch_rate"]),
                         dict(benchmark="b4", system="ppl", what="search, per structure", seconds=1 / row["search_rate"])]
            elif "seconds" in row and str(row.get("system", "")).startswith("ppl"):
                rows.append(row)
    from stdlib import digits

    images, _ = digits.load_sklearn()
    models = digits.prototypes(size=(8, 8))
    count = 64 if quick else 256
    batch = np.asarray(images[:count])
    digits.classify(jax.random.key(0), models, batch).probabilities.block_until_ready()  # compiles
    start = time.perf_counter()
    digits.classify(jax.random.key(1), models, batch).probabilities.block_until_ready()
    rows.append(dict(benchmark="digits", system="ppl", images=count, seconds=time.perf_counter() - start))
    return rows


def _key(row: dict) -> tuple:
    return tuple((k, v) for k, v in sorted(row.items()) if k not in ("seconds", "log_evidence", "log_joint", "accuracy")
                 and not isinstance(v, float))


def measure(quick: bool, rounds: int) -> dict[str, dict[tuple, list[float]]]:
    timings: dict[str, dict[tuple, list[float]]] = {setting: defaultdict(list) for setting in SETTINGS}
    for round_index in range(rounds):
        for setting, opt_out in SETTINGS.items():
            environ = dict(os.environ, PPL_XLA_FLAGS=opt_out, PPL_PROGRESS="0")
            environ["XLA_FLAGS"] = " ".join(t for t in environ.get("XLA_FLAGS", "").split()
                                            if not t.startswith("--xla_cpu_experimental_ynn_fusion_type"))
            command = [sys.executable, "-m", "benchmarks.ynn_fusions", "--child"] + (["--quick"] if quick else [])
            print(f"round {round_index + 1}/{rounds}: {setting} ...", flush=True)
            done = subprocess.run(command, env=environ, capture_output=True, text=True, cwd=common.ROOT)
            if done.returncode != 0:
                raise SystemExit(f"the child process failed ({done.returncode}):\n{done.stderr[-3000:]}")
            for row in json.loads(done.stdout.strip().splitlines()[-1]):
                timings[setting][_key(row)].append(row["seconds"])
    return timings


def report(timings, rounds: int) -> str:
    on, off = SETTINGS
    lines = [f"Measured on {common.machine_description()}, {rounds} round(s) per setting, alternating; "
             "each entry is the median over rounds of a row's median time. Ratio > 1: slower with the fusions off.\n"]
    table = []
    ratios = []
    for key in timings[on]:
        if key not in timings[off]:
            continue
        described = ", ".join(f"{k}={v}" for k, v in key if k not in ("benchmark",))
        seconds_on, seconds_off = common.median(timings[on][key]), common.median(timings[off][key])
        ratios.append(seconds_off / seconds_on)
        table.append([dict(key)["benchmark"], described, f"{seconds_on * 1e3:.3f}", f"{seconds_off * 1e3:.3f}",
                      f"{seconds_off / seconds_on:.2f}"])
    lines.append(common.markdown_table(["benchmark", "row", f"ms, {on}", f"ms, {off}", "off / on"], table))
    if ratios:
        import statistics

        lines.append(f"\nGeometric mean of off / on over {len(ratios)} rows: "
                     f"{statistics.geometric_mean(ratios):.3f} (min {min(ratios):.2f}, max {max(ratios):.2f}).")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ynn_fusions", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(common.PERFORMANCE_PAGE))
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.quick)))
        return 0
    text = report(measure(args.quick, args.rounds), args.rounds)
    print(text)
    common.write_section("ynn-fusions", text, __import__("pathlib").Path(args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
