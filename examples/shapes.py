"""Inverse graphics end to end: parse scenes of shapes, some drawn by the scene model, some by Pillow.

Draws ``n`` scenes with ``stdlib.shapes.make_dataset`` (the model's own
rasteriser) and ``n`` with ``stdlib.shapes.draw_with_pillow`` (another
renderer's edges and 8-bit levels), 64x64 with up to 3 shapes, parses each with
``stdlib.shapes.parse``, prints what it found against the truth, the count and
kind accuracy, and saves ``Scene.plot`` figures of the first scene of each source.

Run: ``pip install -e ".[examples]" && python examples/shapes.py [n] [figure directory]``
(default 3 scenes of each source, figures in the current directory).
"""

from __future__ import annotations

import pathlib
import sys
import time

import jax

import ppl
from stdlib import shapes

SIZE = (64, 64)
MAX_SHAPES = 3


def main(n: int = 3, figures: str = ".") -> dict:
    ppl.enable_compilation_cache()  # a second run skips XLA's compilation
    sources = {
        "make_dataset": shapes.make_dataset(jax.random.key(2024), n, size=SIZE, max_shapes=MAX_SHAPES),
        "pillow": shapes.draw_with_pillow(2024, n, size=SIZE, max_shapes=MAX_SHAPES),
    }
    accuracy = {}
    for source, data in sources.items():
        right_counts = right_kinds = 0
        for index in range(n):
            truth = [s.kind for s in data.shapes[index]]
            start = time.perf_counter()
            scene = shapes.parse(jax.random.key(index), data.images[index], max_shapes=MAX_SHAPES)
            found = [s.kind for s in scene.shapes]
            right_counts += len(found) == len(truth)
            right_kinds += sorted(found) == sorted(truth)
            print(f"\n{source} scene {index}: truth {', '.join(truth)} (back to front); found "
                  f"{', '.join(found) or 'nothing'} in {time.perf_counter() - start:.1f} s")
            print(scene.table())
            if index == 0:
                path = pathlib.Path(figures) / f"shapes_{source}.png"
                scene.plot(str(path))
                print(f"figure: {path}")
        accuracy[source] = (right_counts / n, right_kinds / n)
    print()
    for source, (counts, kinds) in accuracy.items():
        print(f"{source:>12}: count right in {counts:.0%}, count and kinds in {kinds:.0%} of {n} scenes")
    return accuracy


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3, sys.argv[2] if len(sys.argv) > 2 else ".")
