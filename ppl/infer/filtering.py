"""Particle filters for sequence composites (the engine behind ``ppl.infer.smc``).

A *sequence* model is a generative function with segments
(:meth:`~ppl.interface.GenerativeFunction.segments`): a :func:`ppl.unfold`
chain, a :func:`ppl.seq` of parts. Its filter assimilates it one *step* at a
time: every step of a stepped segment is a step, every other part is one step. With ``n`` particles, at step ``s``:

1. **extend** every particle: ``step.generate(key_i, obs_s, t, state_i, *args)``
   (``vmap`` over particles), giving the step's choices and the incremental
   weight ``log v_i`` (the log density of the step's observations);
2. **reweight**: ``log w_i <- log w_i + log v_i``; the evidence increment is
   ``log sum_i W_i v_i`` with ``W`` the normalised previous weights, and
   ``ESS_s = (sum w)^2 / sum w^2`` of the new weights;
3. **resample** when ``ESS_s < ess * n`` (and ``s`` is not the last step), with
   one of :mod:`ppl.infer.resample`'s methods; the weights become equal (their
   mean, so ``log_mean_exp(log_weights)`` stays the evidence estimate);
4. **rejuvenate** (optional; after each resampling, or at every step with
   ``rejuvenate_when="always"``): MCMC kernels move the step's latent choices,
   targeting ``p(x_s | state_{s-1}, y_s)``, which leaves the filtering
   distribution invariant.

All steps of an unfold run inside **one** ``lax.scan``, so compile time does not
grow with the number of steps. ``log_evidence = log_mean_exp(final log weights)
= sum_s increments`` is an unbiased estimate of ``p(y)`` on the log scale.

Trajectories. Each step's choices are recorded *after* its resampling and
moves, with the ancestor indices; at the end the lineage of each final
particle is traced back (``ancestors``), so ``traces`` holds whole trajectories
(``O(steps * n)`` memory). ``history=False`` skips that and returns only the
final ``states``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ppl.choices import ChoiceMap
from ppl.compose.unfold import same_type_state, strong_array
from ppl.errors import InferenceError, PPLError
from ppl.infer.evidence import log_sum_exp, normalized_weights
from ppl.infer.particle_keys import particle_keys, unrolled_for
from ppl.infer.resample import resample
from ppl.interface import GenerativeFunction, Segment, Trace

__all__ = ["SMCResult", "SMCConfig", "is_sequence", "segments_of", "filter_program", "filter_start", "filter_chunk",
           "filter_finish"]

MOVE_LABEL = 0  # fold_in label of a particle's rejuvenation key (models use labels 1, 2, ...)


class SMCResult(NamedTuple):
    """What :func:`ppl.infer.smc` returns (a pytree). ``S`` is the number of steps
    (filters) or temperature stages (tempered SMC); ``n`` the number of particles.

    Attributes:
      traces: the particles as traces of the whole model, leaves ``(n, ...)``
        (for an unfold, choices ``(n, steps, ...)``); ``traces.args`` holds the
        model's arguments once. ``None`` when run with ``history=False``.
      log_weights: ``(n,)`` final unnormalised log weights; their
        ``log_mean_exp`` is ``log_evidence``.
      weights: ``(n,)`` normalised final weights (equal after a final resampling).
      log_evidence: ``()`` estimate of ``log p(obs; args)`` (its exponential is unbiased).
      log_evidence_increments: ``(S,)`` per-step (per-stage) increments; they sum
        to ``log_evidence``.
      effective_sample_sizes: ``(S,)`` ESS ``(sum w)^2 / sum w^2`` after each
        step's (stage's) reweighting, before resampling; in ``[0, n]``.
      resampled: ``(S,)`` bool, whether the particles were resampled after that step.
      ancestors: ``(S, n)`` int32, ``ancestors[s, j]``: the particle that slot ``j``
        was copied from when resampling after step ``s`` (``j`` itself when not
        resampled). ``None`` with ``history=False`` and for tempered SMC.
      states: the particles' final states, leaves ``(n, ...)``: the state after the
        last step of an unfold; for a ``seq``, ``{part: state}`` of its unfold
        parts. ``None`` for tempered SMC.
      temperatures: ``(S,)`` the temperature ``beta`` reached at each stage of
        tempered SMC (the last is 1); ``None`` for filters.
      acceptance_rates: ``(S,)`` mean acceptance of the rejuvenation moves at each
        step (NaN at steps without a move); ``None`` without ``rejuvenate``.
    """

    traces: Trace | None
    log_weights: jax.Array
    weights: jax.Array
    log_evidence: jax.Array
    log_evidence_increments: jax.Array
    effective_sample_sizes: jax.Array
    resampled: jax.Array
    ancestors: jax.Array | None
    states: Any
    temperatures: jax.Array | None
    acceptance_rates: jax.Array | None


class SMCConfig(NamedTuple):
    """The compile-time settings of one SMC program (hashable: a ``jit`` static argument).

    ``gate``: ``"cond"`` resamples inside ``lax.cond`` (skips the work when not
    resampling); ``"select"`` always computes it and selects (branch-free, for
    accelerators). ``lineage``: ``"scan"`` or ``"associative"`` trace-back.
    """

    n: int
    method: str
    ess: float
    rejuvenate: Callable | None
    moves: int
    history: bool
    gate: str
    lineage: str
    move_always: bool = False


def backend_defaults(backend: str) -> dict[str, str]:
    """Per-backend choices: branch-free resampling and log-depth trace-back off the CPU."""
    if backend == "cpu":
        return dict(gate="cond", lineage="scan")
    return dict(gate="select", lineage="associative")


# ---------------------------------------------------------------------------
# Weights, resampling, moves: shared with tempering
# ---------------------------------------------------------------------------


def weight_summary(log_weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(log sum w, ESS)``; ESS is 0 (not NaN) when every weight is zero."""
    total = log_sum_exp(log_weights)
    log_ess = 2.0 * total - log_sum_exp(2.0 * log_weights)
    return total, jnp.where(jnp.isfinite(total), jnp.exp(log_ess), 0.0)


def increment(new_total: jax.Array, old_total: jax.Array) -> jax.Array:
    """``log sum w_new - log sum w_old``; ``-inf`` (not NaN) once the evidence is 0."""
    return jnp.where(jnp.isneginf(old_total), -jnp.inf, new_total - old_total)


def take(tree: Any, indices: jax.Array) -> Any:
    """Rows ``indices`` of every leaf (the particle axis is the leading one)."""
    return jax.tree.map(lambda leaf: jnp.take(leaf, indices, axis=0), tree)


def gated(do: jax.Array, branch: Callable, keep: Callable, operand: Any, gate: str) -> Any:
    """``branch(operand) if do else keep(operand)``, by ``lax.cond`` or by a select."""
    if gate == "cond":
        return lax.cond(do, branch, keep, operand)
    taken, kept = branch(operand), keep(operand)
    return jax.tree.map(lambda a, b: jnp.where(do, a, b), taken, kept)


def resample_population(key, log_weights, total, config: SMCConfig):
    """Ancestors ``(n,)`` and the equalised log weights ``(n,)`` (their mean, ``total - log n``)."""
    n = config.n
    ancestors = resample(key, log_weights, config.method)
    return ancestors, jnp.full((n,), total - math.log(n), log_weights.dtype)


def move(kernel, keys, trace_of, particles, moves: int):
    """Apply ``kernel`` ``moves`` times to every particle.

    ``trace_of(particles_i) -> Trace`` builds one particle's trace; the kernel's
    output trace replaces choices/score/retval. Returns the moved particles and
    the mean acceptance rate.
    """

    def one(key, particle):
        trace = trace_of(particle)
        accepted = jnp.zeros((), jnp.float32)
        for sub_key in jax.random.split(key, moves) if moves > 1 else [key]:
            step = kernel(sub_key, trace)
            trace, accepted = step.trace, accepted + step.accepted.astype(jnp.float32)
        return trace.choices, trace.score, trace.retval, accepted / moves

    choices, score, retval, accepted = jax.vmap(one)(keys, particles)
    return (choices, score, retval), jnp.mean(accepted)


def build_kernel(rejuvenate: Callable, target: GenerativeFunction):
    """``rejuvenate(target)``: the user's factory builds a kernel for this target."""
    kernel = rejuvenate(target)
    if not callable(kernel):
        raise InferenceError(
            f"rejuvenate must be a function target -> kernel (e.g. lambda target: "
            f"ppl.infer.mcmc.random_walk(target, ['x'], 0.5)); called with '{target.name}' it "
            f"returned {type(kernel).__name__} {kernel!r}, which is not a kernel."
        )
    return kernel


# ---------------------------------------------------------------------------
# Sequence models as segments
# ---------------------------------------------------------------------------


def is_sequence(model: GenerativeFunction) -> bool:
    """True for the models filtered step by step: those with segments (an unfold, a seq)."""
    return model.segments() is not None


def segments_of(model: GenerativeFunction) -> tuple[Segment, ...]:
    return model.segments()


def _is_single_chain(model: GenerativeFunction) -> bool:
    """One stepped segment at the model's top level (an unfold): results keep its shape."""
    segments = model.segments()
    return len(segments) == 1 and segments[0].stepped and segments[0].address is None


def _split_observed(choices: ChoiceMap, observed: ChoiceMap) -> ChoiceMap:
    """The latent part of a choice map: every address not in ``observed``."""
    return choices.filter([a for a in choices.addresses() if a not in observed])


def _with_observed(latent: ChoiceMap, observed: ChoiceMap, batch: tuple[int, ...]) -> ChoiceMap:
    """Latent choices (leading ``batch`` axes) merged with ``observed`` broadcast to them."""
    repeated = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, batch + jnp.shape(leaf)), observed)
    return latent.merge(repeated)


class _Population(NamedTuple):
    log_weights: jax.Array
    total: jax.Array  # log sum of the weights


class _StepRecord(NamedTuple):
    """What one step leaves behind (leaves ``(n, ...)``; stacked ``(steps, n, ...)`` by scans)."""

    latent: Any  # latent choices after resampling/moves (None without history)
    score: Any
    retval: Any
    ess: jax.Array
    increment: jax.Array
    resampled: jax.Array
    ancestors: Any
    acceptance: Any


def _assimilate(population, extended, key_g, move_keys, do_allowed, target, trace_of, config: SMCConfig):
    """Reweight by ``extended.log_increment``, resample when the ESS is low, move.

    ``extended``: (choices, score, retval, context, log_increment); ``context``
    holds per-particle data the move needs (the previous state) and is resampled
    with the particles. Returns the new population, the resampled particles
    ``(choices, score, retval)`` and the step's diagnostics.
    """
    choices, score, retval, context, log_increment = extended
    log_weights = population.log_weights + log_increment
    total, ess = weight_summary(log_weights)
    do = do_allowed & (ess < config.ess * config.n) & jnp.isfinite(total)
    kernel = build_kernel(config.rejuvenate, target) if config.rejuvenate is not None else None

    def moved(particles):
        if kernel is None:
            return particles, jnp.full((), jnp.nan, jnp.float32)
        new, acceptance = move(kernel, move_keys, trace_of, particles, config.moves)
        return (*new, particles[3]), acceptance

    def resample_and_move(operand):
        particles, weights = operand
        ancestors, equal = resample_population(key_g, weights, total, config)
        particles, acceptance = moved(take(particles, ancestors))
        return particles, equal, ancestors, acceptance

    def keep(operand):
        particles, weights = operand
        acceptance = jnp.full((), jnp.nan, jnp.float32)
        if config.move_always:  # weighted particles move too: the kernel leaves each target invariant
            particles, acceptance = moved(particles)
        return particles, weights, jnp.arange(config.n, dtype=jnp.int32), acceptance

    if config.history or kernel is not None:
        particles = (choices, score, retval, context)
    else:  # only the states go on: resample nothing else
        particles = (None, None, retval, None)
    particles, log_weights, ancestors, acceptance = gated(
        do, resample_and_move, keep, (particles, log_weights), config.gate
    )
    record = dict(
        ess=ess,
        increment=increment(total, population.total),
        resampled=do,
        ancestors=ancestors if config.history else None,
        acceptance=acceptance if kernel is not None else None,
    )
    return _Population(log_weights, total), particles[:3], record


def _step_keys(seed_key, g, n, unrolled=True):
    """The particles' keys for global step ``g`` (and for its moves): ``particle_keys`` of a
    per-step seed, so they are built from one scalar hash, not read from carried key data.
    ``unrolled``: see :func:`ppl.infer.particle_keys.unrolled_for`."""
    keys = particle_keys(jax.random.fold_in(seed_key, g), 0, n, unrolled)
    return keys, jax.vmap(jax.random.fold_in, (0, None))(keys, MOVE_LABEL)


def _initial_states(args, n):
    init_state = jax.tree.map(strong_array, args[0])
    return jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (n,) + leaf.shape), init_state)


def _scan_unfold(segment, observed, extra, states, population, times, offset, keys, total_steps, config):
    """Steps ``times`` of a stepped segment (global step index ``offset + t``) in one ``lax.scan``.

    ``observed`` holds the rows of those steps. Returns the states, the population
    and the stacked :class:`_StepRecord`.
    """
    step = segment.model
    seed_key, resample_key = keys

    def body(carry, inputs):
        states, population = carry
        t, observed_t = inputs
        g = offset + t

        def extend(key, state):
            trace, log_weight = step.generate(key, observed_t, t, state, *extra)
            new_state = same_type_state(state, trace.retval, step.name)
            return trace.choices, trace.score, new_state, log_weight

        first_state = jax.tree.map(lambda leaf: leaf[0], states)
        unrolled = unrolled_for(lambda key: extend(key, first_state), seed_key)
        step_keys, move_keys = _step_keys(seed_key, g, config.n, unrolled)

        choices, score, new_states, log_increment = jax.vmap(extend)(step_keys, states)

        def trace_of(particle):
            choices_i, score_i, retval_i, previous_i = particle
            return Trace(choices_i, score_i, retval_i, (t, previous_i, *extra))

        population, (choices, score, new_states), record = _assimilate(
            population,
            (choices, score, new_states, states, log_increment),
            jax.random.fold_in(resample_key, g),
            move_keys,
            g < total_steps - 1,
            step,
            trace_of,
            config,
        )
        new_states = jax.tree.map(lambda old, new: new.astype(old.dtype), states, new_states)
        kept = (_split_observed(choices, observed_t), score, new_states) if config.history else (None, None, None)
        return (new_states, population), _StepRecord(*kept, **record)

    try:
        (states, population), records = lax.scan(body, (states, population), (times, observed))
    except PPLError as err:
        per_step = getattr(segment.owner, "_per_step", None)
        raise (per_step(err) if per_step is not None else err) from None
    return states, population, records


def _run_unfold(segment, observed, args, population, keys, offset, total_steps, config):
    """Filter through a whole unfold segment with one ``lax.scan``."""
    states = _initial_states(args, config.n)
    times = jnp.arange(segment.steps)
    _, *extra = args
    return _scan_unfold(segment, observed, extra, states, population, times, offset, keys, total_steps, config)


def _run_static(segment, observed, args, population, keys, offset, total_steps, config):
    """A static part of a seq: one importance step (``generate`` with its observations)."""
    part = segment.model
    seed_key, resample_key = keys

    def extend(key):
        trace, log_weight = part.generate(key, observed, *args)
        return trace.choices, trace.score, trace.retval, log_weight

    keys, move_keys = _step_keys(seed_key, offset, config.n, unrolled_for(extend, seed_key))

    choices, score, retval, log_increment = jax.vmap(extend)(keys)

    def trace_of(particle):
        choices_i, score_i, retval_i, _ = particle
        return Trace(choices_i, score_i, retval_i, tuple(args))

    context = jnp.zeros((config.n,), jnp.int32)  # nothing per particle
    population, (choices, score, retval), record = _assimilate(
        population,
        (choices, score, retval, context, log_increment),
        jax.random.fold_in(resample_key, offset),
        move_keys,
        jnp.asarray(offset < total_steps - 1),
        part,
        trace_of,
        config,
    )
    kept = (_split_observed(choices, observed), score, retval) if config.history else (None, None, None)
    record = _StepRecord(*kept, **record)
    return None, population, jax.tree.map(lambda leaf: leaf[None], record)


# ---------------------------------------------------------------------------
# Trajectories: trace the lineages back
# ---------------------------------------------------------------------------


def lineages(ancestors: jax.Array, method: str) -> jax.Array:
    """``(S, n)``: row ``s`` holds, for each final particle, its slot at step ``s``.

    ``lineage[S-1] = arange(n)``, ``lineage[s] = ancestors[s+1][lineage[s+1]]``.
    ``"scan"``: a reverse ``lax.scan`` (O(S n) work); ``"associative"``: the same
    by composing index maps in a log-depth ``associative_scan`` (O(S n log S)
    work, few sequential steps: for accelerators).
    """
    steps, n = ancestors.shape
    identity = jnp.arange(n, dtype=jnp.int32)
    if steps == 1:
        return identity[None]
    later = ancestors[1:]
    if method == "scan":

        def back(index, ancestors_next):
            index = ancestors_next[index]
            return index, index

        _, rows = lax.scan(back, identity, later, reverse=True)
    else:
        # reversed, associative_scan folds from the end: ``combine(later_part, earlier_step)``
        compose = lambda lineage, step: jnp.take_along_axis(step, lineage, axis=-1)  # noqa: E731
        rows = lax.associative_scan(compose, later, reverse=True)
    return jnp.concatenate([rows, identity[None]], axis=0)


def _follow(stacked: Any, lineage: jax.Array) -> Any:
    """Leaves ``(L, n, ...)`` gathered along ``lineage (L, n)`` and moved to ``(n, L, ...)``."""

    def one(leaf):
        index = lineage.reshape(lineage.shape + (1,) * (leaf.ndim - 2))
        return jnp.moveaxis(jnp.take_along_axis(leaf, index, axis=1), 0, 1)

    return jax.tree.map(one, stacked)


def _segment_trace(segment, records, observed, lineage, args, n) -> Trace:
    latent = _follow(records.latent, lineage)
    score = jnp.sum(_follow(records.score, lineage), axis=1)
    retval = _follow(records.retval, lineage)
    if segment.stepped:
        choices = _with_observed(latent, observed, (n,))
        return Trace(choices, score, retval, tuple(args))
    first = lambda leaf: leaf[:, 0]  # noqa: E731
    choices = _with_observed(jax.tree.map(first, latent), observed, (n,))
    return Trace(choices, score, jax.tree.map(first, retval), tuple(args))


# ---------------------------------------------------------------------------
# The whole filter
# ---------------------------------------------------------------------------


def _start(key, n):
    seed_key, resample_key = jax.random.split(key)
    population = _Population(jnp.zeros((n,)), jnp.asarray(math.log(n), jnp.float32))
    return (seed_key, resample_key), population


def filter_program(key, model: GenerativeFunction, observed: ChoiceMap, args: tuple, config: SMCConfig) -> SMCResult:
    """Run the particle filter for a sequence model (jittable; ``config`` static)."""
    segments = segments_of(model)
    total_steps = sum(segment.steps for segment in segments)
    keys, population = _start(key, config.n)
    offset, parts = 0, []
    for segment in segments:
        observed_part = observed if segment.address is None else observed.submap(segment.address)
        run = _run_unfold if segment.stepped else _run_static
        states, population, records = run(segment, observed_part, args, population, keys, offset, total_steps, config)
        parts.append((segment, observed_part, states, records))
        offset += segment.steps
    return _finish(model, parts, population, args, config)


# -- the same filter in chunks of time steps (an unfold model; for progress bars) ------


def filter_start(key, model: GenerativeFunction, args: tuple, config: SMCConfig):
    """The carry before step 0: ``(states, population, keys)``."""
    keys, population = _start(key, config.n)
    return _initial_states(args, config.n), population, keys


def filter_chunk(carry, model: GenerativeFunction, observed_chunk: ChoiceMap, start, length: int, args: tuple,
                 config):
    """Steps ``start .. start + length - 1`` (``start`` may be traced) of a single chain; returns the carry and records."""
    states, population, keys = carry
    _, *extra = args
    times = start + jnp.arange(length)
    segment = segments_of(model)[0]
    states, population, records = _scan_unfold(
        segment, observed_chunk, extra, states, population, times, 0, keys, segment.steps, config
    )
    return (states, population, keys), records


def filter_finish(carry, model: GenerativeFunction, observed: ChoiceMap, records, args: tuple, config) -> SMCResult:
    """The result from the last carry and all steps' records (concatenated in time)."""
    states, population, _ = carry
    return _finish(model, [(segments_of(model)[0], observed, states, records)], population, args, config)


def _finish(model, parts, population, args, config: SMCConfig) -> SMCResult:
    n = config.n
    records = [records for _, _, _, records in parts]
    concat = lambda *leaves: jnp.concatenate(leaves, axis=0)  # noqa: E731
    traces = ancestors = None
    if config.history:
        ancestors = concat(*[r.ancestors for r in records])
        lineage = lineages(ancestors, config.lineage)
        offset, traces_by_part = 0, {}
        for segment, observed_part, _, part_records in parts:
            rows = lineage[offset : offset + segment.steps]
            traces_by_part[segment.address] = _segment_trace(segment, part_records, observed_part, rows, args, n)
            offset += segment.steps
        traces = _whole_trace(model, traces_by_part, args)
    if _is_single_chain(model):
        states = parts[0][2]
    else:
        states = {segment.address: s for segment, _, s, _ in parts if segment.stepped}
    log_weights = population.log_weights
    acceptance = None if config.rejuvenate is None else concat(*[r.acceptance for r in records])
    return SMCResult(
        traces=traces,
        log_weights=log_weights,
        weights=normalized_weights(log_weights),
        log_evidence=population.total - math.log(n),
        log_evidence_increments=concat(*[r.increment for r in records]),
        effective_sample_sizes=concat(*[r.ess for r in records]),
        resampled=concat(*[r.resampled for r in records]),
        ancestors=ancestors,
        states=states,
        temperatures=None,
        acceptance_rates=acceptance,
    )


def _whole_trace(model, traces_by_part: dict, args) -> Trace:
    if _is_single_chain(model):
        return traces_by_part[None]
    choices = ChoiceMap.from_entries({address: t.choices for address, t in traces_by_part.items()})
    score = sum(t.score for t in traces_by_part.values())
    retval = jax.tree.map(lambda *leaves: jnp.concatenate(leaves, axis=1), *[t.retval for t in traces_by_part.values()])
    return Trace(choices, score, retval, tuple(args))
