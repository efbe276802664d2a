"""Structure discovery: which composition of components explains a series.

``discover(key, y, t=None, budget=...)`` prepares the series
(:mod:`stdlib.sequences.data`), builds the grammar over the default components
(a level, a line, a local linear trend, a random walk, an AR(1) and, when the
series has a natural season or ``periods=`` are given, a cycle per period), runs
``ppl.infer.search`` over it with the grammar's exact-where-possible score, and
returns an :class:`~stdlib.sequences.explanation.Explanation`: the structure,
the posterior over structures, the components with bands, the changepoints,
forecasts, a plain-language report and a figure.

Example::

    >>> import jax, numpy as np
    >>> from stdlib import sequences as seq
    >>> t = np.arange(60.0)
    >>> y = 0.05 * t + np.sin(2 * np.pi * t / 12) + 0.1 * np.random.default_rng(0).normal(size=60)
    >>> explanation = seq.discover(jax.random.key(0), y, periods=(12,), budget=2)  # doctest: +SKIP
    >>> explanation.structure  # doctest: +SKIP
    'linear_trend + periodic(12)'
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from ppl.errors import DataError
from ppl.validation import check_key
from stdlib.sequences import components as parts
from stdlib.sequences.data import Series, prepare
from stdlib.sequences.explanation import Explanation
from stdlib.sequences.grammar import Grammar

__all__ = ["DEFAULT_BUDGET", "default_components", "default_grammar", "discover", "search_series",
           "simplest_structures"]

DEFAULT_BUDGET = ppl.infer.Budget(steps=6)
POPULATION = 12
REFINE = 1  # after the steps, every unscored swap, prune and grow of the best structure is scored (search's refine=)
EVERY_STRUCTURE = 1_000_000  # the search returns every structure it scored: the posterior normalises over all


def default_components(series: Series, periods=None, harmonics: int = 3) -> tuple[parts.Component, ...]:
    """The components ``discover`` searches over for ``series``.

    A level, a line, a local linear trend, a random walk and an AR(1) (higher orders need equally spaced
    points; an AR(1) on irregular times is an Ornstein-Uhlenbeck process), plus ``periodic(p)`` for each
    period ``p`` in ``periods`` (the user's time units; default: the series' natural season, 12 for monthly
    data).

    Raises:
      DataError: a period longer than the series or not positive.
    """
    if periods is not None and (isinstance(periods, (str, bytes)) or not np.iterable(periods)):
        raise DataError(f"periods is a sequence of cycle lengths, e.g. periods=(12,) or periods=[7, 365.25]; got "
                        f"{periods!r}.")
    chosen = ((series.season,) if series.season else ()) if periods is None else tuple(periods)
    for period in chosen:
        if isinstance(period, (bool, np.bool_)) or not (isinstance(period, numbers.Real) and period > 0):
            raise DataError(f"a period must be a positive number of time units, got {period!r}.")
        if period > series.span:
            raise DataError(f"the period {period:g} is longer than the series ({series.span:g} time units): a cycle "
                            "must repeat within the data to be seen. Drop it or pass a longer series.")
    cycles = tuple(parts.periodic(float(p), min(harmonics, max(1, int(p) // 2))) for p in chosen)
    return (parts.level(), parts.linear_trend(), parts.local_linear_trend(), parts.random_walk(), parts.ar(1),
            *cycles)


@functools.lru_cache(maxsize=16)
def default_grammar(components: tuple[parts.Component, ...], depth: int = 3, candidates: int = 100) -> Grammar:
    """The grammar ``discover`` uses (cached, so a second series of the same shape reuses its compilation)."""
    return Grammar(components, depth=depth, candidates=candidates,
                   laplace=ppl.infer.Laplace(restarts=5, steps=0, newton=20))


_COMPONENTS: dict[tuple, tuple] = {}


def _components(series: Series, periods) -> tuple[parts.Component, ...]:
    """Components are cached by (periods, regular) so equal settings give the same objects (and compilations)."""
    found = default_components(series, periods)
    key = (series.season if periods is None else tuple(periods), series.span)
    names = tuple(c.name for c in found)
    return _COMPONENTS.setdefault((key[0], names), found)


def discover(key: jax.Array, y, t=None, *, budget: int | ppl.infer.Budget = DEFAULT_BUDGET, periods=None,
             components=None, depth: int = 3, candidates: int | None = None, population: int = POPULATION,
             keep: int = 8, refine: int = REFINE, progress: bool | None = None,
             name: str | None = None) -> Explanation:
    """The composition that explains ``y`` (see the module docstring).

    Args:
      key: a PRNG key (the search and the score's restarts; the same key gives the same answer).
      y: ``(T,)`` values: NumPy array, list or pandas Series (a regular ``DatetimeIndex`` sets the time axis
        and the season); NaNs are missing points.
      t: optional ``(T,)`` strictly increasing times (irregular spacing allowed).
      budget: search steps, or ``ppl.infer.Budget(steps=..., seconds=...)``; a longer budget never gives a
        lower best score (the search is anytime).
      periods: cycle lengths in time units to consider (default: the natural season of a dated series).
      components: the grammar's terminals, overriding the defaults.
      depth: the grammar's depth (3: up to four components).
      candidates: changepoint times enumerated while searching (the report uses every point); default
        ``clip(10000 // T, 16, 100)``, so the enumeration's cost stays about constant with the length
        (every point of a series of up to ~100 points).
      population: structures scored per step.
      keep: how many of the best structures the posterior keeps.
      refine: after the search's steps, score every structure one swap, prune or grow away from the
        ``refine`` best that the steps missed (``ppl.infer.search``'s ``refine=``); ``0``: none.
      progress: a progress bar (``None``: on for runs longer than 2 s, unless ``PPL_PROGRESS=0``).
      name: the series' name in reports.

    Returns:
      An :class:`~stdlib.sequences.explanation.Explanation`.

    Raises:
      DataError: bad input (see :func:`stdlib.sequences.data.prepare`), or a period longer than the series.
    """
    check_key(key, "sequences.discover")
    series = prepare(y, t, name=name)
    chosen = tuple(components) if components is not None else _components(series, periods)
    irregular = np.ptp(np.diff(series.times)) > 1e-9 * series.span
    if irregular and any(c.regular_only for c in chosen):
        bad = next(c.name for c in chosen if c.regular_only)
        raise DataError(f"{bad} needs equally spaced points but t is irregular; use ar(1) (an Ornstein-Uhlenbeck "
                        "process on irregular times) instead.")
    if candidates is None:
        candidates = int(np.clip(10_000 // series.length, 16, 100))
    grammar = default_grammar(chosen, depth, candidates)
    start_key, key = jax.random.split(key)
    return search_series(key, grammar, series, budget=budget, population=population, keep=keep, refine=refine,
                         progress=progress, init=simplest_structures(start_key, grammar, population))


def simplest_structures(key: jax.Array, grammar: Grammar, population: int) -> np.ndarray:
    """The search's first population ``(population, L)``: every component alone, then structures of two
    (``a + b`` and, when the grammar has changepoints, ``changepoint(a, b)``, in an order drawn with
    ``key``), then draws from the grammar's prior. Like the Automatic Statistician's greedy expansion, the
    search starts from the simplest explanations and grows them."""
    names = [c.name for c in grammar.components]
    pairable = [c.name for c in grammar.components if c.role != "regimes"]  # regimes combine with nothing
    pairs = [("+", a, b) for i, a in enumerate(pairable) for b in pairable[i + 1:]]
    if grammar.changepoint:
        pairs += [("changepoint", a, b) for a in pairable for b in pairable]
    pair_key, prior_key = jax.random.split(key)
    order = np.asarray(jax.random.permutation(pair_key, len(pairs))) if pairs else np.zeros(0, int)
    expressions = (names + [pairs[i] for i in order])[:population]
    codes = [np.asarray(grammar.space.encode(e)) for e in expressions]
    if len(codes) < population:
        codes += list(np.asarray(jax.vmap(grammar.space.sample)(jax.random.split(prior_key, population - len(codes)))))
    return np.stack(codes).astype(np.int32)


def search_series(key, grammar: Grammar, series: Series, *, budget, population: int, keep: int,
                  progress: bool | None, init=None, refine: int = REFINE) -> Explanation:
    """Search ``grammar`` on a prepared series and explain the result (``discover``'s core; ``extend`` reuses it).

    Structures are scored one after another inside the compiled step (``vectorize=False``): batching the
    Laplace program over structures compiles far longer on XLA:CPU than it saves. A proposal that denotes a
    structure already scored (``a + b`` after ``b + a``) is proposed again (``identify=grammar.identity``), and
    most proposals change one component (``grammar.neighbour``): swap it for another
    (``changepoint(random_walk, level)`` -> ``changepoint(level, level)``), add one (``a + b`` -> ``a + b + c``) or
    remove one (``a + b + c`` -> ``a + c``), the smallest changes of meaning, which subtree moves rarely make. One
    random neighbour per member and step can miss the one that matters, so after the steps every unscored swap,
    prune and grow of the ``refine`` best structures is scored (``refine=``, in batches of ``population``: the
    same compiled scorer). Scores add the grammar's structure prior (:meth:`Grammar.log_prior`: a cost per
    component and per hyperparameter), not the tree prior the space samples from."""
    found = ppl.infer.search(key, grammar.space, {"obs": {"value": jnp.asarray(series.values)}},
                             *map(jnp.asarray, series.arguments()), budget=budget, population=population,
                             score=grammar.score, keep=EVERY_STRUCTURE, init=init, progress=progress, vectorize=False,
                             identify=grammar.identity, propose=grammar.neighbour, log_prior=grammar.log_prior,
                             refine=refine)
    return Explanation(series=series, grammar=grammar, found=found,
                       settings=dict(budget=budget, population=population, keep=keep, refine=refine))
