"""Choice: ``ppl.either(a, b, ..., probs=...)``, a discrete latent picks one of several alternatives.

It draws an index ``k ~ Categorical(probs)`` at address ``"index"`` and
returns the value of alternative ``k``, run with the ``either``'s arguments.
It is the building block of the *space of compositions* (``ppl.Space``),
where every node of a grammar tree is such a choice among terminals and
operators.

**Every alternative runs** (``context.switch``): under ``jit`` the index is a
traced value, so the choice map cannot depend on it. Every alternative keeps
its choices in the trace, under ``"0/..."``, ``"1/..."`` (or the keyword names
given). The alternatives not chosen are *inactive*: their choices are
auxiliary variables, drawn from and scored under their prior (the convention
of :mod:`ppl.interface`, shared with ``ppl.Space`` and ``ppl.many``)::

    score      = log probs[k] + sum_j score_j
    log_weight = [log probs[k] if "index" is constrained] + sum_j log_weight_j
    retval     = retval_k

The marginal of the index, the chosen alternative's choices and anything
observed downstream is the mixture one expects (the inactive choices
integrate to one). ``update`` that changes only the index is a valid
Metropolis-Hastings move: the newly chosen alternative's choices are draws
from its prior and their density is in both scores.

**assess.** With a concrete index (an ordinary number, not a ``jit`` tracer)
``assess`` needs only the chosen alternative's choices (the others integrate
to one); values given for other alternatives are scored under their prior.
Under ``jit``/``vmap`` the index is not known while tracing, so ``assess``
needs the choices of every alternative, as ``simulate`` produces them.

Example::

    >>> import jax, ppl
    >>> from ppl import dist
    >>> @ppl.model
    ... def small():
    ...     return ppl.sample("x", dist.Normal(0.0, 1.0))
    >>> @ppl.model
    ... def large():
    ...     return ppl.sample("x", dist.Normal(0.0, 10.0))
    >>> size = ppl.either(small, large, probs=[0.7, 0.3])
    >>> trace = size.simulate(jax.random.key(0))
    >>> trace.choices.addresses()
    ('0/x', '1/x', 'index')
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import distributions as dist

from ppl import validation
from ppl.compose.parts import named_parts
from ppl.context import Context, concrete_int
from ppl.errors import CompositionError
from ppl.interface import GenerativeFunction

__all__ = ["either", "Either"]

INDEX = "index"
PROBS_TOL = 1e-6


class Either(GenerativeFunction):
    """A discrete latent choice among alternatives; build one with :func:`either`.

    Addresses: ``"index"`` holds ``k ~ Categorical(probs)`` (int32); alternative
    ``j``'s choices live under its name (``"0"``, ``"1"``, ... for positional
    alternatives, the keyword for named ones). Every alternative is called with
    the arguments of the ``either``. Weights: see the module docstring.
    """

    def __init__(self, alternatives: dict[str, GenerativeFunction], probs: jnp.ndarray, name: str):
        self.alternatives = alternatives
        self.names = tuple(alternatives)
        self.probs = probs
        self.name = name

    @property
    def index_distribution(self) -> dist.Categorical:
        return dist.Categorical(probs=self.probs)

    def body(self, context: Context, *args):
        index = jnp.asarray(context.sample(INDEX, self.index_distribution)).astype(jnp.int32)
        concrete = concrete_int(index) if context.interpreter.complete else None
        branches = [(name, self.alternatives[name], tuple(args)) for name in self.names]
        return context.switch(index, branches, concrete=concrete)

    def __repr__(self) -> str:
        return f"<ppl.either {self.name}>"


def either(*alternatives: GenerativeFunction, probs: Any = None, name: str | None = None,
           **named_alternatives: GenerativeFunction) -> Either:
    """A discrete latent choice among ``alternatives``: ``k ~ Categorical(probs)``, run alternative ``k``.

    Args:
      *alternatives: generative functions, addressed ``"0"``, ``"1"``, ...
      probs: prior probabilities of the alternatives, shape ``(number of
        alternatives,)``, non-negative, summing to one (within ``1e-6``);
        ``None`` for uniform.
      name: the name used in messages (default ``either(a, b, ...)``).
      **named_alternatives: alternatives addressed by their keyword (after the
        positional ones, in the order given).

    Returns:
      An :class:`Either`. Called with ``*args``, it passes them to every
      alternative; every alternative must return a value of the same
      structure, shape and dtype. Its choices: ``"index"`` and each
      alternative's choices under its name (all of them, see the module
      docstring: only the selected one counts).

    Raises:
      CompositionError: no alternatives, an alternative that is not a
        generative function, a keyword named ``"index"`` or containing ``/``,
        or ``probs`` of the wrong length, negative or not summing to one.

    Example::

        >>> coin = ppl.either(heads=small, tails=large, probs=[0.5, 0.5])
        >>> coin.assess({"index": 0, "heads/x": 0.1}).log_density  # only the chosen one needed
    """
    label = name or "either({})".format(
        ", ".join(getattr(a, "name", repr(a)) for a in (*alternatives, *named_alternatives.values()))
    )
    if not alternatives and not named_alternatives:
        raise CompositionError("ppl.either needs at least one alternative, got none. Pass generative "
                               "functions: ppl.either(model_a, model_b).", model=label)
    entries = named_parts("either", alternatives, named_alternatives, reserved=(INDEX,), mixed=True, model=label)
    with jax.ensure_compile_time_eval():  # concrete probabilities, even when the model is built inside jit
        probs = _check_probs(probs, len(entries), label)
    return Either(entries, probs, label)


def _check_probs(probs: Any, count: int, label: str) -> jax.Array:
    """Validate ``probs`` eagerly (when concrete); return them as a float array."""
    if probs is None:
        return jnp.full((count,), 1.0 / count)
    if not validation.is_concrete(probs):
        return jnp.asarray(probs)
    try:
        array = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError):
        raise CompositionError(
            f"ppl.either probs must be numbers, got {probs!r}. Pass e.g. probs=[0.5, 0.5].", model=label
        ) from None
    if array.shape != (count,):
        raise CompositionError(
            f"ppl.either has {count} alternatives, so probs must have shape ({count},), got shape "
            f"{array.shape} ({probs!r}). Give one probability per alternative, or probs=None for uniform.",
            model=label,
        )
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise CompositionError(
            f"ppl.either probs must be finite and non-negative, got {array.tolist()}.", model=label
        )
    total = float(array.sum())
    if abs(total - 1.0) > PROBS_TOL:
        raise CompositionError(
            f"ppl.either probs must sum to one (within {PROBS_TOL:g}), got {array.tolist()} summing to "
            f"{total:.8g}. Normalise them, e.g. probs / probs.sum().",
            model=label,
        )
    return jnp.asarray(array, dtype=jnp.result_type(float))
