"""Search over a space of compositions: which glued-together model explains the data best.

``search(key, space, obs, *args, budget=...)`` looks for the structures ``c`` of a
:class:`ppl.Space` with the highest posterior score::

    score(c) = log p(c) + log p(obs | c)          (structure prior + evidence)

where ``log p(obs | c)`` marginalises the structure's continuous latents: by
importance sampling with ``n`` particles by default, or by any evidence
estimator ``score(key, model, obs, *args)`` (the protocol of
``ppl.infer.classify``'s ``estimator=``), called with ``space.model`` and
``(code, *args)``. ``score=ppl.infer.laplace`` is MAP search over structures:
each is scored by the Laplace approximation at its MAP in unconstrained space,
deterministic and exact on linear-Gaussian structures, so equivalent
structures score alike. A structure's score is a deterministic function of
``(key, code)``: the key for code ``c`` is folded with a hash of ``c``, so a
structure met twice gets the same score.

**Algorithm: a stochastic beam over structures.** A population of ``population``
distinct codes, drawn from the prior, evolves for ``budget`` steps. In each step

1. every member proposes a neighbour (``space.propose``: replace a subtree,
   insert an operator, delete one; or your ``propose=``); a member whose
   proposal was scored before (or is proposed twice in the step) proposes
   again, up to ``retries`` times, so the step's scoring goes to new
   structures (``identify=`` says when two codes are the same structure);
2. all the proposals are scored in **one compiled call** (``vmap`` of
   ``space.model``'s evidence over codes: codes are fixed-shape ``int32``
   arrays, so every structure shares one trace and one compilation);
3. the next population is drawn from the ``2 * population`` members and
   proposals *without replacement*, favouring high scores: the Gumbel-top-k
   trick on ``score / temperature`` over distinct codes. ``temperature -> 0``
   is a greedy beam; larger temperatures keep more diversity.

Every structure scored is kept in an archive (on the host). **Anytime:** after
each step the best structure so far and its score are recorded in ``history``;
step ``t`` uses ``fold_in(key, t)``, so a longer run repeats a shorter one's steps
exactly and more budget never gives a worse best. ``budget`` is a number of
steps, or a :class:`Budget` with ``steps`` and/or ``seconds`` (wall-clock
seconds of search after the first step, which compiles; whichever ends first;
a seconds budget always runs at least one step). The compiled step is cached,
so later calls on the same space, score and shapes do not compile again.

**Refinement** (``refine=k``, off by default). A step proposes one random
neighbour per member, so a structure one swap away from the best can go
unscored for the whole budget. After the steps, the search scores *every*
neighbour of the ``k`` best structures (one per ``identify``) that it has not
scored: each :func:`ppl.compose.space_moves.swap`, ``prune`` and ``grow``
(:func:`~ppl.compose.space_moves.neighbours`), those outside the space
(``log_prior`` ``-inf``) left out. They are scored ``population`` at a time by
the steps' compiled scorer, so nothing compiles again; a batch's spare places go
to the unscored neighbours of the next best structures. When the best structure
changes, its neighbourhood is scored in turn, for at most ``REFINE_ROUNDS``
rounds. The rounds are deterministic given the archive, and each appends to
``history``; the anytime guarantee is the steps': a refined run's best is never
below the best of its own steps, nor of any shorter run's steps.

Example::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> t = jnp.linspace(0.0, 1.0, 24)
    >>> @ppl.model
    ... def level(t):
    ...     return ppl.sample("c", dist.Normal(0.0, 1.0)) * jnp.ones_like(t)
    >>> @ppl.model
    ... def trend(t):
    ...     return ppl.sample("slope", dist.Normal(0.0, 1.0)) * (t - 0.5)
    >>> space = ppl.Space(terminals={"level": level, "trend": trend},
    ...                   operators={"+": lambda a, b: a + b}, depth=2,
    ...                   observe=lambda f, t: dist.Normal(f, 0.1).to_event(1))
    >>> y = 0.8 + 1.5 * (t - 0.5)
    >>> found = ppl.infer.search(jax.random.key(0), space, {"obs": y}, t, budget=5, population=4)
    >>> found.describe()[0] in ("level + trend", "trend + level")
    True
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ppl.choices import ChoiceMap, as_choice_map
from ppl.errors import InferenceError
from ppl.infer.arguments import check_finite_observations, is_traced, join_args, split_args
from ppl.infer.evidence import as_evidence, log_sum_exp
from ppl.infer.importance import importance
from ppl.infer.progress import progress_bar
from ppl.validation import check_key

__all__ = ["Budget", "SearchResult", "search", "score_structures", "particle_evidence", "code_hash"]

Score = Callable[..., jax.Array]
REFINE_ROUNDS = 3  # search's refinement: at most this many rounds of scoring the best structures' neighbourhoods
MAX_STEPS = 2**31  # the most steps a budget may ask for: step t folds t + 1 into the key, and no search that long ends


class Budget(NamedTuple):
    """How long :func:`search` runs: at most ``steps`` steps and/or ``seconds`` of wall-clock
    search (counted after the first step, which compiles); it stops at whichever comes first."""

    steps: int | None = None
    seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """What :func:`search` returns. ``L = 2**depth - 1`` is a code's length.

    Attributes:
      codes: ``(k, L)`` int32, the ``k`` best distinct structures found, best first.
      scores: ``(k,)`` their scores ``log p(c) + log p(obs | c)`` (estimated).
      log_evidence: ``(k,)`` their ``log p(obs | c)`` estimates.
      probabilities: ``(k,)`` their posterior probabilities, normalised over
        every structure scored (an approximation: unscored structures count as 0).
      history: ``(steps + rounds + 1,)`` the best score so far after the initial
        population (entry 0), after each step and after each refinement round; non-decreasing.
      scored: ``(steps + rounds + 1,)`` how many distinct structures had been scored by then.
      steps: the number of steps run.
      seconds: wall-clock seconds of search after the first step (which compiles), refinement included.
      space: the searched space (to ``describe`` codes).
      estimates: what the score returned for each of the ``k`` structures, stacked (e.g. the Laplace
        results, with each structure's mode in ``estimates.trace``).
      rounds: the number of refinement rounds run (``search``'s ``refine=``).
    """

    codes: np.ndarray
    scores: np.ndarray
    log_evidence: np.ndarray
    probabilities: np.ndarray
    history: np.ndarray
    scored: np.ndarray
    steps: int
    seconds: float
    space: Any
    estimates: Any = None
    rounds: int = 0

    @property
    def best(self) -> np.ndarray:
        """The best structure's code, ``(L,)``."""
        return self.codes[0]

    def describe(self) -> list[str]:
        """The ranked structures as expressions, e.g. ``['trend + periodic', ...]``."""
        return [self.space.describe(code) for code in self.codes]

    def __repr__(self) -> str:
        rounds = f" + {self.rounds} refinement rounds" if self.rounds else ""
        lines = [f"SearchResult({self.steps} steps{rounds}, {int(self.scored[-1])} structures scored, "
                 f"{self.seconds:.2f} s)"]
        for text, score, probability in zip(self.describe(), self.scores, self.probabilities):
            lines.append(f"  {score:10.2f}  p={probability:.3f}  {text}")
        return "\n".join(lines)


def particle_evidence(n: int) -> Score:
    """The default structure score: ``log p(obs | code)`` by importance sampling with ``n`` particles.

    Returns an estimator ``score(key, model, obs, *args) -> ()``; jittable and vmappable over codes.
    """
    return _particle_evidence_scores.setdefault(int(n), functools.partial(_particle_evidence, n=int(n)))


_particle_evidence_scores: dict[int, Score] = {}


def _particle_evidence(key, model, obs, *args, n):
    return importance(key, model, obs, *args, n=n).log_evidence


def code_hash(code: jax.Array) -> jax.Array:
    """A ``uint32`` hash of a code (``(..., L)`` -> ``(...)``): a polynomial in the node kinds."""
    code = jnp.asarray(code)
    powers = np.ones(code.shape[-1], np.uint64)
    for i in range(1, code.shape[-1]):
        powers[i] = (int(powers[i - 1]) * 0x9E3779B1) % 2**32
    weights = jnp.asarray(powers.astype(np.uint32))
    return jnp.sum((code.astype(jnp.uint32) + jnp.uint32(1)) * weights, axis=-1, dtype=jnp.uint32)


def score_structures(
    key: jax.Array, space, codes: jax.Array, obs: Mapping | ChoiceMap, *args, n: int = 256, score: Score | None = None,
    vectorize: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """Score a batch of structures in one compiled call, as :func:`search` does each step.

    Args:
      key: the PRNG key (code ``c`` uses ``fold_in(key, code_hash(c))``).
      space, obs, *args, n, score, vectorize: as for :func:`search`.
      codes: ``(m, L)`` int32 codes; any ``m``, any mix of structures.

    Returns:
      ``(scores, log_evidence)``, each ``(m,)``: ``log p(c) + log p(obs | c)`` and
      ``log p(obs | c)``. The program is cached by ``m`` and the shapes of
      ``obs`` and ``args``, so new codes of the same batch size never retrace.
    """
    _check_call(space, 1, 1.0, 1)
    obs = as_choice_map(obs)
    codes = space.check_shape(codes, batched=True)
    score = particle_evidence(n) if score is None else score
    dynamic_args, static_args = split_args(args, space.model)
    scored = _score_population(key, codes, obs, dynamic_args, space=space, score=score, static_args=static_args,
                               vectorize=bool(vectorize))
    return scored.scores, scored.log_evidence


def search(
    key: jax.Array,
    space,
    obs: Mapping | ChoiceMap,
    *args,
    budget: int | Budget,
    population: int = 32,
    n: int = 256,
    score: Score | None = None,
    temperature: float = 1.0,
    keep: int = 10,
    init: jax.Array | None = None,
    progress: bool | None = None,
    vectorize: bool = True,
    identify: Callable[[np.ndarray], Any] | None = None,
    retries: int = 8,
    propose: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    log_prior: Callable[[jax.Array], jax.Array] | None = None,
    refine: int = 0,
) -> SearchResult:
    """Search ``space`` for the structures that best explain ``obs`` (see the module docstring).

    Args:
      key: a PRNG key.
      space: a :class:`ppl.Space` built with ``observe=`` (its model observes ``"obs"``).
      obs: the observations, e.g. ``{"obs": series}``.
      *args: ``space.model``'s arguments after the code (e.g. the time axis).
      budget: a number of steps, or ``Budget(steps=..., seconds=...)``.
      population: structures kept per step (the beam width); all are scored in one call.
      n: particles per structure for the default score.
      score: an evidence estimator ``score(key, model, obs, *args)``, called with
        ``space.model`` and ``(code, *args)``, jittable and vmappable over codes:
        ``ppl.infer.laplace`` (MAP + Laplace), ``ppl.infer.Laplace(...)`` with
        settings, or your own (returning a scalar, a ``(log_evidence, se)`` pair or
        an object with ``.log_evidence``). ``None``: :func:`particle_evidence`
        with ``n`` particles. Define it once: a new function object recompiles.
      temperature: of the Gumbel-top-k selection (``> 0``); lower is greedier.
      keep: how many of the best structures to return.
      init: optional ``(population, L)`` starting codes (default: prior draws).
      progress: show a progress bar on runs longer than 2 s (``None``: ``PPL_PROGRESS``).
      vectorize: score a population with ``vmap`` (default) or one structure after another with
        ``lax.map``, still in one compiled call. Sequential scoring wins when structures' costs differ
        widely and the score branches on the structure (``lax.cond`` runs one branch outside ``vmap``).
      identify: what makes two codes the same structure, ``identify(code) -> hashable`` on a NumPy
        ``(L,)`` code (default: the code itself). A proposal whose identity was already scored is
        proposed again (up to ``retries`` times) so that each step's scores go to new structures; pass
        e.g. a canonical form so that ``a + b`` and ``b + a`` count as one.
      retries: how many times a step re-proposes the members whose proposals were already scored.
      propose: ``propose(key, code) -> code``, a member's neighbour (jittable; vmapped over the
        population). Default: ``space.propose``'s move; ``functools.partial(space_moves.neighbour, space)``
        adds terminal swaps (``ppl.compose.space_moves.swap``). Define it once: a new function recompiles.
      log_prior: ``log_prior(code) -> scalar``, the structure prior the scores add (jittable; ``-inf``
        outside the space). Default: ``space.log_prior``, the grammar's own. Pass another to put a prior on
        what a code *denotes* rather than on how its tree is drawn (e.g. a penalty per component, shared
        among the codes that write one structure). Define it once: a new function recompiles.
      refine: after the steps, score every unscored swap, prune and grow of the ``refine`` best structures,
        and again around a new best (see the module docstring); ``0``: no refinement.

    Returns:
      A :class:`SearchResult`.

    Raises:
      InferenceError: a space without ``observe``, a bad budget, or a population whose
        every score is NaN or ``-inf``.
    """
    steps, seconds = _check_budget(budget)
    _check_call(space, population, temperature, keep)
    check_key(key, "search", space.name)
    for name, value in (("retries", retries), ("refine", refine)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise InferenceError(f"search's {name} must be a non-negative int, got {value!r}.", model=space.name)
    obs = as_choice_map(obs)
    if is_traced((key, obs, args)):
        raise InferenceError("search runs a host loop over compiled steps, so it cannot run inside jax.jit; "
                             "call it eagerly (each step is compiled).")
    check_finite_observations(obs)
    score = particle_evidence(n) if score is None else score
    dynamic_args, static_args = split_args(args, space.model)
    scoring = dict(space=space, score=score, static_args=static_args, vectorize=bool(vectorize), log_prior=log_prior)
    score_key, key = jax.random.split(key)

    codes = _initial_codes(key, space, population, init)
    initial = _score_population(score_key, codes, obs, dynamic_args, **scoring)
    _check_scores(initial, space)
    archive = _Archive()
    archive.add(initial)
    state = (codes, initial.scores)
    identify = _code_identity if identify is None else identify
    archive.remember(np.asarray(codes), identify)
    propose = _space_move(space) if propose is None else propose
    step = functools.partial(_step, temperature=float(temperature), archive=archive, identify=identify,
                             retries=int(retries), propose=propose, **scoring)
    history, scored = [archive.best_score], [len(archive)]
    start, done = None, 0  # the clock starts after the first step, which compiles
    with progress_bar(steps, "search", enabled=progress, unit="step") as bar:
        while (steps is None or done < steps) and (
                seconds is None or start is None or time.perf_counter() - start < seconds):
            state, proposed = step(jax.random.fold_in(key, done + 1), score_key, state, obs, dynamic_args)
            archive.add(proposed)
            done += 1
            history.append(archive.best_score)
            scored.append(len(archive))
            bar.update()
            start = time.perf_counter() if start is None else start
    expanded, rounds = set(), 0  # the identities whose neighbourhoods were scored
    while refine and rounds < REFINE_ROUNDS:
        ranked = archive.ranked(identify)
        if not ranked or not _refine(score_key, obs, dynamic_args, ranked=ranked, archive=archive, expanded=expanded,
                                     refine=int(refine), population=population, identify=identify, scoring=scoring):
            break
        rounds += 1
        history.append(archive.best_score)
        scored.append(len(archive))
        if archive.ranked(identify)[0][0] == ranked[0][0]:  # the best structure stayed: its neighbourhood is done
            break
    elapsed = 0.0 if start is None else time.perf_counter() - start
    return archive.result(keep, np.asarray(history), np.asarray(scored), done, elapsed, space, rounds)


# ---------------------------------------------------------------------------
# One step (compiled) and the scoring of a population
# ---------------------------------------------------------------------------


class _Scored(NamedTuple):
    codes: jax.Array  # (P, L)
    scores: jax.Array  # (P,) log prior + log evidence
    log_evidence: jax.Array  # (P,)
    estimates: Any = None  # what the score returned, batched (e.g. Laplace results with their modes)


def _score_codes(score_key, codes, obs, dynamic_args, *, space, score, static_args, vectorize=True, log_prior=None):
    args = join_args(dynamic_args, static_args)

    def one(code):
        estimate = score(jax.random.fold_in(score_key, code_hash(code)), space.model, obs, code, *args)
        log_evidence = as_evidence(estimate, "search's score").log_evidence
        prior = (space.log_prior if log_prior is None else log_prior)(code)
        total = jnp.where(jnp.isfinite(prior), prior + log_evidence, -jnp.inf)
        return total, log_evidence, jax.tree_util.tree_map(jnp.asarray, estimate)

    scores, log_evidence, estimates = jax.vmap(one)(codes) if vectorize else jax.lax.map(one, codes)
    return _Scored(codes, scores, log_evidence, estimates)


_score_population = jax.jit(_score_codes, static_argnames=("space", "score", "static_args", "vectorize", "log_prior"))


@functools.lru_cache(maxsize=64)
def _space_move(space):
    """The default neighbour, ``space.propose``'s move, as one function per space (so it compiles once)."""
    return lambda key, code: space.propose(key, code)[0]


def _propose(key, codes, *, propose):
    """Every member's neighbour."""
    return jax.vmap(propose)(jax.random.split(key, codes.shape[0]), codes)


def _select(key, codes, scores, proposals, proposed_scores, *, temperature):
    """The next population: distinct codes of members and proposals by Gumbel-top-k on ``score / temperature``."""
    population = codes.shape[0]
    candidates = jnp.concatenate([codes, proposals])
    candidate_scores = jnp.concatenate([scores, proposed_scores])
    same = jnp.all(candidates[:, None, :] == candidates[None, :, :], axis=-1)
    earlier = jnp.tril(jnp.ones_like(same), k=-1)
    duplicate = jnp.any(same & earlier, axis=1)
    gumbel = jax.random.gumbel(key, candidate_scores.shape)
    finite = jnp.isfinite(candidate_scores)
    # distinct codes by perturbed score; non-finite scores last; duplicates never
    keys = jnp.where(finite, candidate_scores / temperature, -1e30) + gumbel
    keys = jnp.where(duplicate, -jnp.inf, keys)
    _, chosen = jax.lax.top_k(keys, population)
    return candidates[chosen], candidate_scores[chosen]


_compiled_propose = jax.jit(_propose, static_argnames=("propose",))
_compiled_select = jax.jit(_select, static_argnames=("temperature",))


def _step(key, score_key, state, obs, dynamic_args, *, space, score, temperature, static_args, vectorize, archive,
          identify, retries, propose, log_prior):
    """One step: propose (compiled; members whose proposal was already scored propose again, up to ``retries``
    times), score the proposals (the population's compiled scorer, shared with the initial population so a
    score compiles once), select (compiled)."""
    codes, scores = state
    move_key, select_key = jax.random.split(key)
    proposals = np.array(_compiled_propose(move_key, codes, propose=propose))
    for attempt in range(retries):
        seen, repeated = set(), np.zeros(len(proposals), bool)
        for index, code in enumerate(proposals):
            identity = identify(code)
            repeated[index] = identity in archive.identities or identity in seen
            seen.add(identity)
        if not repeated.any():
            break
        again = np.asarray(_compiled_propose(jax.random.fold_in(move_key, attempt + 1), codes, propose=propose))
        proposals[repeated] = again[repeated]
    archive.remember(proposals, identify)
    proposals = jnp.asarray(proposals)
    proposed = _score_population(score_key, proposals, obs, dynamic_args, space=space, score=score,
                                 static_args=static_args, vectorize=vectorize, log_prior=log_prior)
    return _compiled_select(select_key, codes, scores, proposals, proposed.scores, temperature=temperature), proposed


def _neighbourhood(code, *, space, log_prior):
    """``(codes, log_priors)``: every swap, prune and grow of ``code`` ``(M, L)`` and their log priors ``(M,)``."""
    from ppl.compose import space_moves

    codes = space_moves.neighbours(space, code)
    return codes, jax.vmap(space.log_prior if log_prior is None else log_prior)(codes)


_compiled_neighbourhood = jax.jit(_neighbourhood, static_argnames=("space", "log_prior"))


def _refine(score_key, obs, dynamic_args, *, ranked, archive, expanded, refine, population, identify,
            scoring) -> bool:
    """One refinement round: score the unscored neighbours (in the space) of the ``refine`` best structures of
    ``ranked`` (:meth:`_Archive.ranked`) not expanded before, ``population`` at a time with the steps' compiled
    scorer; the last batch's spare places go to the neighbours of the next best structures (when none are left,
    the round's first codes fill it again: scored twice, kept once). Returns whether anything was scored."""
    fresh: dict = {}  # identity -> code, in the order found

    def gather(code):
        codes, log_priors = _compiled_neighbourhood(jnp.asarray(code), space=scoring["space"],
                                                    log_prior=scoring["log_prior"])
        for row in np.asarray(codes)[np.isfinite(np.asarray(log_priors))]:
            identity = identify(row)
            if identity not in archive.identities:
                fresh.setdefault(identity, row)

    for identity, code in ranked[:refine]:
        if identity not in expanded:
            expanded.add(identity)
            gather(code)
    wanted = -(-len(fresh) // population) * population  # whole batches
    for _, code in ranked[refine: refine + population]:
        if len(fresh) >= wanted:
            break
        gather(code)
    if not fresh:
        return False
    codes = np.resize(np.stack(list(fresh.values())[:wanted]), (wanted, scoring["space"].size))
    archive.remember(codes, identify)
    for batch in codes.reshape(-1, population, codes.shape[-1]):
        archive.add(_score_population(score_key, jnp.asarray(batch), obs, dynamic_args, **scoring))
    return True


def _initial_codes(key, space, population, init) -> jax.Array:
    if init is None:
        return jax.vmap(space.sample)(jax.random.split(key, population))
    init = space.check_shape(init, batched=True)
    if init.shape != (population, space.size):
        raise InferenceError(f"search's init must hold population={population} codes, shape "
                             f"({population}, {space.size}), got {init.shape}.", model=space.name)
    for code in np.asarray(init):
        space.validate(code)
    return init


# ---------------------------------------------------------------------------
# The archive of every structure scored (host side)
# ---------------------------------------------------------------------------


def _code_identity(code: np.ndarray) -> bytes:
    return np.asarray(code).tobytes()


class _Archive:
    def __init__(self):
        self.entries: dict[bytes, tuple[np.ndarray, float, float]] = {}
        self.identities: set = set()  # what ``identify`` made of every code scored (or being scored)
        self.best_score = -np.inf

    def remember(self, codes: np.ndarray, identify) -> None:
        self.identities.update(identify(code) for code in codes)

    def __len__(self) -> int:
        return len(self.entries)

    def ranked(self, identify) -> list[tuple[Any, np.ndarray]]:
        """``(identity, code)`` of every structure with a finite score, best first, one code per identity."""
        entries = sorted((entry for entry in self.entries.values() if np.isfinite(entry[1])), key=lambda e: -e[1])
        first: dict = {}
        for code, *_ in entries:
            first.setdefault(identify(code), code)
        return list(first.items())

    def add(self, scored: _Scored) -> None:
        codes, scores, log_evidence = (np.asarray(a) for a in scored[:3])
        estimates = jax.device_get(scored.estimates)
        for index, (code, total, evidence) in enumerate(zip(codes, scores, log_evidence)):
            if code.tobytes() not in self.entries:
                estimate = jax.tree_util.tree_map(lambda leaf, i=index: leaf[i], estimates)
                self.entries[code.tobytes()] = (code, float(total), float(evidence), estimate)
            if total > self.best_score:
                self.best_score = float(total)

    def result(self, keep, history, scored, steps, seconds, space, rounds) -> SearchResult:
        entries = [entry for entry in self.entries.values() if not np.isnan(entry[1])]
        entries.sort(key=lambda entry: -entry[1])
        all_scores = np.array([entry[1] for entry in entries])
        log_total = float(log_sum_exp(jnp.asarray(all_scores))) if len(entries) else -np.inf
        top = entries[:keep]
        scores = np.array([entry[1] for entry in top])
        probabilities = np.exp(scores - log_total) if np.isfinite(log_total) else np.zeros_like(scores)
        return SearchResult(
            codes=np.stack([entry[0] for entry in top]),
            scores=scores,
            log_evidence=np.array([entry[2] for entry in top]),
            probabilities=probabilities,
            estimates=jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *[entry[3] for entry in top]),
            history=history,
            scored=scored,
            steps=steps,
            seconds=seconds,
            space=space,
            rounds=rounds,
        )


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def _check_budget(budget) -> tuple[int | None, float | None]:
    if isinstance(budget, Budget):
        steps, seconds = budget
    elif isinstance(budget, (int, np.integer)) and not isinstance(budget, bool):
        steps, seconds = int(budget), None
    else:
        raise InferenceError(
            f"search's budget is a number of steps (an int) or ppl.infer.Budget(steps=..., seconds=...), "
            f"got {budget!r}. For a time limit pass budget=ppl.infer.Budget(seconds={budget!r})."
        )
    if steps is None and seconds is None:
        raise InferenceError("search's Budget needs steps=..., seconds=... or both.")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0):
        raise InferenceError(f"Budget.steps must be a non-negative int, got {steps!r}.")
    if steps is not None and steps >= MAX_STEPS:
        raise InferenceError(f"Budget.steps must be below 2**31 (a search that long never ends), got {steps!r}. For "
                             "a search that runs until a time limit pass budget=ppl.infer.Budget(seconds=...).")
    if seconds is not None and (isinstance(seconds, bool) or not (isinstance(seconds, (int, float)) and seconds >= 0)):
        raise InferenceError(f"Budget.seconds must be a non-negative number, got {seconds!r}.")
    if steps is None and seconds == float("inf"):
        raise InferenceError("search's Budget(seconds=inf) never ends; give a finite number of seconds or steps.")
    return (None if steps is None else int(steps)), (None if seconds is None else float(seconds))


def _check_call(space, population, temperature, keep) -> None:
    from ppl.compose.space import Space

    if not isinstance(space, Space):
        raise InferenceError(f"search needs a ppl.Space to search over, got {type(space).__name__} {space!r}.")
    if space.observe is None:
        raise InferenceError(
            "search scores structures by how well they explain the observations, but this space has "
            "no likelihood. Build it with observe=lambda value, *args: dist....(value, ...) and pass "
            "obs={'obs': data}.",
            model=space.name,
        )
    for name, value in (("population", population), ("keep", keep)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InferenceError(f"search's {name} must be a positive int, got {value!r}.", model=space.name)
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise InferenceError(f"search's temperature must be a positive number, got {temperature!r}.",
                             model=space.name)


def _check_scores(scored: _Scored, space) -> None:
    scores = np.asarray(scored.scores)
    if np.isnan(scores).all() or np.isneginf(scores).all():
        what = "NaN" if np.isnan(scores).all() else "-inf"
        raise InferenceError(
            f"every structure of the initial population has a {what} score, so the search has "
            "nothing to climb. Check that the observations are possible under the space's "
            "observe likelihood (e.g. space.model.generate(key, obs, code, ...) on one code), or "
            "use more particles (n=...).",
            model=space.name,
        )
