"""Time series by analysis by synthesis: temporal components and their grammar (work in progress).

- :mod:`~stdlib.sequences.statespace`: the exact Kalman filter (missing points,
  irregular times), the Rauch-Tung-Striebel smoother and forecast paths.
- :mod:`~stdlib.sequences.components`: ``level``, ``linear_trend``,
  ``local_linear_trend``, ``random_walk``, ``periodic``, ``ar``, ``white_noise``;
  each an ordinary ``@ppl.model`` (``component.model``) and the state-space form
  of the same distribution.
- :mod:`~stdlib.sequences.grammar`: sums of components with at most one
  changepoint, as a ``ppl.Space``; ``grammar.score`` is ``ppl.infer.search``'s
  score with every state and the changepoint time integrated out exactly and the
  few hyperparameters by the core's Laplace approximation.

Structure discovery on a series (``discover``), its report, forecasts and CLI are
not built yet (issue 13).
"""

from stdlib.sequences import components, grammar, statespace  # noqa: F401
from stdlib.sequences.components import *
from stdlib.sequences.grammar import Grammar, changepoint_candidates  # noqa: F401
