"""Combinators: compose models in time (sequence), space (spatial), by feature
(feature), and by choice (choice, space of compositions). Each composite is a
generative function itself, so composition nests without limit."""

from ppl.compose.choice import *  # noqa: F401,F403
from ppl.compose.feature import *  # noqa: F401,F403
from ppl.compose.sequence import *  # noqa: F401,F403
from ppl.compose.space import *  # noqa: F401,F403
from ppl.compose.spatial import *  # noqa: F401,F403
from ppl.compose import choice, feature, sequence, space, spatial

__all__ = choice.__all__ + feature.__all__ + sequence.__all__ + space.__all__ + spatial.__all__
