"""Annealed (tempered) SMC for static models (the engine behind ``ppl.infer.smc``).

For a model with latent choices ``x`` and observations ``y``, write
``log p(x, y) = log prior(x) + log L(x)`` where ``log L`` is the log density of
the observed sites and ``log prior`` everything else (latent sites and
``ppl.factor`` terms). Tempered SMC moves ``n`` particles through the targets

    pi_beta(x)  proportional to  prior(x) * L(x)^beta,   0 = beta_0 < beta_1 < ... < beta_S = 1.

Particles start from ``model.generate(key, obs)`` (latents from the prior, log
weight = the factors, ``0`` without ``ppl.factor``). Each stage:

1. picks ``beta_{s+1}`` by bisection so that the *conditional* ESS
   ``(sum_i W_i v_i)^2 / sum_i W_i v_i^2`` of the incremental weights
   ``v_i = L(x_i)^(beta_{s+1} - beta_s)`` is ``ess * n`` (Zhou, Johansen &
   Aston 2016), or jumps to 1 when that is already reached;
2. reweights by ``v_i`` (evidence increment ``log sum_i W_i v_i``), resamples;
3. applies the rejuvenation kernel (``moves`` times) targeting ``pi_beta``.

``log_evidence = sum_s increments`` estimates ``log p(y)`` (unbiased for ``p(y)``).

The split of a trace's score: ``log prior(x) = model.generate(k, x_latent).log_weight``
(the latent choices constrained, the observed sites re-sampled and ignored),
``log L = score - log prior``. This costs one extra run of the model per
evaluation of a tempered density (twice the model's cost per MCMC proposal).
The rejuvenation kernels see the tempered target as a generative function
(:class:`Tempered`, called as ``tempered(beta, *args)``), so every
``ppl.infer.mcmc`` kernel works unchanged.

A run has at most ``MAX_STAGES`` stages; the last allowed stage goes straight
to ``beta = 1`` (the estimate stays unbiased, only its variance suffers).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ppl.choices import ChoiceMap
from ppl.errors import InferenceError
from ppl.infer.evidence import log_sum_exp, normalized_weights
from ppl.infer.filtering import (
    SMCConfig,
    SMCResult,
    build_kernel,
    gated,
    increment,
    move,
    resample_population,
    take,
    weight_summary,
)
from ppl.infer.particle_keys import particle_keys, unrolled_for
from ppl.model import GenerativeFunction, Trace

__all__ = ["Tempered", "MAX_STAGES", "tempering_init", "tempering_stage", "tempering_finish", "tempering_program"]

MAX_STAGES = 500
BISECTION_STEPS = 40
_PRIOR_KEY_SEED = 0


class Tempered(GenerativeFunction):
    """The tempered target ``prior(x) * L(x)^beta`` of a model, as a generative function.

    Called as ``tempered(beta, *args)``. Its traces hold the model's choices,
    ``score = log prior + beta * log L`` and ``retval = (model retval, log L)``.
    ``run``'s weight is ``weight - (1 - beta) * log L`` (exact when every
    observed address is constrained, as in MCMC updates).
    """

    def __init__(self, model: GenerativeFunction, observed: tuple[str, ...]):
        self.model = model
        self.observed = frozenset(observed)
        self.name = f"tempered({model.name})"

    def log_prior(self, choices: ChoiceMap, args: tuple) -> jax.Array:
        """``log prior(x)``: the model run with only the latent choices constrained."""
        latent = choices.filter([a for a in choices.addresses() if a not in self.observed])
        _, log_prior = self.model.run(jax.random.key(_PRIOR_KEY_SEED), latent, tuple(args), False)
        return log_prior

    def run(self, key, constraints, args, assess):
        beta, *model_args = args
        trace, log_weight = self.model.run(key, constraints, tuple(model_args), assess)
        log_likelihood = trace.score - self.log_prior(trace.choices, model_args)
        score = tempered_score(trace.score, log_likelihood, beta)
        weight = jnp.where(jnp.isfinite(log_likelihood), log_weight - (1.0 - beta) * log_likelihood, score)
        return Trace(trace.choices, score, (trace.retval, log_likelihood), tuple(args)), weight


def tempered_score(score, log_likelihood, beta):
    """``log prior + beta * log L = score - (1 - beta) log L``, with ``0 * -inf = 0``."""
    log_prior = jnp.where(jnp.isfinite(log_likelihood), score - log_likelihood, score)
    return log_prior + _scaled(log_likelihood, beta)


def _scaled(log_likelihood, factor):
    """``factor * log L`` with ``0 * (-inf) = 0``."""
    return jnp.where(factor > 0, factor * log_likelihood, 0.0)


def check_observations_are_leaves(model, observed: ChoiceMap, args: tuple) -> None:
    """Raise ``InferenceError`` when a latent choice or factor reads an observed value.

    ``Tempered.log_prior`` re-runs the model with only the latent choices fixed,
    so the observed sites are re-sampled; that is the prior of the latents only
    when nothing downstream depends on an observation. Checked eagerly on one
    particle: the prior of the same latents under two different re-sampled
    observations must agree. (Inside ``jit`` the check cannot run.)
    """
    signature = (model, observed.addresses(), _shapes(args))
    if signature in _CHECKED:
        return
    trace, _ = model.generate(jax.random.key(1), observed, *args)
    latent = trace.choices.filter([a for a in trace.choices.addresses() if a not in observed])
    _, first = model.run(jax.random.key(2), latent, tuple(args), False)
    _, second = model.run(jax.random.key(3), latent, tuple(args), False)
    first, second = float(first), float(second)
    if first != second and not (abs(first - second) <= 1e-5 * max(1.0, abs(first))):
        raise InferenceError(
            "tempered SMC needs the observations to be leaves of the model: it splits the "
            "score into prior and likelihood by re-running the model with the latent choices "
            "fixed, but here a later choice or ppl.factor depends on an observed value, so that "
            f"split is wrong (the latents' prior came out as {first:.4g} and {second:.4g} for two "
            "re-sampled observations). Use ppl.infer.importance, or MCMC on the posterior "
            "(ppl.infer.mcmc), or restructure the model so observations come last.",
            model=model.name,
        )
    _CHECKED.add(signature)


_CHECKED: set = set()  # (model, observed addresses, argument shapes) already checked


def _shapes(tree) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple(
        (jnp.shape(leaf), jnp.result_type(leaf).name) if hasattr(leaf, "shape") else leaf for leaf in leaves
    )


class TemperingState(NamedTuple):
    """The population between stages. ``particles = (choices, tempered score, (retval, log L))``."""

    particles: tuple
    log_weights: jax.Array
    total: jax.Array
    beta: jax.Array
    stage: jax.Array


class StageRecord(NamedTuple):
    ess: jax.Array
    increment: jax.Array
    temperature: jax.Array
    acceptance: jax.Array


def _keys(key):
    seed_key, resample_key = jax.random.split(key)
    return seed_key, resample_key


def tempering_init(key, model, observed: ChoiceMap, args: tuple, config: SMCConfig) -> TemperingState:
    """``n`` particles from the prior with the observations fixed; log weights = the factors."""
    seed_key, _ = _keys(key)
    tempered = Tempered(model, observed.addresses())

    def one(particle_key):
        trace, log_weight = model.generate(particle_key, observed, *args)
        log_likelihood = trace.score - tempered.log_prior(trace.choices, args)
        factors = jnp.where(jnp.isneginf(log_likelihood), 0.0, log_weight - log_likelihood)
        score = tempered_score(trace.score, log_likelihood, 0.0)
        return (trace.choices, score, (trace.retval, log_likelihood)), factors

    keys = particle_keys(seed_key, 0, config.n, unrolled_for(one, seed_key))
    particles, log_weights = jax.vmap(one)(keys)
    total = log_sum_exp(log_weights)
    return TemperingState(particles, log_weights, total, jnp.zeros(()), jnp.zeros((), jnp.int32))


def next_increment(log_weights, total, log_likelihood, beta, target: float) -> jax.Array:
    """The largest ``delta <= 1 - beta`` whose conditional ESS fraction is ``>= target`` (bisection)."""
    normalised = log_weights - jnp.where(jnp.isfinite(total), total, 0.0)
    log_target = math.log(target)

    def log_cess(delta):
        step = _scaled(log_likelihood, delta)
        return 2.0 * log_sum_exp(normalised + step) - log_sum_exp(normalised + 2.0 * step)

    remaining = 1.0 - beta

    def bisect(_, bounds):
        low, high = bounds
        middle = 0.5 * (low + high)
        ok = log_cess(middle) >= log_target
        return jnp.where(ok, middle, low), jnp.where(ok, high, middle)

    low, high = lax.fori_loop(0, BISECTION_STEPS, bisect, (jnp.zeros_like(remaining), remaining))
    # low == 0: not even a tiny step keeps the target (e.g. particles with L = 0); take
    # the smallest step tried, resampling then drops the impossible particles
    chosen = jnp.where(low > 0, low, high)
    return jnp.where(log_cess(remaining) >= log_target, remaining, chosen)


def tempering_stage(state: TemperingState, key, model, observed_addresses, args: tuple, config: SMCConfig):
    """One stage: next temperature, reweight, resample, rejuvenate. Jittable."""
    seed_key, resample_key = _keys(key)
    choices, score, (retval, log_likelihood) = state.particles
    delta = next_increment(state.log_weights, state.total, log_likelihood, state.beta, config.ess)
    delta = jnp.where(state.stage >= MAX_STAGES - 1, 1.0 - state.beta, delta)
    finished = delta >= 1.0 - state.beta
    beta = jnp.where(finished, 1.0, state.beta + delta)
    step = _scaled(log_likelihood, delta)
    log_weights = state.log_weights + step
    total, ess = weight_summary(log_weights)
    particles = (choices, score + step, (retval, log_likelihood))

    def resample_branch(operand):
        particles, weights = operand
        ancestors, equal = resample_population(jax.random.fold_in(resample_key, state.stage), weights, total, config)
        return take(particles, ancestors), equal

    particles, log_weights = gated(
        jnp.isfinite(total), resample_branch, lambda operand: operand, (particles, log_weights), config.gate
    )
    acceptance = jnp.full((), jnp.nan, jnp.float32)
    if config.rejuvenate is not None:
        tempered = Tempered(model, observed_addresses)
        kernel = build_kernel(config.rejuvenate, tempered)
        unrolled = unrolled_for(lambda key: model.simulate(key, *args), seed_key)
        keys = jax.vmap(jax.random.fold_in, (0, None))(particle_keys(seed_key, 0, config.n, unrolled), state.stage)
        trace_of = lambda p: Trace(p[0], p[1], p[2], (beta, *args))  # noqa: E731
        particles, acceptance = move(kernel, keys, trace_of, particles, config.moves)
    record = StageRecord(ess, increment(total, state.total), beta, acceptance)
    return TemperingState(particles, log_weights, total, beta, state.stage + 1), record


def tempering_finish(state: TemperingState, records: StageRecord, args: tuple, config: SMCConfig) -> SMCResult:
    """The result from the final population and the stacked per-stage records."""
    choices, score, (retval, _) = state.particles
    log_weights = state.log_weights
    return SMCResult(
        traces=Trace(choices, score, retval, tuple(args)),
        log_weights=log_weights,
        weights=normalized_weights(log_weights),
        log_evidence=state.total - math.log(config.n),
        log_evidence_increments=records.increment,
        effective_sample_sizes=records.ess,
        resampled=jnp.isfinite(records.ess) & (records.ess > 0),
        ancestors=None,
        states=None,
        temperatures=records.temperature,
        acceptance_rates=None if config.rejuvenate is None else records.acceptance,
    )


def tempering_program(key, model, observed: ChoiceMap, args: tuple, config: SMCConfig) -> SMCResult:
    """The whole run in one program (``lax.while_loop``), for use inside ``jit``/``vmap``.

    Per-stage arrays have length ``MAX_STAGES``; entries after the last stage are
    padding: temperature 1, increment 0, ESS NaN, not resampled.
    """
    state = tempering_init(key, model, observed, args, config)
    observed_addresses = observed.addresses()
    stage_key = jax.random.fold_in(key, 1)
    nan = jnp.full((MAX_STAGES,), jnp.nan, jnp.float32)
    buffers = StageRecord(nan, jnp.zeros((MAX_STAGES,), jnp.float32), jnp.ones((MAX_STAGES,), jnp.float32), nan)

    def not_done(carry):
        state, _ = carry
        return state.beta < 1.0

    def body(carry):
        state, buffers = carry
        index = state.stage
        stage_key_i = jax.random.fold_in(stage_key, index)
        state, record = tempering_stage(state, stage_key_i, model, observed_addresses, args, config)
        buffers = jax.tree.map(lambda buffer, value: buffer.at[index].set(value.astype(buffer.dtype)), buffers, record)
        return state, buffers

    state, buffers = lax.while_loop(not_done, body, (state, buffers))
    return tempering_finish(state, buffers, args, config)


def stack_records(records: list[StageRecord]) -> StageRecord:
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *records)


def first_stage_key(key) -> Any:
    return jax.random.fold_in(key, 1)
