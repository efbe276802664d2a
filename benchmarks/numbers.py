"""Reading whole numbers (``digits.read_number``) on generated images of 1-4 real handwritten digits.

Run (needs the ``examples`` extra: scikit-learn)::

    python -m benchmarks.numbers                     # 200 held-out numbers, plus the 60-number validation split
    python -m benchmarks.numbers --quick             # 30 held-out numbers

Protocol (fixed seeds):

- **Models.** scikit-learn's ``load_digits`` split as in ``benchmarks/digits.py`` (a fixed permutation, seed
  0: the first 800 images are the test set, the other 997 the pool); ``digits.fit`` on k = 10 examples per
  class drawn from the pool (draw 0 of ``benchmarks/digits.py``), default budget.
- **Validation** (the split anything was tried on): 60 numbers (key 100) made from the pool's images that are
  not training examples.
- **Held out**: 200 numbers (key 0) made from the test images, read once after the validation runs.
- **Numbers.** ``digits.make_numbers``: 1-4 digits (uniform), each a random image of the split, gaps of 0-3
  blank columns between neighbours (0: touching), margins of 0-3 columns left and right, canvas 8 pixels
  high. ``read_numbers`` with the default budget and ``max_digits=4``.
- **Scores.** Whole-number accuracy (the string exactly right), count accuracy (its length right), digit
  accuracy on the numbers whose count is right, the mean probability of the reading given, and the accuracy
  of the readings given with probability >= 0.9; speed in numbers and windows per second with the
  compilation (one block program) and after it.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from benchmarks.common import save_and_report
from benchmarks.digits import draw, split
from stdlib import digits

TARGETS = {"whole": 0.90, "count": 0.98}


def score(readings, data) -> dict:
    texts = [r.text for r in readings]
    truth = data.texts
    same_count = [len(a) == len(b) for a, b in zip(texts, truth)]
    digit_hits = [sum(x == y for x, y in zip(a, b)) for a, b, ok in zip(texts, truth, same_count) if ok]
    digit_total = [len(b) for b, ok in zip(truth, same_count) if ok]
    probability = np.array([r.probability for r in readings])
    right = np.array([a == b for a, b in zip(texts, truth)])
    confident = probability >= 0.9
    return {
        "numbers": len(truth),
        "whole": float(right.mean()),
        "count": float(np.mean(same_count)),
        "digit": float(np.sum(digit_hits) / max(1, np.sum(digit_total))),
        "mean_probability": float(probability.mean()),
        "confident_share": float(confident.mean()),
        "confident_accuracy": float(right[confident].mean()) if confident.any() else float("nan"),
        "errors": [(b, a, round(float(p), 3)) for a, b, p, ok in zip(texts, truth, probability, right) if not ok],
    }


def read(key, models, data) -> tuple[dict, float, int]:
    windows = sum((image.shape[0] - 7) * (image.shape[1] - 7) for image in data.images)
    start = time.perf_counter()
    readings = digits.read_numbers(key, models, data.images)
    return score(readings, data), time.perf_counter() - start, windows


def run(args) -> dict:
    images, labels = digits.load_sklearn()
    test, pool = split(labels, 800)
    train = draw(pool, labels, 10, 0)
    rest = np.setdiff1d(pool, train)
    start = time.perf_counter()
    models = digits.fit(jax.random.key(10), images[train], labels[train])
    results = {"fit_seconds": time.perf_counter() - start, "backend": jax.default_backend()}
    print(f"fitted k=10 models in {results['fit_seconds']:.0f} s", flush=True)
    sets = {}
    if args.validation > 0:
        sets["validation"] = digits.make_numbers(jax.random.key(100), args.validation, images[rest], labels[rest])
    if args.numbers > 0:
        sets["held_out"] = digits.make_numbers(jax.random.key(0), args.numbers, images[test], labels[test])
    for name, data in sets.items():
        scores, seconds, windows = read(jax.random.key(1), models, data)
        scores.update(seconds=seconds, windows=windows, numbers_per_second=len(data.texts) / seconds)
        results[name] = scores
        print(f"{name}: {len(data.texts)} numbers, whole {100 * scores['whole']:.1f}%, count "
              f"{100 * scores['count']:.1f}%, digit {100 * scores['digit']:.1f}%, mean probability "
              f"{scores['mean_probability']:.3f}; {seconds:.1f} s ({windows} windows)", flush=True)
    # speed after compilation: the held-out set's first 50 numbers again (one compiled block program)
    data = sets.get("held_out", sets.get("validation"))
    subset = type(data)(*(field[:50] for field in data))
    _, seconds, windows = read(jax.random.key(2), models, subset)
    results["speed"] = {"numbers_per_second": len(subset.texts) / seconds, "windows_per_second": windows / seconds}
    print(f"after compilation: {results['speed']['numbers_per_second']:.2f} numbers/s, "
          f"{results['speed']['windows_per_second']:.1f} windows/s", flush=True)
    return results


def report(results) -> str:
    lines = ["| split | numbers | whole number | count | digit (count right) | mean probability given | "
             "accuracy when probability >= 0.9 (share) | seconds |", "|---|---|---|---|---|---|---|---|"]
    for name in ("validation", "held_out"):
        if name in results:
            r = results[name]
            lines.append(f"| {name.replace('_', ' ')} | {r['numbers']} | **{100 * r['whole']:.1f}%** | "
                         f"**{100 * r['count']:.1f}%** | {100 * r['digit']:.1f}% | {r['mean_probability']:.3f} | "
                         f"{100 * r['confident_accuracy']:.1f}% ({100 * r['confident_share']:.0f}%) | "
                         f"{r['seconds']:.0f} |")
    speed = results["speed"]
    lines += ["", f"Targets: whole number >= {100 * TARGETS['whole']:.0f}%, count >= {100 * TARGETS['count']:.0f}%. "
                  f"Speed after compilation ({results['backend']}): {speed['numbers_per_second']:.2f} numbers/s "
                  f"({speed['windows_per_second']:.1f} windows of 8x8 scored by all ten models per second)."]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=200)
    parser.add_argument("--validation", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="30 held-out numbers, no validation split")
    parser.add_argument("--out", type=str, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.numbers, args.validation = 30, 0
    return save_and_report(run(args), args.out, report)


if __name__ == "__main__":
    main()
