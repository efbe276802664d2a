"""ppl.as_numpyro: NumPyro's NUTS and SVI on ppl models."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
import pytest
from numpyro.diagnostics import effective_sample_size
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO, init_to_uniform
from numpyro.infer.autoguide import AutoDelta
from numpyro.infer.util import log_density

import ppl
from ppl import dist, testing
from ppl.infer import mcmc
from ppl.infer.numpyro_interop import as_numpyro

Y = jnp.array([0.9, 1.4, 0.3, 1.1])


@ppl.model
def normal_mean():
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ppl.sample("y", dist.Normal(mu, 0.5).expand([4]))


@ppl.model
def offset(centre):
    return ppl.sample("x", dist.Normal(centre, 1.0))


@ppl.model
def rich(n):
    """A sub-model, a positive latent, a simplex, a factor, and a discrete observation."""
    scale = ppl.sample("scale", dist.LogNormal(0.0, 0.5))
    a = ppl.sample("a", offset, 1.0)
    w = ppl.sample("w", dist.Dirichlet(2.0 * jnp.ones(3)))
    ppl.factor(-0.5 * a**2)
    ppl.sample("label", dist.Categorical(w))
    ppl.sample("y", dist.Normal(a, scale).expand([n]))


RICH_OBS = {"label": 2, "y": jnp.array([0.5, 1.5, 1.0])}


def test_numpyro_log_joint_is_ppl_assess():
    latents = {"scale": 0.8, "a/x": 0.3, "w": jnp.array([0.2, 0.3, 0.5])}
    numpyro_log_joint, sites = log_density(as_numpyro(rich, RICH_OBS), (3,), {}, latents)
    ppl_log_joint, _ = rich.assess({**RICH_OBS, **latents}, 3)
    np.testing.assert_allclose(numpyro_log_joint, ppl_log_joint, rtol=1e-6)
    assert set(sites) == {"scale", "a/x", "w", "label", "y", "_factor_0"}
    assert sites["y"]["is_observed"] and not sites["a/x"]["is_observed"]


@pytest.fixture(scope="module")
def nuts_samples():
    kernel = NUTS(as_numpyro(normal_mean, {"y": Y}))
    runner = MCMC(kernel, num_warmup=300, num_samples=2000, progress_bar=False)
    runner.run(jax.random.key(0))
    return np.asarray(runner.get_samples()["mu"])


def mean_and_standard_error(samples):
    """Posterior mean and its Monte Carlo standard error from the effective sample size."""
    samples = np.asarray(samples).reshape(-1, np.shape(samples)[-1])  # (chains, draws)
    ess = float(effective_sample_size(samples))
    return samples.mean(), samples.std() / np.sqrt(ess), ess


def test_nuts_on_a_ppl_model_matches_the_closed_form(nuts_samples):
    mean, std = testing.normal_normal_posterior(Y, 0.0, 1.0, 0.5)
    estimate, standard_error, ess = mean_and_standard_error(nuts_samples[None])
    assert ess > 300
    assert abs(estimate - float(mean)) < 4 * standard_error
    # the sd's standard error is about sd / sqrt(2 ess) for a near-Gaussian posterior
    assert abs(nuts_samples.std() - float(std)) < 4 * float(std) / np.sqrt(2 * ess)


def test_nuts_agrees_with_a_ppl_chain(nuts_samples):
    kernel = mcmc.random_walk(normal_mean, "mu", 0.6)

    def one(key):
        start_key, run_key = jax.random.split(key)
        trace = normal_mean.generate(start_key, {"y": Y}).trace
        return mcmc.chain(run_key, kernel, trace, 1200).choices["mu"][200:]

    chains = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(1), 8))
    ppl_mean, ppl_se, _ = mean_and_standard_error(chains)
    nuts_mean, nuts_se, _ = mean_and_standard_error(nuts_samples[None])
    assert abs(ppl_mean - nuts_mean) < 4 * np.hypot(ppl_se, nuts_se)


@ppl.model
def conjugate_modes():
    rate = ppl.sample("rate", dist.Gamma(3.0, 2.0))
    ppl.sample("counts", dist.Poisson(rate).expand([5]))
    weights = ppl.sample("weights", dist.Dirichlet(jnp.array([2.0, 3.0, 4.0])))
    ppl.sample("labels", dist.Categorical(weights).expand([6]))


def test_numpyro_svi_finds_the_map_of_a_ppl_model():
    """SVI with an AutoDelta guide is MAP: the known modes of Gamma-Poisson and Dirichlet-Categorical."""
    numpyro_model = as_numpyro(conjugate_modes, {"counts": jnp.array([2, 0, 3, 1, 2]), "labels": jnp.array([0, 2, 2, 1, 2, 0])})
    guide = AutoDelta(numpyro_model, init_loc_fn=init_to_uniform)  # no rejection samplers to compile
    svi = SVI(numpyro_model, guide, optax.adam(0.05), Trace_ELBO())
    mode = guide.median(svi.run(jax.random.key(0), 2000, progress_bar=False).params)
    np.testing.assert_allclose(mode["rate"], (3.0 + 8 - 1) / (2.0 + 5), atol=1e-3)
    alpha, counts = jnp.array([2.0, 3.0, 4.0]), jnp.array([2.0, 1.0, 3.0])
    np.testing.assert_allclose(mode["weights"], (alpha + counts - 1) / (alpha.sum() + 6 - 3), atol=1e-3)


def test_as_numpyro_errors_are_clear():
    with numpyro.handlers.seed(rng_seed=0):
        with pytest.raises(ppl.errors.UnknownAddressError, match="Did you mean 'y'"):
            as_numpyro(normal_mean, {"yy": Y})()
        with pytest.raises(ppl.errors.ShapeError, match="address 'y'"):
            as_numpyro(normal_mean, {"y": Y[:2]})()


@ppl.model
def drift_step(t, x, noise):
    x = ppl.sample("x", dist.Normal(x + 0.1, 0.3))
    ppl.sample("y", dist.Normal(x, noise))
    return x


DRIFT = ppl.unfold(drift_step, 8)


@ppl.model
def noisy_walk():
    noise = ppl.sample("noise", dist.HalfNormal(1.0))
    start = ppl.sample("start", dist.Normal(0.0, 1.0))
    return ppl.sample("walk", DRIFT, start, noise)


WALK_OBS = {"walk/y": DRIFT.simulate(jax.random.key(3), 0.0, 0.5).choices["y"]}


def test_numpyro_sees_every_choice_of_a_composition():
    # the stacked path walk/x (8,) is one NumPyro site; its density and the stacked
    # observations enter through one factor; the log joint is still ppl's assess
    latents = {"noise": 0.7, "start": 0.2, "walk/x": jnp.linspace(-0.5, 0.5, 8)}
    numpyro_log_joint, sites = log_density(as_numpyro(noisy_walk, WALK_OBS), (), {}, latents)
    ppl_log_joint, _ = noisy_walk.assess({**WALK_OBS, **latents})
    np.testing.assert_allclose(numpyro_log_joint, ppl_log_joint, rtol=1e-5)
    assert {"noise", "start", "walk/x", "ppl_stacked"} <= set(sites)
    assert sites["walk/x"]["value"].shape == (8,)


def test_nuts_on_a_composition_agrees_with_mala_on_it():
    nuts = MCMC(NUTS(as_numpyro(noisy_walk, WALK_OBS)), num_warmup=300, num_samples=1000, progress_bar=False)
    nuts.run(jax.random.key(4))
    nuts_noise = np.asarray(nuts.get_samples()["noise"])
    kernel = mcmc.mala(noisy_walk, step_size=0.15, observed=["walk/y"])

    def one(key):
        start_key, run_key = jax.random.split(key)
        trace = noisy_walk.generate(start_key, WALK_OBS).trace
        return mcmc.chain(run_key, kernel, trace, 1500).choices["noise"][500:]

    chains = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(5), 8))
    ppl_mean, ppl_se, _ = mean_and_standard_error(chains)
    nuts_mean, nuts_se, _ = mean_and_standard_error(nuts_noise[None])
    assert abs(ppl_mean - nuts_mean) < 4 * np.hypot(ppl_se, nuts_se)


def test_numpyro_svi_finds_the_map_of_a_composition():
    # AutoDelta SVI is MAP: on the composition it reaches ppl.infer.map's log joint
    numpyro_model = as_numpyro(noisy_walk, WALK_OBS)
    guide = AutoDelta(numpyro_model, init_loc_fn=init_to_uniform)
    svi = SVI(numpyro_model, guide, optax.adam(0.02), Trace_ELBO())
    mode = guide.median(svi.run(jax.random.key(6), 3000, progress_bar=False).params)
    svi_log_joint = noisy_walk.assess({**WALK_OBS, **{a: mode[a] for a in ("noise", "start", "walk/x")}}).log_density
    fit = ppl.infer.map(jax.random.key(7), noisy_walk, WALK_OBS, restarts=8, steps=1000)
    assert abs(float(svi_log_joint) - float(fit.log_joint)) < 0.05, (svi_log_joint, fit.log_joint)
