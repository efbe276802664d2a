"""The time-series grammar: sums of components, at most one changepoint, scored exactly where it can be.

A structure is a tree of depth at most ``depth`` over the components
(terminals) and two operators, ``+`` (the contributions add) and
``changepoint`` (the left subtree explains the series up to a latent time,
the right one after it), e.g. ``linear_trend + periodic(12) + ar(1)`` or
``changepoint(level, level)``. It is a :class:`ppl.Space`
(``grammar.space``), so structures are fixed-shape ``int32`` codes that
``ppl.infer.search`` scores a population at a time in one compiled call;
``grammar.space.model`` is the explicit generative model (every component's
states sampled) used to simulate series.

**Scoring** (``grammar.score``, search's ``score=``): every structure is a
linear-Gaussian state-space model given its few hyperparameters ``theta``
(noise scales, AR coefficients, a latent period), with independent Normal
observation noise ``noise ~ HalfNormal(0.5)``. The states are integrated out
*exactly* by the Kalman filter (:mod:`stdlib.sequences.statespace`), and a
changepoint's time by exact enumeration over ``candidates`` points (uniform
prior), so the model that remains, :attr:`Grammar.collapsed`, has only
``theta`` as latents; its evidence is the core's Laplace approximation
(``ppl.infer.laplace``). A structure with no hyperparameters but the noise
is one-dimensional there; with a fixed noise it would be exact.

Structures with more than one changepoint are outside the grammar (score
``-inf``): a changepoint is one enumerated time, so two would cost the square.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from ppl import dist
from ppl.compose import space_moves
from ppl.errors import CompositionError
from stdlib.sequences import statespace, switching
from stdlib.sequences.components import HYPER_SIZE, Component, TimeScale

__all__ = ["COMPONENT_COST", "HYPERPARAMETER_COST", "NOISE_SCALE", "Grammar", "changepoint_candidates"]

NOISE_SCALE = 0.5
COMPONENT_COST = 1.0  # nats of structure prior per component (Grammar.component_cost)
HYPERPARAMETER_COST = 0.4  # and per hyperparameter (Grammar.hyperparameter_cost); both chosen on recovery seeds 0-9
BOTH, BEFORE, AFTER = 0, 1, 2


def changepoint_candidates(length: int, limit: int = 128) -> np.ndarray:
    """The indices ``k`` a changepoint may follow (``k`` is the last point before it): at least two points
    on either side, at most ``limit`` of them spread evenly."""
    interior = np.arange(1, length - 2)
    if interior.size <= limit:
        return interior
    return np.unique(np.round(np.linspace(interior[0], interior[-1], limit)).astype(int))


class _Changepoint(ppl.GenerativeFunction):
    """The explicit changepoint operator: a latent candidate index; ``left`` up to it, ``right`` after."""

    name = "changepoint"

    def __init__(self, limit: int):
        self.limit = limit

    def body(self, context, left, right, u, span, step, observed):
        candidates = jnp.asarray(changepoint_candidates(u.shape[0], self.limit))
        position = context.sample("position", dist.Categorical(logits=jnp.zeros(candidates.shape[0])))
        after = jnp.arange(u.shape[0]) > candidates[position]
        return jnp.where(after, right, left)


class _Noise(ppl.GenerativeFunction):
    """The observation of the explicit model: ``noise ~ HalfNormal``, ``value ~ Normal(f, noise)``."""

    name = "observation"

    def body(self, context, f, u, span, step, observed):
        noise = context.sample("noise", dist.HalfNormal(NOISE_SCALE))
        return context.sample("value", dist.Normal(f, noise).mask(observed).to_event(1))


class _Collapsed(ppl.GenerativeFunction):
    """The structure's model with every state and the changepoint time integrated out (see module docstring).

    Arguments ``(code, u, span, step, observed)``. Choices: ``"settings"`` ``(tuned_slots, R)`` standard
    Normal draws, from which the slots with hyperparameters read theirs, in order
    (:meth:`Component.settings`: ``theta = F^{-1}(Phi(z))``, exactly its prior; draws a component
    does not read are auxiliary, Normal and integrated exactly), ``"noise"`` and the observation
    ``"value"``.
    """

    def __init__(self, grammar: Grammar):
        self.grammar = grammar
        self.name = "sequences.collapsed"

    def body(self, context, code, u, span, step, observed):
        grammar = self.grammar
        kinds, sides, valid = grammar.slots_of(code)
        standard = context.sample("settings", dist.Normal(0.0, 1.0).expand([grammar.tuned_count,
                                                                             grammar.settings_size]).to_event(2))
        thetas = grammar.thetas(kinds, standard)
        noise = context.sample("noise", dist.HalfNormal(NOISE_SCALE))
        log_likelihood = _Likelihood(grammar, kinds, sides, thetas, noise, u, TimeScale(span, step), observed)
        context.factor(jnp.where(valid, 0.0, -jnp.inf))
        return context.sample("value", log_likelihood)


class _Likelihood(dist.Distribution):
    """``p(y | structure, theta, noise)`` with states and the changepoint time integrated out."""

    support = dist.constraints.real_vector

    def __init__(self, grammar, kinds, sides, thetas, noise, u, scale, observed):
        self.grammar, self.kinds, self.sides, self.thetas, self.noise = grammar, kinds, sides, thetas, noise
        self.u, self.scale, self.observed = u, scale, observed
        super().__init__(batch_shape=(), event_shape=(u.shape[0],))

    def per_candidate(self, y):
        """``(G,)``: ``log p(y | changepoint after candidate g)`` (all equal without a changepoint: then one
        filter runs, not ``G``; ``lax.cond`` picks, so only the branch taken runs outside ``vmap``)."""
        def each(single):
            return lambda: jnp.broadcast_to(self.grammar.candidate_log_likelihoods(
                self.kinds, self.sides, self.thetas, self.noise, self.u, self.scale, y, self.observed,
                single=single), (self.grammar.candidate_count(self.u.shape[0]),))

        if not self.grammar.changepoint:
            return each(True)()
        return jax.lax.cond(jnp.any(self.sides != BOTH), each(False), each(True))

    def log_prob(self, y):
        values = self.per_candidate(y)
        return jax.nn.logsumexp(values) - jnp.log(values.shape[0])

    def sample(self, key, sample_shape=()):
        raise CompositionError("the collapsed series model scores series; simulate with grammar.space.model instead.")


@dataclasses.dataclass(frozen=True, eq=False)
class Grammar:
    """Sums of components with at most one changepoint, depth ``depth`` (see the module docstring).

    Args:
      components: the terminals (distinct names).
      depth: the trees' maximum depth (3: up to four components).
      changepoint: whether the ``changepoint`` operator is in the grammar.
      p_operator: a non-bottom node's probability of being an operator (``ppl.Space``'s prior).
      candidates: at most this many changepoint times are enumerated.
      tuned_slots: at most this many components with hyperparameters (random walks, local trends,
        autoregressions, white noise, latent periods) in one structure; more score ``-inf``. It bounds
        the Laplace approximation's dimension (``tuned_slots * settings_size + 1``) and the filter's state
        (``tuned_slots * dynamic_dim``); components without hyperparameters (levels, lines, fixed cycles)
        are unlimited and integrated in closed form.
      laplace: the evidence estimator for the collapsed model.
      component_cost, hyperparameter_cost: the structure prior (:meth:`log_prior`), over the distinct
        structures of the grammar (``a + b`` and ``b + a`` are one structure, sharing its mass):
        ``P(structure) ∝ exp(-component_cost * components - hyperparameter_cost * hyperparameters)``
        (a random walk has one hyperparameter, a local linear trend or an AR(1) two, a level, a line or a
        fixed cycle none). The evidence alone barely penalises a redundant component (a second level beside
        a line's intercept costs ~0.1 nats) or a variance that could be zero (a local linear trend for a
        line), so the prior does.

    Example::

        >>> from stdlib import sequences as seq
        >>> grammar = seq.Grammar((seq.level(), seq.linear_trend(), seq.periodic(12)))
        >>> grammar.space.describe(grammar.space.encode(("+", "linear_trend", "periodic(12)")))
        'linear_trend + periodic(12)'
    """

    components: tuple[Component, ...]
    depth: int = 3
    changepoint: bool = True
    p_operator: float = 0.4
    candidates: int = 128
    tuned_slots: int = 2
    laplace: ppl.infer.Laplace = ppl.infer.Laplace(restarts=2, steps=100, newton=4)  # noqa: RUF009 (frozen)
    component_cost: float = COMPONENT_COST
    hyperparameter_cost: float = HYPERPARAMETER_COST

    def __post_init__(self):
        components = tuple(self.components)
        object.__setattr__(self, "components", components)
        names = [c.name for c in components]
        if not components or len(set(names)) != len(names):
            raise CompositionError(f"a grammar needs one or more components with distinct names, got {names}.")
        operators = {"+": lambda a, b: a + b}
        if self.changepoint:
            operators["changepoint"] = _Changepoint(self.candidates)
        space = ppl.Space({c.name: c.model for c in components}, operators, depth=self.depth,
                          p_operator=self.p_operator, observe=_Noise(), name="sequences")
        object.__setattr__(self, "space", space)
        object.__setattr__(self, "collapsed", _Collapsed(self))
        # heap tables: which nodes lie under the left / right child of each node
        size = space.size
        left, right = np.zeros((size, size), bool), np.zeros((size, size), bool)
        for node in range(size):
            for child, table in ((2 * node + 1, left), (2 * node + 2, right)):
                stack = [child]
                while stack:
                    n = stack.pop()
                    if n < size:
                        table[node, n] = True
                        stack += [2 * n + 1, 2 * n + 2]
        object.__setattr__(self, "_identities", {})
        object.__setattr__(self, "neighbour", functools.partial(space_moves.neighbour, space))
        object.__setattr__(self, "_left", left)
        object.__setattr__(self, "_right", right)

    @property
    def _roles(self) -> np.ndarray:
        """``(1 + components,)`` each kind's role (``"empty"`` for kind 0), to index with ``kinds``."""
        return np.array(["empty"] + [c.role for c in self.components])

    # -- shapes ----------------------------------------------------------------------------------
    @property
    def slots(self) -> int:
        """The most components a structure holds, ``2**(depth - 1)``."""
        return 2 ** (self.depth - 1)

    @property
    def dim(self) -> int:
        """A slot's state dimension (the largest component's)."""
        return max(c.dim for c in self.components)

    @property
    def settings_size(self) -> int:
        """``R``: the most hyperparameters any component has (at least 1)."""
        return max(1, *(len(c.priors) for c in self.components))

    def _tuned(self, kinds: jax.Array) -> jax.Array:
        """Whether each slot's component has hyperparameters."""
        return jnp.asarray(np.array([False] + [bool(c.priors) for c in self.components]))[kinds]

    def thetas(self, kinds: jax.Array, standard: jax.Array) -> jax.Array:
        """Every slot's hyperparameters ``(slots, HYPER_SIZE)`` from the standard draws ``(tuned_slots, R)``:
        the slots with hyperparameters read the rows in order; the others have none."""
        order = jnp.argsort(~self._tuned(kinds), stable=True)[: self.tuned_count]
        return jnp.zeros((self.slots, HYPER_SIZE)).at[order].set(jax.vmap(self.settings)(kinds[order], standard))

    def settings(self, kind: jax.Array, standard: jax.Array) -> jax.Array:
        """The hyperparameters ``(HYPER_SIZE,)`` of component ``kind`` (1-based; 0 empty) from standard draws."""
        branches = [lambda z: jnp.zeros(HYPER_SIZE)] + [c.settings for c in self.components]
        return jax.lax.switch(kind, branches, standard)

    # -- a code, read ----------------------------------------------------------------------------
    def slots_of(self, code: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(kinds, sides, valid)``: each slot's component (1-based; 0 empty), its side of the
        changepoint (0 both, 1 before, 2 after), and whether the code is in the grammar (at most one
        changepoint, at most ``tuned_slots`` components with hyperparameters)."""
        code = jnp.asarray(code)
        count = len(self.components)
        terminal = (code >= 1) & (code <= count)
        order = jnp.argsort(~terminal, stable=True)[: self.slots]
        kinds = jnp.where(terminal[order], code[order], 0)
        changepoints = code == (count + 2) if self.changepoint else jnp.zeros_like(terminal)
        before = jnp.any(changepoints[:, None] & jnp.asarray(self._left), axis=0)[order]
        after = jnp.any(changepoints[:, None] & jnp.asarray(self._right), axis=0)[order]
        sides = jnp.where(before, BEFORE, jnp.where(after, AFTER, BOTH))
        valid = (jnp.sum(changepoints) <= 1) & (jnp.sum(self._tuned(kinds)) <= self.tuned_slots)
        # regimes: exact by the forward algorithm only alone (with independent noise), without a changepoint
        roles = self._roles
        regime_slots = jnp.sum(jnp.asarray(roles == "regimes")[kinds])
        others = jnp.sum(jnp.asarray((roles != "empty") & (roles != "regimes") & (roles != "noise"))[kinds])
        alone = (regime_slots == 0) | ((regime_slots == 1) & (others == 0) & (jnp.sum(changepoints) == 0))
        return kinds, sides, valid & alone

    def candidate_count(self, length: int) -> int:
        """``G``: how many changepoint times are enumerated on a series of ``length`` points."""
        return len(changepoint_candidates(length, self.candidates))

    def signature(self, code) -> tuple[tuple[str, str], ...]:
        """What a code denotes, independent of how the tree is written: the sorted ``(side, component)``
        pairs (``side`` ``"both"``, ``"before"`` or ``"after"`` the changepoint). ``a + b`` and ``b + a``, or
        ``(a + b) + c`` and ``a + (b + c)``, have one signature (the same function).

        Example::

            >>> from stdlib import sequences as seq
            >>> grammar = Grammar((seq.level(), seq.linear_trend()))
            >>> grammar.signature(grammar.space.encode(("+", "linear_trend", "level")))
            (('both', 'level'), ('both', 'linear_trend'))
        """
        kinds, sides, _ = (np.asarray(a) for a in self.slots_of(code))
        return self._signature_of(kinds, sides)

    def _signature_of(self, kinds: np.ndarray, sides: np.ndarray) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((("both", "before", "after")[int(side)], self.components[int(kind) - 1].name)
                            for kind, side in zip(kinds, sides) if kind))

    @functools.cached_property
    def _multiplicities(self) -> dict:
        """How many valid codes of the space have each signature (every code enumerated once, on first use)."""
        with jax.ensure_compile_time_eval():  # concrete even when first asked for under a trace (log_prior)
            codes = self.space.enumerate()
            kinds, sides, valid = (np.asarray(a) for a in jax.jit(jax.vmap(self.slots_of))(codes))
        counts: dict = {}
        for row_kinds, row_sides in zip(kinds[valid], sides[valid]):
            signature = self._signature_of(row_kinds, row_sides)
            counts[signature] = counts.get(signature, 0) + 1
        return counts

    def multiplicity(self, code) -> int:
        """How many codes denote the same function as ``code`` (``a + b`` and ``b + a``: 2). Every one has the
        same evidence and, under ``space``'s prior, the same prior probability (the trees differ by mirror
        images), so the structure's prior mass is ``multiplicity * exp(space.log_prior(code))``.

        Example::

            >>> from stdlib import sequences as seq
            >>> grammar = Grammar((seq.level(), seq.linear_trend()))
            >>> grammar.multiplicity(grammar.space.encode(("+", "linear_trend", "level")))
            2
        """
        return max(1, self._multiplicities.get(self.signature(code), 1))

    def log_weight(self, signature) -> float:
        """A structure's unnormalised log prior: ``-(component_cost * components + hyperparameter_cost *
        hyperparameters)``."""
        priors = {c.name: len(c.priors) for c in self.components}
        return -(self.component_cost * len(signature)
                 + self.hyperparameter_cost * sum(priors[name] for _, name in signature))

    @functools.cached_property
    def _prior_table(self) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, log_probs)``, sorted by key: every valid structure's :meth:`_key` and the log prior of each
        code that writes it, ``log P(structure) - log multiplicity``."""
        signatures = list(self._multiplicities)
        log_mass = np.array([self.log_weight(sig) for sig in signatures], np.float64)
        log_mass -= np.logaddexp.reduce(log_mass)
        names = {c.name: i + 1 for i, c in enumerate(self.components)}
        sides = {"both": BOTH, "before": BEFORE, "after": AFTER}
        keys = np.array([self._key_of(np.array([names[n] for _, n in sig]), np.array([sides[s] for s, _ in sig]))
                         for sig in signatures], np.int64)
        log_probs = log_mass - np.log([self._multiplicities[sig] for sig in signatures])
        order = np.argsort(keys)
        return keys[order].astype(np.int32), log_probs[order].astype(np.float32)

    def _key_of(self, kinds, sides):
        """An integer naming the multiset of ``(side, kind)`` slots (what a signature holds): each non-empty
        slot's ``kind + (K + 1) * side``, sorted, as digits in base ``3 (K + 1)``. NumPy or JAX."""
        xp = jnp if isinstance(kinds, jax.Array) else np
        base = 3 * (len(self.components) + 1)
        values = xp.where(kinds > 0, kinds + (len(self.components) + 1) * sides, 0)
        values = xp.sort(xp.concatenate([values, xp.zeros(self.slots - values.shape[0], values.dtype)]))
        return xp.sum(values * base ** xp.arange(self.slots))

    def log_prior(self, code: jax.Array) -> jax.Array:
        """``log p(code)`` under the structure prior (see ``component_cost``): the structure's prior mass shared
        among the :meth:`multiplicity` codes that write it; ``-inf`` outside the grammar. Jittable
        (``ppl.infer.search``'s ``log_prior=``).

        Example::

            >>> import numpy as np
            >>> from stdlib import sequences as seq
            >>> grammar = Grammar((seq.level(), seq.linear_trend()))
            >>> one, two = (grammar.space.encode(e) for e in ("level", ("+", "level", "linear_trend")))
            >>> bool(np.isclose(grammar.log_prior(one) - grammar.log_prior(two),
            ...                 grammar.component_cost + np.log(2), atol=1e-5))
            True
        """
        keys, log_probs = self._prior_table
        kinds, sides, valid = self.slots_of(code)
        key = self._key_of(kinds, sides).astype(jnp.int32)
        keys = jnp.asarray(keys)
        index = jnp.clip(jnp.searchsorted(keys, key), 0, keys.shape[0] - 1)
        found = valid & self.space.is_valid(code) & (keys[index] == key)
        return jnp.where(found, jnp.asarray(log_probs)[index], -jnp.inf)

    def identity(self, code) -> tuple:
        """``(signature, valid)``: when two codes are the same structure (``ppl.infer.search``'s ``identify=``;
        cached by code, since the search asks for every proposal)."""
        code = np.asarray(code, np.int32)
        found = self._identities.get(code.tobytes())
        if found is None:
            found = (self.signature(code), bool(self.slots_of(code)[2]))
            self._identities[code.tobytes()] = found
        return found

    def gates(self, sides: jax.Array, length: int) -> jax.Array:
        """``(G, T, slots)``: whether each slot is observed at each point, for each changepoint candidate."""
        candidates = jnp.asarray(changepoint_candidates(length, self.candidates))
        after = jnp.arange(length)[None, :] > candidates[:, None]  # (G, T)
        return jnp.where(sides == BEFORE, ~after[..., None], jnp.where(sides == AFTER, after[..., None], True)
                         ).astype(jnp.float32)

    def state_space(self, kinds, thetas, noise, u, scale: TimeScale) -> statespace.StateSpace:
        """The structure's full :class:`~stdlib.sequences.statespace.StateSpace` (every slot a block of
        ``dim`` states, stacked block-diagonally): for smoothing and forecasting a chosen structure."""
        model = self._stack(kinds, thetas, u, scale, [c if c.role != "regimes" else None for c in self.components],
                            self.dim, self.slots)
        return model._replace(noise_variance=noise**2)

    def _stack(self, kinds, thetas, u, scale, components, dim, slots) -> statespace.StateSpace:
        """Slots of ``components`` (``None``: treated as empty) padded to ``dim`` states, block-diagonal."""
        steps = jnp.concatenate([jnp.zeros(1), jnp.diff(u)])

        def padded(component):
            if component is None:
                return empty

            def transition(theta, dt):
                f, q = component.transition(theta, dt, scale)
                eye = jnp.eye(dim).at[: component.dim, : component.dim].set(f)
                return eye, jnp.zeros((dim, dim)).at[: component.dim, : component.dim].set(q)

            def initial(theta):
                m, p = component.initial(theta, scale)
                return (jnp.zeros(dim).at[: component.dim].set(m),
                        jnp.zeros((dim, dim)).at[: component.dim, : component.dim].set(p))

            row = np.zeros(dim, np.float32)
            row[: component.dim] = component.observation
            return transition, initial, row

        empty = (lambda theta, dt: (jnp.eye(dim), jnp.zeros((dim, dim))),
                 lambda theta: (jnp.zeros(dim), jnp.zeros((dim, dim))), np.zeros(dim, np.float32))
        pieces = [empty] + [padded(c) for c in components]

        def slot(kind, theta):
            transitions, noises = jax.vmap(
                lambda dt: jax.lax.switch(kind, [p[0] for p in pieces], theta, dt))(steps)
            mean, covariance = jax.lax.switch(kind, [p[1] for p in pieces], theta)
            row = jnp.asarray(np.stack([p[2] for p in pieces]))[kind]
            first = jnp.eye(dim)  # the first step: x_0 is the state at the first point
            transitions = transitions.at[0].set(first)
            noises = noises.at[0].set(jnp.zeros((dim, dim)))
            return transitions, noises, row, mean, covariance

        transitions, noises, rows, means, covariances = jax.vmap(slot)(kinds, thetas)
        # block-diagonal over slots (dense: on the CPU, XLA runs these small products faster than blockwise)
        blocks = slots * dim
        transition = jax.vmap(lambda ts: jax.scipy.linalg.block_diag(*ts), in_axes=1)(transitions)
        process = jax.vmap(lambda qs: jax.scipy.linalg.block_diag(*qs), in_axes=1)(noises)
        observation = jnp.broadcast_to(rows.reshape(blocks), (u.shape[0], blocks))
        return statespace.StateSpace(transition, process, observation, jnp.zeros(()), means.reshape(blocks),
                                     jax.scipy.linalg.block_diag(*covariances))

    # -- the scoring form: static components as regressions, dynamic ones as a small state ---------
    @property
    def tuned_count(self) -> int:
        """How many slots carry hyperparameters: ``min(tuned_slots, slots)``."""
        return min(self.tuned_slots, self.slots)

    @property
    def dynamic_dim(self) -> int:
        """A dynamic slot's state dimension (the largest dynamic component's; at least 1)."""
        return max([c.dim for c in self.components if c.role == "dynamic"] + [1])

    def candidate_log_likelihoods(self, kinds, sides, thetas, noise, u, scale: TimeScale, y, observed,
                                  single: bool = False) -> jax.Array:
        """``(G,)``: ``log p(y | structure, theta, noise, changepoint after candidate g)``, exact.

        Static slots (``role == "static"``) enter as regression columns whose coefficients are integrated in
        closed form, ``"noise"`` slots add to the observation variance, and at most ``tuned_slots`` dynamic
        slots form the Kalman filter's state (:func:`statespace.regression_log_likelihood`): the state stays
        ``tuned_slots * dynamic_dim``-dimensional whatever the structure. ``single=True``: the first
        candidate only (``(1,)``; every candidate gives the same value when no slot is gated). A
        ``regimes`` structure (one regime-switching slot, perhaps white noise) has no candidates: its
        value, by the forward algorithm, is repeated.
        """
        roles = self._roles
        variances = self.noise_variances(kinds, thetas, scale)  # (slots,)
        count = 1 if single else self.candidate_count(u.shape[0])
        if "regimes" in roles:  # a regime-switching structure: the forward algorithm (no candidates to gate)
            regime_slots = jnp.asarray(roles == "regimes")[kinds]
            return jax.lax.cond(
                jnp.any(regime_slots),
                lambda: jnp.broadcast_to(self.regimes_log_likelihood(kinds, thetas, noise**2 + jnp.sum(variances),
                                                                     y, observed), (count,)),
                lambda: self._kalman_log_likelihoods(kinds, sides, thetas, noise, u, scale, y, observed, single,
                                                     variances))
        return self._kalman_log_likelihoods(kinds, sides, thetas, noise, u, scale, y, observed, single, variances)

    def noise_variances(self, kinds, thetas, scale: TimeScale) -> jax.Array:
        """``(slots,)``: each ``"noise"`` slot's variance (0 for the others)."""
        def variance(kind, theta):
            branches = [lambda theta: jnp.zeros(())] + [
                (lambda theta, c=c: c.initial(theta, scale)[1][0, 0]) if c.role == "noise" else
                (lambda theta: jnp.zeros(())) for c in self.components]
            return jax.lax.switch(kind, branches, theta)

        roles = self._roles
        return jax.vmap(variance)(jnp.where(jnp.asarray(roles == "noise")[kinds], kinds, 0), thetas)

    def regimes_log_likelihood(self, kinds, thetas, noise_variance, y, observed) -> jax.Array:
        """``log p(y | theta, noise)`` of a structure whose one non-noise slot is a ``regimes`` component,
        exact (:func:`stdlib.sequences.switching.log_likelihood`, the forward algorithm)."""
        roles = self._roles
        slot = jnp.argmax(jnp.asarray(roles == "regimes")[kinds])
        kind, theta = kinds[slot], thetas[slot]
        branches = [(lambda theta, c=c: switching.log_likelihood(theta, c.dim, y, noise_variance, observed))
                    if c.role == "regimes" else (lambda theta: jnp.zeros(())) for c in self.components]
        return jax.lax.switch(jnp.maximum(kind - 1, 0), branches, theta)

    def _kalman_log_likelihoods(self, kinds, sides, thetas, noise, u, scale, y, observed, single, variances):
        """:meth:`candidate_log_likelihoods` for linear-Gaussian structures."""
        length, dim = u.shape[0], self.dim
        roles = self._roles
        static, dynamic_kind = (jnp.asarray(roles == r)[kinds] for r in ("static", "dynamic"))

        def design(kind, theta):
            branches = [lambda theta: jnp.zeros((length, dim))] + [
                (lambda theta, c=c: jnp.zeros((length, dim)).at[:, : c.dim].set(c.design(theta, u, scale)))
                if c.role == "static" else (lambda theta: jnp.zeros((length, dim))) for c in self.components]
            return jax.lax.switch(kind, branches, theta)

        designs = jax.vmap(design)(jnp.where(static, kinds, 0), thetas)  # (slots, T, dim)
        order = jnp.argsort(~dynamic_kind, stable=True)[: self.tuned_count]
        dynamic_kinds = jnp.where(dynamic_kind[order], kinds[order], 0)
        model = self._dynamic_state_space(dynamic_kinds, thetas[order], u, scale)
        gates = self.gates(sides, length)  # (G, T, slots)
        gates = gates[:1] if single else gates

        def one(gate, filtered):
            columns = jnp.transpose(designs * jnp.transpose(gate)[:, :, None], (1, 0, 2)).reshape(length, -1)
            noise_variance = noise**2 + gate @ variances
            if not filtered:  # no dynamic slot: a plain regression, in closed form
                return statespace.static_log_likelihood(y, columns, jnp.ones(columns.shape[1]), noise_variance,
                                                        observed)
            rows = jnp.repeat(gate[:, order], self.dynamic_dim, axis=-1) * model.observations
            return statespace.regression_log_likelihood(
                model._replace(observations=rows, noise_variance=noise_variance), y, columns,
                jnp.ones(columns.shape[1]), observed)

        # lax.cond outside the vmap over candidates, so only the branch taken runs (search scores with lax.map)
        return jax.lax.cond(jnp.any(dynamic_kind), lambda: jax.vmap(lambda g: one(g, True))(gates),
                            lambda: jax.vmap(lambda g: one(g, False))(gates))

    def _dynamic_state_space(self, kinds, thetas, u, scale: TimeScale) -> statespace.StateSpace:
        """The dynamic slots' state-space form (``tuned_slots`` blocks of ``dynamic_dim``)."""
        return self._stack(kinds, thetas, u, scale, [c if c.role == "dynamic" else None for c in self.components],
                           self.dynamic_dim, len(kinds))

    # -- scoring ---------------------------------------------------------------------------------
    def starts(self, count: int) -> dict:
        """The Laplace restarts' starting points: every hyperparameter at its prior median (standard draw 0)
        and the noise on a grid from 0.01 to 1 (standardised units, log-spaced), so a series as smooth as CO2
        (noise ~0.01) and one as rough as the Nile (~0.6) both start near their mode."""
        noise = np.geomspace(0.01, 1.0, count) if count > 1 else np.array([0.1])
        return {"settings": jnp.zeros((count, self.tuned_count, self.settings_size)),
                "noise": jnp.asarray(noise, jnp.float32)}

    def score(self, key, model, obs, code, u, span, step, observed):
        """``ppl.infer.search``'s ``score=``: the Laplace evidence of the collapsed model (``model`` unused),
        from the deterministic starting points of :meth:`starts`."""
        return self.laplace(key, self.collapsed, {"value": obs["obs"]["value"]}, code, u, span, step, observed,
                            init=self.starts(self.laplace.restarts))

    def changepoint_posterior(self, choices, code, u, span, step, observed) -> tuple[np.ndarray, jax.Array]:
        """``(candidates, probabilities)``: the exact posterior over the changepoint's position (the index of
        the last point before it) given the collapsed model's ``choices`` (``"settings"``, ``"noise"``,
        ``"value"``), e.g. a Laplace mode's ``trace.choices``. Uniform when ``code`` has no changepoint."""
        kinds, sides, _ = self.slots_of(code)
        thetas = self.thetas(kinds, choices["settings"])
        likelihood = _Likelihood(self, kinds, sides, thetas, choices["noise"], u, TimeScale(span, step), observed)
        per_candidate = likelihood.per_candidate(choices["value"])
        return changepoint_candidates(u.shape[0], self.candidates), jax.nn.softmax(per_candidate)
