"""A model's sites, and its continuous choices in unconstrained space (for MAP, Laplace, MALA, NUTS).

Gradient-based inference moves continuous choices in an unconstrained space.
For a choice ``x`` at an address whose distribution has support ``S``,
numpyro's ``biject_to(S)`` gives a bijection ``T: R^k -> S`` and we work with
``u = T^{-1}(x)``:

=====================  ==========================================================
support                ``T`` (from numpyro)
=====================  ==========================================================
``real``               identity
``positive``           ``exp``
``interval(a, b)``     ``a + (b - a) * sigmoid(u)``
``simplex``            stick-breaking (``K`` values from ``K - 1`` reals)
=====================  ==========================================================

Everything here runs the model under an interpreter of :mod:`ppl.interpreters`,
so it works on every generative function, compositions included: a choice
inside ``ppl.unfold`` is stacked along time and its ``u`` is too, a choice
inside ``ppl.many`` along copies, and so on.

- :func:`describe_sites` runs ``generate(obs)`` abstractly and says what every
  site is (:class:`~ppl.interpreters.SiteInfo`); cached per model, observed
  addresses and argument shapes.
- :func:`unconstrain` maps values to ``u``.
- :func:`log_density` is **one** run of the model at ``x = T(u)``: it returns
  ``log p(x)`` (plus ``log |det dT/du|`` with ``jacobian=True``, the density of
  ``u``), the choices and each selected site's activity.

Example::

    >>> import jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> from ppl.infer.unconstrained import log_density, unconstrain
    >>> @ppl.model
    ... def scale_model():
    ...     return ppl.sample("s", dist.HalfNormal(1.0))
    >>> choices = ppl.ChoiceMap({"s": 2.0})
    >>> u = unconstrain(scale_model, choices, ("s",), ())
    >>> round(float(u["s"]), 4)            # log 2
    0.6931
    >>> density = log_density(scale_model, choices, u, (), jacobian=True)
    >>> round(float(density.choices["s"]), 4)
    2.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ppl.choices import ChoiceMap, as_choice_map
from ppl.context import interpret
from ppl.errors import InferenceError, UnknownAddressError, did_you_mean
from ppl.infer.arguments import is_array
from ppl.interface import GenerativeFunction, check_visited, top_level
from ppl.interpreters import Describe, SiteInfo, Unconstrain, Unconstrained

__all__ = ["SiteInfo", "describe_sites", "latent_continuous", "unconstrain", "log_density", "Density",
           "check_selected"]


def describe_sites(model: GenerativeFunction, obs: ChoiceMap, args: Sequence) -> dict[str, SiteInfo]:
    """``{address: SiteInfo}`` for every choice of ``model`` run with ``obs`` constrained (in visiting order).

    The run is abstract (``jax.eval_shape``: nothing is sampled or compiled);
    concrete observations are checked eagerly. Cached per (model, observed
    addresses and their shapes, argument shapes and static values).
    """
    obs = as_choice_map(obs)
    try:
        key = (model, _signature(obs), _signature(tuple(args)))
        hash(key)
    except TypeError:
        key = None
    if key is not None and key in _SITES:
        return _SITES[key]
    describe = Describe(obs)

    def run(run_key):
        check_visited(model, obs, interpret(model, describe, run_key, tuple(args)).choices, "inference")

    with jax.ensure_compile_time_eval():  # supports such as arange(K) stay concrete
        top_level(model, lambda: jax.eval_shape(run, jax.random.key(0)))
    sites = dict(describe.sites)
    if key is not None:
        if len(_SITES) >= 256:
            _SITES.pop(next(iter(_SITES)))
        _SITES[key] = sites
    return sites


_SITES: dict = {}


def _signature(tree) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((np.shape(leaf), jnp.result_type(leaf)) if is_array(leaf) or isinstance(leaf, jax.core.Tracer)
                          else ("static", leaf) for leaf in leaves)


def latent_continuous(sites: Mapping[str, SiteInfo]) -> tuple[str, ...]:
    """The addresses of the continuous choices that are not observed (sorted)."""
    return tuple(sorted(a for a, s in sites.items() if not s.observed and not s.discrete))


def check_selected(selected: Sequence[str], sites: Mapping[str, SiteInfo], model: GenerativeFunction) -> None:
    """``UnknownAddressError`` for a selected address the model does not visit; ``InferenceError`` for a discrete one."""
    for address in selected:
        site = sites.get(address)
        if site is None:
            inside = [a for a in sites if a.startswith(address + "/")]
            hint = (f" It holds the choices {inside[:4]}: select those." if inside else
                    did_you_mean(address, list(sites)))
            raise UnknownAddressError(
                f"'{address}' is not a choice of the model.{hint} Select addresses of continuous choices "
                "the model samples from a distribution.",
                model=model.name, address=address,
            )
        if site.discrete:
            raise InferenceError(
                "'{address}' is discrete; gradient-based inference moves continuous choices only. Fix it "
                "(pass its value in obs) or leave it out of the selected addresses.",
                model=model.name, address=address,
            )
        if site.unconstrained_shape is None:
            raise InferenceError(
                "'{address}' has a support that numpyro cannot map to unconstrained space (no biject_to). "
                "Reparametrise the model or fix this choice.",
                model=model.name, address=address,
            )


def unconstrain(model: GenerativeFunction, choices: ChoiceMap, addresses: Sequence[str], args: Sequence, *,
                standardise: bool = False) -> ChoiceMap:
    """``u = T^{-1}(x)`` at ``addresses`` of the complete ``choices``, as a choice map (stacked like the choices).

    ``standardise=True``: Normal choices use ``T(u) = loc + scale * u`` (their prior
    is ``N(0, 1)`` in ``u``), every other choice ``biject_to(support)``.
    """
    interpreter = Unconstrain(as_choice_map(choices), addresses, standardise)
    return top_level(model, lambda: interpret(model, interpreter, None, tuple(args))).records


class Density(NamedTuple):
    """What :func:`log_density` returns.

    Attributes:
      log_density: ``log p(x)`` over every choice, plus ``log |det dT/du|`` when
        asked (``jacobian=True``): then it is the density of ``u``.
      log_det: ``log |det dT/du|`` alone.
      active_log_density: as ``log_density``, over the active choices only (the
        inactive ones integrate to one; see :mod:`ppl.interface`).
      choices: the choices, with ``x = T(u)`` at the selected addresses.
      retval: the model's return value.
      active: per selected address, whether the choice is active (boolean, the
        shape of its leading stacking axes; see :mod:`ppl.interface`).
    """

    log_density: jax.Array
    log_det: jax.Array
    active_log_density: jax.Array
    choices: ChoiceMap
    retval: Any
    active: ChoiceMap


def log_density(model: GenerativeFunction, values: ChoiceMap, u: Mapping | ChoiceMap, args: Sequence, *,
                jacobian: bool, standardise: bool = False, tempering: tuple | None = None) -> Density:
    """One run of ``model`` at ``x = T(u)`` for the addresses of ``u``, the other choices from ``values``.

    Differentiable in ``u``. ``values`` needs every choice that is not in ``u``.
    ``standardise``: as for :func:`unconstrain`. ``tempering=(addresses, beta)``
    scales those choices' densities by ``beta`` (``beta = 0``: the density of the
    other choices alone, e.g. the prior of the latents).
    """
    u = as_choice_map(u)
    interpreter = Unconstrained(as_choice_map(values), u, u.addresses(), standardise)
    if tempering is not None:
        beta = tempering[1]
        tempering = (frozenset(tempering[0]), beta if isinstance(beta, (int, float)) else jnp.asarray(beta))
    run = top_level(model, lambda: interpret(model, interpreter, None, tuple(args), tempering=tempering))
    totals = run.totals
    total = totals["score"] + totals["log_det"] if jacobian else totals["score"]
    active = totals["active_score"] + totals["active_log_det"] if jacobian else totals["active_score"]
    return Density(total, totals["log_det"], active, run.choices, run.retval, run.records)
