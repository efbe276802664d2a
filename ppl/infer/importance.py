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
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import define_prng_impl

from ppl.choices import ChoiceMap, as_choice_map
from ppl.errors import InferenceError, ModelDefinitionError
from ppl.infer.evidence import (
    effective_sample_size,
    log_mean_exp,
    log_mean_exp_standard_error,
    normalized_weights,
)
from ppl.infer.arguments import check_log_evidence, is_traced, join_args, split_args
from ppl.model import GenerativeFunction, Trace

__all__ = [
    "ImportanceResult",
    "importance",
    "importance_resample",
    "select_particles",
    "particle_axes",
    "particle_keys",
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


def particle_block(
    key: jax.Array, start, size: int, model: GenerativeFunction, proposal, obs: ChoiceMap, args: tuple
) -> _Particles:
    """Particles ``start, ..., start + size - 1``, run with ``particle_keys(key, start, size)``.

    The unit a chunked run loops over: blocks computed separately and
    concatenated equal one block of all particles. ``start`` may be traced.
    """
    run = functools.partial(_one_particle, model=model, proposal=proposal, obs=obs, args=args)
    choices, score, retval, log_weights = jax.vmap(run)(particle_keys(key, start, size))
    return _Particles(choices, score, retval, log_weights)


# ---------------------------------------------------------------------------
# Counter-based particle keys
# ---------------------------------------------------------------------------

_U32 = jnp.uint32


def _mix32(x):
    """A bijective 32-bit integer hash (lowbias32)."""
    x = x ^ (x >> 16)
    x = x * _U32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * _U32(0x846CA68B)
    return x ^ (x >> 16)


def _child_path(path0, path1, label):
    """The 64-bit path of child ``label``: distinct labels give distinct children."""
    first = _mix32(path0 ^ _mix32(label + _U32(0x9E3779B9)))
    return first, _mix32(path1 ^ first ^ _U32(0x85EBCA6B))


def _particle_split(data, shape):
    count = math.prod(shape)
    first, second = _child_path(data[3], data[4], jnp.arange(count, dtype=_U32))
    shared = jnp.broadcast_to(data[:3], (count, 3))
    return jnp.concatenate([shared, first[:, None], second[:, None]], axis=1).reshape(*shape, 5)


def _particle_fold_in(data, label):
    first, second = _child_path(data[3], data[4], jnp.asarray(label).astype(_U32) ^ _U32(0x3C6EF372))
    return jnp.stack([data[0], data[1], data[2], first, second])


_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _threefry2x32(key0, key1, count0, count1):
    """Threefry-2x32 (20 rounds), bit for bit ``jax.extend.random.threefry2x32_p``.

    Written out rather than bound to the primitive: on CPU JAX lowers the
    primitive as a 5-step loop whose carried key schedule, per particle here,
    is written to memory at every step; unrolled, XLA fuses the whole hash with
    the draw that uses it.
    """
    schedule = (key0, key1, key0 ^ key1 ^ _U32(0x1BD11BDA))
    x0, x1 = count0 + schedule[0], count1 + schedule[1]
    for step in range(5):
        for rotation in _ROTATIONS[step % 2]:
            x0 = x0 + x1
            x1 = (x1 << _U32(rotation)) | (x1 >> _U32(32 - rotation))
            x1 = x0 ^ x1
        x0 = x0 + schedule[(step + 1) % 3]
        x1 = x1 + schedule[(step + 2) % 3] + _U32(step + 1)
    return x0, x1


def _particle_random_bits(data, bit_width, shape):
    size = math.prod(shape)
    # one hash gives two 32-bit words: 64-bit draws take both, narrower draws
    # take one word each, so ceil(size / 2) hashes serve ``size`` draws
    hashes = size if bit_width == 64 else -(-size // 2)
    counter_high = jnp.broadcast_to(data[2], (hashes,))
    counter_low = jnp.arange(hashes, dtype=_U32)
    high, low = _threefry2x32(data[0] ^ data[3], data[1] ^ data[4], counter_high, counter_low)
    if bit_width == 64:
        bits = (high.astype(jnp.uint64) << 32) | low.astype(jnp.uint64)
    else:
        bits = jnp.concatenate([high, low])[:size].astype(jnp.dtype(f"uint{bit_width}"))
    return bits.reshape(shape)


def _particle_seed(seed):
    seed = jnp.asarray(seed).astype(_U32)
    zero = jnp.zeros((), _U32)
    return jnp.stack([zero, seed, zero, zero, zero])


_PARTICLE_KEY = define_prng_impl(
    key_shape=(5,),
    seed=_particle_seed,
    split=_particle_split,
    random_bits=_particle_random_bits,
    fold_in=_particle_fold_in,
    name="ppl_particle",
    tag="ppl",
)


def _seed_words(key: jax.Array) -> jax.Array:
    """Two uint32 words hashed from ``key``: threefry of its data for two-word (e.g.
    threefry) keys, fused with the rest of the program; ``jax.random.bits`` otherwise."""
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    data = jax.random.key_data(key) if typed else key
    if data.shape != (2,) or data.dtype != _U32:
        return jax.random.bits(key, (2,), _U32)
    return jnp.stack(_threefry2x32(data[0], data[1], _U32(0x5EED5EED), _U32(0xB10C0000)))


def particle_keys(key: jax.Array, start, count: int) -> jax.Array:
    """Counter-based keys of particles ``start, ..., start + count - 1`` (shape ``(count,)``).

    Key data ``(s0, s1, p, 0, 0)``: a 64-bit seed drawn once from ``key`` (one
    hash for all particles), the particle index ``p`` and an empty 64-bit path.
    ``split`` and ``fold_in`` mix only the path (a few integer operations, no
    hash), and a draw of ``size`` random words hashes the counters
    ``(p, 0..size-1)`` under the threefry2x32 key ``seed ^ path``: one hash per
    pair of words, as in a hand-written ``normal(key, (n, d))``, and distinct
    particles, paths and positions never share an input. Use them like any key.
    """
    seed = _seed_words(key)
    indices = (jnp.asarray(start).astype(_U32) + jnp.arange(count, dtype=_U32))[:, None]
    zeros = jnp.zeros((count, 2), _U32)
    data = jnp.concatenate([jnp.broadcast_to(seed, (count, 2)), indices, zeros], axis=1)
    return jax.random.wrap_key_data(data, impl=_PARTICLE_KEY)


def _summarise(particles: _Particles, args: tuple, obs: ChoiceMap) -> ImportanceResult:
    # the observed leaves are the same in every particle: keep one copy (particle 0's,
    # i.e. the value as the model stored it), so XLA never writes n copies of the data
    observed = ChoiceMap({address: particles.choices[address][0] for address in obs.addresses()})
    log_weights = particles.log_weights
    return ImportanceResult(
        traces=Trace(particles.choices.merge(observed), particles.score, particles.retval, tuple(args)),
        log_weights=log_weights,
        weights=normalized_weights(log_weights),
        log_evidence=log_mean_exp(log_weights),
        effective_sample_size=effective_sample_size(log_weights),
        log_evidence_standard_error=log_mean_exp_standard_error(log_weights),
        observations=observed,
    )


def _program(key, obs, dynamic_args, *, model, proposal, n, static_args):
    """The whole computation for one call; jitted with everything after ``*`` static."""
    args = join_args(dynamic_args, static_args)
    return _summarise(particle_block(key, 0, n, model, proposal, obs, args), (), obs)


_compiled_program = jax.jit(_program, static_argnames=("model", "proposal", "n", "static_args"))


# ---------------------------------------------------------------------------
# The public function
# ---------------------------------------------------------------------------


def importance(
    key: jax.Array,
    model: GenerativeFunction,
    obs: Mapping | ChoiceMap,
    *args,
    n: int,
    proposal: GenerativeFunction | None = None,
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

    Returns:
      An :class:`ImportanceResult`.

    Raises:
      InferenceError: empty ``obs``; a NaN log weight; every weight zero.
      UnknownAddressError, NonFiniteError, ShapeError, DtypeError, SupportError:
        bad observations (from the core, naming the address).
    """
    _check_call(model, proposal, n)
    obs = _as_observations(obs, model)
    if is_traced((key, obs, args)):
        particles = particle_block(key, 0, n, model, proposal, obs, args)
        return _summarise(particles, args, obs)
    dynamic_args, static_args = split_args(args, model)
    result = _compiled_program(key, obs, dynamic_args, model=model, proposal=proposal, n=n, static_args=static_args)
    result = result._replace(traces=result.traces._replace(args=tuple(args)))
    _check_result(result, key, model, obs, args)
    return result


def particle_axes(result: ImportanceResult) -> Trace:
    """``in_axes`` for ``jax.vmap`` over ``result.traces``: ``0`` per particle, ``None`` where shared.

    Also fits the traces :func:`select_particles` and :func:`importance_resample` return.

    Example: ``jax.vmap(lambda t: model.assess(t.choices, *t.args).log_density,
    in_axes=(particle_axes(result),))(result.traces)``.
    """
    traces = result.traces
    shared = set(result.observations.addresses())
    choices = ChoiceMap({address: None if address in shared else 0 for address in traces.choices.addresses()})
    return Trace(choices, 0, jax.tree_util.tree_map(lambda _: 0, traces.retval), None)


def select_particles(result: ImportanceResult, indices) -> Trace:
    """The particles at ``indices`` as complete traces (observed choices and ``args`` included).

    ``indices`` an int gives one particle's ``Trace`` (usable with ``assess``/``update``);
    an int array of shape ``(m,)`` gives ``m`` stacked particles. Jittable.
    """
    traces, shared = result.traces, set(result.observations.addresses())
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
    if not obs:
        raise InferenceError(
            "importance was given no observations, so there is nothing to weight the particles "
            "by. Pass the observed values as {address: value}; to sample from the prior use "
            f"{model.name}.simulate(key, ...).",
            model=model.name,
        )
    return obs


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
