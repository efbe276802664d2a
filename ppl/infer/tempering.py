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

The split of a trace's score is made per choice, in the same run: the context
of the call scales the log density of every observed choice by ``beta`` and
sums it unscaled as ``log L`` (``interpret(..., tempering=(observed, beta))``,
:mod:`ppl.context`), so a tempered density costs one run of the model, and
observations may sit anywhere in it (inside an unfold, a Space model, ...). The
rejuvenation kernels see the tempered target as a generative function
(:class:`Tempered`, called as ``tempered(beta, *args)``), so every
``ppl.infer.mcmc`` kernel works unchanged, with ``addresses=None`` meaning every
continuous latent (the target knows its observations).

A run has at most ``MAX_STAGES`` stages; the last allowed stage goes straight
to ``beta = 1`` (the estimate stays unbiased, only its variance suffers).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ppl.choices import ChoiceMap, join_address
from ppl.context import Context, interpret
from ppl.interpreters import Generate
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
from ppl.interface import GenerativeFunction, Trace, top_level

__all__ = ["Tempered", "MAX_STAGES", "tempering_init", "tempering_stage", "tempering_finish", "tempering_program"]

MAX_STAGES = 500
BISECTION_STEPS = 40


class Tempered(GenerativeFunction):
    """The tempered target ``prior(x) * L(x)^beta`` of a model, as a generative function.

    Called as ``tempered(beta, *args)``. Its traces hold the model's choices,
    ``score = log prior + beta * log L`` and ``retval = (model retval, log L)``;
    its weights are the model's with every observed term scaled by ``beta``.

    Attributes:
      model: the model.
      observed: the observed addresses (what ``L`` is the density of).
    """

    def __init__(self, model: GenerativeFunction, observed: tuple[str, ...]):
        self.model = model
        self.observed = tuple(observed)
        self.name = f"tempered({model.name})"

    def body(self, context, beta, *args):
        observed = frozenset(join_address(context.prefix, a) for a in self.observed)
        scope = Context(context.interpreter, context.inputs, context.next_key(), context.prefix, self.model.name,
                        context.active, context.batch_shape, (observed, jnp.asarray(beta)))
        retval = self.model.body(scope, *args)
        log_likelihood = scope.total("log_likelihood")
        scope.totals.pop("log_likelihood", None)
        context.absorb(scope)
        return retval, log_likelihood


def _scaled(log_likelihood, factor):
    """``factor * log L`` with ``0 * (-inf) = 0``."""
    return jnp.where(factor > 0, factor * log_likelihood, 0.0)


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
    tempering = (frozenset(observed.addresses()), jnp.zeros(()))

    def one(particle_key):
        # beta = 0: the score is the prior, the weight the factors, log L summed aside
        run = top_level(model, lambda: interpret(model, Generate(observed), particle_key, tuple(args),
                                                 tempering=tempering))
        log_likelihood = run.totals["log_likelihood"]
        return (run.choices, run.totals["score"], (run.retval, log_likelihood)), run.totals["weight"]

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
