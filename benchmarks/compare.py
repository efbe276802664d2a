"""Before and after in one run: B1-B4 and the digits on another git revision and on the working tree.

``python -m benchmarks.compare --before REV [--after REV] [--only b1,b2,b3,b4,digits] [--rounds 1] [--quick]``

Checks ``REV`` out into a temporary worktree (and ``--after``, by default the
working tree itself) and runs the selected benchmarks in child processes,
alternately on the two sides (the
machine's drift hits both sides alike), ``rounds`` times each. A child imports
``ppl``, ``stdlib`` and the ``bN`` modules of its own side, so each side is
measured with its own code. The report compares every timed row (median over
rounds) and, for the digits, accuracy and images/s on a fixed split; it goes
to the ``before-after`` section of ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

HERE = pathlib.Path(__file__).resolve()
ROOT = HERE.parents[1]
B_MODULES = ("b1", "b2", "b3", "b4")


def child(only: list[str], quick: bool) -> list[dict]:
    """This side's rows (run with the side's tree first on ``sys.path``)."""
    import importlib

    import numpy as np

    # an editable install of ppl maps 'ppl.*' to its own tree: let this side's tree (first on sys.path) win
    sys.meta_path[:] = [finder for finder in sys.meta_path
                        if "editable" not in str(getattr(finder, "__module__", type(finder).__module__)).lower()]
    import ppl  # noqa: F401  (this side's)

    assert pathlib.Path(ppl.__file__).resolve().is_relative_to(pathlib.Path.cwd().resolve()), ppl.__file__
    from benchmarks import common
    from benchmarks.__main__ import discover

    rows = []
    options = common.Options(quick=quick, progress=False)
    modules = discover()
    for name in [n for n in only if n in B_MODULES]:
        for row in importlib.import_module(modules[name]).run(options):
            if name == "b4":
                rows += [dict(benchmark="b4", system="ppl", what="score_structures (IS), per structure",
                              seconds=1 / row["batch_rate"]),
                         dict(benchmark="b4", system="ppl", what="search (IS), per structure",
                              seconds=1 / row["search_rate"])]
                rows += [dict(benchmark="b4", system="ppl", what=key, seconds=row[key])
                         for key in row if key.startswith("laplace_seconds")]
            elif "seconds" in row:
                rows.append({k: v for k, v in row.items() if not isinstance(v, (list, np.ndarray))})
    if "digits" in only:
        rows += _digits(quick)
    return rows


def _digits(quick: bool) -> list[dict]:
    """k = 10 models fitted on a fixed split of load_digits, then 256 held-out images classified."""
    import jax
    import numpy as np

    from stdlib import digits

    images, labels = digits.load_sklearn()
    order = np.random.default_rng(0).permutation(len(images))
    test, pool = order[:256], order[800:]
    shots = 2 if quick else 10
    train = np.concatenate([pool[labels[pool] == c][:shots] for c in range(10)])
    start = time.perf_counter()
    models = digits.fit(jax.random.key(0), images[train], labels[train])
    fit_seconds = time.perf_counter() - start
    count = 64 if quick else 256
    batch = images[test[:count]]
    digits.classify(jax.random.key(1), models, batch).probabilities.block_until_ready()  # compiles
    start = time.perf_counter()
    result = digits.classify(jax.random.key(2), models, batch)
    result.probabilities.block_until_ready()
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(np.asarray(result.best) == labels[test[:count]]))
    zero_shot = digits.classify(jax.random.key(3), digits.prototypes(size=(8, 8)), batch)
    zero_accuracy = float(np.mean(np.asarray(zero_shot.best) == labels[test[:count]]))
    return [dict(benchmark="digits", system="ppl", what=f"classify {count} images, k={shots}", seconds=seconds,
                 accuracy=accuracy, images_per_second=count / seconds),
            dict(benchmark="digits", system="ppl", what=f"fit k={shots}", seconds=fit_seconds),
            dict(benchmark="digits", system="ppl", what="zero-shot accuracy", seconds=0.0, accuracy=zero_accuracy)]


def _row_key(row: dict) -> tuple:
    skip = {"seconds", "log_evidence", "log_joint", "accuracy", "images_per_second", "error"}
    return tuple((k, v) for k, v in sorted(row.items()) if k not in skip and not isinstance(v, float))


def measure(before: str, after: str | None, only: list[str], rounds: int, quick: bool) -> dict:
    results: dict[str, dict[tuple, list[dict]]] = {"before": defaultdict(list), "after": defaultdict(list)}
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"before": pathlib.Path(scratch) / "before", "after": ROOT}
        revisions = {"before": before, "after": after or "working tree"}
        if after is not None:
            trees["after"] = pathlib.Path(scratch) / "after"
        for side in ("before", "after"):
            if trees[side] != ROOT:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(trees[side]),
                                revisions[side]], check=True, capture_output=True)
        try:
            for round_index in range(rounds):
                for side, tree in trees.items():
                    print(f"round {round_index + 1}/{rounds}: {side} ({revisions[side]})", flush=True)
                    environ = dict(os.environ, PYTHONPATH=str(tree), PPL_PROGRESS="0")
                    command = [sys.executable, str(HERE), "--child", "--only", ",".join(only)] + (
                        ["--quick"] if quick else [])
                    done = subprocess.run(command, cwd=tree, env=environ, capture_output=True, text=True)
                    if done.returncode != 0:
                        raise SystemExit(f"the {side} child failed ({done.returncode}):\n{done.stderr[-4000:]}")
                    for row in json.loads(done.stdout.strip().splitlines()[-1]):
                        results[side][_row_key(row)].append(row)
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                                   capture_output=True)
    return results


def report(results: dict, before: str, after: str | None, rounds: int) -> str:
    from benchmarks import common

    def median(rows, field):
        values = [row[field] for row in rows if field in row]
        return common.median(values) if values else None

    lines = [f"Before: `{before}`; after: `{after or 'the working tree'}`. {common.machine_description()}; "
             f"{rounds} round(s) per side, "
             "alternating; medians over rounds. Ratio < 1: the change made it faster.\n"]
    table = []
    for key, after_rows in results["after"].items():
        before_rows = results["before"].get(key)
        described = ", ".join(f"{k}={v}" for k, v in key if k != "benchmark")
        b, a = (median(before_rows, "seconds") if before_rows else None), median(after_rows, "seconds")
        cells = [dict(key)["benchmark"], described, "-" if b is None else f"{b * 1e3:.3f}", f"{a * 1e3:.3f}",
                 "-" if not b else f"{a / b:.2f}"]
        extra = []
        for field in ("accuracy", "images_per_second"):
            fa = median(after_rows, field)
            fb = median(before_rows, field) if before_rows else None
            if fa is not None:
                extra.append(f"{field.replace('_', ' ')} {'-' if fb is None else f'{fb:.3f}'} -> {fa:.3f}")
        table.append(cells + ["; ".join(extra)])
    lines.append(common.markdown_table(["benchmark", "row", "ms before", "ms after", "after / before", "other"], table))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("--before", default="HEAD")
    parser.add_argument("--after", default=None, help="a revision (default: the working tree)")
    parser.add_argument("--only", default="b1,b2,b3,b4,digits")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(ROOT / "docs" / "performance.md"))
    args = parser.parse_args(argv)
    only = [name for name in args.only.split(",") if name]
    if args.child:
        print(json.dumps(child(only, args.quick), default=float))
        return 0
    sys.path.insert(0, str(ROOT))
    text = report(measure(args.before, args.after, only, args.rounds, args.quick), args.before, args.after,
                  args.rounds)
    print(text)
    from benchmarks import common

    common.write_section("before-after", text, pathlib.Path(args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
