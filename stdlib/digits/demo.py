"""``digits_demo()``: the digit part of ``ppl demo``.

Recognise scikit-learn's handwritten digits from a few examples per class, then read whole numbers (digits
side by side) with the same models. The test images are classified in blocks of
:data:`~stdlib.digits.numbers.BLOCK` images, the size of the blocks of windows
:func:`~stdlib.digits.read_numbers` scores, so the two share one compiled program.
"""

from __future__ import annotations

import pathlib
import time

import jax
import numpy as np

from ppl.infer.progress import progress_bar
from stdlib.digits.inference import classify, fit
from stdlib.digits.model import load_sklearn, prototypes
from stdlib.digits.numbers import BLOCK, make_numbers, read_numbers

__all__ = ["digits_demo"]

POOL_START = 800  # images [0, 800) of the shuffled set hold the test images and the numbers' digits


def digits_demo(seed: int = 0, shots: int = 5, test_images: int = 128, numbers: int = 4,
                figures: str | pathlib.Path | None = None, progress: bool | None = None) -> dict:
    """Fit the stroke models on ``shots`` examples per class, classify held-out images, read numbers; print it all.

    The split is fixed by ``seed``: the test images and the digits of the ``numbers`` generated number images
    (1-4 digits side by side, :func:`~stdlib.digits.make_numbers`) come from the first 800 images of a shuffle,
    the training examples from the rest. ``shots=0`` uses the hand-written prototypes (zero-shot, no fitting).
    With ``figures`` (a folder) it writes ``digits.png`` (test images and the class each was read as) and
    ``numbers.png`` (the number images with their readings); needs matplotlib. Needs scikit-learn.

    Returns:
      ``{"accuracy", "images", "numbers_read", "numbers", "seconds", "figures": [paths]}``.
    """
    start = time.perf_counter()
    images, labels = load_sklearn()
    order = np.random.default_rng(seed).permutation(len(images))
    test, pool = order[:test_images], order[POOL_START:]
    print("ppl demo: handwritten digit recognition by analysis by synthesis (scikit-learn load_digits, 8x8)")
    if shots > 0:
        rng = np.random.default_rng(seed + 1)
        train = np.concatenate([rng.choice(pool[labels[pool] == c], shots, replace=False) for c in range(10)])
        print(f"  each class 0-9 is a generative model of pen strokes; fitting them to {shots} examples per class ...")
        models = fit(jax.random.key(seed), images[train], labels[train])
        print(f"  ... done in {time.perf_counter() - start:.1f} s.", end=" ")
    else:
        models = prototypes(size=tuple(int(side) for side in images.shape[1:]))
        print("  each class 0-9 is a generative model of pen strokes (the prototypes: zero-shot, nothing fitted).",
              end=" ")
    fitted = time.perf_counter()
    print(f"Classifying {len(test)} held-out images (each explained by all ten models) ...")
    probabilities = _classify_in_blocks(jax.random.key(seed + 1), models, images[test], progress)
    predicted = probabilities.argmax(axis=1)
    seconds = time.perf_counter() - fitted
    accuracy = float(np.mean(predicted == labels[test]))
    print(f"  accuracy {100 * accuracy:.1f}% on {len(test)} images ({seconds:.1f} s incl. compilation, "
          f"{len(test) / seconds:.1f} images/s on {jax.default_backend()})")
    print(f"  mean probability of the chosen class {probabilities.max(axis=1).mean():.3f}; "
          f"{int(np.sum(predicted != labels[test]))} errors")
    summary = {"accuracy": accuracy, "images": float(len(test)), "numbers_read": 0, "numbers": 0, "figures": []}
    if numbers > 0:
        reading_start = time.perf_counter()
        inside = order[:POOL_START]
        data = make_numbers(jax.random.key(seed + 2), numbers, images[inside], labels[inside])
        readings = read_numbers(jax.random.key(seed + 3), models, data.images, progress=progress)
        right = sum(reading.text == text for reading, text in zip(readings, data.texts))
        print(f"  reading whole numbers: the ten models glued side by side, count and positions summed out "
              f"({time.perf_counter() - reading_start:.1f} s)")
        for reading, text, image in zip(readings, data.texts, data.images):
            count = int(np.argmax(reading.count_posterior))
            print(f"    {image.shape[1]:2d} px wide: read {reading.text!r:7} (probability {reading.probability:.2f}, "
                  f"{count} digit{'s' if count != 1 else ''}); written {text!r}")
        summary |= {"numbers_read": right, "numbers": numbers}
    if figures is not None:
        folder = pathlib.Path(figures)
        summary["figures"].append(_plot_digits(folder / "digits.png", images[test], labels[test], predicted))
        if numbers > 0:
            summary["figures"].append(_plot_numbers(folder / "numbers.png", data, readings, models.size))
    summary["seconds"] = time.perf_counter() - start
    return summary


def _classify_in_blocks(key, models, images, progress) -> np.ndarray:
    """``(N, 10)`` class probabilities, ``BLOCK`` images per call (the last block padded): read_numbers' program."""
    total = images.shape[0]
    padded = np.concatenate([images, np.broadcast_to(images[:1], (-total % BLOCK, *images.shape[1:]))])
    out = []
    with progress_bar(padded.shape[0] // BLOCK, "classify digits", enabled=progress, unit="block") as bar:
        for index, first in enumerate(range(0, padded.shape[0], BLOCK)):
            result = classify(jax.random.fold_in(key, index), models, padded[first:first + BLOCK],
                              chunk_size=min(32, BLOCK))
            out.append(np.asarray(result.probabilities))
            bar.update()
    return np.concatenate(out)[:total]


def _plot_digits(path: pathlib.Path, images, labels, predicted, count: int = 40) -> pathlib.Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = min(count, len(images))
    columns = 10
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 1.05))
    for index, axis in enumerate(np.atleast_1d(axes).ravel()):
        axis.axis("off")
        if index < count:
            axis.imshow(images[index], cmap="gray_r", vmin=0, vmax=1)
            wrong = predicted[index] != labels[index]
            axis.set_title(f"{predicted[index]}" + (f" ({labels[index]})" if wrong else ""), fontsize=9,
                           color="tab:red" if wrong else "black")
    shown = f"the first {count} of {len(images)} test images" if count < len(images) else f"{count} test images"
    figure.suptitle(f"Read as (written, where different): {shown}", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _plot_numbers(path: pathlib.Path, data, readings, size) -> pathlib.Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    figure, axes = plt.subplots(len(readings), 1, figsize=(5, 1.3 * len(readings)), squeeze=False)
    for axis, image, reading, text in zip(axes[:, 0], data.images, readings, data.texts):
        axis.imshow(image, cmap="gray_r", vmin=0, vmax=1)
        height, width = size
        for (row, column) in reading.boxes:
            axis.add_patch(Rectangle((column - 0.5, row - 0.5), width, height, fill=False, color="tab:blue"))
        axis.set_title(f"read {reading.text!r} (p = {reading.probability:.2f}); written {text!r}", fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
