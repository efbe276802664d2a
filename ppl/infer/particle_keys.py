"""Counter-based PRNG keys for a particle axis.

Particle ``p`` of a run with key ``key`` gets ``particle_keys(key, 0, n)[p]``. Its
key data is ``(s0, s1, p, path0, path1)``: a 64-bit seed drawn once from ``key``
(one hash for all particles), the particle index and a 64-bit path. ``split``
and ``fold_in`` (the core splits once per sample site) only mix the path, a few
integer operations, and a draw of ``size`` random words is one threefry2x32
hash of the counters ``(p, 0..size-1)`` per pair of words under the key
``seed ^ path``, as one batched draw of all particles from one key is.
``jax.random.split(key, n)`` with threefry keys would instead cost a hash per
particle plus two per sample site. A block of particles ``[start, start +
size)`` needs only the key and ``start``, so a particle gets the same
randomness however the particles are split into blocks or devices.

**Code size.** The hash is written out in ``jnp`` (:func:`_threefry2x32`) so XLA
fuses it with the draw that uses it, which is what makes small models as fast
as hand-written JAX. Each unrolled hash is ~100 operations, and XLA's CPU
backend compiles a program with many of them fused together superlinearly
slowly (a depth-3 ``ppl.Space`` model, 24 sites, did not compile in minutes).
So a program whose particle makes more than ``UNROLLED_HASHES`` draws
(:func:`unrolled_for` counts them in its jaxpr) uses ``unrolled=False`` keys:
the same keys and bits, each hash JAX's ``threefry2x32`` primitive, compiled as
a loop. ``ppl.infer.importance`` chooses this way for every model.

Example::

    >>> import jax
    >>> from ppl.infer.particle_keys import particle_keys
    >>> keys = particle_keys(jax.random.key(0), 0, 4)
    >>> jax.vmap(lambda k: jax.random.normal(k))(keys).shape
    (4,)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.extend.random import define_prng_impl, threefry2x32_p

__all__ = ["particle_keys", "keys_at", "unrolled_for", "UNROLLED_HASHES"]

UNROLLED_HASHES = 8


def _looped_hash(key0, key1, count0, count1):
    return tuple(threefry2x32_p.bind(*jnp.broadcast_arrays(key0, key1, count0, count1)))


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


def _particle_random_bits(data, bit_width, shape, hash_words=None):
    hash_words = _threefry2x32 if hash_words is None else hash_words
    size = math.prod(shape)
    # one hash gives two 32-bit words: 64-bit draws take both, narrower draws
    # take one word each, so ceil(size / 2) hashes serve ``size`` draws
    hashes = size if bit_width == 64 else -(-size // 2)
    counter_high = jnp.broadcast_to(data[2], (hashes,))
    counter_low = jnp.arange(hashes, dtype=_U32)
    high, low = hash_words(data[0] ^ data[3], data[1] ^ data[4], counter_high, counter_low)
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
# the same keys and bits, each hash compiled as JAX's threefry2x32 loop (see "Code size")
_PARTICLE_KEY_LOOPED = define_prng_impl(
    key_shape=(5,),
    seed=_particle_seed,
    split=_particle_split,
    random_bits=lambda data, bit_width, shape: _particle_random_bits(data, bit_width, shape, _looped_hash),
    fold_in=_particle_fold_in,
    name="ppl_particle_looped",
    tag="ppl_l",
)


def _seed_words(key: jax.Array) -> jax.Array:
    """Two uint32 words hashed from ``key``: threefry of its data for two-word (e.g.
    threefry) keys, fused with the rest of the program; ``jax.random.bits`` otherwise."""
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    data = jax.random.key_data(key) if typed else key
    if data.shape != (2,) or data.dtype != _U32:
        words = jax.random.bits(key, (2,), _U32)
    else:
        words = jnp.stack(_threefry2x32(data[0], data[1], _U32(0x5EED5EED), _U32(0xB10C0000)))
    # computed once, as a scalar: left to itself XLA may fuse this hash into the loop
    # that writes every particle's key data and recompute it per particle (seen on
    # CPU in B1 at 10^6 particles: 1.3x the hand-written JAX's time with, 1.06x without)
    return jax.lax.optimization_barrier(words)


def particle_keys(key: jax.Array, start, count: int, unrolled: bool = True) -> jax.Array:
    """Counter-based keys of particles ``start, ..., start + count - 1`` (shape ``(count,)``).

    Key data ``(s0, s1, p, 0, 0)``: a 64-bit seed drawn once from ``key`` (one
    hash for all particles), the particle index ``p`` and an empty 64-bit path.
    ``split`` and ``fold_in`` mix only the path (a few integer operations, no
    hash), and a draw of ``size`` random words hashes the counters
    ``(p, 0..size-1)`` under the threefry2x32 key ``seed ^ path``: one hash per
    pair of words, as in a hand-written ``normal(key, (n, d))``, and distinct
    particles, paths and positions never share an input. Use them like any key.
    ``unrolled=False`` gives the same keys and bits with each hash compiled as a
    loop (for programs with many draws; see :func:`unrolled_for`).
    """
    return keys_at(key, jnp.asarray(start).astype(_U32) + jnp.arange(count, dtype=_U32), unrolled)


def keys_at(key: jax.Array, indices: jax.Array, unrolled: bool = True) -> jax.Array:
    """The keys of the particles ``indices`` (any ``(m,)`` integer array), as :func:`particle_keys`."""
    seed = _seed_words(key)
    count = indices.shape[0]
    zeros = jnp.zeros((count, 2), _U32)
    data = jnp.concatenate([jnp.broadcast_to(seed, (count, 2)), indices.astype(_U32)[:, None], zeros], axis=1)
    return jax.random.wrap_key_data(data, impl=_PARTICLE_KEY if unrolled else _PARTICLE_KEY_LOOPED)


def unrolled_for(run, key: jax.Array) -> bool:
    """Whether ``run(particle_key)`` makes at most ``UNROLLED_HASHES`` draws (counted in its
    jaxpr, sub-programs included): then its hashes are unrolled, else looped."""
    probe = keys_at(key, jnp.zeros((1,), _U32))[0]
    return _count_draws(jax.make_jaxpr(run)(probe).jaxpr) <= UNROLLED_HASHES


def _count_draws(jaxpr) -> int:
    count = 0
    for equation in jaxpr.eqns:
        count += equation.primitive.name == "random_bits"
        for value in equation.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    count += _count_draws(inner)
    return count
