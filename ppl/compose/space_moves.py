"""Neighbourhood moves over the codes of a ``ppl.Space`` (heap-layout expression trees).

Every move is a pure, jittable function of ``(key, code)`` on fixed-shape
``int32[2**D - 1]`` arrays, so ``jax.vmap`` moves a whole population of
structures at once. Valid codes always map to valid codes.

=========  ================================================================  ===========================
move       what it does                                                      when impossible
=========  ================================================================  ===========================
replace    pick a non-empty node uniformly; redraw its subtree from the       never
           grammar prior (at that node's level)
insert     pick a node whose subtree fits one level lower, uniformly; make    no such node: code unchanged
           it ``op(subtree, t)`` or ``op(t, subtree)`` (side 1/2 each) with
           ``op ~ operator_probs``, ``t ~ terminal_probs``
delete     pick an operator node uniformly; replace it by its left or right   no operator: code unchanged
           operand (1/2 each), dropping the other
=========  ================================================================  ===========================

``propose`` picks one of the moves possible for the current code (weights
``(replace, insert, delete)`` renormalised over those) and returns the exact
``log q(new | old)`` and ``log q(old | new)``, each summed over *every* way the
mixture can turn one code into the other, so a Metropolis–Hastings step over
structures is ``log α = Δ(log p(obs | code) + log_prior) + log q(old | new) -
log q(new | old)``.

Subtree moves use static gather tables of the heap layout: ``subtree[s, r]`` is
the absolute index of relative node ``r`` (heap numbering inside a subtree) of
the subtree rooted at ``s`` (``-1`` beyond the bottom level), and
``relative[s, j]`` is its inverse (``-1`` when ``j`` is not below ``s``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from ppl.errors import CompositionError

__all__ = [
    "MOVE_WEIGHTS",
    "tables",
    "regenerate",
    "insert_at",
    "delete_at",
    "insertable",
    "replace",
    "insert",
    "delete",
    "propose",
    "log_proposal",
    "swap",
    "grow",
    "prune",
    "neighbour",
    "neighbours",
    "NEIGHBOUR_WEIGHTS",
]

MOVE_WEIGHTS = (1.0, 1.0, 1.0)


class Tables(NamedTuple):
    """Static index tables of a complete binary tree of ``depth`` levels in heap layout."""

    index: np.ndarray  # (N,) 0..N-1
    level: np.ndarray  # (N,) level of each node (root 0)
    parent: np.ndarray  # (N,) parent of each node (root: itself)
    bottom: np.ndarray  # (N,) bool, node on the bottom level
    subtree: np.ndarray  # (N, N) absolute index of relative node r below s, or -1
    relative: np.ndarray  # (N, N) relative index of j below s, or -1
    in_subtree: np.ndarray  # (N, N) bool, j is in the subtree of s (s included)


def tables(depth: int) -> Tables:
    size = 2**depth - 1
    index = np.arange(size)
    level = np.floor(np.log2(index + 1)).astype(np.int32)
    subtree = -np.ones((size, size), np.int32)
    relative = -np.ones((size, size), np.int32)
    for s in range(size):
        offset = s - (2 ** level[s] - 1)
        for r in range(size):
            if level[s] + level[r] >= depth:
                continue
            j = 2 ** (level[s] + level[r]) - 1 + offset * 2 ** level[r] + r - (2 ** level[r] - 1)
            subtree[s, r], relative[s, j] = j, r
    parent = np.maximum((index - 1) // 2, 0)
    return Tables(index, level, parent, level == depth - 1, subtree, relative, relative >= 0)


def _gather_subtrees(code: jax.Array, tables: Tables) -> jax.Array:
    """``out[s, r] = code[subtree[s, r]]`` (0 beyond the bottom): every subtree, re-rooted. ``(N, N)``."""
    return jnp.where(tables.subtree >= 0, code[np.maximum(tables.subtree, 0)], 0)


def _width(space) -> int:
    return max(space.size, len(space.kinds), 3)


def _gumbels(space, key: jax.Array, rows: int) -> jax.Array:
    """All the randomness of a move in one draw (one PRNG call compiles far faster than many)."""
    return jax.random.gumbel(key, (rows, _width(space)))


def _pick(gumbel_row: jax.Array, logits: jax.Array) -> jax.Array:
    """A categorical draw by the Gumbel-max trick: ``argmax(logits + gumbel)``."""
    return jnp.argmax(logits + gumbel_row[..., : logits.shape[-1]], axis=-1).astype(jnp.int32)


def _uniform(gumbel_row: jax.Array, allowed: jax.Array) -> jax.Array:
    return _pick(gumbel_row, jnp.where(allowed, 0.0, -jnp.inf))


# ---------------------------------------------------------------------------
# The moves at a given place (deterministic given their arguments)
# ---------------------------------------------------------------------------


def regenerate(space, key: jax.Array, code: jax.Array, node) -> jax.Array:
    """``code`` with the subtree at ``node`` redrawn from the grammar prior (node kept non-empty)."""
    return _regenerate(space, _gumbels(space, key, space.size), code, node)


def _regenerate(space, gumbels: jax.Array, code: jax.Array, node) -> jax.Array:
    t = space.tables
    logits = jnp.asarray(space.level_log_probs[:, 1:], dtype=jnp.result_type(float))[t.level]
    draws = 1 + _pick(gumbels[: space.size], logits)
    inside = jnp.asarray(t.in_subtree)[node]
    new = code
    for _ in range(space.depth):  # level by level: a node below is active iff its parent is an operator
        active = (t.index == node) | space.is_operator(new[t.parent])
        new = jnp.where(inside, jnp.where(active, draws, 0), code)
    return new.astype(jnp.int32)


def insert_at(space, code: jax.Array, node, side, operator, terminal) -> jax.Array:
    """``code`` with the subtree ``s`` at ``node`` replaced by ``operator(s, terminal)`` (``side=0``)
    or ``operator(terminal, s)`` (``side=1``); kinds are kind ids. The subtree must fit one level lower."""
    t = space.tables
    keep, other = 2 * node + 1 + side, 2 * node + 2 - side
    relative = jnp.asarray(t.relative)[keep]
    source = jnp.asarray(t.subtree)[node, jnp.maximum(relative, 0)]
    moved = code[jnp.maximum(source, 0)]
    inside = jnp.asarray(t.in_subtree)[node]
    new = jnp.where(relative >= 0, moved, jnp.where(inside, 0, code))
    return new.at[node].set(operator).at[other].set(terminal).astype(jnp.int32)


def delete_at(space, code: jax.Array, node, side) -> jax.Array:
    """``code`` with the operator at ``node`` replaced by its operand ``side`` (0 left, 1 right)."""
    t = space.tables
    relative = jnp.asarray(t.relative)[node]
    source = jnp.asarray(t.subtree)[2 * node + 1 + side, jnp.maximum(relative, 0)]
    lifted = jnp.where(source >= 0, code[jnp.maximum(source, 0)], 0)
    return jnp.where(relative >= 0, lifted, code).astype(jnp.int32)


def insertable(space, code: jax.Array) -> jax.Array:
    """Per node: can :func:`insert` wrap the subtree there (non-empty, not bottom, fits one level lower)."""
    t = space.tables
    if space.num_operators == 0:
        return jnp.zeros(space.size, bool)
    reaches_bottom = jnp.any(t.in_subtree & ((code != 0) & t.bottom)[None, :], axis=1)
    return (code != 0) & ~t.bottom & ~reaches_bottom


# ---------------------------------------------------------------------------
# The random moves
# ---------------------------------------------------------------------------


def replace(space, key: jax.Array, code: jax.Array) -> jax.Array:
    return _replace(space, _gumbels(space, key, 1 + space.size), code)


def _replace(space, gumbels: jax.Array, code: jax.Array) -> jax.Array:
    code = space.check_shape(code)
    return _regenerate(space, gumbels[1:], code, _uniform(gumbels[0], code != 0))


def insert(space, key: jax.Array, code: jax.Array) -> jax.Array:
    return _insert(space, _gumbels(space, key, 4), code)


def _insert(space, gumbels: jax.Array, code: jax.Array) -> jax.Array:
    code = space.check_shape(code)
    if space.num_operators == 0:
        return code
    allowed = insertable(space, code)
    node = _uniform(gumbels[0], allowed)
    side = _pick(gumbels[1], jnp.zeros(2))
    operator = 1 + space.num_terminals + _pick(gumbels[2], jnp.log(space.operator_probs))
    terminal = 1 + _pick(gumbels[3], jnp.log(space.terminal_probs))
    return jnp.where(jnp.any(allowed), insert_at(space, code, node, side, operator, terminal), code)


def delete(space, key: jax.Array, code: jax.Array) -> jax.Array:
    return _delete(space, _gumbels(space, key, 2), code)


def _delete(space, gumbels: jax.Array, code: jax.Array) -> jax.Array:
    code = space.check_shape(code)
    operators = space.is_operator(code)
    node = _uniform(gumbels[0], operators)
    side = _pick(gumbels[1], jnp.zeros(2))
    return jnp.where(jnp.any(operators), delete_at(space, code, node, side), code)


def swap(space, key: jax.Array, code: jax.Array) -> jax.Array:
    """``code`` with one terminal (picked uniformly) replaced by a different terminal (uniformly): the
    smallest change of meaning, e.g. ``changepoint(random_walk, level)`` -> ``changepoint(level, level)``.
    Not one of :func:`propose`'s moves (whose proposal probabilities MCMC needs); :func:`neighbour` mixes
    it in for search. The code is unchanged when the space has one terminal."""
    code = space.check_shape(code)
    gumbels = _gumbels(space, key, 2)
    terminals = (code >= 1) & (code <= space.num_terminals)
    node = _uniform(gumbels[0], terminals)
    count = space.num_terminals
    if count < 2:
        return code
    shift = 1 + _pick(gumbels[1], jnp.zeros(count - 1))  # 1 .. count-1: never the same terminal
    swapped = 1 + (code[node] - 1 + shift) % count
    return jnp.where(jnp.any(terminals), code.at[node].set(swapped), code).astype(jnp.int32)


def grow(space, key: jax.Array, code: jax.Array) -> jax.Array:
    """``code`` with a terminal (uniform) joined by the space's first operator (e.g. ``+``) at the highest
    node with room: the whole structure when it fits (``a + b`` -> ``(a + b) + c``), else the shallowest
    insertable subtree (uniformly among those). How an Automatic-Statistician search grows a model; not one of
    :func:`propose`'s moves. The code is unchanged when nothing fits or the space has no operator."""
    code = space.check_shape(code)
    if space.num_operators == 0:
        return code
    gumbels = _gumbels(space, key, 3)
    allowed = insertable(space, code)
    level = jnp.asarray(space.tables.level)
    shallowest = jnp.min(jnp.where(allowed, level, space.depth))
    node = _uniform(gumbels[0], allowed & (level == shallowest))
    side = _pick(gumbels[1], jnp.zeros(2))
    terminal = 1 + _pick(gumbels[2], jnp.log(space.terminal_probs))
    grown = insert_at(space, code, node, side, 1 + space.num_terminals, terminal)
    return jnp.where(jnp.any(allowed), grown, code).astype(jnp.int32)


def prune(space, key: jax.Array, code: jax.Array) -> jax.Array:
    """``code`` with one terminal (uniform among those under an operator) removed, its sibling subtree taking
    the operator's place: ``a + b + c`` -> ``a + c``, the opposite of :func:`grow`. A single terminal stays.
    Not one of :func:`propose`'s moves (whose ``delete`` drops a whole operand, picked by operator)."""
    code = space.check_shape(code)
    gumbels = _gumbels(space, key, 1)
    index = jnp.arange(space.size)
    terminals = (code >= 1) & (code <= space.num_terminals) & (index > 0)
    node = _uniform(gumbels[0], terminals)
    parent = (node - 1) // 2
    keep = (node % 2 == 1).astype(jnp.int32)  # a left child (odd node) leaves the right operand, and vice versa
    return jnp.where(jnp.any(terminals), delete_at(space, code, parent, keep), code).astype(jnp.int32)


NEIGHBOUR_WEIGHTS = (0.3, 0.2, 0.2, 0.3)  # swap, grow, prune, a propose move


def neighbour(space, key: jax.Array, code: jax.Array, weights=NEIGHBOUR_WEIGHTS) -> jax.Array:
    """A neighbour for search: :func:`swap`, :func:`grow`, :func:`prune` or a :func:`propose` move (replace a
    subtree, insert an operator, delete one), with probabilities ``weights``. Swaps, growth and pruning are
    the small steps (one component changed, added or removed, as the Automatic Statistician's search moves)
    that random subtree moves rarely make. Use as ``ppl.infer.search(..., propose=functools.partial(neighbour,
    space))``."""
    choice_key, swap_key, grow_key, prune_key, move_key = jax.random.split(key, 5)
    moved, _, _ = propose(space, move_key, code)
    candidates = jnp.stack([swap(space, swap_key, code), grow(space, grow_key, code), prune(space, prune_key, code),
                            moved])
    return candidates[jax.random.categorical(choice_key, jnp.log(jnp.asarray(weights)))]


def neighbours(space, code: jax.Array) -> jax.Array:
    """Every :func:`swap`, :func:`prune` and :func:`grow` of ``code``, deterministically: ``(M, L)`` with
    ``M = L * K + (L - 1) + 2 * L * K`` (``K`` terminals; no grows in a space without operators), in that
    order. Grows wrap any insertable subtree, not only the shallowest, with the space's first operator. A
    move that is impossible where it is tried (no terminal at that node, no room) gives ``code`` itself, so
    the shape is fixed and the function jits once per space; rows repeat, and they may write one structure
    several ways. ``ppl.infer.search(..., refine=...)`` scores the rows not scored yet.

    Example::

        >>> import ppl
        >>> from ppl import dist
        >>> @ppl.model
        ... def draw():
        ...     return ppl.sample("x", dist.Normal(0.0, 1.0))
        >>> space = ppl.Space({"a": draw, "b": draw}, {"+": lambda x, y: x + y}, depth=3)
        >>> sorted({space.describe(c) for c in neighbours(space, space.encode(("+", "a", "b")))})
        ['a', 'a + a', 'a + a + b', 'a + b', 'a + b + a', 'a + b + b', 'b', 'b + a + b', 'b + b']
    """
    code = space.check_shape(code)
    count, nodes = space.num_terminals, np.arange(space.size)
    terminal = (code >= 1) & (code <= count)
    kinds = np.arange(1, count + 1, dtype=np.int32)
    node_of, kind_of = (a.ravel() for a in np.meshgrid(nodes, kinds, indexing="ij"))
    swapped = jax.vmap(lambda node, kind: jnp.where(terminal[node], code.at[node].set(kind), code))(node_of, kind_of)
    children = nodes[1:]  # a left child (odd node) leaves the right operand, and vice versa
    pruned = jax.vmap(lambda node, keep: jnp.where(terminal[node], delete_at(space, code, (node - 1) // 2, keep),
                                                   code))(children, (children % 2 == 1).astype(np.int32))
    rows = [swapped, pruned]
    if space.num_operators:
        allowed = insertable(space, code)
        node_of, side_of, kind_of = (a.ravel() for a in np.meshgrid(nodes, np.arange(2), kinds, indexing="ij"))
        rows.append(jax.vmap(lambda node, side, kind: jnp.where(
            allowed[node], insert_at(space, code, node, side, count + 1, kind), code))(node_of, side_of, kind_of))
    return jnp.concatenate(rows).astype(jnp.int32)


def _move_log_weights(space, code: jax.Array, weights) -> jax.Array:
    """log (replace, insert, delete) probabilities for ``code``: ``weights`` over the possible moves."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (3,) or not np.all(weights >= 0) or weights[0] <= 0:
        raise CompositionError(
            f"move weights are (replace, insert, delete), non-negative with replace > 0, got {weights!r}.",
            model=space.name,
        )
    can_insert, can_delete = jnp.any(insertable(space, code)), jnp.any(space.is_operator(code))
    possible = jnp.stack([jnp.array(True), can_insert, can_delete])
    with np.errstate(divide="ignore"):
        log_weights = jnp.where(possible, jnp.log(weights), -jnp.inf)
    return log_weights - logsumexp(log_weights)


def propose(space, key: jax.Array, code: jax.Array, weights=MOVE_WEIGHTS):
    """``(new_code, log q(new | code), log q(code | new))`` for a random move (see the module docs)."""
    code = space.check_shape(code)
    gumbels = _gumbels(space, key, 1 + (1 + space.size) + 4 + 2)
    move = _pick(gumbels[0], _move_log_weights(space, code, weights))
    candidates = jnp.stack([_replace(space, gumbels[1 : 2 + space.size], code),
                            _insert(space, gumbels[2 + space.size : 6 + space.size], code),
                            _delete(space, gumbels[6 + space.size :], code)])
    new = candidates[move]
    return new, log_proposal(space, code, new, weights), log_proposal(space, new, code, weights)


def log_proposal(space, code: jax.Array, new: jax.Array, weights=MOVE_WEIGHTS) -> jax.Array:
    """Exact ``log q(new | code)`` of :func:`propose` for valid codes (``-inf`` if unreachable)."""
    t = space.tables
    old, new = space.check_shape(code), space.check_shape(new)
    agree_outside = jnp.all(t.in_subtree | (old == new)[None, :], axis=1)  # per node s
    old_subtrees, new_subtrees = _gather_subtrees(old, t), _gather_subtrees(new, t)

    # replace at s: old and new agree outside subtree(s); new's subtree at s has its prior probability
    node_log_probs = space.node_log_probs(new)[None, :]
    new_subtree_log_prior = jnp.sum(jnp.where(t.in_subtree, node_log_probs, 0.0), axis=1)
    replace_ok = (old != 0) & (new != 0) & agree_outside
    log_q_replace = logsumexp(jnp.where(replace_ok, new_subtree_log_prior, -jnp.inf)) - jnp.log(
        jnp.maximum(jnp.sum(old != 0), 1))

    # insert at s, old subtree kept on `side`: new[s] = op, new's subtree at that child == old's at s
    allowed = insertable(space, old)
    log_operator_probs = jnp.log(space.operator_probs) if space.num_operators else jnp.zeros(1)
    insert_terms = []
    for side in (0, 1):
        keep = np.minimum(2 * t.index + 1 + side, space.size - 1)
        other = np.minimum(2 * t.index + 2 - side, space.size - 1)
        same = jnp.all(new_subtrees[keep] == old_subtrees, axis=1)
        is_terminal = (new[other] >= 1) & (new[other] <= space.num_terminals)
        log_p = log_operator_probs[jnp.clip(new - 1 - space.num_terminals, 0, len(log_operator_probs) - 1)]
        log_p = log_p + jnp.log(space.terminal_probs)[jnp.clip(new[other] - 1, 0, space.num_terminals - 1)]
        ok = allowed & agree_outside & same & space.is_operator(new) & is_terminal
        insert_terms.append(jnp.where(ok, log_p, -jnp.inf))
    log_q_insert = logsumexp(jnp.stack(insert_terms)) - jnp.log(2.0 * jnp.maximum(jnp.sum(allowed), 1))

    # delete at s keeping operand `side`: new's subtree at s == old's subtree at that child
    operators = space.is_operator(old) & ~t.bottom
    delete_terms = []
    for side in (0, 1):
        child = np.minimum(2 * t.index + 1 + side, space.size - 1)
        same = jnp.all(new_subtrees == old_subtrees[child], axis=1)
        delete_terms.append(jnp.where(operators & agree_outside & same, 0.0, -jnp.inf))
    log_q_delete = logsumexp(jnp.stack(delete_terms)) - jnp.log(2.0 * jnp.maximum(jnp.sum(operators), 1))

    per_move = jnp.stack([log_q_replace, log_q_insert, log_q_delete])
    return logsumexp(_move_log_weights(space, old, weights) + per_move)
