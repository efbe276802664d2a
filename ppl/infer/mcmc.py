"""MCMC kernels built on ``update``, and :func:`chain` to run one with ``lax.scan``.

A *kernel* is a pure function ``kernel(key, trace) -> KernelStep(trace, accepted)``
that leaves the posterior ``p(x | obs)`` of the trace's model invariant (the
observations are the choices no proposal touches). All kernels here are
Metropolis–Hastings with a proposal that is itself a generative function: the
proposal ``q`` is run as ``q(trace, *proposal_args)``, its choices are the
proposed new values (at the model's addresses), and

    log alpha = update weight + log q(x | x', ...) - log q(x' | x, ...)
              = [log p(x') - log p(x)] + [backward log q] - [forward log q]

with the backward term from ``q.assess(old values, new trace, ...)``. A proposal
whose ``log alpha`` is NaN is rejected (the chain never enters a NaN state).

=====================================  ===========================================
kernel                                 proposal
=====================================  ===========================================
:func:`mh(model, proposal, args)`      any generative function ``proposal(trace, *args)``
:func:`mh(model, ["a", "b/c"])`        the selected choices redrawn from their prior
:func:`random_walk(model, addrs)`      ``x' = x + scale * N(0, I)`` on the addresses
:func:`mala(model, addrs, eps)`        Langevin in unconstrained space (below)
=====================================  ===========================================

Kernels work on every generative function, compositions included (a choice
inside ``ppl.unfold`` is moved along its whole time axis, one inside
``ppl.many`` across its copies). ``random_walk`` and ``mala`` with
``addresses=None`` move every continuous latent choice (every continuous
choice the trace does not hold as an observation: pass ``observed=``).
Kernels are jittable and vmappable over chains (vmap ``chain`` over keys and a
batch of traces). The set of addresses the model visits must not change.

Example::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> @ppl.model
    ... def normal_mean():
    ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ...     ppl.sample("y", dist.Normal(mu, 0.5).expand([3]))
    >>> obs = {"y": jnp.array([0.9, 1.1, 1.3])}
    >>> trace, _ = normal_mean.generate(jax.random.key(0), obs)
    >>> kernel = ppl.infer.mcmc.random_walk(normal_mean, ["mu"], scale=0.5)
    >>> result = ppl.infer.mcmc.chain(jax.random.key(1), kernel, trace, steps=2000)
    >>> result.choices["mu"].shape
    (2000,)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from numpyro.distributions import Normal

from ppl.choices import ChoiceMap
from ppl.context import interpret
from ppl.errors import InferenceError, MissingChoiceError, UnknownAddressError, did_you_mean
from ppl.infer.arguments import join_args, split_args
from ppl.infer.unconstrained import check_selected, describe_sites, latent_continuous, log_density, unconstrain
from ppl.interface import Assessment, GenerativeFunction, Trace, top_level
from ppl.interpreters import Regenerate, SelectedDensity
from ppl.validation import is_concrete

__all__ = ["KernelStep", "Chain", "mh", "random_walk", "mala", "cycle", "chain", "regenerate"]


class KernelStep(NamedTuple):
    """What a kernel returns: the next ``trace`` and whether the proposal was ``accepted``."""

    trace: Trace
    accepted: jax.Array


Kernel = Callable[[jax.Array, Trace], KernelStep]


class Chain(NamedTuple):
    """The result of :func:`chain`.

    Attributes:
      trace: the last state.
      choices: the recorded states' choices, every leaf with a leading
        ``(steps,)`` axis.
      scores: ``(steps,)`` log joint ``log p(x, obs)`` of each recorded state.
      accepted: ``(steps,)`` fraction of proposals accepted in each block of
        ``thin`` kernel applications (0 or 1 when ``thin=1``).
      acceptance_rate: the overall fraction of accepted proposals.
    """

    trace: Trace
    choices: ChoiceMap
    scores: jax.Array
    accepted: jax.Array
    acceptance_rate: jax.Array


# ---------------------------------------------------------------------------
# Metropolis–Hastings with a generative-function proposal
# ---------------------------------------------------------------------------


def _select(accepted: jax.Array, new: Trace, old: Trace) -> Trace:
    if jax.tree_util.tree_structure(new.choices) != jax.tree_util.tree_structure(old.choices):
        raise InferenceError(
            "the proposal changed the set of addresses the model visits (before: "
            f"{old.choices.addresses()}, after: {new.choices.addresses()}). MH kernels need a fixed "
            "set of addresses; propose values for existing choices only."
        )
    pick = lambda a, b: jnp.where(accepted, a, b)  # noqa: E731
    return Trace(
        jax.tree_util.tree_map(pick, new.choices, old.choices),
        pick(new.score, old.score),
        jax.tree_util.tree_map(pick, new.retval, old.retval),
        old.args,
    )


def mh(model: GenerativeFunction, proposal: GenerativeFunction | Sequence[str] | str,
       proposal_args: Sequence = ()) -> Kernel:
    """Metropolis–Hastings with a user proposal (a generative function), or on a selection.

    Args:
      model: the model whose traces the kernel moves.
      proposal: a generative function called as ``proposal(trace, *proposal_args)``;
        its choices are the proposed new values, at the model's addresses (a
        proposal for ``"a/x"`` samples a sub-model at ``"a"`` that samples ``"x"``).
        Its ``assess`` gives ``q``. Or a *selection*: an address or a list of
        addresses, redrawn from their prior given the rest of the trace
        (:func:`regenerate`; e.g. ``mh(model, ["index"])`` flips an
        ``either``'s choice, ``mh(model, ["count"])`` a ``many``'s count).
      proposal_args: extra arguments for the proposal.

    Returns:
      ``kernel(key, trace) -> KernelStep(trace, accepted)`` with
      ``log alpha = update weight + log q(x | x') - log q(x' | x)``.

    Example::

        >>> import jax, ppl
        >>> from ppl import dist
        >>> @ppl.model
        ... def coin_bias():
        ...     p = ppl.sample("p", dist.Beta(2.0, 2.0))
        ...     ppl.sample("flips", dist.Bernoulli(p).expand([4]))
        >>> @ppl.model
        ... def jitter(trace, concentration):  # an asymmetric proposal: q's ratio corrects it
        ...     p = trace.choices["p"]
        ...     ppl.sample("p", dist.Beta(concentration * p, concentration * (1 - p)))
        >>> trace = coin_bias.generate(jax.random.key(0), {"flips": [1, 1, 0, 1]}).trace
        >>> kernel = ppl.infer.mcmc.mh(coin_bias, jitter, (20.0,))
        >>> step = kernel(jax.random.key(1), trace)
        >>> step.trace.choices["flips"].tolist()
        [1, 1, 0, 1]
    """
    if isinstance(proposal, str) or (isinstance(proposal, Sequence) and not isinstance(proposal, GenerativeFunction)):
        return _selection_kernel(model, proposal)
    proposal_args = tuple(proposal_args)

    def kernel(key: jax.Array, trace: Trace) -> KernelStep:
        forward_key, update_key, accept_key = jax.random.split(key, 3)
        forward = proposal.simulate(forward_key, trace, *proposal_args)
        new_trace, weight = model.update(update_key, trace, forward.choices)
        old_values = trace.choices.filter(forward.choices.addresses())
        backward = proposal.assess(old_values, new_trace, *proposal_args).log_density
        log_alpha = weight + backward - forward.score
        accepted = jnp.log(jax.random.uniform(accept_key)) < log_alpha  # False for NaN
        return KernelStep(_select(accepted, new_trace, trace), accepted)

    return kernel


def regenerate(key: jax.Array, model: GenerativeFunction, trace: Trace, selection: Sequence[str]):
    """Redraw the ``selection`` of ``trace`` from its prior given the rest: ``(new trace, log_weight)``.

    ``log_weight = [log p(x') - log q(x'_sel)] - [log p(x) - log q(x_sel)]``,
    the Metropolis-Hastings log acceptance ratio of this proposal (``q`` = the
    selected choices' prior, each given everything sampled before it).
    Selecting an address that holds a sub-map (``"a"``) selects every choice
    under it.
    """
    selection = _expand_selection(selection, trace, model)
    run = top_level(model, lambda: interpret(model, Regenerate(trace.choices, selection), key, tuple(trace.args)))
    old = top_level(model, lambda: interpret(model, SelectedDensity(trace.choices, selection), None, tuple(trace.args)))
    new_trace = Trace(run.choices, run.totals["score"], run.retval, trace.args)
    log_weight = (run.totals["score"] - run.totals["selected"]) - (trace.score - old.totals["selected"])
    return new_trace, log_weight


def _expand_selection(selection, trace: Trace, model) -> frozenset:
    selection = [selection] if isinstance(selection, str) else list(selection)
    known = trace.choices.addresses()
    chosen = set()
    for address in selection:
        inside = [a for a in known if a == address or a.startswith(address + "/")]
        if not inside:
            raise UnknownAddressError(
                f"mh was asked to redraw '{address}', which the trace does not hold.{did_you_mean(address, known)} "
                f"Its choices are: {', '.join(map(repr, known))}.",
                model=model.name, address=address,
            )
        chosen.update(inside)
    return frozenset(chosen)


def _selection_kernel(model: GenerativeFunction, selection) -> Kernel:
    def kernel(key: jax.Array, trace: Trace) -> KernelStep:
        move_key, accept_key = jax.random.split(key)
        new_trace, log_alpha = regenerate(move_key, model, trace, selection)
        accepted = jnp.log(jax.random.uniform(accept_key)) < log_alpha  # False for NaN
        return KernelStep(_select(accepted, new_trace, trace), accepted)

    return kernel


# ---------------------------------------------------------------------------
# Built-in proposals (generative functions, so `mh` treats them like any other)
# ---------------------------------------------------------------------------


def _check_addresses(addresses: Sequence[str], trace: Trace, kernel: str) -> None:
    known = trace.choices.addresses()
    for address in addresses:
        if not trace.choices.has_value(address):
            raise UnknownAddressError(
                f"{kernel} was asked to move '{address}', which the trace does not hold."
                f"{did_you_mean(address, known)} Its choices are: {', '.join(map(repr, known))}.",
                address=address,
            )
        if not jnp.issubdtype(jnp.result_type(trace.choices[address]), jnp.floating):
            raise InferenceError(
                f"{kernel} moves continuous choices, but '{{address}}' holds "
                f"{jnp.result_type(trace.choices[address])} values (a discrete choice). Move it "
                "with ppl.infer.mcmc.mh and a proposal for discrete values.",
                address=address,
            )


class _Proposal(GenerativeFunction):
    """A proposal over addresses of a model's trace; subclasses give ``_propose``.

    Called as ``proposal(trace)``; its choices are the proposed values at the
    model's (possibly nested) addresses. Only ``simulate`` and ``assess`` are
    used (by :func:`mh`). ``addresses=None``: every continuous latent of the
    trace (not in ``observed``, nor in the target's own ``observed``, e.g. a
    tempered target's observations).
    """

    def __init__(self, addresses: Sequence[str] | str | None, name: str, observed: Sequence[str] = ()):
        if isinstance(addresses, str):
            addresses = [addresses]
        self.addresses = None if addresses is None else tuple(addresses)
        if self.addresses is not None and not self.addresses:
            raise InferenceError(f"{name} needs at least one address to move, got none.")
        self.observed = tuple(observed)
        self.name = name

    def body(self, context, *args):
        raise InferenceError(f"the {self.name} proposal is run by ppl.infer.mcmc.mh (simulate and assess only).")

    def addresses_of(self, trace: Trace, model=None) -> tuple[str, ...]:
        if self.addresses is not None:
            _check_addresses(self.addresses, trace, self.name)
            return self.addresses
        observed = set(self.observed) | set(getattr(model, "observed", ()))
        known = set(trace.choices.addresses())
        obs = ChoiceMap({a: trace.choices[a] for a in observed if a in known})
        found = latent_continuous(describe_sites(model, obs, trace.args))
        if not found:
            raise InferenceError(f"{self.name} found no continuous latent choice to move in '{model.name}'.",
                                 model=model.name)
        return found

    def simulate(self, key, trace, *args) -> Trace:
        values, log_q = self._propose(key, trace, {})
        return Trace(ChoiceMap(values), sum(log_q.values(), jnp.zeros(())), None, (trace, *args))

    def assess(self, choices, trace, *args):
        choices = ChoiceMap(choices) if not isinstance(choices, ChoiceMap) else choices
        addresses = self._addresses_for(trace)
        given = {a: choices[a] for a in addresses if choices.has_value(a)}
        if len(given) < len(addresses):
            missing = next(a for a in addresses if a not in given)
            raise MissingChoiceError("assess of a proposal needs every proposed value.", address=missing)
        _, log_q = self._propose(None, trace, given)
        return Assessment(sum(log_q.values(), jnp.zeros(())), None)

    def _addresses_for(self, trace: Trace) -> tuple[str, ...]:
        return self.addresses_of(trace, getattr(self, "model", None))


class _GaussianDrift(_Proposal):
    """``x'_a ~ Normal(x_a, scale_a)`` independently for each address (symmetric)."""

    def __init__(self, model, addresses, scale, observed=()):
        super().__init__(addresses, "random_walk", observed)
        self.model = model
        if isinstance(scale, Mapping):
            self.scale = dict(scale)
            if self.addresses is None or set(self.scale) != set(self.addresses):
                raise InferenceError(
                    f"random_walk scale keys {sorted(self.scale)} must match the addresses "
                    f"{list(self.addresses or [])}; pass one number, or one per address."
                )
        else:
            self.scale = scale

    def _propose(self, key, trace, given):
        addresses = self._addresses_for(trace)
        keys = jax.random.split(key, len(addresses)) if key is not None else [None] * len(addresses)
        values, log_q = {}, {}
        for address, sub_key in zip(addresses, keys):
            centre = trace.choices[address]
            scale = self.scale[address] if isinstance(self.scale, dict) else self.scale
            step = Normal(centre, scale)
            value = given[address] if address in given else step.sample(sub_key)
            values[address] = value
            log_q[address] = jnp.sum(step.log_prob(value))
        return values, log_q


class _Langevin(_Proposal):
    """MALA's proposal, in the unconstrained space ``u = T^{-1}(x)`` of the addresses.

    ``u' ~ Normal(u + eps^2 / 2 * grad log pi(u), eps)`` with
    ``log pi(u) = log p(T(u), rest) + log |det dT/du|`` (one run of the model,
    :func:`ppl.infer.unconstrained.log_density`); the density of the proposed
    ``x' = T(u')`` is ``log N(u'; ...) - log |det dT/du|(u')``.
    """

    def __init__(self, model, addresses, step_size, observed=()):
        super().__init__(addresses, "mala", observed)
        self.model = model
        self.step_size = step_size

    def _propose(self, key, trace, given):
        model, addresses, args = self.model, self._addresses_for(trace), trace.args
        check_selected(addresses, _sites_of(model, trace), model)
        u = unconstrain(model, trace.choices, addresses, args)
        grad = jax.grad(lambda u: log_density(model, trace.choices, u, args, jacobian=True).log_density)(u)
        eps = jnp.asarray(self.step_size)
        mean = {a: u[a] + 0.5 * eps**2 * grad[a] for a in addresses}
        if given:
            u_given = unconstrain(model, trace.choices.merge(ChoiceMap(given)), tuple(given), args)
        keys = jax.random.split(key, len(addresses)) if key is not None else [None] * len(addresses)
        u_new = {
            a: u_given[a] if a in given else mean[a] + eps * jax.random.normal(k, jnp.shape(mean[a]))
            for a, k in zip(addresses, keys)
        }
        proposed = log_density(model, trace.choices, u_new, args, jacobian=True)
        values = {a: given[a] if a in given else proposed.choices[a] for a in addresses}
        # the Jacobian term is one total over the addresses; it is charged to the first one
        # (the proposal is always evaluated on all of its addresses or none)
        log_q = {a: jnp.sum(Normal(mean[a], eps).log_prob(u_new[a])) for a in addresses}
        log_q[addresses[0]] = log_q[addresses[0]] - proposed.log_det
        return values, log_q


def _sites_of(model, trace: Trace):
    """The sites of ``model`` as the trace holds them (every choice given)."""
    return describe_sites(model, trace.choices, trace.args)


def random_walk(
    model: GenerativeFunction, addresses: Sequence[str] | str | None = None,
    scale: float | Mapping[str, float] = 0.1, *, observed: Sequence[str] = (),
) -> Kernel:
    """Random-walk Metropolis on continuous addresses: ``x' = x + scale * N(0, I)``.

    The proposal is symmetric, so ``log alpha = log p(x') - log p(x)``. It moves
    in the choices' own space: a proposal outside a choice's support has
    density 0 and is rejected. ``scale`` is one number or ``{address: scale}``.
    ``addresses=None`` moves every continuous latent (every continuous choice
    not in ``observed``).
    """
    return mh(model, _GaussianDrift(model, addresses, scale, observed))


def mala(model: GenerativeFunction, addresses: Sequence[str] | str | None = None, step_size: float = 0.1, *,
         observed: Sequence[str] = ()) -> Kernel:
    """Metropolis-adjusted Langevin on continuous addresses, in unconstrained space.

    With ``u = T^{-1}(x)`` (``T = biject_to(support)``, per address) and
    ``log pi(u) = log p(T(u), rest) + log |det dT/du|``, the proposal is
    ``u' ~ N(u + step_size^2 / 2 * grad log pi(u), step_size^2 I)``; the gradient
    is ``jax.grad`` of one run of the model in unconstrained space, so the
    addresses may lie anywhere in a composition. ``addresses=None`` moves every
    continuous latent (not in ``observed``). Discrete addresses raise
    ``InferenceError``. A NaN gradient makes ``log alpha`` NaN, so that proposal
    is rejected.
    """
    return mh(model, _Langevin(model, addresses, step_size, observed))


def cycle(*kernels: Kernel) -> Kernel:
    """One kernel that applies ``kernels`` in turn (each leaves the posterior invariant, so does the cycle).

    ``accepted`` is the fraction of the kernels that accepted.

    Example::

        >>> structure_and_values = ppl.infer.mcmc.cycle(ppl.infer.mcmc.mh(model, ["index"]),
        ...                                             ppl.infer.mcmc.mala(model, observed=["y"]))  # doctest: +SKIP
    """
    if not kernels or not all(callable(kernel) for kernel in kernels):
        raise InferenceError(f"cycle needs one or more kernels (functions key, trace -> KernelStep), got {kernels!r}.")

    def kernel(key: jax.Array, trace: Trace) -> KernelStep:
        accepted = jnp.zeros((), jnp.float32)
        for sub_key, each in zip(jax.random.split(key, len(kernels)), kernels):
            step = each(sub_key, trace)
            trace, accepted = step.trace, accepted + step.accepted.astype(jnp.float32)
        return KernelStep(trace, accepted / len(kernels))

    return kernel


# ---------------------------------------------------------------------------
# Running a chain
# ---------------------------------------------------------------------------


def chain(key: jax.Array, kernel: Kernel, trace: Trace, steps: int, *, thin: int = 1) -> Chain:
    """Run ``kernel`` from ``trace`` for ``steps * thin`` steps with ``lax.scan``.

    Records every ``thin``-th state: ``result.choices`` leaves have a leading
    ``(steps,)`` axis. Compiled once per (kernel, steps, thin, shapes) and cached;
    reuse the same kernel object to reuse the compiled program. ``vmap`` it over
    keys and a batch of traces to run many chains.

    Raises ``InferenceError`` when ``trace.score`` is known to be ``-inf`` or NaN
    (a chain cannot start at an impossible state; start from ``generate`` with
    the observations).
    """
    if not isinstance(steps, int) or steps < 1 or not isinstance(thin, int) or thin < 1:
        raise InferenceError(f"chain needs integer steps >= 1 and thin >= 1, got steps={steps!r}, thin={thin!r}.")
    if is_concrete(trace.score) and not bool(jnp.all(jnp.isfinite(trace.score))):
        raise InferenceError(
            f"the chain starts at a trace whose score is {trace.score} (log p of its choices). "
            "Start from a trace with positive density, e.g. model.generate(key, obs, *args)."
        )
    dynamic, static = split_args(trace.args, GenerativeFunction())
    last, choices, scores, accepted = _run_chain(key, trace._replace(args=dynamic), kernel, static, steps, thin)
    return Chain(Trace(*last, trace.args), choices, scores, accepted, jnp.mean(accepted))


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _run_chain(key, trace, kernel, static, steps, thin):
    args = join_args(trace.args, static)

    def one(state, step_key):
        choices, score, retval = state
        step = kernel(step_key, Trace(choices, score, retval, args))
        new = step.trace
        return (new.choices, new.score, new.retval), step.accepted

    def block(state, block_key):
        state, accepted = lax.scan(one, state, jax.random.split(block_key, thin))
        return state, (state[0], state[1], jnp.mean(accepted.astype(jnp.float32)))

    state = (trace.choices, jnp.asarray(trace.score), trace.retval)
    state, (choices, scores, accepted) = lax.scan(block, state, jax.random.split(key, steps))
    return state, choices, scores, accepted
