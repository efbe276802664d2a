"""A small time-series grammar with every parameter explicit: the one the guides, tests and benchmarks search.

Terminals are functions of the time axis ``t`` (shape ``(T,)``, usually
``[0, 1]``) returning a series of shape ``(T,)``; each samples its one or two
parameters directly (no states, nothing integrated out), so a structure's
evidence is left to ``ppl.infer`` (importance sampling, Laplace). The
state-space grammar that integrates the states out exactly is
:mod:`stdlib.sequences.grammar`.

=========================  ==========================================================  =====================
piece                      value                                                       choices (prior)
=========================  ==========================================================  =====================
``level``                  ``value`` at every point                                    ``value ~ N(0, 1)``
``trend(scale, origin)``   ``slope * (t - origin)``                                    ``slope ~ N(0, scale^2)``
``periodic(frequency)``    ``amplitude * sin(2 pi frequency t + phase)``               ``amplitude ~ HalfNormal(1)``,
                                                                                       ``phase ~ U(0, 2 pi)``
``changepoint``            ``before``, then ``after`` from ``time`` on (a sigmoid      ``time ~ U(0, 1)``
                           switch of sharpness 50 per unit of ``t``)
``+``, ``*``               the operands added, multiplied                              none
=========================  ==========================================================  =====================

``space(...)`` puts them into a :class:`ppl.Space` (by default terminals
``level``, ``trend``, ``periodic(4)``, operators ``+``, ``*``,
``changepoint``, depth 3: 2,703 structures) with Normal observation noise at
``"obs"``. Choices live at ``"node_{i}/{name}/..."``, e.g.
``"node_1/trend/slope"``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from stdlib.sequences import simple
    >>> space = simple.space(noise=0.1)
    >>> space.count()
    2703
    >>> code = space.encode(("+", "trend", "periodic(4)"))
    >>> trace = space.model.simulate(jax.random.key(0), code, jnp.linspace(0.0, 1.0, 48))
    >>> trace.choices["obs"].shape
    (48,)
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType

import jax
import jax.numpy as jnp

import ppl
from ppl import dist
from ppl.errors import CompositionError

__all__ = ["OPERATORS", "TERMINALS", "changepoint", "level", "periodic", "space", "trend"]

SHARPNESS = 50.0  # the changepoint's sigmoid: from 10% to 90% "after" in about 0.09 units of t


@ppl.model
def level(t):
    """A constant: ``value ~ N(0, 1)`` at every point; ``t (T,) -> (T,)``."""
    return ppl.sample("value", dist.Normal(0.0, 1.0)) * jnp.ones_like(t)


def trend(scale: float = 1.0, origin: float = 0.0) -> ppl.Model:
    """A straight line through zero at ``t = origin``: ``slope ~ N(0, scale^2)``; ``t (T,) -> (T,)``.

    ``origin=0.5`` centres it on a ``[0, 1]`` axis (the slope then moves the
    two ends, not the mean).

    Example::

        >>> import jax, jax.numpy as jnp
        >>> line = trend(origin=0.5)
        >>> trace = line.simulate(jax.random.key(0), jnp.linspace(0.0, 1.0, 5))
        >>> bool(jnp.allclose(trace.retval, trace.choices["slope"] * jnp.linspace(-0.5, 0.5, 5)))
        True
    """
    if not scale > 0:
        raise CompositionError(f"trend(scale=...) is the slope's prior standard deviation and must be positive, "
                         f"got {scale!r}; e.g. trend(scale=2.0).")

    def trend(t):
        return ppl.sample("slope", dist.Normal(0.0, scale)) * (t - origin)

    return ppl.model(trend)


def periodic(frequency: float) -> ppl.Model:
    """A sinusoid of ``frequency`` cycles per unit of ``t`` (on ``[0, 1]``: cycles over the whole series).

    ``amplitude ~ HalfNormal(1)``, ``phase ~ U(0, 2 pi)``; ``t (T,) -> (T,)``.
    A yearly cycle over ``M`` monthly points on ``[0, 1]`` is ``periodic(M / 12)``.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> four = periodic(4)
        >>> four.simulate(jax.random.key(0), jnp.linspace(0.0, 1.0, 24)).choices.addresses()
        ('amplitude', 'phase')
    """
    if not frequency > 0:
        raise CompositionError(f"periodic(frequency) counts cycles per unit of t and must be positive, got "
                         f"{frequency!r}; e.g. periodic(4) for four cycles over t in [0, 1].")

    def periodic(t):
        amplitude = ppl.sample("amplitude", dist.HalfNormal(1.0))
        phase = ppl.sample("phase", dist.Uniform(0.0, 2 * jnp.pi))
        return amplitude * jnp.sin(2 * jnp.pi * frequency * t + phase)

    return ppl.model(periodic, name=f"periodic({frequency:g})")


@ppl.model
def changepoint(before, after, t):
    """``before`` up to a latent ``time ~ U(0, 1)``, ``after`` from it on, switched by a sigmoid.

    ``before``, ``after``, ``t``: ``(T,)``; returns ``(T,)``. The switch is
    smooth (sharpness ``SHARPNESS`` per unit of ``t``), so the time has a
    gradient for MAP and Laplace.
    """
    time = ppl.sample("time", dist.Uniform(0.0, 1.0))
    weight = jax.nn.sigmoid((t - time) * SHARPNESS)
    return (1 - weight) * before + weight * after


TERMINALS: Mapping[str, ppl.GenerativeFunction] = MappingProxyType(
    {"level": level, "trend": trend(), "periodic(4)": periodic(4)})
OPERATORS: Mapping[str, ppl.GenerativeFunction | Callable] = MappingProxyType(
    {"+": operator.add, "*": operator.mul, "changepoint": changepoint})


def space(
    terminals: Mapping[str, ppl.GenerativeFunction] = TERMINALS,
    operators: Mapping[str, ppl.GenerativeFunction | Callable] = OPERATORS,
    *,
    depth: int = 3,
    noise: float | Callable | ppl.GenerativeFunction | None = 0.1,
    **options,
) -> ppl.Space:
    """The grammar as a :class:`ppl.Space` of ``(code, t)``, observed with Normal noise at ``"obs"``.

    Args:
      terminals, operators: ``{name: piece}``; the names are the addresses
        (``"node_{i}/{name}/..."``) and what ``space.describe`` prints.
      depth: maximum tree depth (3: 7 nodes, 2,703 structures with the defaults).
      noise: the observation: a scale (``obs ~ Normal(f, noise)`` at every
        point, shape ``(T,)``), any other ``observe`` that ``ppl.Space``
        accepts (a function ``(f, t) -> distribution``, a generative function),
        or ``None`` for none.
      **options: passed to ``ppl.Space`` (``p_operator``, ``terminal_probs``, ...).

    Example::

        >>> months = 200
        >>> co2 = space({"level": level, "trend": trend(scale=2.0, origin=0.5),
        ...              "yearly": periodic(months / 12)}, noise=0.2)
        >>> co2.kinds
        ('', 'level', 'trend', 'yearly', '+', '*', 'changepoint')
    """
    if isinstance(noise, (int, float)) and not isinstance(noise, bool):
        if not noise > 0:
            raise CompositionError(f"noise is the observation's standard deviation and must be positive, got {noise!r}.")
        scale = float(noise)

        def observe(f, t):
            return dist.Normal(f, scale).to_event(1)
    else:
        observe = noise
    return ppl.Space(terminals, operators, depth=depth, observe=observe, **options)
