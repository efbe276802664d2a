"""Importance sampling: weighted particles and an unbiased evidence estimate.

``importance(key, model, obs, *args, n=...)`` draws ``n`` particles, each a full
trace of ``model`` that agrees with the observations ``obs``, and weights them:

======================  =====================================================
proposal                particle ``i`` and its log weight
======================  =====================================================
``None`` (the prior)    ``x_i ~ p(x; args)``,
                        ``log w_i = log p(y | x_i; args)`` (``generate``'s weight)
a generative function   ``x_i ~ q(x; obs, args)``,
``q``                   ``log w_i = log p(x_i, y; args) - log q(x_i; obs, args)``
======================  =====================================================

and reports ``log_evidence = log((1/n) sum_i w_i)``, the log of an unbiased
estimate of ``p(y; args)``, with its delta-method standard error, the normalised
weights and the effective sample size (see :mod:`ppl.infer.evidence`).

**Proposals.** A proposal is itself a generative function, called as
``proposal(obs, *args)``: its first argument is the observations (a
``ChoiceMap``), the rest are the model's arguments. Its choices must use the
model's latent addresses; they constrain the model, and any latent choice the
proposal does not make is sampled from the model's prior (its density then
cancels from the weight). A proposal may not propose an observed address.

**The particle axis.** Particle ``p`` runs with key
``particle_keys(key, 0, n)[p]``. These keys are *counter-based*: a particle's
key holds a seed, the particle index and a 64-bit path; ``split`` and
``fold_in`` (the core splits once per sample site) only mix the path, a few
integer operations, and every draw is one threefry2x32 hash of ``(particle,
position)`` per pair of random words, as one batched draw of all particles from
one key is. ``jax.random.split(key, n)`` with threefry keys would instead cost a
hash per particle plus two per sample site. A block of particles
``[start, start + size)`` needs only the key and ``start``, and a particle gets
the same randomness however the ``n`` particles are split into blocks.

**Large n: chunks, cache blocks, devices.** ``chunk_size=c`` runs the
particles in blocks of ``c`` (one compiled block program, reused; the last
block is padded and trimmed), so the model's intermediate memory is that of
``c`` particles; eagerly the blocks run from Python with a progress bar
(:mod:`ppl.infer.progress`), under ``jit`` in a ``lax.map``. ``keep="weights"``
keeps only the log weights (``4 n`` bytes), not the traces;
:func:`regenerate_particles` recomputes any particles later, e.g. resampled
ones. On CPU a large block also runs, inside its program, as a loop over
cache-sized sub-blocks (:func:`ppl.infer.scale.in_cache_blocks`: memory
traffic, not arithmetic, bounds a vmapped model there). ``devices="all"`` (or a list
of devices) shards the particle axis over a ``jax.sharding.Mesh`` with axis
``"particles"`` (:mod:`ppl.infer.scale`). None of these changes which key a
particle gets, so its random bits are the plain run's; the values computed from
them agree bit for bit unless XLA compiles the model's arithmetic differently
for another block shape (vector loops round differently), then to float
rounding.

**Compilation.** ``importance`` validates ``obs`` in Python, then runs one
compiled program, cached by model, proposal, ``n``, the observations' and
arguments' shapes and dtypes, and the values of non-array arguments: calling it
again with new data of the same shapes does not retrace. As in
``equinox.filter_jit``, array arguments are traced and every other argument
(Python numbers, strings, functions) is a compile-time constant, so a Python
number that changes between calls recompiles; pass ``jnp.asarray(x)`` instead.
Called inside ``jax.jit`` or ``jax.vmap`` it simply adds its program to the
caller's.

**Failure.** Called eagerly, ``importance`` raises
:class:`~ppl.errors.InferenceError` when any log weight is NaN, or when every
particle has zero weight (``log_evidence = -inf``). Observations with NaN/inf or
outside their distribution's support are found then (not on every call, which
would cost a device-to-host copy) and raise the core's ``NonFiniteError`` /
``SupportError`` naming the address; unknown addresses and wrong shapes or
dtypes raise while the program is traced. Inside ``jit``/``vmap`` nothing can
raise: zero total weight gives the documented ``log_evidence = -inf``,
``weights = 0``, ``effective_sample_size = 0``.

Example::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> @ppl.model
    ... def mean_of(count):
    ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ...     ppl.sample("y", dist.Normal(mu, 0.5).expand([count]).to_event(1))
    >>> result = ppl.infer.importance(
    ...     jax.random.key(0), mean_of, {"y": jnp.array([0.3, 0.5])}, 2, n=1000)
    >>> result.traces.choices["mu"].shape, result.log_weights.shape
    ((1000,), (1000,))
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ppl.choices import ChoiceMap, as_choice_map
from ppl.errors import InferenceError, ModelDefinitionError
from ppl.infer.evidence import (
    effective_sample_size,
    log_mean_exp,
    log_mean_exp_standard_error,
    normalized_weights,
)
from ppl.infer.arguments import check_log_evidence, check_observation_types, is_traced, join_args, split_args
from ppl.infer.scale import (
    check_block_size,
    check_divisible,
    gather,
    in_cache_blocks,
    map_blocks,
    particle_mesh,
    scan_blocks,
    shard_particles,
)
from ppl.model import GenerativeFunction, Trace
from ppl.validation import check_key
from ppl.infer.particle_keys import keys_at, particle_keys, unrolled_for

__all__ = [
    "ImportanceResult",
    "importance",
    "importance_resample",
    "select_particles",
    "particle_axes",
    "particle_keys",
    "regenerate_particles",
]


class ImportanceResult(NamedTuple):
    """Weighted particles from :func:`importance` (a pytree).

    Attributes:
      traces: the ``n`` particles as one ``Trace``. Its ``score``, ``retval``
        and *latent* choices have a leading axis ``n``; the observed choices and
        ``args``, the same for every particle, are stored once, not ``n`` times.
        Take particles with :func:`select_particles`; vmap over them with
        ``in_axes=particle_axes(result)``.
      log_weights: ``(n,)`` unnormalised log weights ``log w_i``.
      weights: ``(n,)`` normalised weights ``w_i / sum_j w_j`` (all 0 if every
        ``w_i = 0``).
      log_evidence: ``()`` ``log((1/n) sum_i w_i)``, estimating ``log p(obs; args)``.
      effective_sample_size: ``()`` ``(sum w)^2 / sum w^2``, in ``[1, n]`` (0 when every weight is 0).
      log_evidence_standard_error: ``()`` delta-method standard error of
        ``log_evidence``, ``sqrt((n / ESS - 1) / (n - 1))``.
      observations: the observed choices (as the model stored them), once.
    """

    traces: Trace
    log_weights: jax.Array
    weights: jax.Array
    log_evidence: jax.Array
    effective_sample_size: jax.Array
    log_evidence_standard_error: jax.Array
    observations: ChoiceMap


# ---------------------------------------------------------------------------
# The particle axis
# ---------------------------------------------------------------------------


class _Particles(NamedTuple):
    """A block of particles, everything but the (shared) arguments."""

    choices: ChoiceMap
    score: jax.Array
    retval: Any
    log_weights: jax.Array


def _one_particle(key, model, proposal, obs: ChoiceMap, args: tuple):
    if proposal is None:
        trace, log_weight = model.generate(key, obs, *args)
        return trace.choices, trace.score, trace.retval, log_weight
    proposal_key, model_key = jax.random.split(key)
    proposed = proposal.simulate(proposal_key, obs, *args)
    _check_proposal(proposal, model, proposed.choices, obs)
    trace, log_weight = model.generate(model_key, obs.merge(proposed.choices), *args)
    return trace.choices, trace.score, trace.retval, log_weight - proposed.score


def _run_particles(key, indices, model, proposal, obs: ChoiceMap, args: tuple, mesh=None) -> _Particles:
    """The particles ``indices`` (``(m,)`` uint32), their keys from :func:`keys_at`."""
    run = functools.partial(_one_particle, model=model, proposal=proposal, obs=obs, args=args)
    keys = shard_particles(keys_at(key, indices, unrolled=unrolled_for(run, key)), mesh)
    choices, score, retval, log_weights = jax.vmap(run)(keys)
    return _Particles(choices, score, retval, log_weights)


def particle_block(
    key: jax.Array,
    start,
    size: int,
    model: GenerativeFunction,
    proposal,
    obs: ChoiceMap,
    args: tuple,
    mesh=None,
) -> _Particles:
    """Particles ``start, ..., start + size - 1``, run with ``particle_keys(key, start, size)``.

    The unit a chunked run loops over: blocks computed separately and
    concatenated equal one block of all particles. ``start`` may be traced.
    With a ``mesh`` (:func:`ppl.infer.scale.particle_mesh`) the particle axis is
    sharded over its devices (inside ``jit``).
    """
    indices = jnp.asarray(start).astype(jnp.uint32) + jnp.arange(size, dtype=jnp.uint32)
    return _run_particles(key, indices, model, proposal, obs, args, mesh)


def _split_observed(particles: _Particles, obs: ChoiceMap, keep: str):
    """``(per_particle, observed)``: the observed leaves are the same in every particle,
    so keep one copy (particle 0's, the value as the model stored it) and XLA never
    writes ``n`` copies of the data. ``keep="weights"`` keeps only the log weights."""
    observed_addresses = set(obs.addresses())
    observed = ChoiceMap({address: particles.choices[address][0] for address in obs.addresses()})
    if keep == "weights":
        return particles.log_weights, observed
    latent = ChoiceMap(
        {address: value for address, value in particles.choices.items() if address not in observed_addresses}
    )
    return particles._replace(choices=latent), observed


def _summarise(per_particle, observed: ChoiceMap, args: tuple, keep: str) -> ImportanceResult:
    if keep == "weights":
        traces, log_weights = None, per_particle
    else:
        choices = per_particle.choices.merge(observed)
        traces = Trace(choices, per_particle.score, per_particle.retval, tuple(args))
        log_weights = per_particle.log_weights
    return ImportanceResult(
        traces=traces,
        log_weights=log_weights,
        weights=normalized_weights(log_weights),
        log_evidence=log_mean_exp(log_weights),
        effective_sample_size=effective_sample_size(log_weights),
        log_evidence_standard_error=log_mean_exp_standard_error(log_weights),
        observations=observed,
    )


def _block(key, start, obs, args, *, model, proposal, size, mesh, keep):
    def block(first, count):
        particles = particle_block(key, first, count, model, proposal, obs, args, mesh)
        return _split_observed(particles, obs, keep)

    return in_cache_blocks(block, start, size, mesh)


def _block_program(key, start, obs, dynamic_args, *, model, proposal, size, static_args, mesh, keep):
    """One block of a chunked call: ``(per_particle, observed)``; jitted, ``start`` traced."""
    args = join_args(dynamic_args, static_args)
    return _block(key, start, obs, args, model=model, proposal=proposal, size=size, mesh=mesh, keep=keep)


def _program(key, obs, dynamic_args, *, model, proposal, n, static_args, mesh, keep):
    """The whole computation for one unchunked call; jitted with everything after ``*`` static."""
    args = join_args(dynamic_args, static_args)
    per_particle, observed = _block(
        key, 0, obs, args, model=model, proposal=proposal, size=n, mesh=mesh, keep=keep
    )
    return _summarise(per_particle, observed, (), keep)


_STATIC = ("model", "proposal", "static_args", "mesh", "keep")
_compiled_program = jax.jit(_program, static_argnames=(*_STATIC, "n"))
_compiled_block = jax.jit(_block_program, static_argnames=(*_STATIC, "size"))
_compiled_summary = jax.jit(_summarise, static_argnames=("args", "keep"))


# ---------------------------------------------------------------------------
# The public function
# ---------------------------------------------------------------------------

_KEEP = ("all", "weights")


def importance(
    key: jax.Array,
    model: GenerativeFunction,
    obs: Mapping | ChoiceMap,
    *args,
    n: int,
    proposal: GenerativeFunction | None = None,
    chunk_size: int | None = None,
    devices=None,
    keep: str = "all",
    progress: bool | None = None,
) -> ImportanceResult:
    """Importance sampling with ``n`` particles; see the module docstring for the weights.

    Args:
      key: a PRNG key.
      model: the generative function (a ``@ppl.model`` or a combinator).
      obs: the observed choices, ``{address: value}`` or a ``ChoiceMap``; must
        be non-empty, name addresses the model visits, and hold finite values.
      *args: the model's arguments.
      n: the number of particles (a positive Python int).
      proposal: ``None`` to sample latent choices from the prior, or a generative
        function called as ``proposal(obs, *args)`` whose choices constrain the model.
      chunk_size: ``None`` runs all ``n`` particles in one program; an int runs
        them in blocks of ``chunk_size`` (one compiled block program reused; the
        last block is padded and trimmed), so the model's intermediate memory is
        that of ``chunk_size`` particles. The result equals the unchunked one for
        the same key (particle ``p`` always uses ``particle_keys(key, 0, n)[p]``),
        bit for bit or to float rounding (see the module docstring).
      devices: ``None`` (the default device), ``"all"`` (``jax.devices()``: under
        ``jax.distributed``, every process's) or a sequence of devices: the particle
        axis is sharded over them (``n``, and ``chunk_size`` if given, must be
        multiples of their number). Across processes every process gets the whole result.
      keep: ``"all"`` keeps every particle's trace; ``"weights"`` keeps only the
        log weights and the summaries (``traces`` is ``None``): memory ``4 n``
        bytes. Particles can be recomputed later with :func:`regenerate_particles`.
      progress: a progress bar over the blocks of a chunked call (``None``:
        shown once the call lasts 2 s, unless ``PPL_PROGRESS=0``; ``False``:
        never; ``True``: at once).

    Returns:
      An :class:`ImportanceResult`.

    Raises:
      InferenceError: empty ``obs``; a NaN log weight; every weight zero; a bad
        ``chunk_size``, ``devices`` or ``keep``; ``n`` not a multiple of the devices.
      UnknownAddressError, NonFiniteError, ShapeError, DtypeError, SupportError:
        bad observations (from the core, naming the address).
    """
    _check_call(model, proposal, n)
    check_key(key, "importance", model.name)
    check_block_size(chunk_size, "chunk_size", model.name)
    if keep not in _KEEP:
        raise InferenceError(
            f"keep must be 'all' (every particle's trace) or 'weights' (log weights and "
            f"summaries only), got keep={keep!r}.",
            model=model.name,
        )
    mesh = particle_mesh(devices)
    check_divisible(n, mesh, "n", model.name)
    chunked = chunk_size is not None and chunk_size < n
    if chunked:
        check_divisible(chunk_size, mesh, "chunk_size", model.name)
    obs = _as_observations(obs, model)
    options = dict(model=model, proposal=proposal, mesh=mesh, keep=keep)
    if is_traced((key, obs, args)):
        if not chunked:
            per_particle, observed = _block(key, 0, obs, args, size=n, **options)
        else:
            block = lambda start: _block(key, start, obs, args, size=chunk_size, **options)  # noqa: E731
            per_particle, observed = scan_blocks(block, n, chunk_size)
        return _summarise(per_particle, observed, tuple(args), keep)
    dynamic_args, static_args = split_args(args, model)
    if not chunked:
        result = _compiled_program(key, obs, dynamic_args, n=n, static_args=static_args, **options)
    else:
        def block(start):
            return _compiled_block(key, start, obs, dynamic_args, size=chunk_size, static_args=static_args, **options)

        description = f"importance ({model.name})"
        per_particle, observed = map_blocks(block, n, chunk_size, progress=progress, description=description)
        result = _compiled_summary(per_particle, observed, (), keep)
    result = gather(result, mesh)
    if result.traces is not None:
        result = result._replace(traces=result.traces._replace(args=tuple(args)))
    _check_result(result, key, model, obs, args)
    return result


def regenerate_particles(
    key: jax.Array,
    model: GenerativeFunction,
    obs: Mapping | ChoiceMap,
    *args,
    indices,
    proposal: GenerativeFunction | None = None,
) -> Trace:
    """Recompute the particles ``indices`` of ``importance(key, model, obs, *args, ...)``.

    Every particle's randomness depends only on ``key`` and its index, so
    particle ``p`` comes out as it did in the run (whatever its ``n``,
    ``chunk_size`` or ``devices``; to float rounding, as the model is compiled
    for ``m`` particles): the way to get traces from a ``keep="weights"`` run,
    e.g. resampled ones. Returns the same stacked ``Trace`` as
    :func:`select_particles` of a ``keep="all"`` result with ``indices`` an
    ``(m,)`` int array. Jittable.

    Example::

        >>> import jax, jax.numpy as jnp, ppl
        >>> from ppl import dist
        >>> @ppl.model
        ... def noisy():
        ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        ...     ppl.sample("y", dist.Normal(mu, 0.5))
        >>> key, obs = jax.random.key(0), {"y": jnp.array(0.3)}
        >>> light = ppl.infer.importance(key, noisy, obs, n=1000, keep="weights")
        >>> drawn = jax.random.categorical(jax.random.key(1), light.log_weights, shape=(5,))
        >>> draws = ppl.infer.regenerate_particles(key, noisy, obs, indices=drawn)
        >>> draws.choices["mu"].shape
        (5,)
    """
    _check_call(model, proposal, 1)
    obs = _as_observations(obs, model)
    indices = jnp.asarray(indices)
    if indices.ndim != 1 or not jnp.issubdtype(indices.dtype, jnp.integer):
        raise InferenceError(
            f"indices must be a 1-d integer array of particle indices, got shape {indices.shape} "
            f"and dtype {indices.dtype}. Pass e.g. jnp.array([3, 17]).",
            model=model.name,
        )
    particles = _run_particles(key, indices.astype(jnp.uint32), model, proposal, obs, tuple(args))
    latent, observed = _split_observed(particles, obs, "all")
    return Trace(latent.choices.merge(observed), latent.score, latent.retval, tuple(args))


def particle_axes(result: ImportanceResult) -> Trace:
    """``in_axes`` for ``jax.vmap`` over ``result.traces``: ``0`` per particle, ``None`` where shared.

    Also fits the traces :func:`select_particles` and :func:`importance_resample` return.

    Example: ``jax.vmap(lambda t: model.assess(t.choices, *t.args).log_density,
    in_axes=(particle_axes(result),))(result.traces)``.
    """
    traces = _traces_of(result, "particle_axes")
    shared = set(result.observations.addresses())
    choices = ChoiceMap({address: None if address in shared else 0 for address in traces.choices.addresses()})
    return Trace(choices, 0, jax.tree_util.tree_map(lambda _: 0, traces.retval), None)


def select_particles(result: ImportanceResult, indices) -> Trace:
    """The particles at ``indices`` as complete traces (observed choices and ``args`` included).

    ``indices`` an int gives one particle's ``Trace`` (usable with ``assess``/``update``);
    an int array of shape ``(m,)`` gives ``m`` stacked particles. Jittable.
    """
    traces, shared = _traces_of(result, "select_particles"), set(result.observations.addresses())
    take = lambda leaf: jnp.asarray(leaf)[indices]  # noqa: E731
    choices = ChoiceMap(
        {address: value if address in shared else take(value) for address, value in traces.choices.items()}
    )
    return Trace(choices, traces.score[indices], jax.tree_util.tree_map(take, traces.retval), traces.args)


def importance_resample(key: jax.Array, result: ImportanceResult, draws: int) -> Trace:
    """Sampling-importance-resampling: ``draws`` particles drawn with replacement by weight.

    Returns :func:`select_particles` of the drawn indices: latent leaves of shape
    ``(draws, ...)``, approximately posterior draws (exactly as ``n -> inf``).
    Jittable; ``result`` must have some non-zero weight.
    """
    _traces_of(result, "importance_resample")
    return select_particles(result, jax.random.categorical(key, result.log_weights, shape=(draws,)))


# ---------------------------------------------------------------------------
# Checks (Python, before or after the compiled program)
# ---------------------------------------------------------------------------


def _check_call(model, proposal, n) -> None:
    if not isinstance(model, GenerativeFunction):
        raise ModelDefinitionError(
            f"importance needs a generative function (a @ppl.model or a combinator) as its model, "
            f"got {type(model).__name__} {model!r}. Decorate the function with @ppl.model."
        )
    if proposal is not None and not isinstance(proposal, GenerativeFunction):
        raise ModelDefinitionError(
            f"importance's proposal must be a generative function called as proposal(obs, *args), "
            f"got {type(proposal).__name__} {proposal!r}. Decorate it with @ppl.model, or pass "
            "proposal=None to propose from the prior."
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InferenceError(
            f"importance needs a positive Python int number of particles, got n={n!r}. "
            "Pass e.g. n=1000.",
            model=model.name,
        )


def _as_observations(obs, model) -> ChoiceMap:
    obs = as_choice_map(obs)
    check_observation_types(obs, model)
    if not obs:
        raise InferenceError(
            "importance was given no observations, so there is nothing to weight the particles "
            "by. Pass the observed values as {address: value}; to sample from the prior use "
            f"{model.name}.simulate(key, ...).",
            model=model.name,
        )
    return obs


def _traces_of(result: ImportanceResult, function: str) -> Trace:
    if result.traces is None:
        raise InferenceError(
            f"{function} needs the particles' traces, but this result was computed with "
            "keep='weights' and holds only their weights. Recompute the particles you need "
            "with ppl.infer.regenerate_particles(key, model, obs, *args, indices=...) (same key), "
            "or run importance with keep='all'."
        )
    return result.traces


def _check_result(result: ImportanceResult, key, model, obs, args) -> None:
    check_log_evidence(result.log_evidence, result.log_weights, key, model, obs, args)


def _check_proposal(proposal, model, proposed: ChoiceMap, obs: ChoiceMap) -> None:
    for address in proposed.addresses():
        if address in obs:
            raise InferenceError(
                f"the proposal '{proposal.name}' makes a choice at '{address}', which is "
                "observed. A proposal proposes latent choices only; remove that ppl.sample "
                "from the proposal.",
                model=model.name,
                address=address,
            )
