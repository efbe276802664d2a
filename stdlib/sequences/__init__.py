"""Time series by analysis by synthesis: temporal components, their grammar, and structure discovery.

- :mod:`~stdlib.sequences.statespace`: the exact Kalman filter (missing points,
  irregular times), the augmented filter for static regressions, the
  Rauch-Tung-Striebel smoother and forecast paths.
- :mod:`~stdlib.sequences.components`: ``level``, ``linear_trend``,
  ``local_linear_trend``, ``random_walk``, ``periodic``, ``ar``, ``white_noise``;
  each an ordinary ``@ppl.model`` (``component.model``) and the state-space form
  of the same distribution.
- :mod:`~stdlib.sequences.switching`: ``regimes(k)``, hidden-Markov switching
  between ``k`` levels, integrated exactly by the forward algorithm (with
  forward-backward smoothing, forecasts and a ``ppl.unfold`` for particle filters).
- :mod:`~stdlib.sequences.grammar`: sums of components with at most one
  changepoint, as a ``ppl.Space``; ``grammar.score`` is ``ppl.infer.search``'s
  score with every state and the changepoint time integrated out exactly and the
  few hyperparameters by the core's Laplace approximation.
- :mod:`~stdlib.sequences.simple`: the small grammar with every parameter
  explicit (``level``, ``trend``, ``periodic``, ``+``, ``*``, ``changepoint``;
  ``simple.space(...)``) that the guides, tests and benchmarks search.
- :mod:`~stdlib.sequences.data`: a user's series (array, pandas, dates, NaNs,
  irregular times) checked and standardised.
- :mod:`~stdlib.sequences.discover`: ``discover(key, y, t=None, budget=...)``, the
  search over the grammar, returning an
  :class:`~stdlib.sequences.explanation.Explanation` (structure, posterior,
  components, changepoints, forecasts, report, plot, extend).

Example::

    >>> import jax, numpy as np
    >>> from stdlib import sequences as seq
    >>> y = np.r_[np.full(30, 1.0), np.full(30, 3.0)] + 0.2 * np.random.default_rng(0).normal(size=60)
    >>> explanation = seq.discover(jax.random.key(0), y, budget=3)  # doctest: +SKIP
    >>> explanation.structure  # doctest: +SKIP
    'changepoint(level, level)'
"""

from stdlib.sequences import components, data, grammar, simple, statespace, switching  # noqa: F401
from stdlib.sequences.components import *
from stdlib.sequences.data import Series, prepare  # noqa: F401
from stdlib.sequences.discover import default_components, discover  # noqa: F401
from stdlib.sequences.explanation import Explanation, ForecastTable  # noqa: F401
from stdlib.sequences.grammar import Grammar, changepoint_candidates  # noqa: F401
from stdlib.sequences.switching import regimes  # noqa: F401

__all__ = components.__all__ + [
    "Series", "prepare", "default_components", "discover", "Explanation", "ForecastTable", "Grammar",
    "changepoint_candidates", "regimes", "components", "data", "grammar", "simple", "statespace", "switching",
]
