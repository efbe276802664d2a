"""Gradient MAP: the most probable continuous latents, by optax over many restarts.

``map(key, model, obs, *args)`` maximises the log joint ``log p(x, obs)`` over
every continuous latent choice ``x`` (every choice not in ``obs``) of any
generative function, compositions included (choices inside ``ppl.unfold``,
``ppl.either``, ``ppl.many``, ``ppl.Space`` models, ...), moving each in
unconstrained space ``u = T^{-1}(x)`` with ``T = biject_to(support)``
(:mod:`ppl.infer.unconstrained`; one run of the model per gradient step). The objective is ``log p(T(u), obs)`` *without*
the log-determinant of ``T``: its maximiser is ``T^{-1}`` of the mode of
``p(x | obs)`` in the choices' own space, which is what MAP means. (Adding the
Jacobian would give the mode of the density of ``u``, a different point.)

- **Restarts**, vmapped: each starts from a draw of the prior
  (``model.generate(key, obs)``; or, with ``init="uniform"``, from
  ``u ~ Uniform(-2, 2)`` elementwise in unconstrained space, NumPyro's
  ``init_to_uniform``) and runs ``steps`` optimizer steps in one ``lax.scan``;
  the best final point wins. ``init="uniform"`` compiles
  faster when the prior's samplers are rejection samplers (Gamma, Beta,
  Dirichlet, Binomial) and ignores heavy prior tails.
- **Discrete latents** are fixed by the caller (put them in ``obs``) or, when
  every one has a small enumerable support (``enumerate_support``, e.g.
  Bernoulli, Categorical) and there are at most ``max_configurations``
  combinations, enumerated: every combination gets ``restarts`` restarts.
- **Non-finite values** never reach the answer: a restart whose final log
  joint, or whose parameters (after a NaN gradient or optimizer state), are
  not finite *fails*: ``restarts.failed`` is True, its ``log_joint`` is
  ``-inf`` and it reports its starting point. A NaN log joint at an
  intermediate step with a finite gradient is harmless (``history=True``
  records it). When every restart fails, ``map`` raises
  :class:`~ppl.errors.InferenceError`. (No per-step guard: it costs about a
  quarter of a small model's run time on a CPU, and a restart that hits a NaN
  gradient is lost either way.)
- **Compiled once** per (model, obs structure and shapes, non-array arguments,
  optimizer object, restarts, steps): reuse the same optimizer object across
  calls (the default is one shared object) to reuse the compiled program.

Example::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> @ppl.model
    ... def rate_model(n):
    ...     rate = ppl.sample("rate", dist.Gamma(2.0, 1.0))
    ...     ppl.sample("counts", dist.Poisson(rate).expand([n]))
    >>> obs = {"counts": jnp.array([3, 4, 2, 5])}
    >>> result = ppl.infer.map(jax.random.key(0), rate_model, obs, 4)
    >>> round(float(result.trace.choices["rate"]), 3)   # mode of Gamma(2 + 14, 1 + 4)
    3.0
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from numpyro.distributions import constraints
from numpyro.distributions.distribution import MaskedDistribution

from ppl import validation
from ppl.choices import ChoiceMap, as_choice_map
from ppl.errors import InferenceError, PPLError
from ppl.infer.arguments import is_array, join_args, split_args
from ppl.infer.unconstrained import SiteInfo, describe_sites, latent_continuous, log_density, unconstrain
from ppl.interface import GenerativeFunction, Trace
from ppl.validation import describe, is_concrete

__all__ = ["map", "MapResult", "MapRestarts"]

DEFAULT_OPTIMIZER = optax.adam(0.05)


class MapRestarts(NamedTuple):
    """Per-restart results; every leaf has a leading ``(n,)`` axis.

    ``n = restarts * configurations`` (configurations of enumerated discrete
    latents, 1 when none), configuration-major: restart ``i`` used
    configuration ``i // restarts``.

    Attributes:
      traces: each restart's final point (``traces.score`` is its log joint).
      log_joint: ``(n,)`` ``log p(x, obs)`` at that point (``-inf`` for a failed
        restart).
      history: ``(n, steps)`` log joint before each optimizer step, or ``None``
        unless ``map(..., history=True)``.
      failed: ``(n,)`` True where the restart's log joint, gradient or
        optimizer state became non-finite; such a restart reports its starting
        point and ``log_joint = -inf``.
    """

    traces: Trace
    log_joint: jax.Array
    history: jax.Array | None
    failed: jax.Array


class MapResult(NamedTuple):
    """The result of :func:`map`: the best ``trace``, its ``log_joint``, and all ``restarts``."""

    trace: Trace
    log_joint: jax.Array
    restarts: MapRestarts


def map(  # noqa: A001 - the algorithm's name; ppl.infer.map
    key: jax.Array,
    model: GenerativeFunction,
    obs: Mapping | ChoiceMap | None = None,
    *args: Any,
    restarts: int = 16,
    steps: int = 500,
    optimizer: optax.GradientTransformation = DEFAULT_OPTIMIZER,
    max_configurations: int = 1024,
    init: str = "prior",
    history: bool = False,
) -> MapResult:
    """Maximise ``log p(x, obs)`` over the continuous latents of ``model``.

    Args:
      key: PRNG key (initialisations).
      model: any generative function (a ``@ppl.model``, a combinator, a
        composition of them).
      obs: observed (and fixed discrete) choices.
      *args: the model's arguments.
      restarts: independent optimisations (per discrete configuration), vmapped.
      steps: optimizer steps per restart.
      optimizer: an optax optimizer; it minimises ``-log p``.
      max_configurations: the most combinations of unobserved discrete latents
        to enumerate before raising ``InferenceError``.
      init: ``"prior"`` (draws from the prior) or ``"uniform"`` (``Uniform(-2, 2)``
        in unconstrained space).
      history: record every restart's log joint at every step in
        ``restarts.history`` (off by default: writing it out costs about 15% of
        a small model's run time on a CPU).

    Returns:
      ``MapResult(trace, log_joint, restarts)``; ``trace.score == log_joint``.
    """
    if not isinstance(restarts, int) or restarts < 1 or not isinstance(steps, int) or steps < 0:
        raise InferenceError(f"map needs integer restarts >= 1 and steps >= 0, got {restarts!r}, {steps!r}.")
    if init not in ("prior", "uniform"):
        raise InferenceError(f"map's init is 'prior' or 'uniform', got {init!r}.")
    validation.check_key(key, "map", getattr(model, "name", None))
    obs = as_choice_map(obs)
    plan = _plan(model, obs, tuple(args), max_configurations)
    dynamic, static = split_args(tuple(args), model)
    placeholder = plan.latent_zeros.merge(obs) if init == "uniform" else ChoiceMap()
    restart_results, best, any_finite = _optimise(
        key, obs, placeholder, dynamic, plan.configurations, model, plan.continuous, static, optimizer, restarts, steps, init,
        bool(history),
    )
    if is_concrete(any_finite) and not bool(any_finite):
        raise InferenceError(
            f"every one of the {restart_results[1].shape[0]} restarts of map failed: its log joint, "
            "gradient or optimizer state became non-finite (NaN or inf). The observations may be "
            "impossible under the model, its density may overflow, or the learning rate may be too "
            "large; check obs and the model's parameters, or pass a smaller optimizer step size.",
            model=model.name,
        )
    args = tuple(args)
    choices, log_joint, retval, log_joints, failed = restart_results
    best_choices, best_log_joint, best_retval = best
    return MapResult(
        Trace(best_choices, best_log_joint, best_retval, args),
        best_log_joint,
        MapRestarts(Trace(choices, log_joint, retval, args), log_joint, log_joints, failed),
    )


class _Plan(NamedTuple):
    """What ``map`` learns from one abstract run of the model, reused while shapes match."""

    continuous: tuple[str, ...]  # continuous latent addresses, sorted
    configurations: dict[str, np.ndarray]  # discrete latents' value combinations (C, *shape)
    latent_zeros: ChoiceMap  # zeros of every choice's shape and dtype (obs merged in per call)
    observed_sites: tuple[tuple[str, Any], ...] | None  # (address, distribution) to re-check obs; None: re-plan


_PLANS: dict[Any, _Plan] = {}
_PLAN_CACHE_SIZE = 128


def _plan(model, obs: ChoiceMap, args: tuple, limit: int) -> _Plan:
    """Discover the latents (cached per model, obs structure and shapes, arguments) and check obs.

    The first call with a given signature runs the model abstractly
    (``jax.eval_shape``: no sampler is executed or compiled), which checks the
    concrete observations eagerly. Later calls re-check only the observed values
    against the recorded distributions (shape, dtype, NaN, support), which is
    the same check without tracing the model again.
    """
    try:
        key = _plan_key(model, obs, args, limit)
        cached = _PLANS.get(key)
    except TypeError:  # an unhashable non-array argument: no caching
        key, cached = None, None
    if cached is not None and cached.observed_sites is not None:
        _check_observations(model, obs, cached.observed_sites)
        return cached
    plan = _discover(model, obs, args, limit)
    if key is not None:
        if len(_PLANS) >= _PLAN_CACHE_SIZE:
            _PLANS.pop(next(iter(_PLANS)))
        _PLANS[key] = plan
    return plan


def _plan_key(model, obs: ChoiceMap, args: tuple, limit: int):
    def signature(tree):
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        return treedef, tuple(
            (np.shape(leaf), jnp.result_type(leaf)) if is_array(leaf) else ("static", leaf) for leaf in leaves
        )

    key = (model, signature(obs), signature(args), limit)
    hash(key)
    return key


def _check_observations(model, obs: ChoiceMap, observed_sites) -> None:
    """The value checks of ``check_constraint`` for each observed value (shapes and
    dtypes are part of the plan's key, so they were checked when it was made).

    Finite floats on a real support need nothing more; any other value gets the
    full check, evaluated on the host CPU (an accelerator would pay a launch and a
    synchronisation for each little check).
    """
    for address, distribution in observed_sites:
        value = obs[address]
        if not is_concrete(value):  # inside the caller's jit: checked where it is concrete
            continue
        value = np.asarray(value)
        if value.dtype.kind == "f" and _real_support(distribution.support) and np.isfinite(value).all():
            continue
        with jax.ensure_compile_time_eval(), _on_host():
            try:
                validation.check_constraint(distribution, value)
            except PPLError as err:
                err.address, err.model = address, model.name
                raise


def _real_support(support) -> bool:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.real


def _on_host():
    try:
        return jax.default_device(jax.devices("cpu")[0])
    except RuntimeError:  # no CPU backend (JAX_PLATFORMS without cpu)
        return contextlib.nullcontext()


def _reusable(distribution) -> bool:
    """Can ``check_constraint`` run on this (abstractly built) distribution later?"""
    if distribution is None:
        return False
    leaves = jax.tree_util.tree_leaves(distribution.support)
    if isinstance(distribution, MaskedDistribution) and not isinstance(distribution._mask, bool):
        leaves.append(distribution._mask)
    return all(is_concrete(leaf) for leaf in leaves)


def _discover(model, obs: ChoiceMap, args: tuple, limit: int) -> _Plan:
    sites = describe_sites(model, obs, args)  # checks the (concrete) obs eagerly
    continuous = latent_continuous(sites)
    discrete = {a: s for a, s in sites.items() if not s.observed and s.discrete}
    unsupported = [a for a in continuous if sites[a].unconstrained_shape is None]
    if unsupported:
        raise InferenceError(
            "'{address}' has a support that numpyro cannot map to unconstrained space (no biject_to); "
            "map cannot move it. Fix it by passing its value in obs, or reparametrise the model.",
            model=model.name, address=unsupported[0],
        )
    with jax.ensure_compile_time_eval():  # supports such as arange(K) stay concrete
        configurations = _enumerate(discrete, limit, model)
    checks = tuple((a, sites[a].distribution) for a in obs.addresses() if a in sites)
    reusable = len(checks) == len(obs.addresses()) and all(_reusable(d) for _, d in checks)
    zeros = ChoiceMap({a: np.zeros(s.shape, s.dtype) for a, s in sites.items()})
    return _Plan(continuous, configurations, zeros, checks if reusable else None)


def _enumerate(discrete: dict[str, SiteInfo], limit: int, model) -> dict[str, jax.Array]:
    """``{address: values (C, *shape)}``: every combination of the discrete latents' values."""
    if not discrete:
        return {}
    per_site: dict[str, np.ndarray] = {}
    for address, site in sorted(discrete.items()):
        distribution = site.distribution
        if distribution is None or not distribution.has_enumerate_support:
            what = ("stacked along the axes of a scan or vmap" if distribution is None
                    else f"{describe(distribution)}")
            raise InferenceError(
                f"'{{address}}' is a discrete latent ({what}) that map cannot enumerate. map "
                "optimises continuous latents: fix it by passing its value in obs.",
                model=model.name,
                address=address,
            )
        shape = tuple(distribution.batch_shape) + tuple(distribution.event_shape)
        support = distribution.enumerate_support(expand=False)
        if not is_concrete(support):
            raise InferenceError(
                "the support of this discrete latent depends on traced values, so map cannot "
                "enumerate it; fix it by passing its value in obs.",
                model=model.name,
                address=address,
            )
        candidates = np.asarray(support).reshape((-1,) + tuple(distribution.event_shape))
        elements = int(np.prod(distribution.batch_shape, dtype=np.int64))
        count = len(candidates) ** elements
        if count > limit:
            raise InferenceError(
                f"'{{address}}' alone has {count} value combinations, more than "
                f"max_configurations={limit}; fix it by passing its value in obs, or raise the limit.",
                model=model.name,
                address=address,
            )
        index = np.array(list(itertools.product(range(len(candidates)), repeat=elements)), dtype=np.int64)
        dtype = site.dtype
        per_site[address] = candidates[index.reshape((count,) + (elements,))].reshape((count,) + shape).astype(dtype)
    total = int(np.prod([len(v) for v in per_site.values()], dtype=np.int64))
    if total > limit:
        raise InferenceError(
            f"the discrete latents {sorted(per_site)} have {total} value combinations together, more "
            f"than max_configurations={limit}. Fix some of them in obs, or raise the limit.",
            model=model.name,
        )
    grids = np.meshgrid(*[np.arange(len(v)) for v in per_site.values()], indexing="ij")
    return {a: v[g.reshape(-1)] for (a, v), g in zip(per_site.items(), grids)}


@functools.partial(jax.jit, static_argnums=(5, 6, 7, 8, 9, 10, 11, 12))
def _optimise(
    key, obs, placeholder, dynamic, configurations, model, continuous, static, optimizer, restarts, steps, init, history
):
    args = join_args(dynamic, static)
    count = len(next(iter(configurations.values()))) if configurations else 1
    keys = jax.random.split(key, count * restarts)
    per_run = jax.tree_util.tree_map(lambda v: jnp.repeat(v, restarts, axis=0), configurations)

    def one(run_key, configuration):
        u0, base = initial_point(run_key, model, obs.merge(ChoiceMap(configuration)), placeholder.merge(ChoiceMap(configuration)),
                                 continuous, args, init)

        def loss(u):
            return -log_density(model, base, u, args, jacobian=False).log_density

        loss_and_grad = jax.value_and_grad(loss)

        def step(carry, _):
            u, state = carry
            value, grad = loss_and_grad(u)
            updates, state = optimizer.update(grad, state, u)
            return (optax.apply_updates(u, updates), state), (-value if history else None)

        (u, _), log_joints = lax.scan(step, (u0, optimizer.init(u0)), None, length=steps)
        final = log_density(model, base, u, args, jacobian=False)
        value, choices, retval = final.log_density, final.choices, final.retval
        # a restart whose log joint, gradient or optimizer state became non-finite is
        # abandoned: it reports its starting point, log joint -inf, failed=True
        failed = ~(jnp.isfinite(value) & _all_finite(u))
        start = log_density(model, base, u0, args, jacobian=False)
        keep = lambda final, first: jnp.where(failed, first, final)  # noqa: E731
        choices = jax.tree_util.tree_map(keep, choices, start.choices)
        retval = jax.tree_util.tree_map(keep, retval, start.retval)
        value = jnp.where(failed, -jnp.inf, value)
        return choices, value, retval, log_joints, failed

    choices, log_joint, retval, log_joints, failed = jax.vmap(one)(keys, per_run)
    best = jnp.argmax(log_joint)  # -inf for restarts that never reached a finite value
    pick = lambda leaf: leaf[best]  # noqa: E731
    best_result = (
        jax.tree_util.tree_map(pick, choices),
        log_joint[best],
        jax.tree_util.tree_map(pick, retval),
    )
    return (choices, log_joint, retval, log_joints, failed), best_result, jnp.any(~failed)


def initial_point(key, model, obs: ChoiceMap, placeholder: ChoiceMap, continuous: tuple[str, ...], args: tuple,
                  init: str) -> tuple[ChoiceMap, ChoiceMap]:
    """``(u0, base)``: a starting point in unconstrained space and the choices it completes.

    ``init="prior"``: a draw of ``model.generate(key, obs)``; ``"uniform"``:
    ``u ~ Uniform(-2, 2)`` elementwise (NumPyro's ``init_to_uniform``), the other
    choices from ``placeholder`` (zeros of every choice, obs merged in).
    """
    if init == "prior":
        base = model.generate(key, obs, *args).trace.choices
        return unconstrain(model, base, continuous, args), base
    shapes = unconstrain(model, placeholder, continuous, args)
    keys = dict(zip(continuous, jax.random.split(key, max(len(continuous), 1))))
    u0 = ChoiceMap({a: jax.random.uniform(keys[a], jnp.shape(shapes[a]), jnp.result_type(shapes[a]), -2.0, 2.0)
                    for a in continuous})
    return u0, placeholder


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)
