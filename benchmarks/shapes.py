"""Inverse graphics: how well and how fast ``stdlib.shapes.parse`` explains images of shapes.

Run::

    python -m benchmarks.shapes                 # the issue's protocol; writes docs/shapes_benchmark.md
    python -m benchmarks.shapes --quick         # smoke run (8 + 4 + 4 validation scenes); writes nothing
    python -m benchmarks.shapes --validation    # the development split (key 1000), never the report's

The scenes, all 64x64, 1-4 shapes, a random depth order:

- **Generated** (the issue's protocol): ``make_dataset(jax.random.key(SEED), 200, size=(64, 64),
  max_shapes=4, noise=0.1)``, held-out ``SEED = 2026`` (the development split is ``key(1000)``,
  looked at while changing ``parse``; the report never uses it).
- **Other software**: ``draw_with_pillow(SEED, 50, noise=0.03)`` and ``draw_with_matplotlib(SEED + 1, 50,
  noise=0.03)``: anti-aliased drawings on a plain background of a random colour, mild noise.

Each scene is parsed with ``parse(jax.random.key(i), image, max_shapes=4)`` (the default budget). Scored:

- **count accuracy**: the number of shapes found equals the truth;
- **kind accuracy on matched shapes**: found and true shapes matched one to one by centre distance
  (``scipy.optimize.linear_sum_assignment``; a pair further apart than 8 px is not a match), the fraction of
  matched pairs of the same kind;
- **centre error**: the mean distance between matched centres, in pixels;
- **reconstruction IoU**: the intersection over union of the pixels the true shapes cover and the pixels the
  found ones cover (coverage > 0.5, rendered at 64x64), per scene, averaged;
- **speed**: scenes per second over the whole set (the first scene's compilation included, and without it).

**Anytime.** The first ``--anytime`` generated scenes are also parsed at budgets 1, 6, 11, 21 and the default:
for each scene the best evidence must never fall as the budget grows; the count accuracy at each budget is
plotted (``docs/figures/shapes_budget.png``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import time

import jax
import numpy as np

from benchmarks import common
from stdlib import shapes

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "shapes_benchmark.md"
SEED = 2026  # held out: the report's scenes
VALIDATION_SEED = 1000  # the development split
SIZE = (64, 64)
MAX_SHAPES = 4
MATCH_DISTANCE = 8.0  # pixels
BUDGETS = (1, 6, 11, 21, None)
TARGETS = {"count": 0.97, "kind": 0.95, "centre": 1.5, "iou": 0.9, "other": 0.90, "rate": 1.0}


def machine() -> str:
    return f"{common.cpu_model()}, {common.available_cores()} cores; JAX {jax.__version__} on {jax.default_backend()}"


def commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "ppl", "stdlib/shapes"], cwd=ROOT,
                           capture_output=True, text=True, check=False).stdout.strip()
    return result.stdout.strip() + (" with uncommitted edits" if dirty else "")


def coverage_mask(scene_shapes, size) -> np.ndarray:
    """``(H, W)`` the pixels any of the shapes covers (coverage above one half)."""
    if not scene_shapes:
        return np.zeros(size, bool)
    _, alphas = shapes.render_shapes(scene_shapes, np.zeros(3), size)
    return alphas.max(axis=0) > 0.5


def score_scene(truth: list, found: list, size) -> dict:
    """The matches between true and found shapes and the scene's scores (see the module docstring)."""
    from scipy.optimize import linear_sum_assignment

    scale = np.array([size[1], size[0]], float)
    pairs = []
    if truth and found:
        distance = np.array([[np.linalg.norm((t.centre - f.centre) * scale) for f in found] for t in truth])
        rows, cols = linear_sum_assignment(distance)
        pairs = [(r, c, distance[r, c]) for r, c in zip(rows, cols, strict=True) if distance[r, c] <= MATCH_DISTANCE]
    true_mask, found_mask = coverage_mask(truth, size), coverage_mask(found, size)
    union = np.logical_or(true_mask, found_mask).sum()
    return {
        "count_ok": len(truth) == len(found),
        "kinds_ok": sorted(s.kind for s in truth) == sorted(s.kind for s in found),
        "matched": len(pairs),
        "kind_matches": sum(truth[r].kind == found[c].kind for r, c, _ in pairs),
        "centre_errors": [d for _, _, d in pairs],
        "iou": float(np.logical_and(true_mask, found_mask).sum() / union) if union else 1.0,
    }


def parse_set(name: str, data, budget=None, log=True) -> dict:
    """Parse every scene of ``data``; the set's scores, speed and per-scene evidences."""
    rows, seconds, evidences = [], [], []
    for index, image in enumerate(data.images):
        start = time.perf_counter()
        scene = shapes.parse(jax.random.key(index), image, max_shapes=MAX_SHAPES, budget=budget)
        seconds.append(time.perf_counter() - start)
        evidences.append(scene.log_evidence)
        row = score_scene(data.shapes[index], scene.shapes, SIZE)
        rows.append(row)
        if log:
            truth = [s.kind for s in data.shapes[index]]
            found = [s.kind for s in scene.shapes]
            mark = "ok" if row["kinds_ok"] else ("count ok" if row["count_ok"] else "MISS")
            print(f"  {name} {index:3d}: {truth} -> {found} {mark}, IoU {row['iou']:.2f}, {seconds[-1]:.1f} s",
                  flush=True)
    matched = sum(r["matched"] for r in rows)
    errors = [e for r in rows for e in r["centre_errors"]]
    return {
        "name": name,
        "scenes": len(rows),
        "count": float(np.mean([r["count_ok"] for r in rows])),
        "count_and_kinds": float(np.mean([r["kinds_ok"] for r in rows])),
        "kind": sum(r["kind_matches"] for r in rows) / max(matched, 1),
        "matched": matched,
        "shapes": int(sum(len(s) for s in data.shapes)),
        "centre": float(np.mean(errors)) if errors else float("nan"),
        "iou": float(np.mean([r["iou"] for r in rows])),
        "seconds": float(np.sum(seconds)),
        "first_seconds": float(seconds[0]) if seconds else 0.0,
        "rate": len(rows) / float(np.sum(seconds)),
        "rate_after_first": (len(rows) - 1) / float(np.sum(seconds[1:])) if len(rows) > 1 else float("nan"),
        "evidences": evidences,
    }


def anytime(data, figures: pathlib.Path | None) -> dict:
    """Each scene at growing budgets: the best evidence never falls; count accuracy per budget."""
    evidences, accuracy = [], []
    for budget in BUDGETS:
        result = parse_set(f"budget {budget or 'default'}", data, budget=budget, log=False)
        evidences.append(result["evidences"])
        accuracy.append(result["count"])
        print(f"  budget {budget or 'default'}: count accuracy {result['count']:.2f}", flush=True)
    evidences = np.asarray(evidences)
    monotone = bool(np.all(np.diff(evidences, axis=0) >= -1e-3 * np.abs(evidences[:-1])))
    if figures is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        labels = [str(b) if b else "default" for b in BUDGETS]
        figure, axis = plt.subplots(figsize=(4.5, 3))
        axis.plot(range(len(BUDGETS)), accuracy, "o-")
        axis.set_xticks(range(len(BUDGETS)), labels)
        axis.set_xlabel("budget (candidate structures evaluated)")
        axis.set_ylabel("count accuracy")
        axis.set_ylim(0, 1.02)
        axis.set_title(f"{len(data.images)} generated scenes")
        figure.tight_layout()
        figures.mkdir(parents=True, exist_ok=True)
        figure.savefig(figures / "shapes_budget.png", dpi=100)
        plt.close(figure)
    return {"budgets": BUDGETS, "accuracy": accuracy, "monotone": monotone, "scenes": len(data.images)}


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def report(results: dict) -> str:
    lines = [f"Run {results['started']} on {results['machine']}; code {results['commit']}; "
             f"{results['total']:.0f} s in all; load average {results['load'][0]:.1f} at the start, "
             f"{results['load'][1]:.1f} at the end.", ""]
    lines += ["| set | scenes | count | count and kinds | kind (matched) | centre error (px) | IoU | scenes/s "
              "(after the first) |", "|---|---|---|---|---|---|---|---|"]
    for row in results["sets"]:
        lines.append(f"| {row['name']} | {row['scenes']} | {row['count']:.1%} | {row['count_and_kinds']:.1%} | "
                     f"{row['kind']:.1%} ({row['matched']} of {row['shapes']}) | {row['centre']:.2f} | "
                     f"{row['iou']:.3f} | {row['rate']:.3f} ({row['rate_after_first']:.3f}) |")
    generated = results["sets"][0]
    others = results["sets"][1:]
    lines += ["", "Targets (issue 14), on the generated set:",
              f"- count accuracy >= 97%: {generated['count']:.1%}, {verdict(generated['count'] >= TARGETS['count'])}",
              f"- kind accuracy >= 95% on matched shapes: {generated['kind']:.1%}, "
              f"{verdict(generated['kind'] >= TARGETS['kind'])}",
              f"- mean centre error <= 1.5 px: {generated['centre']:.2f}, "
              f"{verdict(generated['centre'] <= TARGETS['centre'])}",
              f"- reconstruction IoU >= 0.9: {generated['iou']:.3f}, {verdict(generated['iou'] >= TARGETS['iou'])}",
              f"- >= 1 scene/s: {generated['rate']:.3f}, {verdict(generated['rate'] >= TARGETS['rate'])}"]
    for row in others:
        ok = min(row["count"], row["count_and_kinds"]) >= TARGETS["other"]
        lines.append(f"- {row['name']}: count and kind accuracy >= 90%: count {row['count']:.1%}, count and kinds "
                     f"{row['count_and_kinds']:.1%}, {verdict(ok)}")
    if results.get("anytime"):
        anytime_row = results["anytime"]
        pairs = ", ".join(f"{b or 'default'}: {a:.2f}" for b, a in zip(anytime_row["budgets"], anytime_row["accuracy"],
                                                                        strict=True))
        lines += ["", f"Anytime ({anytime_row['scenes']} generated scenes): count accuracy by budget {pairs}; the "
                  f"best evidence never fell as the budget grew: {verdict(anytime_row['monotone'])}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 generated, 4 + 4 drawn scenes")
    parser.add_argument("--validation", action="store_true",
                        help=f"the development split (key {VALIDATION_SEED}) instead of the held-out one")
    parser.add_argument("--scenes", type=int, default=200, help="generated scenes (default 200)")
    parser.add_argument("--drawn", type=int, default=50, help="scenes per other-software set (default 50)")
    parser.add_argument("--anytime", type=int, default=20, help="generated scenes in the budget sweep (0: none)")
    parser.add_argument("--output", type=pathlib.Path, default=None,
                        help=f"where to write the Markdown (default {PAGE.relative_to(ROOT)} for a full held-out run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.scenes, args.drawn, args.anytime = 8, 4, 0
    seed = VALIDATION_SEED if args.validation or args.quick else SEED
    started, begin, load = time.strftime("%Y-%m-%d %H:%M %Z"), time.perf_counter(), os.getloadavg()[0]
    print(f"== shapes benchmark, seed {seed}; {machine()}; commit {commit()}", flush=True)
    generated = shapes.make_dataset(jax.random.key(seed), args.scenes, size=SIZE, max_shapes=MAX_SHAPES, noise=0.1)
    sets = [parse_set(f"generated (key {seed})", generated)]
    if args.drawn:
        sets.append(parse_set(f"Pillow (seed {seed})", shapes.draw_with_pillow(seed, args.drawn, size=SIZE,
                                                                               max_shapes=MAX_SHAPES)))
        sets.append(parse_set(f"matplotlib (seed {seed + 1})", shapes.draw_with_matplotlib(
            seed + 1, args.drawn, size=SIZE, max_shapes=MAX_SHAPES)))
    figures = None if args.quick or args.validation else ROOT / "docs" / "figures"
    anytime_row = None
    if args.anytime:
        subset = shapes.make_dataset(jax.random.key(seed), args.anytime, size=SIZE, max_shapes=MAX_SHAPES, noise=0.1)
        anytime_row = anytime(subset, figures)
    results = {"started": started, "machine": machine(), "commit": commit(), "sets": sets, "anytime": anytime_row,
               "total": time.perf_counter() - begin, "load": (load, os.getloadavg()[0])}
    markdown = report(results)
    print(markdown, flush=True)
    output = args.output if args.output is not None else (None if args.quick or args.validation else PAGE)
    if output is not None:
        output.write_text("# Shapes benchmark\n\nWritten by `python -m benchmarks.shapes` (see its docstring for the "
                          "protocol).\n\n" + markdown)
        print(f"wrote {output}", flush=True)
    return results


if __name__ == "__main__":
    main()
