"""Extending stdlib.sequences: an exponential decay after an impulse, composed with a level and a trend.

The tutorial in docs/extending.md ("A new temporal component: decay after an impulse") walks through
this file. It writes the component as a terminal of the time-series grammar of
``stdlib.sequences.simple`` (a ``@ppl.model`` of the time axis returning the series), so it adds to a
level, a trend or a cycle like the grammar's own pieces. It then draws a 60-point series of
"level + decay" with a known impulse, scores three candidate structures by the core's Laplace
approximation and reads the impulse time, size and decay rate off the best one.

Run: ``python examples/extending_decay.py`` (about 20 seconds on a 2-core CPU, most of it compiling).
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp

import ppl
from ppl import dist
from stdlib.sequences import simple

SHARPNESS = 400.0  # the switch-on: a sigmoid, 12% at time - 0.005, 88% at time + 0.005


@ppl.model(name="decay")
def impulse_decay(t):
    """Nothing before a latent ``time``; from it on ``size * exp(-rate * (t - time))``. ``t (T,) -> (T,)``."""
    time = ppl.sample("time", dist.Uniform(0.0, 1.0))
    size = ppl.sample("size", dist.Normal(0.0, 2.0))
    rate = ppl.sample("rate", dist.LogNormal(jnp.log(10.0), 1.0))  # per unit of t: 10 halves in 0.07
    since = t - time
    return size * jax.nn.sigmoid(SHARPNESS * since) * jnp.exp(-rate * jnp.maximum(since, 0.0))


space = simple.space(
    terminals={"level": simple.level, "trend": simple.trend(origin=0.5), "decay": impulse_decay},
    operators={"+": operator.add},
    depth=2,
    noise=0.1,
)


T = 60
t = jnp.arange(T, dtype=jnp.float32) / T
truth = {"node_1/level/value": 0.5, "node_2/decay/time": 0.42, "node_2/decay/size": 2.0,
         "node_2/decay/rate": 12.0}


def draw_series(key):
    """The 60 observed points of ``level + decay``, with the choices in ``truth`` and noise from ``key``."""
    drawn, _ = space.model.generate(key, truth, space.encode(("+", "level", "decay")), t)
    return drawn.choices["obs"]


STRUCTURES = (("+", "level", "trend"), ("+", "level", "decay"), ("+", "trend", "decay"))
RESTARTS = 24
start_times = {"node_2/decay/time": (jnp.arange(RESTARTS) + 0.5) / RESTARTS}  # one restart per slice of t


def explain(key, y, t):
    """Each structure's Laplace fit (evidence and mode), and the posterior over the structures."""
    fits = [ppl.infer.laplace(key, space.model, {"obs": y}, space.encode(structure), t,
                              restarts=RESTARTS, steps=300, newton=10, init=start_times)
            for structure in STRUCTURES]
    names = tuple(space.describe(space.encode(structure)) for structure in STRUCTURES)
    evidence = jnp.stack([fit.log_evidence for fit in fits])
    return ppl.infer.Classification.from_log_evidence(names, evidence), fits


def main() -> dict:
    y = draw_series(jax.random.key(3))
    posterior, fits = explain(jax.random.key(0), y, t)
    best = fits[int(posterior.best)].trace.choices
    found = {name: float(best[f"node_2/decay/{name}"]) for name in ("time", "size", "rate")}
    for name in posterior.names:
        print(f"P({name}) = {float(posterior[name]):.3f}")
    true = {name: truth[f"node_2/decay/{name}"] for name in ("time", "size", "rate")}
    print(f"truth: impulse at t = {true['time']:.3f}, size {true['size']:.2f}, rate {true['rate']:.1f}")
    print(f"found: impulse at t = {found['time']:.3f}, size {found['size']:.2f}, rate {found['rate']:.1f}")
    return {"structure": posterior.names[int(posterior.best)], "probability": float(posterior.probabilities.max()),
            "found": found, "truth": true}


if __name__ == "__main__":
    main()
