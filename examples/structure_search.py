"""Structure discovery on a real series: which composition explains Mauna Loa CO2?

Loads the weekly Mauna Loa CO2 record shipped with statsmodels, averages it to
months, keeps the last 200 months (1985-2001), standardises it, and searches
the time-series grammar of ``docs/composition.md``
(:mod:`stdlib.sequences.simple`: level, trend, yearly periodic; ``+``, ``*``,
changepoint; depth 3: 2,703 structures) with
``ppl.infer.search``: MAP search (each structure scored by its prior plus the
Laplace evidence at its MAP, ``score=ppl.infer.laplace``) or, with
``particles``, importance sampling with 1,024 particles per structure. Prints
the best-so-far curve (the anytime history) and the best structures found.

Run: ``pip install -e ".[examples]" && python examples/structure_search.py [seconds] [laplace|particles]``
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from stdlib.sequences import simple

MONTHS = 200


def load_co2() -> np.ndarray:
    import statsmodels.api as sm

    weekly = sm.datasets.co2.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().interpolate().to_numpy()[-MONTHS:]
    return (monthly - monthly.mean()) / monthly.std()


SPACE = simple.space(
    {"level": simple.level, "trend": simple.trend(scale=2.0, origin=0.5), "yearly": simple.periodic(MONTHS / 12)},
    depth=3,
    noise=0.2,
)


def main(seconds: float = 20.0, score: str = "laplace") -> ppl.infer.SearchResult:
    series = jnp.asarray(load_co2(), jnp.float32)
    t = jnp.linspace(0.0, 1.0, MONTHS)
    budget = ppl.infer.Budget(seconds=seconds)
    estimator = {"laplace": ppl.infer.laplace, "particles": None}[score]
    result = ppl.infer.search(jax.random.key(0), SPACE, {"obs": series}, t, budget=budget, population=64, n=1024,
                              score=estimator)
    print(f"scored by {'prior + Laplace evidence (MAP search)' if estimator else 'prior + importance sampling'}")
    print(f"{result.steps} steps in {result.seconds:.1f} s, {int(result.scored[-1])} distinct structures scored")
    print("step  best score so far  structures scored")
    for step in sorted({0, 1, 2, 5, 10, 20, 50, 100, 200, result.steps} & set(range(result.steps + 1))):
        print(f"{step:4d}  {result.history[step]:17.1f}  {int(result.scored[step]):17d}")
    print(result)
    return result


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0, sys.argv[2] if len(sys.argv) > 2 else "laplace")
