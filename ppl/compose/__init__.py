"""Combinators: compose models in time, in space, by feature and by choice.

One module per combinator, named for it: :mod:`ppl.compose.unfold`,
:mod:`ppl.compose.seq`, :mod:`ppl.compose.changepoint` (time);
:mod:`ppl.compose.scene`, :mod:`ppl.compose.placement`, :mod:`ppl.compose.many`
(space); :mod:`ppl.compose.features` (feature); :mod:`ppl.compose.either` and
the grammar of compositions :mod:`ppl.compose.space` (choice). Each composite
is a generative function itself, so composition nests without limit; each is
written once against the interpretation protocol of :mod:`ppl.context`.

The package's attributes are the combinators themselves (``ppl.compose.unfold``
is the function); import other names from the modules, e.g.
``from ppl.compose.unfold import Unfold``.
"""

import sys as _sys

from ppl.compose.changepoint import *  # noqa: F401,F403
from ppl.compose.either import *  # noqa: F401,F403
from ppl.compose.features import *  # noqa: F401,F403
from ppl.compose.many import *  # noqa: F401,F403
from ppl.compose.scene import *  # noqa: F401,F403
from ppl.compose.seq import *  # noqa: F401,F403
from ppl.compose.space import *  # noqa: F401,F403
from ppl.compose.unfold import *  # noqa: F401,F403

_MODULES = ("changepoint", "either", "features", "many", "scene", "seq", "space", "unfold")
__all__ = sorted({name for module in _MODULES for name in _sys.modules[f"ppl.compose.{module}"].__all__})
