"""One process of the two-process check in ``test_distributed.py`` (not a test module).

``python distributed_worker.py PORT PROCESS_ID PROCESS_COUNT OUT.npz``: joins the JAX
multi-process runtime on ``localhost:PORT`` (``PROCESS_COUNT = 1`` runs alone, the
reference), runs a sharded ``importance`` and a sharded ``classify`` over every
process's devices, and writes what it got to ``OUT.npz``.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from ppl import dist

PARTICLES, BATCH = 4096, 10


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


def main(port: int, process_id: int, process_count: int, out: str) -> None:
    if process_count > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"localhost:{port}", num_processes=process_count, process_id=process_id)
    assert jax.process_count() == process_count and jax.device_count() == process_count, jax.devices()
    design = jnp.stack([jnp.ones(20), jnp.linspace(-1.0, 1.0, 20)], axis=1)
    response = design @ jnp.array([0.3, -0.8]) + 0.5 * jax.random.normal(jax.random.key(7), (20,))
    result = ppl.infer.importance(jax.random.key(11), regression, {"y": response}, design, n=PARTICLES,
                                  devices="all")
    in_blocks = ppl.infer.importance(jax.random.key(11), regression, {"y": response}, design, n=PARTICLES,
                                   devices="all", chunk_size=1024, keep="weights")
    # inside jit the result stays sharded, each process holding its share, until gathered
    jitted = jax.jit(lambda key: ppl.infer.importance(key, regression, {"y": response}, design, n=PARTICLES,
                                                      devices="all").log_weights)(jax.random.key(11))
    shared_out = len(jitted.sharding.device_set) == process_count and (process_count == 1 or not
                                                                       jitted.is_fully_addressable)
    jitted = ppl.infer.scale.gather(jitted, ppl.infer.scale.particle_mesh("all"))
    observations = jnp.linspace(-3.0, 3.0, BATCH)  # 10 over 2 processes, 5 each; over chunks of 4, padded
    models = {"low": centred_at(-2.0), "high": centred_at(2.0)}
    classified = ppl.infer.classify(jax.random.key(3), models, {"y": observations}, n=256, devices="all")
    chunked = ppl.infer.classify(jax.random.key(3), models, {"y": observations}, n=256, devices="all",
                                 chunk_size=4)
    np.savez(out, log_weights=result.log_weights, w=result.traces.choices["w"],
             log_evidence=result.log_evidence, effective_sample_size=result.effective_sample_size,
             probabilities=classified.probabilities, class_log_evidence=classified.log_evidence,
             chunked_probabilities=chunked.probabilities, process_count=jax.process_count(),
             jitted_log_weights=jitted, chunked_log_weights=in_blocks.log_weights,
             chunked_log_evidence=in_blocks.log_evidence, shared_out=shared_out)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
