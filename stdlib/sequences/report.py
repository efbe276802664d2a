"""An explanation in words and in a figure: one paragraph per component, like the Automatic Statistician's.

``report(explanation)`` describes the best structure: its probability and the
runner-up, then each component with its size (the standard deviation of its
contribution), its slope, period or date, and the noise left over.
``plot(explanation, path)`` draws the data, the fit, the components with their
95% bands, a forecast fan and the changepoint probabilities (matplotlib).
"""

from __future__ import annotations

import numpy as np

from stdlib.sequences import switching

__all__ = ["plot", "report"]


def _when(series, time) -> str:
    label = series.label(time)
    return str(label.date()) if hasattr(label, "date") else f"{label:g}"


def _unit(series) -> str:
    if series.dates is not None and series.dates.freq is not None:
        code = (getattr(series.dates.freq, "rule_code", None) or str(series.dates.freq)).split("-")[0]
        return {"MS": "month", "ME": "month", "M": "month", "QS": "quarter", "QE": "quarter", "W": "week",
                "D": "day", "B": "business day", "h": "hour", "H": "hour", "YS": "year", "YE": "year"}.get(code, "step")
    return "time unit"


def _paragraph(explanation, fit, theta) -> str:
    series = explanation.series
    unit = _unit(series)
    on = fit["on"]  # a component on one side of a changepoint is described where it is observed
    times = series.times[on]
    mean, kind = fit["mean"][on], fit["kind"]
    size = float(np.std(mean))
    side = {"both": "", "before": " Before the change:", "after": " After the change:"}[fit["side"]]
    if kind == "level":
        text = f"A constant level of {float(np.mean(mean)):.4g}."
    elif kind == "linear_trend":
        slope = float((mean[-1] - mean[0]) / (times[-1] - times[0]))
        direction = "rising" if slope > 0 else "falling"
        text = (f"A straight-line trend, {direction} by {abs(slope):.3g} per {unit} "
                f"(from {mean[0]:.4g} to {mean[-1]:.4g}).")
    elif kind == "local_linear_trend":
        slope = float((mean[-1] - mean[0]) / (times[-1] - times[0]))
        text = (f"A smoothly changing trend whose level and slope drift over time, from {mean[0]:.4g} to "
                f"{mean[-1]:.4g} (on average {slope:+.3g} per {unit}); its slope varies with a scale of "
                f"{float(theta[1]) * series.scale:.3g} per unit of scaled time.")
    elif kind == "random_walk":
        steps = np.diff(mean)
        text = (f"A wandering level (a random walk) that moves by about {float(np.std(steps)):.3g} per {unit}, "
                f"between {mean.min():.4g} and {mean.max():.4g}.")
    elif kind == "periodic":
        component = fit["component"]
        amplitude = 0.5 * float(np.ptp(mean[-int(min(len(mean), component.period or len(mean))):]))
        peak = int(np.argmax(mean[-int(min(len(mean), component.period or len(mean))):]))
        where = _when(series, times[len(mean) - int(min(len(mean), component.period or len(mean))) + peak])
        text = (f"A cycle with a period of {component.period:g} {unit}s and an amplitude of {amplitude:.3g} "
                f"(half the peak-to-peak range); in the last cycle it peaks at {where}.")
    elif kind == "ar":
        phi = float(theta[0])
        scale = float(theta[len(fit["component"].priors) - 1])
        memory = -1.0 / np.log(abs(phi)) if 0 < abs(phi) < 1 else float("inf")
        text = (f"Short-term deviations that persist (an autoregression): successive points correlate with "
                f"coefficient {phi:.2f}, so a deviation halves in about {memory * np.log(2):.2g} steps; their "
                f"size is {size:.3g} (innovations {scale * series.scale:.3g}).")
    elif kind == "regimes":
        k = fit["component"].dim
        levels, stay = (np.asarray(a) for a in switching.levels_and_stay(theta, k))
        values = ", ".join(f"{series.mean + series.scale * float(v):.4g}" for v in levels)
        dwell = 1.0 / max(1.0 - float(stay), 1e-12)
        text = (f"Switching between {k} levels ({values}), a hidden Markov chain choosing which: it keeps its "
                f"regime with probability {float(stay):.3f} at each point, so a regime lasts about {dwell:.3g} "
                f"points on average.")
    elif kind == "white_noise":
        text = f"Independent noise at every point with standard deviation {size:.3g}."
    else:
        text = f"A {kind} component."
    sized = "" if kind == "level" else f" Its size (standard deviation over time) is {size:.3g}."
    return f"{side.strip()} {text}{sized}".strip()


def report(explanation) -> str:
    """The plain-language report of ``explanation`` (see the module docstring)."""
    series = explanation.series
    posterior = explanation.posterior
    best, probability, _ = posterior[0]
    lines = [f"The series {series.name!r} ({series.length} points, {int(series.observed.sum())} observed) is "
             f"best explained by {best} (posterior probability {probability:.2f})."]
    if len(posterior) > 1:
        lines[0] += f" The runner-up is {posterior[1][0]} ({posterior[1][1]:.2f})."
    found = explanation._changepoint(explanation._best)
    if found is not None:
        candidates, probabilities = found
        top = int(np.argmax(probabilities))
        ranked = np.argsort(-probabilities)
        mass = np.cumsum(probabilities[ranked])
        credible = candidates[ranked[: int(np.searchsorted(mass, 0.95)) + 1]]
        lines.append(f"The series changes after {_when(series, series.times[candidates[top]])} (probability "
                     f"{probabilities[top]:.2f} that this is the last point before the change; 95% of the "
                     f"probability lies between {_when(series, series.times[credible.min()])} and "
                     f"{_when(series, series.times[credible.max()])}).")
    kinds, _, _ = explanation.grammar.slots_of(explanation.found.codes[explanation._best])
    mode = explanation._mode(explanation._best)
    thetas = np.asarray(explanation.grammar.thetas(kinds, mode["settings"]))
    slots = np.flatnonzero(np.asarray(kinds))
    for fit, slot in zip(explanation.components, slots):
        lines.append(f"{fit['name']}: {_paragraph(explanation, fit, thetas[slot])}")
    lines.append(f"The remaining noise has standard deviation {float(mode['noise']) * series.scale:.3g}.")
    return "\n\n".join(lines)


def plot(explanation, path: str, horizon: int, key) -> None:
    """Save the figure of ``explanation`` to ``path`` (see the module docstring)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'ppl[plot]'.") from error
    series = explanation.series
    components = explanation.components
    changepoints = explanation._changepoint(explanation._best)
    rows = 1 + len(components) + (changepoints is not None)
    figure, axes = plt.subplots(rows, 1, figsize=(9, 2.2 * rows), sharex=True, squeeze=False)
    axes = axes[:, 0]
    times = series.times
    observed = series.observed
    axes[0].plot(times[observed], series.original(series.values)[observed], ".", ms=3, color="0.3", label="data")
    axes[0].plot(times, explanation.fit, color="C0", label="fit")
    if horizon > 0:
        paths = explanation.forecast(key, horizon, 500)
        future = explanation.forecast_times(horizon)
        for level, alpha in ((95, 0.2), (80, 0.35)):
            axes[0].fill_between(future, np.quantile(paths, 0.5 - level / 200, 0),
                                 np.quantile(paths, 0.5 + level / 200, 0), color="C1", alpha=alpha, lw=0,
                                 label=f"{level}% forecast")
        axes[0].plot(future, np.median(paths, 0), color="C1")
    axes[0].set_title(f"{series.name}: {explanation.structure}")
    axes[0].legend(loc="best", fontsize=7)
    for axis, fit in zip(axes[1:], components):
        hide = np.where(fit["on"], 1.0, np.nan)  # a component is drawn where it is observed
        axis.fill_between(times, fit["lower"] * hide, fit["upper"] * hide, color="C2", alpha=0.3, lw=0)
        axis.plot(times, fit["mean"] * hide, color="C2")
        axis.set_ylabel(fit["name"], fontsize=8)
    if changepoints is not None:
        candidates, probabilities = changepoints
        axes[-1].bar(times[candidates], probabilities, width=float(np.median(np.diff(times))), color="C3")
        axes[-1].set_ylabel("P(last point\nbefore change)", fontsize=8)
    axes[-1].set_xlabel("time" if series.dates is None else f"{_unit(series)}s since {_when(series, times[0])}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
