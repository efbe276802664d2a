"""Test helpers for users' own models, combinators and inference algorithms.

Three kinds of helper, the ones ppl's own test suite uses, one module each
(:mod:`ppl.testing.interface`, :mod:`ppl.testing.oracles`, :mod:`ppl.testing.sbc`):

**Interface checks.** The four interface methods must agree with each other.
Call :func:`check_interface` from a test of any new generative function::

    >>> import jax, ppl
    >>> from ppl import dist
    >>> from ppl.testing import check_interface
    >>> @ppl.model
    ... def coin(p):
    ...     return ppl.sample("heads", dist.Bernoulli(p))
    >>> check_interface(coin, (0.3,), changes={"heads": 1})

Each check raises ``AssertionError`` with the two numbers that disagree.

**Exact oracles.** Closed-form log evidences (and posteriors) to test an
inference algorithm against: conjugate Normal-Normal
(:func:`normal_normal_log_evidence`), Beta-Bernoulli
(:func:`beta_bernoulli_log_evidence`), Bayesian linear regression
(:func:`linear_regression_log_evidence`), linear-Gaussian state-space models
(:func:`kalman_filter`, the Kalman filter) and hidden Markov models
(:func:`hmm_forward`, the forward algorithm). An estimate with a reported
standard error should fall within a few standard errors of them::

    >>> import jax.numpy as jnp
    >>> from ppl.testing import beta_bernoulli_log_evidence
    >>> round(float(beta_bernoulli_log_evidence(jnp.array([1, 0, 1]), 1.0, 1.0)), 4)
    -2.4849

**Simulation-based calibration** (Talts et al. 2018, arXiv:1804.06788).
Simulate ``(latents, data)`` from the model, run the posterior sampler on the
data, and rank the true latent among the posterior draws: for a correct sampler
the ranks are uniform on ``{0, ..., draws}``. :func:`sbc_ranks` runs every
simulation in one jitted, vmapped program; :func:`rank_uniformity_pvalue` tests
the ranks with a chi-square test.
"""

from ppl.testing.interface import *  # noqa: F401,F403
from ppl.testing.oracles import *  # noqa: F401,F403
from ppl.testing.sbc import *  # noqa: F401,F403
from ppl.testing import interface as _interface, oracles as _oracles, sbc as _sbc

__all__ = _interface.__all__ + _oracles.__all__ + _sbc.__all__
