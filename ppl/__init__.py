"""ppl: a probabilistic programming runtime for analysis by synthesis, on JAX.

Write small generative models with :func:`ppl.model` and :func:`ppl.sample`,
run them through the generative-function interface (``simulate``, ``assess``,
``generate``, ``update``), and jit/vmap/grad everything.

    >>> import jax, ppl
    >>> from ppl import dist
    >>> @ppl.model
    ... def coin(p):
    ...     return ppl.sample("heads", dist.Bernoulli(p))
    >>> trace = coin.simulate(jax.random.key(0), 0.5)
"""

from ppl import xla_flags as _xla_flags

_xla_flags.configure()  # before anything starts JAX's CPU backend; see ppl.xla_flags

from numpyro import distributions as dist  # noqa: E402

from ppl import errors
from ppl.choices import ChoiceMap
from ppl.model import (
    Assessment,
    Generated,
    GenerativeFunction,
    Model,
    Trace,
    Updated,
    factor,
    model,
    sample,
)

from ppl import compose, infer
from ppl.infer.numpyro_interop import as_numpyro
from ppl.compilation_cache import enable_compilation_cache
from ppl.compose import *  # noqa: E402,F401,F403  (ppl.unfold, ppl.scene, ppl.features, ppl.either, ...)

__version__ = "0.1.0"

__all__ = [
    "dist",
    "errors",
    "ChoiceMap",
    "Assessment",
    "Generated",
    "GenerativeFunction",
    "Model",
    "Trace",
    "Updated",
    "model",
    "sample",
    "factor",
    "__version__",
    "compose",
    "infer",
    "as_numpyro",
    "enable_compilation_cache",
] + compose.__all__
