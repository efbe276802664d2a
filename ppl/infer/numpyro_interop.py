"""Run NumPyro's inference (NUTS, SVI, Predictive) on a ppl model.

``as_numpyro(model, obs)`` translates a ``@ppl.model`` into a NumPyro model
function: every ``ppl.sample(address, distribution)`` becomes
``numpyro.sample(address, distribution)`` with the full slash-joined address as
the site name (``"b/delta"``), observed when ``obs`` holds a value there; every
``ppl.factor(w)`` becomes ``numpyro.factor``. The densities are the same numpyro
distributions, so NumPyro's log joint is ppl's ``assess``. NumPyro moves the
latent sites in its own unconstrained space (``biject_to``), exactly as for a
native NumPyro model.

Samples come back keyed by address, so ``ppl.ChoiceMap(samples)`` turns them into
a (stacked) choice map.

Limitations: sub-models must be ``@ppl.model``\\ s (a combinator with its own
``run`` raises ``InferenceError``, since its distributions are hidden); NUTS
needs every discrete latent observed (in ``obs``), as for any NumPyro model.

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

import jax
import numpyro
from numpyro.distributions import Distribution

from ppl import validation
from ppl.choices import ChoiceMap, as_choice_map, join_address
from ppl.errors import PPLError, UnknownAddressError, did_you_mean
from ppl.infer.unconstrained import walk
from ppl.model import GenerativeFunction

__all__ = ["as_numpyro"]


def as_numpyro(model: GenerativeFunction, obs: Mapping | ChoiceMap | None = None) -> Callable[..., Any]:
    """A NumPyro model function ``numpyro_model(*args)`` equivalent to ``model`` given ``obs``.

    Args:
      model: a ``@ppl.model`` (sub-models nest; their sites are named by full address).
      obs: observed choices, by address; validated (shape, dtype, support) when
        NumPyro first runs the function, with the usual ``ppl.errors``.

    Returns:
      A function of the model's arguments that returns the model's return value,
      for ``numpyro.infer.NUTS``, ``SVI``, ``Predictive``, ``initialize_model``.
    """
    obs = as_choice_map(obs)
    observed = obs.addresses()

    def numpyro_model(*args: Any) -> Any:
        visited: list[str] = []
        factors = [0]

        def on_site(address: str, distribution: Distribution) -> Any:
            visited.append(address)
            if not obs.has_value(address):
                return numpyro.sample(address, distribution)
            try:
                value = validation.check_constraint(distribution, obs[address])
            except PPLError as err:
                err.address = address
                raise
            return numpyro.sample(address, distribution, obs=value)

        def on_factor(prefix: str, log_weight: jax.Array) -> None:
            numpyro.factor(join_address(prefix, f"_factor_{factors[0]}"), log_weight)
            factors[0] += 1

        retval = walk(model, args, on_site, on_factor=on_factor)
        for address in observed:
            if address not in visited:
                raise UnknownAddressError(
                    f"as_numpyro was given an observation at '{address}', but the model never visits "
                    f"that address.{did_you_mean(address, visited)} Fix or remove the misspelled key.",
                    model=model.name,
                    address=address,
                )
        return retval

    numpyro_model.__name__ = f"{model.name}_numpyro"
    numpyro_model.__doc__ = f"NumPyro version of the ppl model '{model.name}' (ppl.as_numpyro)."
    return numpyro_model
