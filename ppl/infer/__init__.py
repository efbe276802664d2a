"""Inference: jitted JAX programs over a particle axis.

=====================  ==========================================================
``importance``         weighted particles and an evidence estimate (static models)
``smc``                particle filter for sequence composites; tempered SMC otherwise
``mcmc``               ``mh``, ``random_walk``, ``mala`` kernels and ``chain``
``map``                gradient MAP over continuous latents, restarts vmapped
``laplace``            Laplace evidence at the MAP in unconstrained space
``evidence``           log-mean-exp, ESS, standard errors of log evidence
``resample``           systematic, stratified, multinomial, residual resamplers
``classify``           posterior over named hypotheses from their evidence
``search``             search over a space of compositions (stochastic beam)
``diagnostics``        ``summary`` tables of any result; ``to_arviz`` (ArviZ, optional)
=====================  ==========================================================
"""

from ppl.infer import classify as _classify, evidence, importance as _importance, laplace as _laplace, map as _map, mcmc, resample
from ppl.infer import diagnostics as _diagnostics, numpyro_interop as _numpyro_interop, search as _search, smc as _smc
from ppl.infer.classify import *  # noqa: F401,F403
from ppl.infer.diagnostics import *  # noqa: F401,F403
from ppl.infer.evidence import *  # noqa: F401,F403
from ppl.infer.importance import *  # noqa: F401,F403
from ppl.infer.laplace import *  # noqa: F401,F403
from ppl.infer.map import *  # noqa: F401,F403
from ppl.infer.mcmc import *  # noqa: F401,F403
from ppl.infer.numpyro_interop import *  # noqa: F401,F403
from ppl.infer.resample import resample as resample_particles  # noqa: F401
from ppl.infer.search import *  # noqa: F401,F403
from ppl.infer.smc import *  # noqa: F401,F403

__all__ = (
    _classify.__all__
    + _diagnostics.__all__
    + evidence.__all__
    + _importance.__all__
    + _laplace.__all__
    + _map.__all__
    + mcmc.__all__
    + _numpyro_interop.__all__
    + _search.__all__
    + _smc.__all__
    + ["evidence", "mcmc", "resample", "resample_particles"]
)
