"""MCMC over a discrete structure choice, under the inactive-structure convention (ppl.context).

The alternatives a switch does not choose are auxiliary variables under their
prior, so redrawing only the index (``mh(model, ["f/index"])``) is a valid
Metropolis-Hastings move. Two checks that fail on a wrong acceptance ratio:

- the chain's frequency of each structure matches the exact posterior;
- a Geweke test: alternating "draw the data given the latents" with "one MCMC
  step given the data" leaves the prior invariant. Its negative control, a
  kernel whose ratio omits the proposal term, fails the same test.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist
from ppl.infer import mcmc

SCALES = (1.0, 3.0)
PRIOR = jnp.array([0.4, 0.6])
NOISE = 0.5


@ppl.model
def small():
    return ppl.sample("x", dist.Normal(0.0, SCALES[0]))


@ppl.model
def large():
    return ppl.sample("x", dist.Normal(0.0, SCALES[1]))


@ppl.model
def structure():
    x = ppl.sample("f", ppl.either(small, large, probs=PRIOR))
    return ppl.sample("y", dist.Normal(x, NOISE))


KERNEL = mcmc.cycle(mcmc.mh(structure, ["f/index"]), mcmc.random_walk(structure, ["f/0/x", "f/1/x"], 0.8))


def batch_mean_standard_error(values: np.ndarray, batches: int = 50) -> float:
    means = values[: len(values) // batches * batches].reshape(batches, -1).mean(axis=1)
    return float(means.std(ddof=1) / np.sqrt(batches))


def test_structure_frequencies_match_the_exact_posterior():
    y = 2.2
    log_evidence = jnp.log(PRIOR) + jnp.array([dist.Normal(0.0, np.hypot(s, NOISE)).log_prob(y) for s in SCALES])
    exact = float(jax.nn.softmax(log_evidence)[1])

    def run(key):
        start, chain_key = jax.random.split(key)
        trace = structure.generate(start, {"y": y}).trace
        return mcmc.chain(chain_key, KERNEL, trace, 6000).choices["f/index"][1000:]

    chains = np.asarray(jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 8)), np.float64)
    frequency = chains.mean()
    error = np.sqrt(np.mean([batch_mean_standard_error(c) ** 2 for c in chains]) / len(chains))
    assert abs(frequency - exact) < 4 * error + 1e-3, (frequency, exact, error)


def geweke(kernel, steps: int, key):
    """Successive-conditional draws of (index, x): data given latents, then one kernel step given the data."""
    trace = structure.simulate(jax.random.key(1))

    def one(trace, step_key):
        data_key, move_key = jax.random.split(step_key)
        trace, _ = mcmc.regenerate(data_key, structure, trace, ["y"])
        trace = kernel(move_key, trace).trace
        return trace, (trace.choices["f/index"], trace.choices["f/0/x"])

    _, (index, x) = jax.lax.scan(one, trace, jax.random.split(key, steps))
    return index.astype(jnp.float32), x


@pytest.fixture(scope="module")
def geweke_draws():
    run = jax.jit(jax.vmap(lambda key, k=KERNEL: geweke(k, 20_000, key)))
    return tuple(np.asarray(a, np.float64) for a in run(jax.random.split(jax.random.key(2), 4)))


def _z(values: np.ndarray, expected: float) -> float:
    error = np.sqrt(np.mean([batch_mean_standard_error(v) ** 2 for v in values]) / len(values))
    return abs(values.mean() - expected) / error


def test_geweke_the_kernel_leaves_the_prior_invariant(geweke_draws):
    index, x = geweke_draws
    assert _z(index, float(PRIOR[1])) < 4
    assert _z(x, 0.0) < 4  # the small alternative's x keeps its N(0, 1) prior, active or not
    assert abs(x.std() - SCALES[0]) < 0.05


def test_geweke_catches_a_wrong_acceptance_ratio():
    def wrong(key, trace):
        # forgets the proposal term: accepts with the score ratio alone
        move_key, accept_key = jax.random.split(key)
        new, _ = mcmc.regenerate(move_key, structure, trace, ["f/index"])
        accepted = jnp.log(jax.random.uniform(accept_key)) < new.score - trace.score
        return mcmc.KernelStep(jax.tree_util.tree_map(lambda a, b: jnp.where(accepted, a, b), new, trace), accepted)

    broken = mcmc.cycle(wrong, mcmc.random_walk(structure, ["f/0/x", "f/1/x"], 0.8))
    index, _ = jax.jit(jax.vmap(lambda key: geweke(broken, 20_000, key)))(jax.random.split(jax.random.key(2), 4))
    assert _z(np.asarray(index, np.float64), float(PRIOR[1])) > 6
