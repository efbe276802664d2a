"""Inference: jitted JAX programs over a particle axis."""

from ppl.infer import evidence, importance as _importance, mcmc, map as _map
from ppl.infer.evidence import *  # noqa: F401,F403
from ppl.infer.importance import *  # noqa: F401,F403
from ppl.infer.map import *  # noqa: F401,F403
from ppl.infer.mcmc import *  # noqa: F401,F403

__all__ = evidence.__all__ + _importance.__all__ + _map.__all__ + mcmc.__all__ + ["evidence", "mcmc"]
