"""The space of compositions: a bounded-depth grammar whose sentences are fixed-shape arrays.

A :class:`Space` is a probabilistic grammar over expressions built from
*terminals* (generative functions such as ``trend``, ``periodic``) and binary
*operators* (``+``, ``*``, ``changepoint``), e.g.
``trend + periodic(12) + changepoint(trend, level)``.

**Encoding.** An expression of depth at most ``D`` is a complete binary tree in
heap layout stored as a ``code``: an ``int32`` array of shape ``(2**D - 1,)``.
Node ``i`` has children ``2i+1`` and ``2i+2`` and sits at level
``floor(log2(i+1))`` (root: node 0, level 0). ``code[i]`` is the node's *kind*::

    0            empty
    1 .. B       terminal  (in the order of the ``terminals`` dict)
    B+1 .. B+O   operator  (in the order of the ``operators`` dict)

A code is *valid* (inside the space) when the root is non-empty, every
operator node has two non-empty children, terminal and empty nodes have empty
subtrees, and no operator sits on the bottom level. Because every code has the
same shape and dtype, a batch of *different* compositions is one array of
shape ``(n, 2**D - 1)``, scored by one ``jit(vmap(...))`` call that compiles
once.

**Prior.** A node at level ``d`` is an operator with probability
``p_operator[d]`` (``0`` on the bottom level) and a terminal otherwise; the
operator is drawn from ``operator_probs`` and the terminal from
``terminal_probs``. ``log_prior(code)`` is the sum over non-empty nodes, and
``-inf`` for invalid codes; ``sample`` draws exactly from it. With
``0 < p_operator < 1`` and positive ``*_probs`` (enforced), a code is valid
exactly when its prior is positive.

**Model.** ``space.model`` is a generative function of ``(code, *args)``; the
code is an ordinary (traceable) argument. Every node holds every terminal's
choices at ``"node_{i}/{terminal}/..."`` and every non-bottom node every
operator's choices at ``"node_{i}/{operator}/..."``, whatever the code, so the
choice map has one fixed structure; node ``i``'s value is its active kind's
value (``ppl.either`` semantics, with ``code[i]`` as the index). Only active
kinds at non-empty nodes count in the score; the others are placeholders
(simulated or constrained values). With ``observe``, the observation is
sampled at ``"obs"`` given the root's value. ``score = log p(latents, obs |
code)``; the structure prior is separate (``space.log_prior``).

Neighbourhood moves (``replace``, ``insert``, ``delete``, ``propose``) live in
``ppl.compose.space_moves`` and are methods here; all are jittable pure
functions of ``(key, code)``, vmappable over a population.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ppl import validation
from ppl.choices import ChoiceMap, as_choice_map
from ppl.compose import space_model, space_moves
from ppl.errors import CompositionError, did_you_mean
from ppl.model import GenerativeFunction

__all__ = ["Space"]

PROB_TOL = 1e-6
INFIX_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "@": 2, "^": 3, "**": 3}
ASSOCIATIVE = {"+", "*"}


class Space:
    """A bounded-depth probabilistic grammar of compositions (see the module docstring).

    Args:
      terminals: ``{name: generative function}``; each is called with the
        model's ``*args`` and returns a value of one common structure, shape
        and dtype (e.g. a length-``T`` series).
      operators: ``{name: binary operator}``: a generative function called with
        ``(left, right, *args)`` (it may have latent choices, such as a
        changepoint's time), or a plain function ``(left, right) -> value``.
        Names made of symbols (``"+"``, ``"*"``) print infix.
      depth: maximum tree depth ``D >= 1`` (``depth=1``: single terminals).
      p_operator: probability that a non-bottom node is an operator; a number
        or one per non-bottom level (length ``D - 1``), each in ``(0, 1)``.
      terminal_probs, operator_probs: probabilities of each terminal / operator
        given that a node is one (``None``: uniform); positive, summing to one.
      observe: optional likelihood of the root value: a function
        ``(value, *args) -> Distribution`` (observation at ``"obs"``) or a
        generative function of ``(value, *args)`` (choices under ``"obs/..."``).
      name: name of ``space.model`` in messages.

    Example::

        >>> space = ppl.Space(terminals={"level": level, "trend": trend},
        ...                   operators={"+": lambda a, b: a + b}, depth=3)
        >>> code = space.encode(("+", "trend", "level"))
        >>> space.describe(code)
        'trend + level'
    """

    def __init__(
        self,
        terminals: Mapping[str, GenerativeFunction],
        operators: Mapping[str, GenerativeFunction | Callable] | None = None,
        *,
        depth: int,
        p_operator: float | Sequence[float] = 0.4,
        terminal_probs: Sequence[float] | None = None,
        operator_probs: Sequence[float] | None = None,
        observe: Callable | GenerativeFunction | None = None,
        name: str = "space",
    ):
        self.name = name
        operators = dict(operators or {})
        self.terminals = _check_kinds(terminals, "terminal", name, need_one=True)
        operators = _check_kinds(operators, "operator", name)
        self.operators = {key: space_model.as_operator(key, op, name) for key, op in operators.items()}
        both = set(self.terminals) & set(self.operators)
        if both:
            raise CompositionError(f"{sorted(both)} is both a terminal and an operator; names must be "
                                   "unique.", model=name)
        if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 1:
            raise CompositionError(f"depth must be an integer >= 1, got {depth!r}.", model=name)
        self.depth = int(depth)
        self.size = 2**self.depth - 1
        self.num_terminals = len(self.terminals)
        self.num_operators = len(self.operators)
        self.kinds = ("",) + tuple(self.terminals) + tuple(self.operators)
        self.terminal_probs = _check_probs(terminal_probs, self.num_terminals, "terminal_probs", name)
        self.operator_probs = _check_probs(operator_probs, self.num_operators, "operator_probs", name)
        self.p_operator = self._check_p_operator(p_operator)
        self.level_log_probs = self._level_log_probs()
        self.tables = space_moves.tables(self.depth)
        if observe is not None and not (callable(observe) or isinstance(observe, GenerativeFunction)):
            raise CompositionError(f"observe must be a function returning a distribution or a generative "
                                   f"function, got {observe!r}.", model=name)
        self.observe = observe
        self.model = space_model.CompositionModel(self, name)

    # -- grammar ---------------------------------------------------------------
    def _check_p_operator(self, p_operator) -> np.ndarray:
        levels = self.depth - 1
        if self.num_operators == 0 or levels == 0:
            return np.zeros(self.depth)
        try:
            array = np.asarray(p_operator, dtype=np.float64)
        except (TypeError, ValueError):
            array = np.full(levels, np.nan)
        array = np.broadcast_to(array, (levels,)) if array.ndim == 0 else array
        if array.shape != (levels,) or not np.all((array > 0) & (array < 1)):
            raise CompositionError(
                f"p_operator must be a number in (0, 1) or {levels} such numbers (one per non-bottom "
                f"level), got {p_operator!r}. Use a smaller depth to forbid deep trees.",
                model=self.name,
            )
        return np.concatenate([array, [0.0]])

    def _level_log_probs(self) -> np.ndarray:
        """``(D, K)`` table: log P(kind | level) for a non-empty node; column 0 (empty) is 0."""
        with np.errstate(divide="ignore"):
            table = np.zeros((self.depth, len(self.kinds)))
            terminal, operator = slice(1, 1 + self.num_terminals), slice(1 + self.num_terminals, None)
            table[:, terminal] = np.log1p(-self.p_operator)[:, None] + np.log(self.terminal_probs)
            table[:, operator] = np.log(self.p_operator)[:, None] + np.log(self.operator_probs)
        return table

    def kind_id(self, name: str) -> int:
        """The integer that encodes the terminal or operator ``name``."""
        if name not in self.kinds[1:]:
            raise CompositionError(
                f"'{name}' is not a terminal or operator of this space."
                f"{did_you_mean(name, self.kinds[1:])} It has terminals {list(self.terminals)} and "
                f"operators {list(self.operators)}.",
                model=self.name,
            )
        return self.kinds.index(name)

    def is_operator(self, code: jax.Array) -> jax.Array:
        """Elementwise: does each entry encode an operator."""
        return jnp.asarray(code) > self.num_terminals

    # -- prior -----------------------------------------------------------------
    def is_valid(self, code: jax.Array) -> jax.Array:
        """Whether ``code`` (shape ``(..., 2**D - 1)``) lies inside the space; jittable."""
        code = self.check_shape(code, batched=True)
        t = self.tables
        in_range = jnp.all((code >= 0) & (code < len(self.kinds)), axis=-1)
        operator = self.is_operator(code) & (code < len(self.kinds))
        nonempty = code != 0
        follows_parent = jnp.where(t.index > 0, nonempty == operator[..., t.parent], True)
        return (in_range & nonempty[..., 0] & jnp.all(follows_parent, axis=-1)
                & ~jnp.any(operator & t.bottom, axis=-1))

    def node_log_probs(self, code: jax.Array) -> jax.Array:
        """Per node, ``log P(code[i] | level of i)``, ``0`` at empty nodes; shape of ``code``."""
        code = jnp.clip(self.check_shape(code, batched=True), 0, len(self.kinds) - 1)
        return jnp.asarray(self.level_log_probs, dtype=jnp.result_type(float))[self.tables.level, code]

    def log_prior(self, code: jax.Array) -> jax.Array:
        """``log p(code)`` under the grammar, ``-inf`` outside the space; shape ``code.shape[:-1]``."""
        return jnp.where(self.is_valid(code), jnp.sum(self.node_log_probs(code), axis=-1), -jnp.inf)

    def sample(self, key: jax.Array) -> jax.Array:
        """Draw one code from the prior: ``int32[2**D - 1]``. Jittable; vmap over keys for a batch."""
        return space_moves.regenerate(self, key, jnp.zeros(self.size, jnp.int32), 0)

    # -- checking, reading and writing codes -------------------------------------
    def validate(self, code: Any) -> np.ndarray:
        """Raise ``CompositionError`` unless ``code`` is one concrete valid code; return it as ``int32``."""
        array = self.check_shape(code)
        if not validation.is_concrete(array):
            raise CompositionError("validate needs a concrete code; under jit use space.is_valid(code) "
                                   "or space.log_prior(code) (-inf outside the space).", model=self.name)
        array = np.asarray(array)
        for i, kind in enumerate(array):
            problem = self._node_problem(array, i, int(kind))
            if problem:
                raise CompositionError(
                    f"code {array.tolist()} is outside the space: {problem}. Valid codes come from "
                    "space.sample, space.encode or the moves; see the encoding in ppl.Space's docs.",
                    model=self.name,
                )
        return array.astype(np.int32)

    def check_shape(self, code: Any, batched: bool = False) -> jax.Array:
        """``code`` as ``int32``; ``CompositionError`` unless its shape is ``(2**D - 1,)`` (or
        ``(..., 2**D - 1)`` when ``batched``) and its dtype integer. Static checks: they run under jit."""
        try:
            array = jnp.asarray(code)
        except TypeError:
            raise CompositionError(f"a code is an int32 array of shape ({self.size},), got {code!r}.",
                                   model=self.name) from None
        if array.shape[-1:] != (self.size,) or (not batched and array.ndim != 1):
            raise CompositionError(
                f"a code of this space (depth {self.depth}) has shape "
                f"{f'(..., {self.size})' if batched else f'({self.size},)'}, got shape {array.shape}."
                + ("" if batched else " For a batch of codes use jax.vmap over the leading axis."),
                model=self.name,
            )
        if not jnp.issubdtype(array.dtype, jnp.integer):
            raise CompositionError(f"a code holds integer kind ids, got dtype {array.dtype}. Pass "
                                   "jnp.asarray(code, jnp.int32).", model=self.name)
        return array.astype(jnp.int32)

    def _node_problem(self, code: np.ndarray, i: int, kind: int) -> str:
        t = self.tables
        if not 0 <= kind < len(self.kinds):
            return f"node {i} has kind {kind}, but kinds are 0 (empty) to {len(self.kinds) - 1}"
        name = self.kinds[kind]
        if i == 0 and kind == 0:
            return "the root (node 0) is empty"
        if kind > self.num_terminals and t.bottom[i]:
            return (f"operator '{name}' at node {i} is on the bottom level (depth {self.depth}), with no "
                    "room for children")
        for child in (2 * i + 1, 2 * i + 2):
            if child >= self.size:
                continue
            if kind > self.num_terminals and code[child] == 0:
                return f"operator '{name}' at node {i} has an empty child (node {child})"
            if kind <= self.num_terminals and code[child] != 0:
                what = f"terminal '{name}'" if kind else "empty node"
                return f"{what} {i} has a non-empty child (node {child})"
        return ""

    def describe(self, code: Any) -> str:
        """A readable formula, e.g. ``'trend + periodic(12) + changepoint(trend, level)'``."""
        code = self.validate(code)
        return self._describe(code, 0)[0]

    def _describe(self, code: np.ndarray, i: int) -> tuple[str, str | None]:
        """(text, infix operator at the top of the text or None)."""
        name = self.kinds[code[i]]
        if code[i] <= self.num_terminals:
            return name, None
        left, left_op = self._describe(code, 2 * i + 1)
        right, right_op = self._describe(code, 2 * i + 2)
        if name not in INFIX_PRECEDENCE and not _is_symbol(name):
            return f"{name}({left}, {right})", None
        left = f"({left})" if _needs_parentheses(left_op, name, right_side=False) else left
        right = f"({right})" if _needs_parentheses(right_op, name, right_side=True) else right
        return f"{left} {name} {right}", name

    def encode(self, expression: str | tuple) -> jax.Array:
        """The code of a nested expression: a terminal name, or ``(operator, left, right)``.

        Example: ``space.encode(("+", "trend", ("changepoint", "trend", "level")))``.
        """
        code = np.zeros(self.size, np.int32)
        self._encode(expression, 0, code)
        return jnp.asarray(self.validate(code))

    def _encode(self, expression, i: int, code: np.ndarray) -> None:
        if i >= self.size:
            raise CompositionError(
                f"expression {expression!r} is deeper than the space's depth {self.depth}.", model=self.name
            )
        if isinstance(expression, str):
            code[i] = self.kind_id(expression)
            if code[i] > self.num_terminals:
                raise CompositionError(f"operator '{expression}' needs two operands: write "
                                       f"('{expression}', left, right).", model=self.name)
            return
        if not isinstance(expression, tuple) or len(expression) != 3:
            raise CompositionError(f"an expression is a terminal name or (operator, left, right), got "
                                   f"{expression!r}.", model=self.name)
        code[i] = self.kind_id(expression[0])
        if code[i] <= self.num_terminals:
            raise CompositionError(f"'{expression[0]}' is a terminal, not an operator; write it alone.",
                                   model=self.name)
        self._encode(expression[1], 2 * i + 1, code)
        self._encode(expression[2], 2 * i + 2, code)

    def count(self) -> int:
        """The number of valid codes (structures) in the space."""
        count = self.num_terminals
        for _ in range(self.depth - 1):
            count = self.num_terminals + self.num_operators * count**2
        return count

    def enumerate(self, limit: int = 100_000) -> jax.Array:
        """Every valid code, ``int32[count, 2**D - 1]`` (for exact answers on small spaces)."""
        if self.count() > limit:
            raise CompositionError(f"the space holds {self.count()} codes, more than limit={limit}; raise "
                                   "the limit or enumerate a smaller space.", model=self.name)
        return jnp.asarray(np.stack([self._assemble(tree) for tree in self._trees(0)]).astype(np.int32))

    def _trees(self, level: int) -> list[tuple]:
        trees: list[tuple] = [(kind,) for kind in range(1, 1 + self.num_terminals)]
        if level < self.depth - 1:
            below = self._trees(level + 1)
            for op in range(1 + self.num_terminals, len(self.kinds)):
                trees += [(op, left, right) for left, right in itertools.product(below, below)]
        return trees

    def _assemble(self, tree: tuple, i: int = 0, code: np.ndarray | None = None) -> np.ndarray:
        code = np.zeros(self.size, np.int32) if code is None else code
        code[i] = tree[0]
        if len(tree) == 3:
            self._assemble(tree[1], 2 * i + 1, code)
            self._assemble(tree[2], 2 * i + 2, code)
        return code

    # -- neighbourhood moves (see ppl.compose.space_moves) -----------------------
    def replace(self, key: jax.Array, code: jax.Array) -> jax.Array:
        """Regenerate the subtree at a uniformly chosen non-empty node from the prior."""
        return space_moves.replace(self, key, code)

    def insert(self, key: jax.Array, code: jax.Array) -> jax.Array:
        """Wrap a uniformly chosen sub-term ``s`` as ``op(s, t)`` or ``op(t, s)``, ``t`` a new terminal."""
        return space_moves.insert(self, key, code)

    def delete(self, key: jax.Array, code: jax.Array) -> jax.Array:
        """Replace a uniformly chosen operator node by one of its two operands."""
        return space_moves.delete(self, key, code)

    def propose(self, key: jax.Array, code: jax.Array, weights=space_moves.MOVE_WEIGHTS):
        """A random move: ``(new_code, log q(new | code), log q(code | new))``, exact."""
        return space_moves.propose(self, key, code, weights)

    def log_proposal(self, code: jax.Array, new_code: jax.Array, weights=space_moves.MOVE_WEIGHTS):
        """``log q(new_code | code)`` of :meth:`propose`, summed over every move that leads there."""
        return space_moves.log_proposal(self, code, new_code, weights)

    def active_choices(self, choices: ChoiceMap, code: jax.Array) -> ChoiceMap:
        """Boolean masks with the structure and leaf shapes of ``space.model``'s ``choices``:
        whether each choice counts for ``code`` (e.g. to restrict a Laplace approximation)."""
        return space_model.active_choices(self, as_choice_map(choices), code)

    def __repr__(self) -> str:
        return (f"<ppl.Space {self.name}: terminals {list(self.terminals)}, operators "
                f"{list(self.operators)}, depth {self.depth}, {self.count()} structures>")


def _check_kinds(kinds, what: str, space_name: str, need_one: bool = False) -> dict:
    if not isinstance(kinds, Mapping) or (need_one and not kinds):
        raise CompositionError(f"{what}s must be a non-empty dict {{name: ...}}, got {kinds!r}.",
                               model=space_name)
    for key, value in kinds.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise CompositionError(f"{what} name {key!r} must be a non-empty string without '/'.",
                                   model=space_name)
        if what == "terminal" and not isinstance(value, GenerativeFunction):
            raise CompositionError(f"terminal '{key}' must be a generative function (a @ppl.model), got "
                                   f"{value!r}.", model=space_name)
    return dict(kinds)


def _check_probs(probs, count: int, what: str, space_name: str) -> np.ndarray:
    if probs is None:
        return np.full(count, 1.0 / max(count, 1))
    try:
        array = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.full(count + 1, np.nan)
    if array.shape != (count,) or not np.all(array > 0) or abs(array.sum() - 1.0) > PROB_TOL:
        raise CompositionError(
            f"{what} must be {count} positive numbers summing to one (within {PROB_TOL:g}), got "
            f"{probs!r}. Leave it None for uniform.", model=space_name)
    return array


def _is_symbol(name: str) -> bool:
    return not any(ch.isalnum() or ch == "_" for ch in name)


def _needs_parentheses(child_op: str | None, parent_op: str, right_side: bool) -> bool:
    if child_op is None:
        return False
    child, parent = INFIX_PRECEDENCE.get(child_op, 0), INFIX_PRECEDENCE.get(parent_op, 0)
    if child != parent:
        return child < parent
    return not (child_op == parent_op and (parent_op in ASSOCIATIVE or not right_side))
