"""What ``discover`` returns: the structure that explains a series, and what it says.

An :class:`Explanation` holds the search's best structures with their posterior
probabilities and, for each, the Laplace mode of its few hyperparameters. From
them it derives, exactly given those hyperparameters (Kalman filter and
smoother, exact changepoint enumeration over every point):

- ``structure``: the best structure as a formula, ``"linear_trend + periodic(12) + ar(1)"``;
- ``posterior``: the top structures with their probabilities;
- ``components``: each component's contribution over time with 95% bands;
- ``changepoints``: ``{t: probability that t is the last point before a change}``,
  averaged over the structures;
- ``forecast(key, horizon, n)``: sample paths from the mixture over structures, and
  ``forecast_table`` for point forecasts and 80/95% bounds;
- ``report()``: a paragraph per component, like the Automatic Statistician's;
- ``plot(path)``: data, fit, components, forecast fan and changepoint probabilities;
- ``extend(key, y_new)``: more data, the search continued from the current structures.

Values are in the user's units; the series' mean is carried by the first
level-like component (or, without one, by the first component).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from stdlib.sequences import statespace, switching
from stdlib.sequences.data import Series
from stdlib.sequences.grammar import AFTER, BEFORE, Grammar

__all__ = ["ComponentFit", "Explanation", "ForecastTable"]

LEVELISH = ("level", "linear_trend", "local_linear_trend", "random_walk", "regimes")


class ComponentFit(dict):
    """One component's contribution: ``{"mean", "sd", "lower", "upper"}`` arrays ``(T,)`` (95% band), ``"on"``
    ``(T,)`` where it is observed, ``"name"``, ``"kind"``, ``"component"`` and ``"side"`` (``"both"``,
    ``"before"`` or ``"after"`` the changepoint)."""


@dataclasses.dataclass(frozen=True)
class ForecastTable:
    """Point forecasts and bounds: ``times`` ``(H,)``, ``median``, ``mean`` ``(H,)``, and ``lower[level]``,
    ``upper[level]`` ``(H,)`` for each level in percent (central intervals of the sample paths)."""

    times: list
    median: np.ndarray
    mean: np.ndarray
    lower: dict
    upper: dict

    def to_pandas(self):
        """A ``pandas.DataFrame`` with columns ``median``, ``mean``, ``lower_80``, ``upper_80``, ..."""
        import pandas as pd

        columns = {"median": self.median, "mean": self.mean}
        for level in sorted(self.lower):
            columns[f"lower_{level:g}"] = self.lower[level]
            columns[f"upper_{level:g}"] = self.upper[level]
        return pd.DataFrame(columns, index=pd.Index(self.times, name="time"))

    def __str__(self) -> str:
        levels = sorted(self.lower)
        head = f"{'time':>20} {'median':>10}" + "".join(f" {f'lo{level:g}':>10} {f'hi{level:g}':>10}" for level in levels)
        rows = [head]
        for i, time in enumerate(self.times):
            label = str(time.date()) if hasattr(time, "date") else f"{time:g}"
            rows.append(f"{label:>20} {self.median[i]:10.4g}" + "".join(
                f" {self.lower[level][i]:10.4g} {self.upper[level][i]:10.4g}" for level in levels))
        return "\n".join(rows)


@dataclasses.dataclass(frozen=True, eq=False)
class Explanation:
    """The structures that explain a series (see the module docstring).

    Attributes:
      series: the prepared series (:class:`~stdlib.sequences.data.Series`).
      grammar: the grammar searched.
      found: the :class:`ppl.infer.SearchResult` (codes, scores, Laplace results in ``estimates``).
      settings: the search settings (``budget``, ``population``, ``keep``), reused by :meth:`extend`.
    """

    series: Series
    grammar: Grammar
    found: Any
    settings: dict

    # -- the posterior over structures -----------------------------------------------------------
    @property
    def structure(self) -> str:
        """The most probable structure as a formula."""
        return self.posterior[0][0]

    @functools.cached_property
    def _groups(self) -> list[tuple[str, float, float, list[int]]]:
        """The scored codes grouped by the function they denote (``a + b`` and ``b + a``, or ``(a + b) + c``
        and ``a + (b + c)``, are one structure: the same components on the same sides of the changepoint):
        ``[(formula, probability, log_evidence, indices), ...]``, most probable first, over every structure
        the search scored. A group's formula and evidence are its best-scored member's; its prior mass counts
        every code that denotes it (:meth:`Grammar.multiplicity`), scored or not, since they share one
        evidence: the search scores one of them (``identify=``)."""
        groups: dict[tuple, list[int]] = {}
        for index, (code, evidence) in enumerate(zip(self.found.codes, self.found.log_evidence)):
            if np.isfinite(evidence):
                groups.setdefault(self.grammar.signature(code), []).append(index)
        members = list(groups.values())
        if not members:
            return []
        log_mass = np.array([self.found.scores[group[0]] + np.log(self.grammar.multiplicity(self.found.codes[group[0]]))
                             for group in members])
        probabilities = np.exp(log_mass - np.max(log_mass))
        probabilities /= probabilities.sum()
        rows = [(self.grammar.space.describe(self.found.codes[group[0]]), float(p),
                 float(self.found.log_evidence[group[0]]), group) for group, p in zip(members, probabilities)]
        return sorted(rows, key=lambda row: -row[1])

    @property
    def _best(self) -> int:
        """The index (in ``found``) of the most probable structure's best-scored code."""
        return self._groups[0][3][0]

    @property
    def posterior(self) -> list[tuple[str, float, float]]:
        """``[(formula, probability, log_evidence), ...]``, the ``keep`` most probable structures first:
        probabilities normalised over every structure the search scored (unscored structures count as 0),
        codes that denote the same function merged."""
        return [row[:3] for row in self._groups[: self.settings.get("keep", 8)]]

    @property
    def _weights(self) -> np.ndarray:
        """``(codes,)``: each group's probability on its best-scored code (0 on the other codes)."""
        weights = np.zeros(len(self.found.codes))
        for _, probability, _, group in self._groups:
            weights[group[0]] = probability
        return weights

    def _mode(self, index: int) -> dict:
        choices = self.found.estimates.trace.choices
        return {"settings": jnp.asarray(choices["settings"][index]), "noise": jnp.asarray(choices["noise"][index]),
                "value": jnp.asarray(self.series.values)}

    # -- one structure, exactly given its settings -----------------------------------------------
    @functools.cached_property
    def _full(self) -> Grammar:
        """The grammar with every point a changepoint candidate (for dates and the report)."""
        return dataclasses.replace(self.grammar, candidates=self.series.length)

    @functools.lru_cache(maxsize=16)  # noqa: B019 (one explanation, a handful of structures)
    def _changepoint(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(candidates, probabilities)`` over every point for structure ``index``; ``None`` without a changepoint."""
        code = self.found.codes[index]
        _, sides, _ = self.grammar.slots_of(code)
        if not np.any(np.asarray(sides) != 0):
            return None
        candidates, probabilities = _changepoint_posterior(self._full, self._mode(index), jnp.asarray(code),
                                                           *map(jnp.asarray, self.series.arguments()))
        return candidates, np.asarray(probabilities)

    def _gate(self, index: int, length: int) -> np.ndarray:
        """``(length, slots)`` which slots are on at each point, at the structure's most probable changepoint."""
        _, sides, _ = self.grammar.slots_of(self.found.codes[index])
        sides = np.asarray(sides)
        found = self._changepoint(index)
        last = int(found[0][np.argmax(found[1])]) if found is not None else length
        after = np.arange(length)[:, None] > last
        return np.where(sides == BEFORE, ~after, np.where(sides == AFTER, after, True)).astype(np.float32)

    def _model(self, index: int, u: np.ndarray) -> statespace.StateSpace:
        code = self.found.codes[index]
        mode = self._mode(index)
        kinds, _, _ = self.grammar.slots_of(code)
        thetas = self.grammar.thetas(kinds, mode["settings"])
        model = self.grammar.state_space(kinds, thetas, mode["noise"], jnp.asarray(u), self.series.time_scale)
        gate = self._gate(index, len(u))
        return model._replace(observations=jnp.repeat(jnp.asarray(gate), self.grammar.dim, axis=1)
                              * model.observations)

    @functools.lru_cache(maxsize=16)  # noqa: B019
    def _smoothed(self, index: int):
        model = self._model(index, self.series.u)
        filtered = statespace.kalman_filter(model, self.series.values, self.series.observed)
        means, covariances = statespace.kalman_smoother(model, filtered)
        return model, np.asarray(means), np.asarray(covariances)

    @functools.lru_cache(maxsize=16)  # noqa: B019
    def _switching(self, index: int):
        """For a ``regimes`` structure: ``(component, theta, noise_variance, probabilities (T, k),
        slot_variances (slots,))``, the regime posterior by forward-backward at the mode and each white-noise
        slot's variance; ``None`` for a linear-Gaussian structure."""
        kinds = np.asarray(self.grammar.slots_of(self.found.codes[index])[0])
        slots = [slot for slot in np.flatnonzero(kinds) if self.grammar.components[kinds[slot] - 1].role == "regimes"]
        if not slots:
            return None
        mode = self._mode(index)
        thetas = self.grammar.thetas(jnp.asarray(kinds), mode["settings"])
        slot_variances = self.grammar.noise_variances(jnp.asarray(kinds), thetas, self.series.time_scale)
        variance = mode["noise"] ** 2 + jnp.sum(slot_variances)
        component, theta = self.grammar.components[kinds[slots[0]] - 1], thetas[slots[0]]
        probabilities = switching.smooth(theta, component.dim, jnp.asarray(self.series.values), variance,
                                       jnp.asarray(self.series.observed))
        return component, theta, variance, np.asarray(probabilities), np.asarray(slot_variances)

    # -- components -----------------------------------------------------------------------------
    def components_of(self, index: int = 0) -> list[ComponentFit]:
        """Structure ``index``'s components (see :attr:`components`)."""
        kinds, sides, _ = (np.asarray(a) for a in self.grammar.slots_of(self.found.codes[index]))
        regime = self._switching(index)
        fits = []
        if regime is not None:  # the regime level's posterior mean and sd; noise slots have mean 0
            _, theta, _, probabilities, variances = regime
            for slot in np.flatnonzero(kinds):
                component = self.grammar.components[kinds[slot] - 1]
                if component.role == "regimes":
                    levels = np.asarray(switching.levels_and_stay(theta, component.dim)[0])
                    mean = probabilities @ levels
                    variance = probabilities @ levels**2 - mean**2
                else:
                    mean, variance = np.zeros(self.series.length), np.full(self.series.length, variances[slot])
                fits.append(ComponentFit(name=component.name, kind=component.kind, component=component,
                                         side="both", on=np.ones(self.series.length, bool),
                                         mean=mean * self.series.scale,
                                         sd=np.sqrt(np.clip(variance, 0, None)) * self.series.scale))
            return self._finish(fits)
        model, means, covariances = self._smoothed(index)
        dim, rows = self.grammar.dim, np.asarray(model.observations)
        for slot in np.flatnonzero(kinds):
            block = slice(slot * dim, (slot + 1) * dim)
            h = rows[:, block]
            mean = np.einsum("td,td->t", h, means[:, block])
            variance = np.einsum("td,tde,te->t", h, covariances[:, block, block], h)
            component = self.grammar.components[kinds[slot] - 1]
            fits.append(ComponentFit(name=component.name, kind=component.kind, component=component,
                                     side=("both", "before", "after")[sides[slot]], on=np.any(h != 0, axis=1),
                                     mean=mean * self.series.scale, sd=np.sqrt(np.clip(variance, 0, None))
                                     * self.series.scale))
        return self._finish(fits)

    def _finish(self, fits: list[ComponentFit]) -> list[ComponentFit]:
        """Give the series' mean to one component and add the 95% bands."""
        # the series' mean goes to the first level-like component seen everywhere, else to the first one on
        # each side of the changepoint (each is on only on its side, so the sum stays the fit)
        def first(group):
            return next((f for f in group if f["kind"] in LEVELISH), group[0] if group else None)

        both = [f for f in fits if f["side"] == "both"]
        sided = [f for f in fits if f["side"] != "both"]
        carrier = next((f for f in both if f["kind"] in LEVELISH), None) or (first(both) if not sided else None)
        carriers = [carrier] if carrier is not None else [
            first([f for f in sided if f["side"] == side]) for side in ("before", "after")]
        for carrier in filter(None, carriers):
            carrier["mean"] = carrier["mean"] + self.series.mean * carrier["on"]
        for fit in fits:
            fit["lower"], fit["upper"] = fit["mean"] - 1.96 * fit["sd"], fit["mean"] + 1.96 * fit["sd"]
        return fits

    @property
    def components(self) -> list[ComponentFit]:
        """The best structure's components: each a :class:`ComponentFit` with ``mean``, ``lower``, ``upper``
        ``(T,)`` (95% band) in the user's units; they sum to the fit."""
        return self.components_of(self._best)

    @property
    def fit(self) -> np.ndarray:
        """``(T,)`` the best structure's smoothed fit (the components' sum)."""
        return np.sum([fit["mean"] for fit in self.components], axis=0)

    # -- changepoints ---------------------------------------------------------------------------
    @property
    def changepoints(self) -> dict:
        """``{t: p}``: the posterior probability that ``t`` is the last point before a change, averaged over
        the structures (weights: their probabilities); points below ``1e-3`` are left out. Empty when no
        probable structure has a changepoint."""
        total = np.zeros(self.series.length)
        for index, weight in enumerate(self._weights):
            found = self._changepoint(index) if weight > 1e-3 else None
            if found is not None:
                total[found[0]] += weight * found[1]
        return {self.series.label(self.series.times[i]): float(total[i]) for i in np.flatnonzero(total >= 1e-3)}

    # -- forecasts -----------------------------------------------------------------------------
    def forecast_times(self, horizon: int) -> np.ndarray:
        """``(horizon,)`` future times in the user's units (the series' typical spacing)."""
        spacing = float(np.median(np.diff(self.series.times)))
        return self.series.times[-1] + spacing * np.arange(1, horizon + 1)

    def forecast(self, key: jax.Array, horizon: int, n: int = 1000) -> np.ndarray:
        """``(n, horizon)`` sample paths of the next ``horizon`` points (user's units): each path's structure is
        drawn from the posterior, its states from their filtered distribution at the last point, then
        the states and the noise are simulated forward."""
        if not (isinstance(horizon, int) and horizon >= 1 and isinstance(n, int) and n >= 1):
            raise ValueError(f"forecast needs integers horizon >= 1 and n >= 1, got {horizon!r}, {n!r}.")
        structure_key, path_key = jax.random.split(key)
        counts = np.asarray(jax.random.categorical(structure_key, jnp.log(jnp.asarray(self._weights) + 1e-30),
                                                   shape=(n,)))
        future = (self.forecast_times(horizon) - self.series.times[0]) / self.series.span
        u = np.concatenate([self.series.u, future.astype(np.float32)])
        paths = []
        for index in range(len(self._weights)):
            count = int(np.sum(counts == index))
            if count == 0:
                continue
            keys = jax.random.split(jax.random.fold_in(path_key, index), count)
            regime = self._switching(index)
            if regime is not None:
                component, theta, variance, probabilities, _ = regime
                paths.append(np.asarray(switching.forecast_paths(keys[0], theta, component.dim,
                                                               jnp.asarray(probabilities[-1]), horizon, variance,
                                                               count)))
                continue
            model = self._model(index, u)
            length = self.series.length
            past = model._replace(transitions=model.transitions[:length], process_noise=model.process_noise[:length],
                                  observations=model.observations[:length])
            filtered = statespace.kalman_filter(past, self.series.values, self.series.observed)
            paths.append(_paths(keys, filtered.means[-1], filtered.covariances[-1], model.transitions[length:],
                                model.process_noise[length:], model.observations[length:], model.noise_variance))
        return self.series.original(np.concatenate(paths))

    def forecast_table(self, key: jax.Array, horizon: int, n: int = 1000, levels=(80, 95)) -> ForecastTable:
        """Point forecasts (median and mean of ``n`` paths) and central ``levels``% bounds per future time."""
        paths = self.forecast(key, horizon, n)
        lower = {level: np.quantile(paths, 0.5 - level / 200, axis=0) for level in levels}
        upper = {level: np.quantile(paths, 0.5 + level / 200, axis=0) for level in levels}
        times = [self.series.label(t) for t in self.forecast_times(horizon)]
        return ForecastTable(times, np.median(paths, axis=0), paths.mean(axis=0), lower, upper)

    # -- words and pictures -----------------------------------------------------------------------
    def report(self) -> str:
        """Plain-language text: the structure and its probability, then a paragraph per component."""
        from stdlib.sequences.report import report

        return report(self)

    def plot(self, path: str, horizon: int = 0, key: jax.Array | None = None) -> None:
        """Save a figure to ``path``: data and fit (and a forecast fan when ``horizon > 0``), each component
        with its band, and the changepoint probabilities (needs matplotlib: the ``plot`` extra)."""
        from stdlib.sequences.report import plot

        plot(self, path, horizon, jax.random.key(0) if key is None else key)

    # -- more data -----------------------------------------------------------------------------
    def extend(self, key: jax.Array, y_new, t_new=None, budget=None) -> Explanation:
        """This explanation with ``y_new`` appended: the search continues from the current best structures
        (its population starts from them, not from the prior) with ``budget`` (default: the original)."""
        from stdlib.sequences.discover import search_series

        series = self.series.extended(y_new, t_new)
        population = self.settings["population"]
        codes = np.asarray(self.found.codes)[:population]
        init = np.concatenate([codes, jax.vmap(self.grammar.space.sample)(
            jax.random.split(jax.random.fold_in(key, 1), population - len(codes)))]) if len(codes) < population \
            else codes
        return search_series(key, self.grammar, series, budget=budget or self.settings["budget"],
                             population=population, keep=self.settings["keep"], refine=self.settings["refine"],
                             progress=None, init=init)

    def __repr__(self) -> str:
        lines = [f"Explanation of {self.series.name!r} ({self.series.length} points): {self.structure}"]
        lines += [f"  p={p:.3f}  log evidence {e:9.2f}  {text}" for text, p, e in self.posterior[:5]]
        return "\n".join(lines)


@functools.partial(jax.jit, static_argnames=("grammar",))
def _changepoint_posterior(grammar, mode, code, u, span, step, observed):
    return grammar.changepoint_posterior(mode, code, u, span, step, observed)


@jax.jit
def _paths(keys, mean, covariance, transitions, process_noise, observations, noise_variance):
    return jax.vmap(lambda k: statespace.simulate_forward(k, mean, covariance, transitions, process_noise,
                                                          observations, noise_variance))(keys)

