"""``digits_demo()``: recognise scikit-learn's handwritten digits from 5 examples per class (for ``ppl demo``)."""

from __future__ import annotations

import time

import jax
import numpy as np

from stdlib.digits.inference import classify, fit
from stdlib.digits.model import load_sklearn

__all__ = ["digits_demo"]


def digits_demo(seed: int = 0, shots: int = 5, test_images: int = 200) -> dict[str, float]:
    """Fit the stroke models on ``shots`` examples per class of ``load_digits``, classify held-out images, print accuracy.

    The split is fixed by ``seed``; the training examples come from the images
    not in the test set. Needs scikit-learn (``pip install 'ppl[examples]'``).
    About a minute on a 2-core CPU (most of it compilation).
    """
    start = time.perf_counter()
    images, labels = load_sklearn()
    order = np.random.default_rng(seed).permutation(len(images))
    test, pool = order[:test_images], order[800:]
    rng = np.random.default_rng(seed + 1)
    train = np.concatenate([rng.choice(pool[labels[pool] == c], shots, replace=False) for c in range(10)])
    print("ppl demo: handwritten digit recognition by analysis by synthesis (scikit-learn load_digits, 8x8)")
    print(f"  each class 0-9 is a generative model of pen strokes; fitting them to {shots} examples per class ...")
    models = fit(jax.random.key(seed), images[train], labels[train])
    fitted = time.perf_counter()
    print(f"  ... done in {fitted - start:.1f} s. Classifying {len(test)} held-out images (each explained by all ten models) ...")
    result = classify(jax.random.key(seed + 1), models, images[test])
    predicted = np.asarray(result.best)
    seconds = time.perf_counter() - fitted
    accuracy = float(np.mean(predicted == labels[test]))
    print(f"  accuracy {100 * accuracy:.1f}% on {len(test)} images ({seconds:.1f} s incl. compilation, "
          f"{len(test) / seconds:.1f} images/s on {jax.default_backend()})")
    confident = np.asarray(result.probabilities).max(axis=1)
    print(f"  mean probability of the chosen class {confident.mean():.3f}; "
          f"{int(np.sum(predicted != labels[test]))} errors")
    return {"accuracy": accuracy, "seconds": time.perf_counter() - start, "images": float(len(test))}
