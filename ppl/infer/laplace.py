"""The Laplace approximation of the evidence, at the mode in unconstrained space, on any model.

``laplace(key, model, obs, *args)`` estimates ``log p(obs; args)`` by
integrating a Gaussian fitted at the mode of the density of the continuous
latents in unconstrained space (:mod:`ppl.infer.unconstrained`,
``u = T^{-1}(x)``)::

    g(u)           = log p(T(u), obs) + log |det dT/du|
    u*             = argmax g                      (Adam restarts, then damped Newton steps)
    H              = -d^2 g / du^2 at u*
    log p(obs)    ~= g(u*) + d/2 log(2 pi) - 1/2 log det H

It is **exact on linear-Gaussian models** (Normal priors on real-valued
latents, Normal observations linear in them): there ``g`` is quadratic, and
the Newton steps land on its maximum. Elsewhere it is the usual deterministic
approximation (no Monte Carlo error: ``standard_error`` is 0).

**Inactive structure** (alternatives not chosen, copies beyond a count; see
:mod:`ppl.context`) integrates to one exactly: those choices are left out of
``g``, of ``H`` and of ``d``, so structures that denote the same function get
the same evidence whatever their unused parts hold.

**Discrete latents** must be observed (fixed in ``obs``); the Laplace
approximation integrates continuous choices only.

It works under ``jit`` and ``vmap`` (every step is pure JAX), so it serves as
``ppl.infer.search``'s ``score=`` (one compiled call scores a population of
structures) and ``ppl.infer.classify``'s ``estimator=``: pass
``ppl.infer.laplace`` itself, or ``ppl.infer.Laplace(restarts=..., steps=...)``
for other settings.

Example::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> @ppl.model
    ... def location():
    ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ...     ppl.sample("y", dist.Normal(mu, 0.5).expand([3]).to_event(1))
    >>> y = jnp.array([0.9, 1.1, 1.3])
    >>> result = ppl.infer.laplace(jax.random.key(0), location, {"y": y})
    >>> from ppl.testing import normal_normal_log_evidence
    >>> exact = normal_normal_log_evidence(y, 0.0, 1.0, 0.5)
    >>> bool(jnp.abs(result.log_evidence - exact) < 1e-3)
    True
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import optax
from jax import lax

from ppl import linalg
from ppl.choices import ChoiceMap, as_choice_map
from ppl.errors import InferenceError
from ppl.infer.arguments import join_args, split_args
from ppl.infer.unconstrained import describe_sites, latent_continuous, log_density, unconstrain
from ppl.interface import GenerativeFunction, Trace
from ppl.validation import check_key

__all__ = ["laplace", "Laplace", "LaplaceResult"]

DEFAULT_OPTIMIZER = optax.adam(0.05)
NEWTON_TOLERANCE = 1e-5  # nats: Newton stops once a full step would raise log p by less
ROUNDING = 1e-6  # or by less than this fraction of |log p|, below float32's rounding of a long sum


class LaplaceResult(NamedTuple):
    """What :func:`laplace` returns (a pytree; leaves gain leading axes under ``vmap``).

    Attributes:
      log_evidence: the Laplace estimate of ``log p(obs; args)``.
      log_evidence_standard_error: 0 (a deterministic approximation).
      trace: the mode, as a trace of the model (``trace.score`` is its log joint).
      log_density: ``g(u*)``, the active log density of ``u`` at the mode.
      log_det_hessian: ``log det H`` over the active dimensions.
      dimension: the number of active continuous dimensions ``d``.
      gradient_norm: ``|grad g(u*)|`` over the active dimensions (small at a mode).
      newton_steps: how many Newton iterations ran (the first evaluates the start; the loop stops once a
        full step would add less than ``NEWTON_TOLERANCE`` nats or ``ROUNDING * |g|``, or after ``newton + 1``).
    """

    log_evidence: jax.Array
    log_evidence_standard_error: jax.Array
    trace: Trace
    log_density: jax.Array
    log_det_hessian: jax.Array
    dimension: jax.Array
    gradient_norm: jax.Array
    newton_steps: jax.Array

    @property
    def standard_error(self) -> jax.Array:
        return self.log_evidence_standard_error


def laplace(
    key: jax.Array,
    model: GenerativeFunction,
    obs: Mapping | ChoiceMap | None = None,
    *args: Any,
    restarts: int = 4,
    steps: int = 200,
    newton: int = 3,
    optimizer: optax.GradientTransformation = DEFAULT_OPTIMIZER,
    init: Mapping | ChoiceMap | None = None,
    max_dimension: int | None = None,
) -> LaplaceResult:
    """The Laplace estimate of ``log p(obs; args)`` (see the module docstring).

    Args:
      key: PRNG key (the restarts' starting points, drawn from the prior).
      model: any generative function, compositions included.
      obs: the observed (and fixed discrete) choices.
      *args: the model's arguments (arrays may be traced: ``jit``/``vmap`` freely).
      restarts: Adam runs from independent prior draws (vmapped); the best is refined.
      steps: Adam steps per restart.
      newton: at most this many damped Newton steps at the best point (each accepted only if it raises
        ``g``; they stop early once a full step would add less than ``NEWTON_TOLERANCE`` nats, or less than
        ``ROUNDING * |g|``, which float32 cannot resolve in a long sum);
        they make the mode exact on quadratic ``g``.
      optimizer: an optax optimizer; it minimises ``-g``.
      init: starting values for some latents, each with a leading axis of length ``restarts``
        (restart ``i`` starts from row ``i``; latents not in ``init`` are drawn from the prior).
        With ``steps=0`` the restarts are only compared, so ``init`` gives a cheap deterministic
        grid of starting points for the Newton steps, e.g. ``{"noise": jnp.array([0.01, 0.1, 1.0])}``
        with ``restarts=3``.
      max_dimension: the most *active* continuous dimensions any value of ``obs`` leaves (``None``: all the
        latents). The Newton steps and the Hessian then work on the active coordinates only, gathered into a
        vector of this length, instead of on every latent: for models with much inactive structure
        (``ppl.either`` over many alternatives, ``ppl.many`` with a large bound) the Hessian costs
        ``max_dimension`` gradient evaluations instead of one per latent. A structure with more active
        dimensions than this gets ``log_evidence = nan``.

    Returns:
      A :class:`LaplaceResult`.

    Raises:
      InferenceError: a discrete latent not in ``obs``; bad settings; ``init`` rows that do not
        match ``restarts``.
    """
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (restarts, steps, newton)) or restarts < 1 \
            or steps < 0 or newton < 0:
        raise InferenceError(f"laplace needs integers restarts >= 1, steps >= 0 and newton >= 0, got {restarts!r}, "
                             f"{steps!r}, {newton!r}.", model=getattr(model, "name", None))
    check_key(key, "laplace", getattr(model, "name", None))
    if max_dimension is not None and (isinstance(max_dimension, bool) or not isinstance(max_dimension, int)
                                      or max_dimension < 1):
        raise InferenceError(f"laplace's max_dimension must be None or an int >= 1 (the most active continuous "
                             f"dimensions), got {max_dimension!r}.", model=getattr(model, "name", None))
    obs = as_choice_map(obs)
    args = tuple(args)
    sites = describe_sites(model, obs, args)
    discrete = sorted(a for a, s in sites.items() if s.discrete and not s.observed)
    if discrete:
        raise InferenceError(
            "'{address}' is a discrete latent choice; the Laplace approximation integrates continuous choices "
            "only. Fix it by passing its value in obs (or score each value separately).",
            model=model.name, address=discrete[0],
        )
    continuous = latent_continuous(sites)
    if not continuous:
        run = model.assess(obs, *args)
        zero = jnp.zeros(())
        return LaplaceResult(run.log_density, zero, Trace(obs, run.log_density, run.retval, args), run.log_density,
                             zero, jnp.zeros((), jnp.int32), zero, jnp.zeros((), jnp.int32))
    init = as_choice_map(init)
    for address, value in init.items():
        if jnp.ndim(value) < 1 or jnp.shape(value)[0] != restarts:
            raise InferenceError(f"laplace's init['{address}'] needs a leading axis of length restarts={restarts} "
                                 f"(one row per restart), got shape {jnp.shape(value)}.", model=model.name)
    dynamic, static = split_args(args, model)
    return _program(key, obs, init, dynamic, model=model, continuous=continuous, static=static, restarts=restarts,
                    steps=steps, newton=newton, optimizer=optimizer, max_dimension=max_dimension)


@functools.partial(jax.jit, static_argnames=("model", "continuous", "static", "restarts", "steps", "newton",
                                             "optimizer", "max_dimension"))
def _program(key, obs, init, dynamic, *, model, continuous, static, restarts, steps, newton, optimizer,
             max_dimension) -> LaplaceResult:
    """The whole estimate, compiled once per model, settings, argument shapes and static arguments."""
    args = join_args(dynamic, static)

    def objective(u, base):
        return log_density(model, base, u, args, jacobian=True)

    def start(run_key, row):
        base = model.generate(run_key, obs.merge(row), *args).trace.choices
        return unconstrain(model, base, continuous, args), base

    def climb(u, base):
        if steps == 0:  # the restarts are only compared (no optimiser program to compile)
            value = objective(u, base).active_log_density
            return u, jnp.where(jnp.isfinite(value), value, -jnp.inf)
        loss_and_grad = jax.value_and_grad(lambda v: -objective(v, base).active_log_density)

        def step(carry, _):
            u, state = carry
            _, grad = loss_and_grad(u)
            updates, state = optimizer.update(grad, state, u)
            return (optax.apply_updates(u, updates), state), None

        (u, _), _ = lax.scan(step, (u, optimizer.init(u)), None, length=steps)
        value = objective(u, base).active_log_density
        return u, jnp.where(jnp.isfinite(value), value, -jnp.inf)

    u0, bases = jax.vmap(start)(jax.random.split(key, restarts), init)
    # the observed choices are the same in every restart: unbatched, so a discrete one that picks a branch
    # (lax.switch) runs that branch only, not every branch selected
    climbed, values = jax.vmap(lambda u, base: climb(u, base.merge(obs)))(u0, bases)
    best = jnp.argmax(values)
    pick = lambda leaf: leaf[best]  # noqa: E731
    u, base = jax.tree_util.tree_map(pick, climbed), jax.tree_util.tree_map(pick, bases)
    return _at_mode(u, base, objective, newton, model, args, max_dimension)


def _at_mode(u: ChoiceMap, base: ChoiceMap, objective, newton: int, model, args,
             max_dimension: int | None = None) -> LaplaceResult:
    """Newton steps on the active dimensions, then the Gaussian integral at the point reached.

    The steps work on ``z``, the active coordinates of the flat latent vector gathered into ``max_dimension``
    slots (all coordinates when it is ``None``); ``mask`` marks the slots that hold an active coordinate."""
    flat, unravel = jax.flatten_util.ravel_pytree(u)
    active = objective(u, base).active
    flags = {}
    for address in u.addresses():
        flag, leaf = jnp.asarray(active[address]), u[address]
        flag = jnp.reshape(flag, jnp.shape(flag) + (1,) * (jnp.ndim(leaf) - jnp.ndim(flag)))
        flags[address] = jnp.broadcast_to(flag, jnp.shape(leaf))
    active_flat = jax.flatten_util.ravel_pytree(ChoiceMap(flags))[0]
    if max_dimension is None or max_dimension >= flat.shape[0]:  # z is the flat vector itself
        mask = active_flat.astype(flat.dtype)
        overflow = jnp.zeros((), bool)
        start, embed = flat, lambda z: z
    else:  # the active coordinates first, then out-of-range indices (gathered as 0, scattered nowhere)
        index = jnp.nonzero(active_flat, size=max_dimension, fill_value=flat.shape[0])[0]
        mask = (index < flat.shape[0]).astype(flat.dtype)
        overflow = jnp.sum(active_flat) > max_dimension
        start = flat.at[index].get(mode="fill", fill_value=0.0)
        embed = lambda z: flat.at[index].set(z, mode="drop")  # noqa: E731

    def g(z):
        return objective(unravel(embed(z)), base).active_log_density

    def gradient_and_value(z):
        value, gradient = jax.value_and_grad(g)(z)
        return gradient, (value, gradient)

    def local(z):
        """``(g, grad g, H)`` in one trace of the model: the Hessian by forward mode over the gradient."""
        hessian, (value, gradient) = jax.jacfwd(gradient_and_value, has_aux=True)(z)
        hessian = -0.5 * (hessian + hessian.T)
        return value, gradient, hessian * mask[:, None] * mask[None, :] + jnp.diag(1.0 - mask)

    def newton_step(carry):
        """A damped, saddle-free Newton step: ``H`` by its absolute eigenvalues plus ``damping`` (Levenberg-
        Marquardt), so every step climbs even where ``g`` is not concave yet; accepted only if it raises
        ``g``, the damping shrinking after a success and growing after a failure. ``done`` once ``H`` is
        positive definite and the Newton decrement ``grad' H^-1 grad / 2`` (the increase a full step would
        still bring) is below ``NEWTON_TOLERANCE`` nats or ``ROUNDING * |g|`` (a series of 400 points with
        ``|g| ~ 900`` would otherwise run every Newton step chasing float32 rounding)."""
        x, value, gradient, hessian, damping, iteration, _ = carry
        values, vectors = linalg.eigh(hessian)
        size = jnp.max(jnp.abs(values))
        step = vectors @ ((vectors.T @ (gradient * mask)) / (jnp.abs(values) + damping * size)) * mask
        candidate = local(x + step)
        better = jnp.isfinite(candidate[0]) & (candidate[0] >= value) & jnp.all(jnp.isfinite(step))
        x, value, gradient, hessian = jax.tree_util.tree_map(lambda new, old: jnp.where(better, new, old),
                                                             (x + step, *candidate), (x, value, gradient, hessian))
        values, vectors = linalg.eigh(hessian)
        projected = vectors.T @ (gradient * mask)
        decrement = 0.5 * jnp.sum(projected**2 / jnp.where(values > 0, values, 1.0))
        tolerance = jnp.maximum(NEWTON_TOLERANCE, ROUNDING * jnp.abs(value))
        done = jnp.all(values > 0) & (decrement < tolerance) & jnp.isfinite(value)
        return x, value, gradient, hessian, jnp.where(better, damping * 0.1, damping * 30.0), iteration + 1, done

    # the first iteration evaluates the starting point itself (a zero gradient makes a zero step, accepted
    # against -inf), so the Hessian program is traced once, inside the loop: half the compile time. The loop
    # stops early at a mode (Newton converges quadratically: a few steps where the start is close).
    first = (start, jnp.asarray(-jnp.inf, flat.dtype), jnp.zeros_like(start), jnp.eye(start.shape[0], dtype=flat.dtype),
             jnp.asarray(1e-5, flat.dtype), jnp.zeros((), jnp.int32), jnp.zeros((), bool))
    z, value, gradient, hessian, _, iterations, _ = lax.while_loop(
        lambda carry: (carry[5] < newton + 1) & ~carry[6], newton_step, first)
    cholesky = linalg.cholesky(hessian)
    positive = jnp.all(jnp.isfinite(cholesky))
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diag(cholesky)))
    dimension = jnp.sum(mask)
    log_evidence = value + 0.5 * dimension * math.log(2 * math.pi) - 0.5 * log_det
    log_evidence = jnp.where(positive & jnp.isfinite(log_evidence), log_evidence, -jnp.inf)
    log_evidence = jnp.where(overflow, jnp.nan, log_evidence)
    at_mode = objective(unravel(embed(z)), base)
    trace = Trace(at_mode.choices, at_mode.log_density - at_mode.log_det, at_mode.retval, tuple(args))
    return LaplaceResult(log_evidence, jnp.zeros(()), trace, value, log_det, dimension.astype(jnp.int32),
                         jnp.linalg.norm(gradient * mask), iterations)


@dataclasses.dataclass(frozen=True)
class Laplace:
    """:func:`laplace` with settings, as an evidence estimator (hashable, so it compiles once per settings).

    ``Laplace(restarts=8, steps=400)(key, model, obs, *args)`` is
    ``laplace(key, model, obs, *args, restarts=8, steps=400)``; pass it as
    ``ppl.infer.search(..., score=Laplace(...))`` or
    ``ppl.infer.classify(..., estimator=Laplace(...))``.
    """

    restarts: int = 4
    steps: int = 200
    newton: int = 3
    optimizer: Any = DEFAULT_OPTIMIZER
    max_dimension: int | None = None

    def __call__(self, key, model, obs, *args, init=None) -> LaplaceResult:
        return laplace(key, model, obs, *args, restarts=self.restarts, steps=self.steps, newton=self.newton,
                       optimizer=self.optimizer, init=init, max_dimension=self.max_dimension)
