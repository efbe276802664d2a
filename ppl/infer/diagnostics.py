"""Diagnostics: a summary table of an inference result, and its conversion to ArviZ.

=======================  ========================================================
``summary(result)``      a :class:`Summary`: a plain-text table that also holds
                         its numbers (``table["x[0]"]["mean"]``); NumPy only
``to_arviz(result)``     an ``arviz.InferenceData`` (ArviZ is optional:
                         ``pip install "ppl[arviz]"``)
=======================  ========================================================

Both take three kinds of result (``C`` chains of ``D`` draws each):

- **MCMC**, a ``Chain`` of :func:`~ppl.infer.mcmc.chain` (vmapped: one chain per
  run): ``posterior`` every choice ``(C, D, ...)``; ``sample_stats`` ``lp`` (the
  log joint) and ``acceptance_rate`` ``(C, D)``.
- **Weighted particles**, an ``ImportanceResult`` or ``SMCResult``: ``posterior``
  the particles' choices, one chain of ``D = n`` draws; ``sample_stats`` the
  normalised ``log_weight`` ``(1, n)``, and ``log_evidence``,
  ``effective_sample_size`` and ``log_evidence_standard_error`` ``(1,)`` (SMC
  reports no standard error).
- **Structure posteriors**, a ``SearchResult`` or ``Classification``:
  ``posterior`` the ``structure`` codes ``(1, D, L)`` or the ``hypothesis``
  index ``(1, D)``, with a ``description`` (``name``) coordinate on ``draw``;
  ``sample_stats`` their ``probability``, its log ``log_weight`` and
  ``log_evidence`` ``(1, D)``, and ``score`` (search) or
  ``log_evidence_standard_error`` (classify).

A batched ``Classification`` (``B`` observations) adds a last ``observation``
axis to its statistics. A result computed without its traces (``importance``
with ``keep="weights"``, ``smc`` with ``history=False``) has no posterior: its
weights and evidence only.

**Statistics.** Per scalar (an array site ``x`` gives rows ``x[0]``, ``x[1, 2]``, ...):

- draws: ``mean``; ``sd = sqrt(mean((x - mean)^2))`` over every chain and draw;
  quantiles by ``np.quantile`` (linear interpolation); ``ess`` and ``r_hat``
  from ``numpyro.diagnostics.effective_sample_size`` and ``split_gelman_rubin``
  (``ess`` is NaN with fewer than 2 draws a chain, ``r_hat`` with fewer than 4,
  both for a constant);
- weighted particles with normalised weights ``w_i``: ``mean = sum_i w_i x_i``,
  ``sd = sqrt(sum_i w_i (x_i - mean)^2)``, and the ``q`` quantile is the
  smallest ``x_i`` whose cumulative weight (in sorted order) reaches ``q``
  (NumPy's ``method="inverted_cdf"`` with ``weights=``); for the whole set, the
  ESS ``(sum w)^2 / sum w^2`` and ``log_evidence`` with its standard error;
- structures: one row each, its ``probability``, ``log_evidence`` and ``score`` or
  standard error.

**Observations.** ``importance`` knows its observations and keeps them out of
the posterior. A ``Chain`` or ``SMCResult`` holds the observed choices like any
other (constant across draws): name them, ``observed=["y"]`` or the ``obs``
you ran with, and they go to ``observed_data`` and out of the table.

**Weights and ArviZ.** ArviZ's own statistics and plots (``az.summary``,
``az.plot_posterior``) treat every draw alike; they never read
``sample_stats.log_weight``. For weighted particles use :func:`summary`, or an
SMC result whose last step resampled (equal weights).

Example::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> @ppl.model
    ... def location():
    ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ...     ppl.sample("y", dist.Normal(mu, 0.5).expand([3]))
    >>> result = ppl.infer.importance(jax.random.key(0), location, {"y": jnp.ones(3)}, n=400)
    >>> table = ppl.infer.summary(result)
    >>> table.names, table.columns
    (('mu',), ('mean', 'sd', '5%', '50%', '95%'))
    >>> idata = ppl.infer.to_arviz(result)                         # doctest: +SKIP
    >>> idata.posterior["mu"].shape                                 # doctest: +SKIP
    (1, 400)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpyro.diagnostics as numpyro_diagnostics

from ppl.choices import ChoiceMap
from ppl.errors import InferenceError, MissingDependencyError, UnknownAddressError, did_you_mean
from ppl.infer.classify import Classification
from ppl.infer.filtering import SMCResult
from ppl.infer.importance import ImportanceResult
from ppl.infer.mcmc import Chain
from ppl.infer.search import SearchResult

__all__ = ["Summary", "summary", "to_arviz"]

QUANTILES = (0.05, 0.5, 0.95)
ACCEPTED = (
    "ppl.infer.chain's Chain (one chain, or vmapped over chains), ppl.infer.importance's ImportanceResult, "
    "ppl.infer.smc's SMCResult, ppl.infer.search's SearchResult or ppl.infer.classify's Classification"
)


# ---------------------------------------------------------------------------
# Every result as draws: posterior (C, D, ...), statistics, observations
# ---------------------------------------------------------------------------


class _Draws(NamedTuple):
    """A result in one shape. ``kind``: ``"draws"``, ``"particles"`` or ``"structures"``."""

    kind: str
    method: str
    posterior: dict[str, np.ndarray]  # (C, D, ...)
    per_draw: dict[str, np.ndarray]  # (C, D, ...)
    per_chain: dict[str, np.ndarray]  # (C,)
    observed: dict[str, np.ndarray]  # as stored, once
    dims: dict[str, tuple[str, ...]]  # the dims of the variables that do not take the default names
    labels: tuple[str, np.ndarray] | None  # (coordinate name, (D,) strings) naming structures


def _as_draws(result: Any, observed, caller: str) -> _Draws:
    if isinstance(result, Chain):
        return _chain_draws(result, observed)
    if isinstance(result, (ImportanceResult, SMCResult)):
        return _particle_draws(result, observed, caller)
    if isinstance(result, (SearchResult, Classification)):
        return _structure_draws(result)
    hint = ""
    if type(result).__name__ == "MCMC":
        hint = " For NumPyro's MCMC use arviz.from_numpyro(mcmc) or mcmc.print_summary()."
    raise InferenceError(f"{caller} takes {ACCEPTED}; got {type(result).__name__}.{hint}")


def _chain_draws(result: Chain, observed) -> _Draws:
    scores = np.asarray(result.scores)
    batch, steps = scores.shape[:-1], scores.shape[-1]
    chains = math.prod(batch)
    choices = {address: np.asarray(value).reshape((chains, steps) + np.shape(value)[len(batch) + 1:])
               for address, value in result.choices.items()}
    shown, kept = _split_observed(choices, observed, "the chain")
    return _Draws(
        kind="draws", method="mcmc", posterior=shown,
        per_draw={"lp": scores.reshape(chains, steps),
                  "acceptance_rate": np.asarray(result.accepted, np.float64).reshape(chains, steps)},
        per_chain={}, observed={address: value[0, 0] for address, value in kept.items()}, dims={}, labels=None)


def _particle_draws(result: ImportanceResult | SMCResult, observed, caller: str) -> _Draws:
    log_weights = np.asarray(result.log_weights, np.float64)
    if log_weights.ndim != 1:
        raise InferenceError(
            f"{caller} takes one run's particles (log_weights of shape (n,)); got log_weights of shape "
            f"{log_weights.shape}, a batch of runs. Take one: jax.tree.map(lambda leaf: leaf[0], result)."
        )
    importance = isinstance(result, ImportanceResult)
    stored = set(result.observations.addresses()) if importance else set()
    traces = result.traces
    choices = {} if traces is None else {address: np.asarray(value)[None] for address, value in
                                         traces.choices.items() if address not in stored}
    shown, kept = _split_observed(choices, None if traces is None else observed, "the particles", known=stored)
    observed_values = {address: value[0, 0] for address, value in kept.items()}
    if importance:
        observed_values.update((address, np.asarray(value)) for address, value in result.observations.items())
    per_chain = {"log_evidence": np.asarray(result.log_evidence, np.float64)[None],
                 "effective_sample_size": np.asarray(_kish(log_weights))[None]}
    if importance:
        per_chain["log_evidence_standard_error"] = np.asarray(result.log_evidence_standard_error, np.float64)[None]
    return _Draws(
        kind="particles", method="importance" if importance else "smc", posterior=shown,
        per_draw={"log_weight": _normalise(log_weights)[None]}, per_chain=per_chain,
        observed=dict(sorted(observed_values.items())), dims={}, labels=None)


def _structure_draws(result: SearchResult | Classification) -> _Draws:
    if isinstance(result, SearchResult):
        probabilities = np.asarray(result.probabilities, np.float64)
        per_draw = {"probability": probabilities, "log_evidence": np.asarray(result.log_evidence, np.float64),
                    "score": np.asarray(result.scores, np.float64)}
        posterior = {"structure": np.asarray(result.codes)[None]}
        dims, labels, method = {"structure": ("chain", "draw", "node")}, ("description", result.describe()), "search"
    else:
        per_draw = {"probability": np.asarray(result.probabilities, np.float64),
                    "log_evidence": np.asarray(result.log_evidence, np.float64),
                    "log_evidence_standard_error": np.asarray(result.log_evidence_standard_error, np.float64)}
        per_draw = {name: np.moveaxis(value, -1, 0) for name, value in per_draw.items()}  # (K, ...) for a batch
        probabilities = per_draw["probability"]
        posterior = {"hypothesis": np.arange(len(result.names))[None]}
        dims, labels, method = {}, ("name", list(result.names)), "classify"
        if probabilities.ndim > 1:
            dims = {name: ("chain", "draw", "observation") for name in [*per_draw, "log_weight"]}
    with np.errstate(divide="ignore"):
        per_draw["log_weight"] = np.log(probabilities)
    return _Draws(kind="structures", method=method, posterior=posterior,
                  per_draw={name: value[None] for name, value in sorted(per_draw.items())}, per_chain={},
                  observed={}, dims=dims, labels=(labels[0], np.asarray(labels[1], dtype=str)))


def _split_observed(choices: dict[str, np.ndarray], observed, where: str, known=frozenset()):
    """``(latent, observed)`` choices; ``observed`` holds addresses (or prefixes of them) or a choice map.
    Addresses in ``known`` (observations the result keeps apart) may be named too."""
    if observed is None:
        return choices, {}
    if isinstance(observed, str):
        names = [observed]
    elif isinstance(observed, (Mapping, ChoiceMap)):
        names = list(ChoiceMap(observed).addresses())
    elif isinstance(observed, Sequence):
        names = list(observed)
    else:
        raise InferenceError(f"observed= takes addresses (['y']) or the observations ({{'y': ...}}); got "
                             f"{type(observed).__name__}.")
    matched = set()
    for name in names:
        inside = {address for address in choices if address == name or address.startswith(f"{name}/")}
        if not inside and not any(address == name or address.startswith(f"{name}/") for address in known):
            raise UnknownAddressError(
                f"observed= names '{name}', but {where} hold no choice there.{did_you_mean(name, choices)} "
                f"They hold: {', '.join(choices) or 'nothing'}.", address=name)
        matched |= inside
    return ({address: value for address, value in choices.items() if address not in matched},
            {address: value for address, value in choices.items() if address in matched})


def _normalise(log_weights: np.ndarray) -> np.ndarray:
    """``log(w_i / sum_j w_j)`` in float64 (NaN when every weight is 0)."""
    peak = np.max(log_weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return log_weights - (peak + np.log(np.sum(np.exp(log_weights - peak))))


def _kish(log_weights: np.ndarray) -> float:
    weights = np.exp(_normalise(log_weights))
    return float(1.0 / np.sum(weights**2)) if np.all(np.isfinite(weights)) else 0.0


# ---------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Summary:
    """A table of posterior statistics: prints aligned, and holds its numbers.

    Attributes:
      names: ``(R,)`` row names: ``"mu"``, ``"x[0]"``, ``"x[1, 2]"``, or structures' descriptions.
      columns: ``(K,)`` column names, e.g. ``("mean", "sd", "5%", "50%", "95%", "ess", "r_hat")``.
      values: ``(R, K)`` float64 array of the numbers.
      overall: numbers about the whole result: ``chains``, ``draws``, ``acceptance_rate`` (MCMC);
        ``particles``, ``effective_sample_size``, ``log_evidence`` and ``log_evidence_standard_error``
        where the result reports one (particles); ``structures`` (structure posteriors).
      title: the table's first line.

    ``table["x[0]"]`` is that row as ``{column: value}``, ``table.column("mean")`` a ``(R,)`` array,
    ``table.to_dict()`` ``{name: {column: value}}`` (``pandas.DataFrame(table.to_dict()).T`` is a
    data frame).
    """

    names: tuple[str, ...]
    columns: tuple[str, ...]
    values: np.ndarray
    overall: dict[str, float]
    title: str

    def __getitem__(self, name: str) -> dict[str, float]:
        if name not in self.names:
            raise KeyError(f"no row {name!r}.{did_you_mean(name, self.names)} The rows are {list(self.names)}.")
        return dict(zip(self.columns, self.values[self.names.index(name)].tolist()))

    def column(self, name: str) -> np.ndarray:
        """The ``(R,)`` values of one column."""
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; the columns are {list(self.columns)}.")
        return self.values[:, self.columns.index(name)]

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {name: self[name] for name in self.names}

    def __str__(self) -> str:
        specs = [_number_format(self.values[:, k], column) for k, column in enumerate(self.columns)]
        cells = [["nan" if math.isnan(value) else format(value, spec) for value, spec in zip(row, specs)]
                 for row in self.values.tolist()]
        width = max([len(name) for name in self.names], default=0)
        widths = [max([len(column)] + [len(row[k]) for row in cells]) for k, column in enumerate(self.columns)]
        lines = [self.title]
        if self.names:
            lines.append(" " * width + "".join(f"  {column:>{w}}" for column, w in zip(self.columns, widths)))
            lines += [f"{name:<{width}}" + "".join(f"  {cell:>{w}}" for cell, w in zip(row, widths))
                      for name, row in zip(self.names, cells)]
        return "\n".join(lines)

    __repr__ = __str__


def _number_format(values: np.ndarray, column: str) -> str:
    """One format per column: 3 decimals, unless the column's largest magnitude needs an exponent."""
    if column == "ess":
        return ".0f"
    if column == "probability":
        return ".3g"
    finite = np.abs(values[np.isfinite(values)])
    largest = float(finite.max()) if finite.size else 0.0
    return ".3e" if largest >= 1e6 or 0 < largest < 1e-2 else ".3f"


def summary(result: Any, *, observed=None, quantiles: Sequence[float] = QUANTILES) -> Summary:
    """A table of posterior statistics of ``result`` (see the module docstring for the formulas).

    Args:
      result: a ``Chain`` (one or vmapped over ``C`` chains, choices ``(C, D, ...)``), an
        ``ImportanceResult`` or ``SMCResult`` (``n`` weighted particles), a ``SearchResult`` or a
        ``Classification``.
      observed: addresses (``["y"]``) or the observations (``{"y": ...}``) to leave out of the
        table; needed for a ``Chain`` or ``SMCResult`` (``importance`` knows its own).
      quantiles: the quantiles to report, each in ``[0, 1]``; a column ``"5%"`` per ``0.05``.

    Returns:
      A :class:`Summary`: one row per scalar of every latent site (element-wise for array sites), or
      one per structure; columns ``mean``, ``sd``, the quantiles, and for MCMC ``ess`` and ``r_hat``.

    Raises:
      InferenceError: an unsupported result, a batch of runs, or quantiles outside ``[0, 1]``.
      UnknownAddressError: ``observed`` names an address the result does not hold.

    Example::

        >>> import jax, jax.numpy as jnp, ppl
        >>> from ppl import dist
        >>> @ppl.model
        ... def location():
        ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        ...     ppl.sample("y", dist.Normal(mu, 0.5).expand([3]))
        >>> result = ppl.infer.importance(jax.random.key(0), location, {"y": jnp.ones(3)}, n=400)
        >>> table = ppl.infer.summary(result)
        >>> print(table)                                            # doctest: +SKIP
        importance: 400 particles, ESS 88.2, log evidence -2.560 ± 0.094
             mean     sd     5%    50%    95%
        mu  0.942  0.294  0.462  0.949  1.411
        >>> round(table["mu"]["mean"], 1)
        0.9
    """
    quantiles = tuple(float(q) for q in np.atleast_1d(np.asarray(quantiles, np.float64)))
    if not all(0.0 <= q <= 1.0 for q in quantiles):
        raise InferenceError(f"summary's quantiles must lie in [0, 1] (0.05 is the 5% quantile); got {quantiles}.")
    draws = _as_draws(result, observed, "summary")
    if draws.kind == "structures":
        return _structure_table(draws, result)
    labels = tuple(f"{100 * q:g}%" for q in quantiles)
    names, blocks = [], []
    for address, value in draws.posterior.items():
        chains, count = value.shape[:2]
        names += _element_names(address, value.shape[2:])
        flat = value.reshape(chains, count, -1).astype(np.float64)
        blocks.append(_draw_statistics(flat, quantiles) if draws.kind == "draws"
                      else _weighted_statistics(flat[0], np.exp(draws.per_draw["log_weight"][0]), quantiles))
    extra = ("ess", "r_hat") if draws.kind == "draws" else ()
    columns = ("mean", "sd", *labels, *extra)
    values = np.concatenate(blocks, axis=0) if blocks else np.zeros((0, len(columns)))
    overall, title = _overall(draws)
    return Summary(tuple(names), columns, values, overall, title)


def _element_names(address: str, shape: tuple[int, ...]) -> list[str]:
    if not shape:
        return [address]
    return [f"{address}[{', '.join(str(i) for i in index)}]" for index in np.ndindex(*shape)]


def _draw_statistics(x: np.ndarray, quantiles) -> np.ndarray:
    """``(m, 2 + q + 2)`` rows for ``x`` ``(C, D, m)``: mean, sd, quantiles, ESS, split R-hat."""
    chains, count, m = x.shape
    pooled = x.reshape(chains * count, m)
    mean = pooled.mean(axis=0)
    sd = np.sqrt(np.mean((pooled - mean) ** 2, axis=0))
    q = np.quantile(pooled, quantiles, axis=0).reshape(len(quantiles), m)
    with np.errstate(divide="ignore", invalid="ignore"):
        ess = numpyro_diagnostics.effective_sample_size(x) if count >= 2 else np.full(m, np.nan)
        r_hat = numpyro_diagnostics.split_gelman_rubin(x) if count >= 4 else np.full(m, np.nan)
    constant = sd == 0
    ess, r_hat = np.where(constant, np.nan, ess), np.where(constant, np.nan, r_hat)
    return np.column_stack([mean, sd, *q, ess, r_hat])


def _weighted_statistics(x: np.ndarray, weights: np.ndarray, quantiles) -> np.ndarray:
    """``(m, 2 + q)`` rows for particles ``x`` ``(n, m)`` with normalised ``weights`` ``(n,)``."""
    mean = weights @ x
    sd = np.sqrt(weights @ (x - mean) ** 2)
    order = np.argsort(x, axis=0, kind="stable")
    ordered = np.take_along_axis(x, order, axis=0)
    cumulative = np.cumsum(weights[order], axis=0)
    cumulative /= cumulative[-1]
    q = [np.take_along_axis(ordered, np.argmax(cumulative >= level, axis=0)[None], axis=0)[0] for level in quantiles]
    return np.column_stack([mean, sd, *q])


def _overall(draws: _Draws) -> tuple[dict[str, float], str]:
    if draws.kind == "draws":
        chains, count = draws.per_draw["lp"].shape
        rate = float(np.mean(draws.per_draw["acceptance_rate"]))
        return ({"chains": chains, "draws": count, "acceptance_rate": rate},
                f"MCMC: {chains} chain{'s' * (chains != 1)} x {count} draws, acceptance rate {rate:.3g}")
    count = draws.per_draw["log_weight"].shape[1]
    overall = {"particles": count, **{name: float(value[0]) for name, value in draws.per_chain.items()}}
    evidence = f"log evidence {overall['log_evidence']:.3f}"
    if "log_evidence_standard_error" in overall:
        evidence += f" ± {overall['log_evidence_standard_error']:.3f}"
    else:
        evidence += " (one run has no standard error: pool runs with ppl.infer.combine_log_evidence)"
    return overall, f"{draws.method}: {count} particles, ESS {overall['effective_sample_size']:.1f}, {evidence}"


def _structure_table(draws: _Draws, result) -> Summary:
    stats = {name: value[0] for name, value in draws.per_draw.items() if name != "log_weight"}
    columns = ("probability", "log_evidence", *(name for name in stats if name not in ("probability", "log_evidence")))
    labels = list(draws.labels[1])
    values = np.stack([stats[column] for column in columns], axis=-1)  # (K, C) or (K, B, C)
    if values.ndim == 3:  # a batch of observations: rows name[b], by observation then hypothesis
        labels = [f"{label}[{b}]" for b in range(values.shape[1]) for label in labels]
        values = np.swapaxes(values, 0, 1).reshape(-1, len(columns))
    if isinstance(result, SearchResult):
        title = f"search: {len(labels)} best of {int(result.scored[-1])} structures scored"
    else:
        title = f"classify: {len(result.names)} hypotheses"
    return Summary(tuple(labels), columns, values, {"structures": len(draws.labels[1])}, title)


# ---------------------------------------------------------------------------
# to_arviz
# ---------------------------------------------------------------------------


def _arviz():
    try:
        import arviz
        import xarray
    except ImportError:
        raise MissingDependencyError('to_arviz needs ArviZ: pip install "ppl[arviz]" (or pip install arviz).') \
            from None
    return arviz, xarray


def to_arviz(result: Any, *, observed=None, separator: str = "/"):
    """``result`` as an ``arviz.InferenceData`` (see the module docstring for the layout of each kind).

    Args:
      result: a ``Chain``, ``ImportanceResult``, ``SMCResult``, ``SearchResult`` or ``Classification``.
      observed: addresses (``["y"]``) or the observations (``{"y": ...}``) to move from the posterior to
        ``observed_data``; needed for a ``Chain`` or ``SMCResult`` (``importance`` knows its own).
      separator: what joins the parts of a nested address in the variable names (``"a/x"``).
        netCDF files forbid ``/`` in names: pass ``separator="."`` to save with ``idata.to_netcdf``.

    Returns:
      An ``InferenceData`` with groups ``posterior`` (variables named by address, ``(chain, draw, ...)``;
      an array site's axes ``{address}_dim_{i}``), ``sample_stats`` and, where there are observations,
      ``observed_data``; attributes ``inference_library="ppl"`` and ``inference_method``.

    Raises:
      MissingDependencyError: ArviZ is not installed.
      InferenceError: an unsupported result, or a batch of runs.
      UnknownAddressError: ``observed`` names an address the result does not hold.

    Example::

        >>> import jax, jax.numpy as jnp, ppl
        >>> from ppl import dist
        >>> @ppl.model
        ... def location():
        ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        ...     ppl.sample("y", dist.Normal(mu, 0.5).expand([3]))
        >>> trace = location.generate(jax.random.key(0), {"y": jnp.ones(3)}).trace
        >>> kernel = ppl.infer.random_walk(location, ["mu"], 0.5)
        >>> chains = jax.vmap(lambda key: ppl.infer.chain(key, kernel, trace, steps=100))(
        ...     jax.random.split(jax.random.key(1), 4))
        >>> idata = ppl.infer.to_arviz(chains, observed=["y"])     # doctest: +SKIP
        >>> idata.posterior["mu"].shape, idata.observed_data["y"].shape  # doctest: +SKIP
        ((4, 100), (3,))
    """
    arviz, xarray = _arviz()
    if not isinstance(separator, str) or not separator:
        raise InferenceError(f"to_arviz's separator must be a non-empty string such as '/' or '.'; got {separator!r}.")
    draws = _as_draws(result, observed, "to_arviz")
    attrs = {"inference_library": "ppl", "inference_method": draws.method}

    def dataset(variables: dict[str, np.ndarray], leading: tuple[str, ...]):
        arrays = {}
        for address, value in variables.items():
            name = address.replace("/", separator)
            dims = draws.dims.get(address) or leading + tuple(f"{name}_dim_{i}" for i in range(value.ndim - len(leading)))
            arrays[name] = xarray.DataArray(value, dims=dims)
        coords = {}
        if leading:
            sizes = next(iter(variables.values())).shape[:2] if variables else (1, 0)
            coords = {"chain": np.arange(sizes[0]), "draw": np.arange(sizes[1])}
            if draws.labels is not None:
                coords[draws.labels[0]] = ("draw", draws.labels[1])
        return xarray.Dataset(arrays, coords=coords, attrs=attrs)

    groups = {"sample_stats": dataset(draws.per_draw, ("chain", "draw")).assign(
        {name: ("chain", value) for name, value in draws.per_chain.items()})}
    if draws.posterior:
        groups["posterior"] = dataset(draws.posterior, ("chain", "draw"))
    if draws.observed:
        groups["observed_data"] = dataset(draws.observed, ())
    return arviz.InferenceData(**groups)

