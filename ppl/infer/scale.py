"""Scaling a particle (or batch) axis: blocks of bounded size, and sharding over devices.

Two independent tools, shared by the inference algorithms that have an axis of
independent units (importance particles, a batch of observations to classify):

**Blocks (chunks).** A computation over ``n`` units that does not fit in memory
at once runs as blocks of ``block_size`` units, one compiled program reused for
every block (the block's ``start`` is a traced argument). The last block is
padded to the full size and its extra units are dropped, so a ragged ``n``
compiles nothing new. Each unit's randomness must depend only on its index (as
:func:`ppl.infer.importance.particle_keys` does), so the units' results do not
depend on how ``n`` is split (bit for bit, or to float rounding where XLA
compiles the arithmetic differently for another block size). Eagerly, :func:`map_blocks` loops in Python with a
progress bar (shown once a run lasts 2 s, see :mod:`ppl.infer.progress`); under
``jit`` (traced inputs) :func:`scan_blocks` runs the same blocks in a
``lax.map``.

**Cache blocks (CPU).** On a CPU, memory traffic rather than arithmetic limits
a vmapped model: beyond a few ten thousand units its per-unit intermediates
no longer fit in cache and every fused loop writes them to memory and reads
them back. :func:`in_cache_blocks` runs a large block as a ``lax.map`` over
cache-sized sub-blocks inside its program (same results, as above).

**Sharding.** :func:`particle_mesh` makes a one-axis ``jax.sharding.Mesh``
(axis name ``"particles"``) over the chosen devices, and :func:`shard_particles`
constrains the leading axis of arrays, inside a jitted program, to be split
over it; XLA then partitions the whole vmapped computation and inserts the
reductions. Nothing else is needed: results stay ordinary (sharded) arrays.

**More than one process.** Under JAX's multi-process runtime
(``jax.distributed.initialize``, one process per host or per accelerator),
``devices="all"`` means ``jax.devices()``: every device of every process. Each
process runs the same program on its own share of the particle axis and XLA's
collectives combine the reductions; :func:`gather` then copies the sharded
per-unit results to every process, so each one ends with the whole, ordinary
result (the same as one process computes: the units' randomness depends only
on the key and their index). See ``docs/distributed.md``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from ppl.infer.scale import map_blocks
    >>> block = jax.jit(lambda start: (start + jnp.arange(4), None))
    >>> per_unit, _ = map_blocks(block, 10, 4, progress=False)
    >>> per_unit.tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ppl.errors import InferenceError
from ppl.infer.progress import progress_bar

__all__ = [
    "PARTICLE_AXIS",
    "particle_mesh",
    "particle_sharding",
    "shard_particles",
    "gather",
    "device_count",
    "check_divisible",
    "check_block_size",
    "block_starts",
    "map_blocks",
    "scan_blocks",
    "CPU_CACHE_BLOCK",
    "cache_block_size",
    "in_cache_blocks",
]

PARTICLE_AXIS = "particles"


def particle_mesh(devices: None | str | Sequence[jax.Device] = None) -> Mesh | None:
    """A one-axis mesh (axis ``"particles"``) over ``devices``, or ``None`` for the default device.

    Args:
      devices: ``None`` (no sharding: the default device), ``"all"``
        (``jax.devices()``: the local devices, or under ``jax.distributed`` every
        process's devices), or a sequence of ``jax.Device``.

    Raises:
      InferenceError: an empty sequence, something that is not a device, or another string.
    """
    if devices is None:
        return None
    if isinstance(devices, str):
        if devices != "all":
            raise InferenceError(
                f"devices must be None, 'all' or a sequence of jax devices, got {devices!r}. "
                "Pass devices='all' to shard over jax.devices()."
            )
        devices = jax.devices()
    devices = list(devices)
    if not devices or not all(isinstance(device, jax.Device) for device in devices):
        raise InferenceError(
            f"devices must be a non-empty sequence of jax devices (e.g. jax.local_devices()), "
            f"got {devices!r}."
        )
    return Mesh(np.array(devices), (PARTICLE_AXIS,))


def particle_sharding(mesh: Mesh) -> NamedSharding:
    """Arrays split along their leading axis over the mesh's ``"particles"`` axis."""
    return NamedSharding(mesh, PartitionSpec(PARTICLE_AXIS))


def device_count(mesh: Mesh | None) -> int:
    """How many devices share the particle axis (1 without a mesh)."""
    return 1 if mesh is None else mesh.devices.size


def shard_particles(tree: Any, mesh: Mesh | None) -> Any:
    """Inside a jitted program: split every leaf's leading axis over ``mesh`` (identity for ``None``).

    Apply it to the per-unit inputs (e.g. the particles' keys or indices) and
    XLA shards everything computed from them. Leaves may be PRNG key arrays.
    """
    if mesh is None:
        return tree
    return jax.lax.with_sharding_constraint(tree, particle_sharding(mesh))


def gather(tree: Any, mesh: Mesh | None) -> Any:
    """Outside ``jit``: every leaf of a result computed over ``mesh`` as an array this process can read.

    With one process this is the identity (sharded arrays are readable as they
    are). Under ``jax.distributed`` a result sharded over several processes'
    devices is not: each process holds its share only. Every such leaf is then
    copied whole to every process (``multihost_utils.process_allgather``; PRNG
    key leaves through their key data). It is a collective: every process must
    call it, in the same order, as every process runs the same program.
    """
    if mesh is None or jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    def whole(leaf):
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
            return leaf
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            data = multihost_utils.process_allgather(jax.random.key_data(leaf), tiled=True)
            return jax.random.wrap_key_data(jnp.asarray(data), impl=jax.random.key_impl(leaf))
        return jnp.asarray(multihost_utils.process_allgather(leaf, tiled=True))

    return jax.tree_util.tree_map(whole, tree)


def check_divisible(count: int, mesh: Mesh | None, what: str, model_name: str | None = None) -> None:
    """Raise ``InferenceError`` unless ``count`` units split evenly over the mesh's devices."""
    devices = device_count(mesh)
    if count % devices:
        lower, upper = count // devices * devices, -(-count // devices) * devices
        suggestion = f"{upper}" if lower == 0 else f"{lower} or {upper}"
        raise InferenceError(
            f"{what}={count} cannot be split evenly over {devices} devices: sharding needs a "
            f"multiple of {devices}. Pass {what}={suggestion}.",
            model=model_name,
        )


def check_block_size(block_size, what: str, model_name: str | None = None) -> None:
    """Raise ``InferenceError`` unless ``block_size`` is ``None`` or a positive Python int."""
    if block_size is None:
        return
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise InferenceError(
            f"{what} must be a positive Python int (units per block) or None, got {block_size!r}. "
            f"Pass e.g. {what}=100_000.",
            model=model_name,
        )


def block_starts(n: int, block_size: int) -> list[int]:
    """The first unit of each block: ``[0, block_size, 2 block_size, ...]`` below ``n``."""
    return list(range(0, n, block_size))


def _concatenate(blocks: list, n: int):
    return jax.tree_util.tree_map(lambda *leaves: jnp.concatenate(leaves)[:n], *blocks)


def map_blocks(
    block: Callable[[Any], tuple[Any, Any]],
    n: int,
    block_size: int,
    *,
    progress: bool | None = None,
    description: str = "blocks",
) -> tuple[Any, Any]:
    """Run ``block(start)`` for every block of ``n`` units, eagerly; concatenate the per-unit results.

    Args:
      block: a (compiled) function of the block's first unit ``start`` (passed as
        a ``uint32`` array, so one compilation serves every block) returning
        ``(per_unit, shared)``: ``per_unit`` a pytree whose leaves have the
        leading axis ``block_size`` (units ``start ... start + block_size - 1``),
        ``shared`` a pytree the same for every block (only the first block's is kept).
      n: the number of units; the last block computes ``block_size`` units and
        keeps the first ``n - start``.
      block_size: units per block.
      progress: the progress bar (``None``: shown once the run lasts 2 s, unless
        ``PPL_PROGRESS=0``; ``False`` never; ``True`` at once).
      description: the bar's label.

    Returns:
      ``(per_unit, shared)`` with ``per_unit``'s leaves of leading axis ``n``.
    """
    starts = block_starts(n, block_size)
    blocks, shared = [], None
    with progress_bar(len(starts), description, enabled=progress, unit="block") as bar:
        for index, start in enumerate(starts):
            per_unit, block_shared = block(jnp.asarray(start, jnp.uint32))
            if index == 0:
                shared = block_shared
            else:  # wait for the previous block (this one is queued): the bar shows finished work
                jax.block_until_ready(blocks[-1])
                bar.update()
            blocks.append(per_unit)
        jax.block_until_ready(blocks[-1])
        bar.update()
    return _concatenate(blocks, n), shared


def scan_blocks(block: Callable[[Any], tuple[Any, Any]], n: int, block_size: int) -> tuple[Any, Any]:
    """:func:`map_blocks` for traced programs (inside ``jit``): the blocks run in one ``lax.map``.

    ``block(start)`` is traced once; blocks run one after the other, so the
    memory of one block's intermediates is bounded by ``block_size``. ``shared``
    is the first block's (every block's is stacked by the loop; keep it small).
    """
    starts = jnp.asarray(block_starts(n, block_size), jnp.uint32)
    per_unit, shared = jax.lax.map(block, starts)  # traced once
    shared = jax.tree_util.tree_map(lambda leaf: leaf[0], shared)
    per_unit = jax.tree_util.tree_map(lambda leaf: leaf.reshape(-1, *leaf.shape[2:])[:n], per_unit)
    return per_unit, shared


# A block of more than twice this many units runs, on CPU, as a loop over
# sub-blocks of at most about this many (see cache_block_size).
CPU_CACHE_BLOCK = 32_768
_ALIGN = 1024


def cache_block_size(size: int, mesh: Mesh | None) -> int | None:
    """Units per sub-block for a block of ``size`` units, or ``None`` to run it in one piece.

    On CPU, without a mesh, blocks of more than ``2 * CPU_CACHE_BLOCK`` units
    split into the fewest even sub-blocks of at most about ``CPU_CACHE_BLOCK``
    units, rounded up to a multiple of 1,024 (odd sizes vectorise worse), so
    the padding is at most 1,024 units per sub-block. B1 (importance sampling,
    20-point regression) at 10^6 particles: 1.9x the hand-written JAX's time in
    one piece, about 1x in sub-blocks. GPUs and sharded blocks run in one piece:
    parallelism matters more there.
    """
    if mesh is not None or size <= 2 * CPU_CACHE_BLOCK or jax.default_backend() != "cpu":
        return None
    count = -(-size // CPU_CACHE_BLOCK)
    return -(-size // (count * _ALIGN)) * _ALIGN


def in_cache_blocks(
    block: Callable[[Any, int], tuple[Any, Any]], start, size: int, mesh: Mesh | None = None
) -> tuple[Any, Any]:
    """Inside a traced program: ``block(start, size)``, run as cache-sized sub-blocks where that helps.

    ``block(first, count)`` returns ``(per_unit, shared)`` for units ``first ...
    first + count - 1`` (``first`` may be traced). Where :func:`cache_block_size`
    gives a sub-block size, the sub-blocks run in a ``lax.map`` and their
    per-unit results are concatenated (and trimmed to ``size``).
    """
    sub_block = cache_block_size(size, mesh)
    if sub_block is None:
        return block(start, size)
    start = jnp.asarray(start, jnp.uint32)
    return scan_blocks(lambda offset: block(start + offset, sub_block), size, sub_block)
