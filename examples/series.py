"""Explain two real series by synthesis: the Nile's flow and Mauna Loa's CO2 (statsmodels' data sets).

    python examples/series.py [--figures docs/figures]

For each series ``discover`` searches the grammar of temporal components and
prints the structure, the posterior over structures, the plain-language report,
the changepoints and a forecast table, and saves a figure. Needs the
``examples`` extra (statsmodels) and, for figures, ``plots`` (matplotlib).
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import numpy as np

from stdlib import sequences as seq


def nile():
    """Annual flow of the Nile at Aswan, 1871-1970 (a dam was built in 1898-1902)."""
    import statsmodels.api as sm

    data = sm.datasets.nile.load_pandas().data
    return data["volume"].to_numpy(), data["year"].to_numpy()


def co2():
    """Weekly CO2 at Mauna Loa averaged to months, 1958-03 to 1991-12 (the rest is kept to check forecasts)."""
    import statsmodels.api as sm

    monthly = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().interpolate()
    return monthly["1958-03":"1991-12"].asfreq("MS"), monthly["1992-01":"2001-12"]


def explain(name, y, t, figures, horizon, **options):
    start = time.perf_counter()
    explanation = seq.discover(jax.random.key(0), y, t, name=name, **options)
    seconds = time.perf_counter() - start
    print(f"== {name}: {explanation.structure}  (discover: {seconds:.1f} s, "
          f"{int(explanation.found.scored[-1])} structures scored)\n")
    print(explanation.report(), "\n")
    changepoints = sorted(explanation.changepoints.items(), key=lambda item: -item[1])[:4]
    print("changepoints:", ", ".join(f"{t}: {p:.2f}" for t, p in changepoints) or "none", "\n")
    print(explanation.forecast_table(jax.random.key(1), horizon, 1000), "\n")
    if figures is not None:
        path = pathlib.Path(figures) / f"sequences_{name.lower()}.png"
        explanation.plot(str(path), horizon=horizon)
        print(f"figure: {path}\n")
    return explanation


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", default=None, help="a folder to save the figures in")
    parser.add_argument("--budget", type=int, default=8, help="search steps per series")
    args = parser.parse_args()
    explain("Nile", *nile(), args.figures, horizon=10, budget=args.budget)
    train, test = co2()
    explanation = explain("CO2", train, None, args.figures, horizon=12, budget=args.budget)
    paths = explanation.forecast(jax.random.key(2), len(test), 1000)
    median = np.median(paths, axis=0)
    lower, upper = np.quantile(paths, [0.025, 0.975], axis=0)
    truth = test.to_numpy()
    print(f"CO2 1992-2001: RMSE of the median path {np.sqrt(np.mean((median - truth) ** 2)):.3f} ppm; the 95% "
          f"interval covers {np.mean((lower <= truth) & (truth <= upper)):.0%} of the 120 months")


if __name__ == "__main__":
    main()
