"""The interpreters: what happens at a choice, for each way of running a generative function.

Each is an :class:`~ppl.context.Interpreter`; :func:`ppl.context.interpret`
runs any generative function under any of them (see :mod:`ppl.interface`).

=======================  ===============================================  =========================
interpreter              at a choice ``x ~ p`` (value given: ``c``)        totals
=======================  ===============================================  =========================
:class:`Generate`        ``c`` if given, else a draw from ``p``            ``score = sum log p(x)``,
                         (``complete=True``: ``c`` must be given)          ``weight = sum over given``
:class:`Unconstrained`   at a selected site ``x = T(u)``, else ``c``       ``score = sum log p(x)``,
                         (``T = biject_to(support)``)                      ``log_det = sum log|dT/du|``
:class:`Unconstrain`     ``c``; records ``u = T^{-1}(c)`` when selected    (none)
:class:`Describe`        as ``Generate``; records what the site is         as ``Generate``
:class:`Regenerate`      a draw from ``p`` if selected, else ``c``         ``score``, ``selected``
:class:`SelectedDensity` ``c``                                             ``selected = sum over the
                                                                           selection of log p(c)``
=======================  ===============================================  =========================

``simulate``, ``assess``, ``generate`` and ``update`` are all :class:`Generate`
(their weight formulas are in :mod:`ppl.interface`). :class:`Unconstrained`
serves gradient MAP, Laplace, MALA and NUTS through NumPyro: one run of the
model gives ``log p(T(u))`` and the log-determinant, differentiable in ``u``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution
from numpyro.distributions.transforms import Transform, biject_to

from ppl import validation
from ppl.choices import ChoiceMap
from ppl.context import Interpreter, Site
from ppl.errors import InferenceError, MissingChoiceError

__all__ = ["Generate", "Unconstrained", "Unconstrain", "Describe", "Regenerate", "SelectedDensity", "SiteInfo",
           "site_transform", "standardising_transform", "unconstraining_transform"]


def _missing(address: str) -> MissingChoiceError:
    return MissingChoiceError(
        "this needs a value for every random choice, and the choice map has none here. Add it "
        "(e.g. {'{address}': value}), or use generate(key, choices, ...) to sample the missing choices."
    )


class Generate(Interpreter):
    """Constrained choices take their given value; the others are drawn from their prior.

    ``score`` sums ``log p`` over every choice, ``weight`` over the constrained
    ones. ``complete=True`` (``assess``): every choice must be given.
    """

    accumulators = ("score", "weight")

    def __init__(self, constraints: ChoiceMap, complete: bool = False):
        super().__init__((constraints,))
        self.complete = complete

    def choose(self, site: Site, given: tuple, draw_key: Callable):
        distribution, value = site.distribution, given[0]
        if value is not None:
            value = validation.check_constraint(distribution, value)
            log_density = validation.site_log_density(distribution, value)
            validation.check_log_density(distribution, log_density)
            return value, {"score": log_density, "weight": log_density}, None
        if self.complete:
            raise _missing(site.address)
        value = distribution.sample(draw_key())
        log_density = jnp.sum(distribution.log_prob(value))
        validation.check_log_density(distribution, log_density)
        return value, {"score": log_density}, None

    def factor(self, log_weight, scope):
        # factors count as observed evidence: they enter the generate/update weights too
        return {"score": log_weight, "weight": log_weight}


def site_transform(address: str, distribution: Distribution) -> Transform:
    """``biject_to(distribution.support)``, or an ``InferenceError`` saying why there is none."""
    support = distribution.support
    if getattr(support, "is_discrete", False):
        raise InferenceError(
            f"'{{address}}' is discrete ({validation.describe(distribution)}); gradient-based inference "
            "moves continuous choices only. Fix it (pass its value in obs) or leave it out of the selected "
            "addresses.",
            address=address,
        )
    try:
        return biject_to(support)
    except NotImplementedError:
        raise InferenceError(
            f"'{{address}}' has support {support}, which numpyro cannot map to unconstrained space (no "
            "biject_to). Reparametrise the model or fix this choice.",
            address=address,
        ) from None


def standardising_transform(distribution: Distribution) -> Transform | None:
    """``u -> loc + scale * u`` for a Normal (also ``.expand``-ed or ``.to_event``-ed), else ``None``.

    The *standardised* coordinates of a Normal choice: its prior is ``N(0, 1)`` in
    ``u`` whatever its location and scale (the non-centred parametrisation), so one
    optimizer step size suits choices of very different scales.
    """
    from numpyro.distributions import Independent, Normal
    from numpyro.distributions.distribution import ExpandedDistribution
    from numpyro.distributions.transforms import AffineTransform

    leaf = distribution
    while isinstance(leaf, (Independent, ExpandedDistribution)):
        leaf = leaf.base_dist
    if type(leaf) is not Normal:
        return None
    shape = tuple(distribution.batch_shape) + tuple(distribution.event_shape)
    return AffineTransform(jnp.broadcast_to(leaf.loc, shape), jnp.broadcast_to(leaf.scale, shape))


def unconstraining_transform(address: str, distribution: Distribution, standardise: bool) -> Transform:
    """The site's ``T``: :func:`standardising_transform` when asked and possible, else :func:`site_transform`."""
    if standardise:
        transform = standardising_transform(distribution)
        if transform is not None:
            return transform
    return site_transform(address, distribution)


def _active_flag(site: Site) -> jax.Array:
    return jnp.asarray(True) if site.active is None else jnp.asarray(site.active)


class Unconstrained(Interpreter):
    """The selected continuous choices from unconstrained values: ``x = T(u)``; the others as given.

    Inputs: ``values`` (every choice not selected) and ``u`` (the selected
    ones, in ``T``'s input shape). Totals: ``score = log p(x)`` over every
    choice and ``log_det = sum log |det dT/du|``, so the density of ``u`` is
    ``score + log_det``; ``active_score`` and ``active_log_det`` are the same
    sums over the active choices only (the inactive ones integrate to one: see
    :mod:`ppl.context`). Records each selected site's activity flag.
    Selected values lie in their supports by construction, so their densities
    are not masked.
    """

    accumulators = ("score", "log_det", "active_score", "active_log_det")
    complete = True
    records = True

    def __init__(self, values: ChoiceMap, u: ChoiceMap, selected, standardise: bool = False):
        super().__init__((values, u))
        self.selected = frozenset(selected)
        self.standardise = standardise

    def choose(self, site: Site, given: tuple, draw_key: Callable):
        distribution = site.distribution
        if site.address in self.selected:
            u = given[1]
            if u is None:
                raise _missing(site.address)
            transform = unconstraining_transform(site.address, distribution, self.standardise)
            u = jnp.asarray(u)
            value = transform(u)
            log_det = jnp.sum(transform.log_abs_det_jacobian(u, value))
            log_density = jnp.sum(distribution.log_prob(value))
            return value, _with_active(site, {"score": log_density, "log_det": log_det}), _active_flag(site)
        value = given[0]
        if value is None:
            raise _missing(site.address)
        with jax.ensure_compile_time_eval():  # concrete observations are checked even while tracing
            value = validation.check_constraint(distribution, value)
        return value, _with_active(site, {"score": validation.site_log_density(distribution, value)}), None

    def factor(self, log_weight, scope):
        return _with_active(scope, {"score": log_weight})


def _with_active(site: Site, contributions: dict) -> dict:
    """``contributions`` plus their ``active_*`` copies, zero where the site is inactive."""
    if site.active is None:
        masked = contributions
    else:
        masked = {name: jnp.where(site.active, value, 0.0) for name, value in contributions.items()}
    return {**contributions, **{f"active_{name}": value for name, value in masked.items()}}


class Unconstrain(Interpreter):
    """Reads every choice from ``values``; records ``u = T^{-1}(x)`` at the selected sites."""

    accumulators = ()
    complete = True
    records = True

    def __init__(self, values: ChoiceMap, selected, standardise: bool = False):
        super().__init__((values,))
        self.selected = frozenset(selected)
        self.standardise = standardise

    def choose(self, site: Site, given: tuple, draw_key: Callable):
        value = given[0]
        if value is None:
            raise _missing(site.address)
        value = validation.check_constraint(site.distribution, value)
        if site.address in self.selected:
            return value, {}, unconstraining_transform(site.address, site.distribution, self.standardise).inv(value)
        return value, {}, None

    def factor(self, log_weight, scope):
        return {}


class Regenerate(Interpreter):
    """The selected choices redrawn from their (current) prior; the others read from the trace.

    ``score`` sums ``log p`` over every choice; ``selected`` over the selected
    ones (the proposal's ``log q``).
    """

    accumulators = ("score", "selected")

    def __init__(self, previous: ChoiceMap, selection: frozenset):
        super().__init__((previous,))
        self.selection = selection

    def choose(self, site: Site, given: tuple, draw_key):
        distribution = site.distribution
        if site.address in self.selection:
            value = distribution.sample(draw_key())
            log_density = jnp.sum(distribution.log_prob(value))
            return value, {"score": log_density, "selected": log_density}, None
        if given[0] is None:
            raise MissingChoiceError("the trace has no value for this choice.")
        log_density = jnp.sum(distribution.log_prob(given[0]))
        return given[0], {"score": log_density}, None


class SelectedDensity(Interpreter):
    """Reads every choice; sums ``log p`` over the selected ones (the reverse move's ``log q``)."""

    accumulators = ("selected",)
    complete = True

    def __init__(self, previous: ChoiceMap, selection: frozenset):
        super().__init__((previous,))
        self.selection = selection

    def choose(self, site: Site, given: tuple, draw_key):
        if given[0] is None:
            raise MissingChoiceError("the trace has no value for this choice.")
        if site.address in self.selection:
            return given[0], {"selected": jnp.sum(site.distribution.log_prob(given[0]))}, None
        return given[0], {}, None

    def factor(self, log_weight, scope):
        return {}


class SiteInfo(NamedTuple):
    """What one choice is (static facts, from :class:`Describe`).

    Attributes:
      address: its full address.
      shape, dtype: of its value in the trace (``batch_shape`` leading).
      batch_shape: axes added by enclosing scans/vmaps.
      discrete: whether its support is discrete.
      observed: whether the run was given its value.
      unconstrained_shape: shape of ``u = T^{-1}(x)`` in the trace (``None`` for
        discrete sites or supports without ``biject_to``).
      support: the support, when it is concrete (else ``None``).
      distribution: the distribution itself at the top level (``batch_shape ==
        ()``), else ``None`` (it lives inside a scan or vmap).
    """

    address: str
    shape: tuple[int, ...]
    dtype: Any
    batch_shape: tuple[int, ...]
    discrete: bool
    observed: bool
    unconstrained_shape: tuple[int, ...] | None
    support: Any
    distribution: Distribution | None


def _is_concrete_tree(tree) -> bool:
    return all(validation.is_concrete(leaf) for leaf in jax.tree_util.tree_leaves(tree))


class Describe(Generate):
    """Runs as :class:`Generate` and records a :class:`SiteInfo` per choice in ``sites`` (in visiting order)."""

    def __init__(self, constraints: ChoiceMap, complete: bool = False):
        super().__init__(constraints, complete)
        self.sites: dict[str, SiteInfo] = {}
        self.factors: list[tuple[int, ...]] = []

    def choose(self, site: Site, given: tuple, draw_key: Callable):
        value, contributions, record = super().choose(site, given, draw_key)
        distribution = site.distribution
        discrete = bool(getattr(distribution.support, "is_discrete", False))
        unconstrained = None
        if not discrete:
            try:
                transform = biject_to(distribution.support)
                event = transform.inverse_shape(tuple(distribution.event_shape))
                unconstrained = site.batch_shape + tuple(distribution.batch_shape) + tuple(event)
            except NotImplementedError:
                unconstrained = None
        support = distribution.support if _is_concrete_tree(distribution.support) else None
        self.sites[site.address] = SiteInfo(
            site.address, site.batch_shape + tuple(np.shape(value)), jnp.result_type(value), site.batch_shape,
            discrete, given[0] is not None, unconstrained, support,
            distribution if not site.batch_shape else None,
        )
        return value, contributions, record
