"""Arguments of an inference call: which are traced arrays, which compile-time constants.

As in ``equinox.filter_jit``: array arguments are traced, every other argument
(Python numbers, strings, functions) is static and part of the compiled
program's cache key. Shared by ``importance`` and ``smc``.
"""

from __future__ import annotations

import jax
import numpy as np

from ppl.errors import ModelDefinitionError

__all__ = ["is_traced", "is_array", "split_args", "join_args"]


def is_traced(tree) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


def is_array(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic))


def split_args(args: tuple, model):
    """Arrays are traced; everything else is static (part of the compilation cache key)."""
    leaves, treedef = jax.tree_util.tree_flatten(tuple(args))
    dynamic = tuple(leaf for leaf in leaves if is_array(leaf))
    static = (treedef, tuple(None if is_array(leaf) else leaf for leaf in leaves))
    try:
        hash(static)
    except TypeError:
        raise ModelDefinitionError(
            "inference treats non-array arguments as compile-time constants, so they must be "
            f"hashable; got {args!r}. Pass arrays (jnp.asarray(...)) or hashable values.",
            model=model.name,
        ) from None
    return dynamic, static


def join_args(dynamic: tuple, static) -> tuple:
    treedef, static_leaves = static
    arrays = iter(dynamic)
    leaves = [next(arrays) if leaf is None else leaf for leaf in static_leaves]
    return jax.tree_util.tree_unflatten(treedef, leaves)
