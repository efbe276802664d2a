"""Run NumPyro's inference (NUTS, SVI, Predictive) on any ppl generative function.

``as_numpyro(model, obs)`` translates a generative function, compositions
included, into a NumPyro model function. It runs the model under an
interpreter (:mod:`ppl.context`) that hands NumPyro every choice:

- a choice at the top level (not inside a ``scan`` or ``vmap`` of a
  combinator) becomes ``numpyro.sample(address, distribution)`` with the full
  slash-joined address as the site name (``"b/delta"``), observed when ``obs``
  holds a value there; ``ppl.factor(w)`` becomes ``numpyro.factor``;
- a latent choice stacked along the axes of a combinator (the time axis of
  ``ppl.unfold``, the copies of ``ppl.many``) becomes one NumPyro site for the
  whole stack, ``numpyro.sample(address, ImproperUniform(support, (), shape))``:
  NumPyro moves it in its own unconstrained space (``biject_to``) exactly as a
  native site, and its density (with every other stacked choice's and factor's)
  enters through one ``numpyro.factor("ppl_stacked", ...)``. When the support
  of a stacked choice changes from step to step, the site is the unconstrained
  value ``"{address}/unconstrained"`` instead, its density includes the
  Jacobian, and ``address`` is a ``numpyro.deterministic`` site.

The densities are the same numpyro distributions, so NumPyro's log joint is
ppl's ``assess`` (a test checks it). Samples come back keyed by address, so
``ppl.ChoiceMap(samples)`` turns them into a (stacked) choice map.

Limitations: NUTS needs every discrete latent observed (in ``obs``), as for any
NumPyro model; the choices of alternatives not chosen by ``ppl.either`` or a
``ppl.Space`` code are sampled too (they are auxiliary variables under their
prior: see :mod:`ppl.interface`).

Example::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> from numpyro.infer import MCMC, NUTS
    >>> @ppl.model
    ... def normal_mean():
    ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ...     ppl.sample("y", dist.Normal(mu, 0.5).expand([3]))
    >>> numpyro_model = ppl.infer.numpyro_interop.as_numpyro(normal_mean, {"y": jnp.ones(3)})
    >>> nuts = MCMC(NUTS(numpyro_model), num_warmup=200, num_samples=200, progress_bar=False)
    >>> nuts.run(jax.random.key(0))
    >>> nuts.get_samples()["mu"].shape
    (200,)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpyro
from numpyro.distributions import ImproperUniform, constraints

from ppl import validation
from ppl.choices import ChoiceMap, as_choice_map, join_address
from ppl.context import Interpreter, Site, interpret
from ppl.errors import InferenceError
from ppl.infer.unconstrained import describe_sites
from ppl.interface import GenerativeFunction, check_visited, top_level
from ppl.interpreters import site_transform

__all__ = ["as_numpyro"]

UNCONSTRAINED = "unconstrained"


class _NumPyroSites(Interpreter):
    """Top-level choices become NumPyro sites; stacked ones read their site's value (see the module docstring)."""

    accumulators = ("score", "log_det")

    def __init__(self, values: ChoiceMap, u: ChoiceMap, observed: frozenset):
        super().__init__((values, u))
        self.observed = observed
        self.factors = 0
        self.stacked = False  # whether a stacked choice or factor added to the totals

    def choose(self, site: Site, given: tuple, draw_key):
        distribution = site.distribution
        if not site.batch_shape:  # a native NumPyro site
            if site.address in self.observed:
                value = validation.check_constraint(distribution, given[0])
                return numpyro.sample(site.address, distribution, obs=value), {}, None
            return numpyro.sample(site.address, distribution), {}, None
        self.stacked = True
        if given[1] is not None:  # a stacked latent whose support changes along the stack
            transform = site_transform(site.address, distribution)
            value = transform(given[1])
            log_det = jnp.sum(transform.log_abs_det_jacobian(given[1], value))
            return value, {"score": jnp.sum(distribution.log_prob(value)), "log_det": log_det}, None
        value = given[0]
        if site.address in self.observed:
            value = validation.check_constraint(distribution, value)
            return value, {"score": validation.site_log_density(distribution, value)}, None
        if getattr(distribution.support, "is_discrete", False):
            raise InferenceError(
                "'{address}' is a discrete latent choice inside a combinator; NUTS moves continuous choices "
                "only. Observe it (pass its value in obs).",
                address=site.address,
            )
        return value, {"score": jnp.sum(distribution.log_prob(value))}, None

    def factor(self, log_weight, scope: Site):
        if not scope.batch_shape:
            numpyro.factor(join_address(scope.address, f"_factor_{self.factors}"), log_weight)
            self.factors += 1
            return {}
        self.stacked = True
        return {"score": log_weight}


def as_numpyro(model: GenerativeFunction, obs: Mapping | ChoiceMap | None = None) -> Callable[..., Any]:
    """A NumPyro model function ``numpyro_model(*args)`` equivalent to ``model`` given ``obs``.

    Args:
      model: any generative function (sub-models and combinators nest; sites are
        named by full address).
      obs: observed choices, by address; validated (shape, dtype, support) when
        NumPyro first runs the function, with the usual ``ppl.errors``.

    Returns:
      A function of the model's arguments that returns the model's return value,
      for ``numpyro.infer.NUTS``, ``SVI``, ``Predictive``, ``initialize_model``.
    """
    obs = as_choice_map(obs)
    observed = frozenset(obs.addresses())

    def numpyro_model(*args: Any) -> Any:
        sites = describe_sites(model, obs, args)  # checks obs; cached per argument shapes
        stacked = {}
        for address, site in sites.items():
            if not site.batch_shape or site.observed:
                continue
            if site.discrete:
                raise InferenceError(
                    "'{address}' is a discrete latent choice inside a combinator; NUTS moves continuous "
                    "choices only. Observe it (pass its value in obs).",
                    model=model.name, address=address,
                )
            stacked[address] = site
        values, u = {}, {}
        for address, site in stacked.items():
            if site.support is not None:
                values[address] = numpyro.sample(address, ImproperUniform(site.support, (), site.shape))
            else:
                u[address] = numpyro.sample(join_address(address, UNCONSTRAINED),
                                            ImproperUniform(constraints.real, (), site.unconstrained_shape))
        interpreter = _NumPyroSites(obs.merge(ChoiceMap(values)), ChoiceMap(u), observed)
        run = top_level(model, lambda: interpret(model, interpreter, None, tuple(args)))
        check_visited(model, obs, run.choices, "as_numpyro")
        for address in u:
            numpyro.deterministic(address, run.choices[address])
        if interpreter.stacked:
            numpyro.factor("ppl_stacked", run.totals["score"] + run.totals["log_det"])
        return run.retval

    numpyro_model.__name__ = f"{model.name}_numpyro"
    numpyro_model.__doc__ = f"NumPyro version of the ppl model '{model.name}' (ppl.as_numpyro)."
    return numpyro_model
