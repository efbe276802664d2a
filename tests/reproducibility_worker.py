"""What ``test_reproducibility.py`` compares (not a test module).

``python tests/reproducibility_worker.py OUT.npz`` runs importance, classify, a
particle filter, an MCMC chain and MAP with fixed keys, in several ways (chunk
sizes; sharded over ``jax.devices()`` when there are several, e.g. with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``), and writes every result
array to ``OUT.npz`` under a name ``<run>/<field>``.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from ppl import dist
from ppl.infer import mcmc

PARTICLES, BATCH = 4096, 12


@ppl.model
def regression(design):
    w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    ppl.sample("y", dist.Normal(design @ w, 0.5).to_event(1))


def centred_at(mean):
    @ppl.model(name=f"centred_at_{mean}")
    def model():
        mu = ppl.sample("mu", dist.Normal(mean, 1.0))
        ppl.sample("y", dist.Normal(mu, 0.5))

    return model


@ppl.model
def walk_step(t, x):
    x = ppl.sample("x", dist.Normal(0.9 * x, 0.5))
    ppl.sample("y", dist.Normal(x, 1.0))
    return x


def fields(prefix, result, names):
    return {f"{prefix}/{name}": np.asarray(getattr(result, name)) for name in names}


def main(out: str) -> None:
    design = jnp.stack([jnp.ones(20), jnp.linspace(-1.0, 1.0, 20)], axis=1)
    response = design @ jnp.array([0.3, -0.8]) + 0.5 * jax.random.normal(jax.random.key(7), (20,))
    weighted = ("log_weights", "weights", "log_evidence", "effective_sample_size", "log_evidence_standard_error")
    runs = {"plain": {}, "chunks_of_1024": dict(chunk_size=1024), "chunks_of_512": dict(chunk_size=512)}
    if jax.device_count() > 1:
        runs |= {"devices": dict(devices="all"), "devices_chunks_of_1024": dict(devices="all", chunk_size=1024)}
    saved = {"device_count": np.asarray(jax.device_count())}
    for name, options in runs.items():
        result = ppl.infer.importance(jax.random.key(11), regression, {"y": response}, design, n=PARTICLES, **options)
        saved |= fields(f"importance_{name}", result, weighted)
        saved[f"importance_{name}/w"] = np.asarray(result.traces.choices["w"])

    models = {"low": centred_at(-2.0), "high": centred_at(2.0)}
    observations = {"y": jnp.linspace(-3.0, 3.0, BATCH)}
    runs = {"plain": {}, "chunks_of_5": dict(chunk_size=5)}
    if jax.device_count() > 1:
        runs |= {"devices": dict(devices="all"), "devices_chunks_of_4": dict(devices="all", chunk_size=4)}
    for name, options in runs.items():
        result = ppl.infer.classify(jax.random.key(3), models, observations, n=256, **options)
        saved |= fields(f"classify_{name}", result, ("probabilities", "log_evidence", "log_evidence_standard_error"))

    walk = ppl.unfold(walk_step, 30)
    ys = walk.simulate(jax.random.key(5), 0.0).choices["y"]
    filtered = ppl.infer.smc(jax.random.key(13), walk, {"y": ys}, 0.0, n=512)
    saved |= fields("smc", filtered, ("log_evidence",))
    saved["smc/x"] = np.asarray(filtered.traces.choices["x"])

    trace, _ = regression.generate(jax.random.key(17), {"y": response}, design)
    chain = mcmc.chain(jax.random.key(19), mcmc.random_walk(regression, "w", 0.2), trace, 200)
    saved["mcmc/w"] = np.asarray(chain.choices["w"])

    found = ppl.infer.map(jax.random.key(23), regression, {"y": response}, design, restarts=4, steps=100)
    saved["map/w"] = np.asarray(found.trace.choices["w"])
    saved["map/log_joint"] = np.asarray(found.log_joint)
    np.savez(out, **saved)


if __name__ == "__main__":
    main(sys.argv[1])
