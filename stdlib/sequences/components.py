"""Temporal components: each a small linear-Gaussian state-space model with priors on its settings.

A :class:`Component` is one additive piece of a series (a level, a trend, a
yearly cycle, an autoregressive wiggle). It is described twice, by the same
matrices:

- ``component.model`` is an ordinary ``@ppl.model`` over the (scaled) time
  axis ``u``: it samples its hyperparameters (``"hyper/..."``), its initial
  state and its process innovations, and returns its contribution ``(T,)``.
  Read it, simulate it, run any of ``ppl.infer`` on it.
- ``transition(theta, dt, scale)`` / ``initial(theta)`` / ``observation`` give
  the state-space form used by :mod:`stdlib.sequences.grammar` to integrate
  the states out *exactly* with a Kalman filter, leaving only the few
  hyperparameters ``theta`` to the core's Laplace approximation.

Units: series are standardised (mean 0, standard deviation 1) and time is
scaled to ``u = (t - t_first) / (t_last - t_first)`` in ``[0, 1]``, so the
priors below are stated once for every series. ``scale`` carries the span
(``t_last - t_first`` in the user's units, for periods) and the typical step
(for autoregressions, defined on steps).

=============================  =====  ==================================================================
component                      state  hyperparameters (prior)
=============================  =====  ==================================================================
``level()``                    1      none: a constant, ``N(0, 1)``
``linear_trend()``             2      none: value at the start ``N(0, 2^2)``, slope ``N(0, 4^2)`` per span
``local_linear_trend()``       2      ``level_scale ~ HalfNormal(0.2)``, ``slope_scale ~ HalfNormal(1)``
``random_walk()``              1      ``scale ~ HalfNormal(1)`` per sqrt(span)
``periodic(period, h)``        2h     none (``h`` harmonics, coefficients ``N(0, 0.7^2)``); with
                                      ``bounds=(lo, hi)`` the period is latent, ``Uniform(lo, hi)``
``ar(p)``                      p      ``partial_autocorrelations ~ Uniform(-1, 1)^p``, ``scale ~ HalfNormal(0.5)``
``white_noise()``              1      ``scale ~ HalfNormal(0.5)``: independent noise at every point
=============================  =====  ==================================================================

Example::

    >>> import jax, jax.numpy as jnp
    >>> trend = linear_trend()
    >>> trace = trend.model.simulate(jax.random.key(0), jnp.linspace(0.0, 1.0, 50))
    >>> trace.retval.shape
    (50,)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import ppl
from ppl import dist, linalg
from ppl.errors import CompositionError

__all__ = [
    "Component",
    "TimeScale",
    "ar",
    "level",
    "linear_trend",
    "local_linear_trend",
    "periodic",
    "random_walk",
    "white_noise",
]

HYPER_SIZE = 4  # every component's hyperparameters travel as one padded vector


class TimeScale(NamedTuple):
    """How scaled time ``u`` relates to the user's time: ``t = t_first + u * span``; ``step`` is the typical
    spacing in ``u`` (an autoregression's unit of time)."""

    span: float
    step: float


@dataclasses.dataclass(frozen=True, eq=False)
class Component:
    """One additive piece of a series, as a linear-Gaussian state-space model (see the module docstring).

    Attributes:
      name: how the component prints in a structure, e.g. ``"periodic(12)"``.
      kind: the family (``"periodic"``), for the plain-language report.
      dim: the state dimension.
      priors: ``((name, distribution), ...)``: the hyperparameters and their priors.
      transition: ``(theta, dt, scale) -> (F, Q)``, each ``(dim, dim)``, for a step of ``dt`` in ``u``;
        ``theta`` is a vector holding the hyperparameters in the order of ``priors`` (then padding).
      initial: ``(theta, scale) -> (m0, P0)``: the state's prior at the first point.
      observation: ``(dim,)`` the row that reads the component's value from its state.
      period: the period in the user's time units (fixed-period periodic components), else ``None``.
      regular_only: whether the component needs equally spaced points (an AR of order > 1).
      role: how the grammar integrates it: ``"static"`` (no process noise: its initial state is a set of
        regression coefficients, integrated in closed form), ``"dynamic"`` (a state in the Kalman filter)
        or ``"noise"`` (independent at every point: it adds to the observation variance).
      columns: static components: ``(theta, elapsed, scale) -> (T, dim)``, the contribution at
        ``elapsed = u - u[0]`` of each standard-normal coefficient (``h Phi(elapsed) L``, ``L L^T = P0``).
      explicit: ``component -> model``: the explicit generative model, for components that are not
        linear-Gaussian (``regimes``); default: built from the state-space form.
    """

    name: str
    kind: str
    dim: int
    priors: tuple[tuple[str, dist.Distribution], ...]
    transition: Callable
    initial: Callable
    observation: np.ndarray
    period: float | None = None
    regular_only: bool = False
    role: str = "dynamic"
    columns: Callable | None = None
    explicit: Callable | None = None

    @property
    def hyper_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.priors)

    @functools.cached_property
    def hyper(self) -> ppl.GenerativeFunction:
        """A ``@ppl.model`` of no arguments sampling the hyperparameters (``(HYPER_SIZE,)`` vector)."""
        return _hyper_model(self)

    @functools.cached_property
    def model(self) -> ppl.GenerativeFunction:
        """The component as an ordinary generative model of the scaled times ``u`` ``(T,)``, returning ``(T,)``."""
        return self.explicit(self) if self.explicit is not None else _explicit_model(self)

    def settings(self, standard: jax.Array) -> jax.Array:
        """The hyperparameters ``(HYPER_SIZE,)`` from standard-normal draws ``standard`` ``(R >= len(priors),)``:
        ``theta_i = F_i^{-1}(Phi(z_i))``, so ``z ~ N(0, I)`` gives ``theta`` from its prior exactly."""
        uniform = jnp.clip(jax.scipy.stats.norm.cdf(standard), 1e-6, 1 - 1e-6)
        return _pad([prior.icdf(uniform[i]) for i, (_, prior) in enumerate(self.priors)])

    def design(self, theta: jax.Array, u: jax.Array, scale: TimeScale) -> jax.Array:
        """A static component's contribution as regression columns ``(T, dim)`` on standard-normal
        coefficients (``columns``, in closed form: no filter, no scan)."""
        if self.columns is None:
            raise CompositionError(f"{self.name} is not static: it has no regression columns.")
        return self.columns(theta, u - u[0], scale)

    def __repr__(self) -> str:
        return f"<sequences component {self.name}>"


def _pad(values) -> jax.Array:
    values = jnp.stack([jnp.asarray(v, jnp.float32) for v in values]) if values else jnp.zeros((0,), jnp.float32)
    return jnp.concatenate([values, jnp.zeros((HYPER_SIZE - values.shape[0],), jnp.float32)])


def _constant(dim: int):
    return lambda theta, dt, scale: (jnp.eye(dim), jnp.zeros((dim, dim)))


# ---------------------------------------------------------------------------
# The components
# ---------------------------------------------------------------------------


def level(scale: float = 1.0) -> Component:
    """A constant level, ``N(0, scale^2)`` (standardised units)."""
    return Component("level", "level", 1, (), _constant(1),
                     lambda theta, s: (jnp.zeros(1), jnp.eye(1) * scale**2), np.ones(1), role="static",
                     columns=lambda theta, elapsed, s: jnp.full((elapsed.shape[0], 1), scale))


def _trend_transition(dt):
    return jnp.array([[1.0, dt], [0.0, 1.0]])


def linear_trend(level_scale: float = 2.0, slope_scale: float = 4.0) -> Component:
    """A straight line: a value at the start and a slope (per span), both Normal."""
    return Component("linear_trend", "linear_trend", 2, (),
                     lambda theta, dt, s: (_trend_transition(dt), jnp.zeros((2, 2))),
                     lambda theta, s: (jnp.zeros(2), jnp.diag(jnp.array([level_scale**2, slope_scale**2]))),
                     np.array([1.0, 0.0]), role="static",
                     columns=lambda theta, elapsed, s: jnp.stack([jnp.full_like(elapsed, level_scale),
                                                                  slope_scale * elapsed], axis=1))


def local_linear_trend(level_scale: float = 0.2, slope_scale: float = 1.0) -> Component:
    """A trend whose level and slope drift (random walks with latent scales, per sqrt(span))."""

    def transition(theta, dt, s):
        return _trend_transition(dt), jnp.diag(jnp.array([theta[0] ** 2, theta[1] ** 2]) * dt)

    return Component("local_linear_trend", "local_linear_trend", 2,
                     (("level_scale", dist.HalfNormal(level_scale)), ("slope_scale", dist.HalfNormal(slope_scale))),
                     transition,
                     lambda theta, s: (jnp.zeros(2), jnp.diag(jnp.array([4.0, 16.0]))), np.array([1.0, 0.0]))


def random_walk(scale: float = 1.0) -> Component:
    """A level that drifts as Brownian motion with a latent scale (per sqrt(span))."""
    return Component("random_walk", "random_walk", 1,
                     (("scale", dist.HalfNormal(scale)),),
                     lambda theta, dt, s: (jnp.eye(1), jnp.eye(1) * theta[0] ** 2 * dt),
                     lambda theta, s: (jnp.zeros(1), jnp.eye(1)), np.ones(1))


def periodic(period: float | None = None, harmonics: int = 2, *, bounds: tuple[float, float] | None = None,
             amplitude: float = 0.7) -> Component:
    """A repeating pattern: ``harmonics`` sine/cosine pairs of a period in the user's time units.

    Give ``period`` for a fixed period, or ``bounds=(lo, hi)`` for a latent one (``Uniform(lo, hi)``).
    """
    if (period is None) == (bounds is None):
        raise CompositionError("periodic needs exactly one of period=... (fixed) or bounds=(lo, hi) (latent), e.g. "
                         "periodic(12) for a yearly cycle in monthly data.")
    if not (isinstance(harmonics, int) and harmonics >= 1):
        raise CompositionError(f"periodic's harmonics must be a positive int, got {harmonics!r}.")
    if period is not None and not period > 0:
        raise CompositionError(f"periodic's period must be positive, got {period!r}.")
    if bounds is not None and not 0 < bounds[0] < bounds[1]:
        raise CompositionError(f"periodic's bounds must satisfy 0 < lo < hi, got {bounds!r}.")
    dim = 2 * harmonics
    orders = jnp.arange(1, harmonics + 1, dtype=jnp.float32)

    def transition(theta, dt, s):
        length = period if period is not None else theta[0]
        angles = 2 * jnp.pi * orders * dt * s.span / length
        cos, sin = jnp.cos(angles), jnp.sin(angles)
        blocks = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)  # (h, 2, 2)
        return jax.scipy.linalg.block_diag(*blocks), jnp.zeros((dim, dim))

    if period is not None:
        priors = ()
        name = f"periodic({period:g})"
    else:
        priors = (("period", dist.Uniform(*bounds)),)
        name = f"periodic({bounds[0]:g}..{bounds[1]:g})"
    observation = np.tile([1.0, 0.0], harmonics)

    def columns(theta, elapsed, s):
        length = period if period is not None else theta[0]
        angles = 2 * jnp.pi * orders[None, :] * elapsed[:, None] * s.span / length  # (T, h)
        pairs = jnp.stack([jnp.cos(angles), -jnp.sin(angles)], axis=-1)  # x_t = R(angle) x_0, read the first
        return pairs.reshape(elapsed.shape[0], dim) * amplitude / np.sqrt(harmonics)

    return Component(name, "periodic", dim, priors, transition,
                     lambda theta, s: (jnp.zeros(dim), jnp.eye(dim) * amplitude**2 / harmonics), observation,
                     period=period, role="static", columns=columns)


def _ar_coefficients(partials: jax.Array) -> jax.Array:
    """AR coefficients from partial autocorrelations in (-1, 1) (Durbin-Levinson): always stationary."""
    coefficients = partials[:1]
    for k in range(1, partials.shape[0]):
        coefficients = jnp.concatenate([coefficients - partials[k] * coefficients[::-1], partials[k : k + 1]])
    return coefficients


def ar(order: int = 1, scale: float = 0.5) -> Component:
    """A stationary autoregression of ``order`` steps (the typical spacing of the series).

    AR(1) also runs on irregular times (an Ornstein-Uhlenbeck process, ``phi^(dt / step)``);
    higher orders need equally spaced points.
    """
    if not (isinstance(order, int) and 1 <= order <= HYPER_SIZE - 1):
        raise CompositionError(f"ar's order must be an int from 1 to {HYPER_SIZE - 1}, got {order!r}.")
    names = tuple(f"partial_{k + 1}" for k in range(order)) + ("scale",)
    priors = tuple((name, dist.Uniform(-1.0, 1.0)) for name in names[:-1]) + (("scale", dist.HalfNormal(scale)),)

    def companion(theta):
        coefficients = _ar_coefficients(theta[:order])
        below = jnp.eye(order, k=-1)
        return below.at[0].set(coefficients)

    def innovation(theta):
        return jnp.zeros((order, order)).at[0, 0].set(theta[order] ** 2)

    def transition(theta, dt, s):
        if order == 1:
            # phi^(dt / step), written so that its derivatives stay finite at phi = 0 and dt = 0 (the start
            # of Laplace's Newton steps is phi = 0, the prior median); exactly phi on regular steps
            ratio = dt / s.step
            power = jnp.sign(theta[0]) * jnp.exp(ratio * jnp.log(jnp.maximum(jnp.abs(theta[0]), 1e-6)))
            phi = jnp.where(jnp.abs(ratio - 1.0) < 1e-4, theta[0], power)
            return phi.reshape(1, 1), (theta[1] ** 2 * (1 - phi**2) / jnp.maximum(1 - theta[0] ** 2, 1e-6)).reshape(1, 1)
        return companion(theta), innovation(theta)

    def initial(theta, s):
        matrix, noise = companion(theta), innovation(theta)
        kron = jnp.kron(matrix, matrix)
        stationary = linalg.solve(jnp.eye(order * order) - kron, noise.reshape(-1)).reshape(order, order)
        return jnp.zeros(order), 0.5 * (stationary + stationary.T)

    return Component(f"ar({order})", "ar", order, priors, transition, initial,
                     np.eye(order)[0], regular_only=order > 1)


def white_noise(scale: float = 0.5) -> Component:
    """Independent Normal noise at every point with a latent scale (a state redrawn at every step)."""
    return Component("white_noise", "white_noise", 1, (("scale", dist.HalfNormal(scale)),),
                     lambda theta, dt, s: (jnp.zeros((1, 1)), jnp.eye(1) * theta[0] ** 2),
                     lambda theta, s: (jnp.zeros(1), jnp.eye(1) * theta[0] ** 2), np.ones(1), role="noise")


# ---------------------------------------------------------------------------
# The component as an ordinary generative model
# ---------------------------------------------------------------------------


def _square_root(covariance: jax.Array) -> jax.Array:
    values, vectors = linalg.eigh(0.5 * (covariance + covariance.T))
    return vectors * jnp.sqrt(jnp.clip(values, 0.0))


def _hyper_model(component: Component) -> ppl.GenerativeFunction:
    def body():
        return _pad([ppl.sample(address, prior) for address, prior in component.priors])

    body.__name__ = f"{component.kind}_settings"
    return ppl.model(body)


def _explicit_model(component: Component) -> ppl.GenerativeFunction:

    def body(u, span=1.0, step=None, observed=None):
        """``u``: ``(T,)`` scaled times; ``span``: the user's time units per unit of ``u`` (for periods);
        ``step``: the typical spacing in ``u`` (default: the first one); ``observed`` is not used (a
        grammar passes its observation mask to every part)."""
        scale = TimeScale(span, u[1] - u[0] if step is None else step)
        theta = ppl.sample("hyper", component.hyper)
        mean, covariance = component.initial(theta, scale)
        start = ppl.sample("initial", dist.Normal(0.0, 1.0).expand([component.dim]).to_event(1))
        innovations = ppl.sample("innovations", dist.Normal(0.0, 1.0).expand([u.shape[0], component.dim]).to_event(2))
        steps = jnp.concatenate([jnp.zeros(1), jnp.diff(u)])

        def step(state, inputs):
            dt, noise = inputs
            transition, process = component.transition(theta, dt, scale)
            first = dt == 0
            state = jnp.where(first, state, transition @ state + _square_root(process) @ noise)
            return state, component.observation @ state

        _, values = lax.scan(step, mean + _square_root(covariance) @ start, (steps, innovations))
        return values

    body.__name__ = component.name.replace("(", "_").replace(")", "").replace(".", "_")
    return ppl.model(body)


