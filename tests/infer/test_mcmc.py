"""MCMC kernels: posterior invariance (long chains, SBC), robustness, errors, caching.

Tolerances: chain estimates are compared with 4 Monte Carlo standard errors,
estimated from the spread of independent chains (so autocorrelation is
accounted for); SBC uses the chi-square rank test of ``ppl.testing`` at
p > 1e-3 with fixed seeds.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist, testing
from ppl.infer import mcmc

# ---------------------------------------------------------------------------
# Models (module level, so compiled programs are shared between tests)
# ---------------------------------------------------------------------------

PRIOR_STD, NOISE_STD = 1.0, 0.5
Y = jnp.array([0.9, 1.4, 0.3, 1.1])


@ppl.model
def normal_mean(n):
    mu = ppl.sample("mu", dist.Normal(0.0, PRIOR_STD))
    ppl.sample("y", dist.Normal(mu, NOISE_STD).expand([n]))


@ppl.model
def normal_scale():
    """Two latents, one positive: y ~ N(mu, sigma)."""
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    ppl.sample("y", dist.Normal(mu, sigma).expand([5]))


@ppl.model
def gamma_poisson():
    rate = ppl.sample("rate", dist.Gamma(3.0, 1.0))
    ppl.sample("counts", dist.Poisson(rate).expand([4]))


DESIGN = jnp.array([[1.0, -0.5], [1.0, 0.3], [1.0, 1.2], [1.0, -1.4], [1.0, 0.8]])


@ppl.model
def regression():
    """A vector latent inside a sub-model: choices 'coef/w' (2,)."""
    w = ppl.sample("coef", weights)
    ppl.sample("y", dist.Normal(DESIGN @ w, 0.5))


@ppl.model
def weights():
    return ppl.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))


@ppl.model
def normal_mean_proposal(trace):
    ppl.sample("mu", dist.Normal(trace.choices["mu"], 0.6))


@ppl.model
def positive_proposal(trace, address, spread):
    """An asymmetric proposal: a multiplicative log-normal step."""
    ppl.sample(address, dist.LogNormal(jnp.log(trace.choices[address]), spread))


@ppl.model
def normal_scale_proposal(trace):
    ppl.sample("mu", dist.Normal(trace.choices["mu"], 0.5))
    ppl.sample("sigma", dist.LogNormal(jnp.log(trace.choices["sigma"]), 0.4))


@ppl.model
def regression_proposal(trace):
    ppl.sample("coef", weights_proposal, trace.choices["coef/w"])


@ppl.model
def weights_proposal(centre):
    ppl.sample("w", dist.Normal(centre, 0.3).to_event(1))


# (model, latents, observations, {kernel name: kernel}); kernels built once
SBC_CASES = {
    "normal_scale": (
        normal_scale,
        ["mu", "sigma"],
        ["y"],
        {
            "mh": mcmc.mh(normal_scale, normal_scale_proposal),
            "random_walk": mcmc.random_walk(normal_scale, ["mu", "sigma"], {"mu": 0.5, "sigma": 0.4}),
            "mala": mcmc.mala(normal_scale, ["mu", "sigma"], 0.35),
        },
    ),
    "gamma_poisson": (
        gamma_poisson,
        ["rate"],
        ["counts"],
        {
            "mh": mcmc.mh(gamma_poisson, positive_proposal, ("rate", 0.4)),
            "random_walk": mcmc.random_walk(gamma_poisson, "rate", 1.0),
            "mala": mcmc.mala(gamma_poisson, "rate", 0.5),
        },
    ),
    "regression": (
        regression,
        ["coef/w"],
        ["y"],
        {
            "mh": mcmc.mh(regression, regression_proposal),
            "random_walk": mcmc.random_walk(regression, "coef/w", 0.3),
            "mala": mcmc.mala(regression, "coef/w", 0.25),
        },
    ),
}

DRAWS, THIN, SIMULATIONS, BINS = 39, 8, 1000, 10

# ---------------------------------------------------------------------------
# Simulation-based calibration, two ways
#
# 1. Through the truth (exact for any reversible kernel, whatever its mixing):
#    simulate (latents*, data); put latents* at a uniformly random position J of
#    a chain segment of DRAWS + 1 states, running the kernel forward DRAWS - J
#    blocks and, from latents* again, "backward" J blocks. For a kernel that is
#    reversible with respect to p(latents | data) (every MH kernel is) the segment
#    has the law of a stationary chain, so the rank of latents* among the other
#    DRAWS states is exactly uniform. This tests invariance, the kernel's contract.
# 2. From the prior (ppl.testing.sbc_ranks): a chain started at a prior draw,
#    burnt in and thinned. This also tests mixing with the kernel's fixed tuning.
# ---------------------------------------------------------------------------


def sbc_through_the_truth(key, model, kernel, latents, observations, simulations=SIMULATIONS):
    """Ranks ``{address: (simulations, *shape)}`` of the true latents (construction 1)."""
    index = jnp.arange(DRAWS)

    def one(sim_key):
        simulate_key, chains_key, position_key, tie_key = jax.random.split(sim_key, 4)
        truth = model.simulate(simulate_key)
        # the forward and backward chains, both from the truth, as one vmapped chain call
        both = jax.vmap(lambda k: mcmc.chain(k, kernel, truth, DRAWS, thin=THIN).choices)(jax.random.split(chains_key))
        forward, backward = (jax.tree_util.tree_map(lambda leaf, i=i: leaf[i], both) for i in (0, 1))
        position = jax.random.randint(position_key, (), 0, DRAWS + 1)
        ranks = {}
        for address in latents:
            value = truth.choices[address]
            used = lambda steps: (index < steps).reshape((DRAWS,) + (1,) * value.ndim)  # noqa: E731
            states = [(forward[address], used(DRAWS - position)), (backward[address], used(position))]
            below = sum(jnp.sum((s < value) & u, axis=0) for s, u in states)
            ties = sum(jnp.sum((s == value) & u, axis=0) for s, u in states)
            ranks[address] = below + jax.random.randint(tie_key, value.shape, 0, ties + 1)
        return ranks

    return jax.jit(jax.vmap(one))(jax.random.split(key, simulations))


def posterior_sampler(model, kernel, burn_in_blocks=15):
    """Construction 2: one chain from a prior draw, burnt in, DRAWS states THIN steps apart."""

    def sample(key, observed):
        start_key, chain_key = jax.random.split(key)
        trace = model.generate(start_key, observed).trace
        result = mcmc.chain(chain_key, kernel, trace, burn_in_blocks + DRAWS, thin=THIN)
        return jax.tree_util.tree_map(lambda leaf: leaf[burn_in_blocks:], result.choices)

    return sample


def sbc_pvalue(case, kernel_name, seed=0, kernel=None, simulations=SIMULATIONS, through_the_truth=True):
    model, latents, observations, kernels = SBC_CASES[case]
    kernel = kernel or kernels[kernel_name]
    if through_the_truth:
        ranks = sbc_through_the_truth(jax.random.key(seed), model, kernel, latents, observations, simulations)
    else:
        ranks = testing.sbc_ranks(
            jax.random.key(seed), model, (), posterior_sampler(model, kernel), latents=latents,
            observations=observations, simulations=simulations, draws=DRAWS,
        )
    return testing.rank_uniformity_pvalue(ranks, draws=DRAWS, bins=BINS)


KERNELS = ("mh", "random_walk", "mala")
FAST_SBC = [("normal_scale", "mala"), ("gamma_poisson", "mh"), ("regression", "random_walk")]
SLOW_SBC = [(c, k) for c in SBC_CASES for k in KERNELS if (c, k) not in FAST_SBC]


@pytest.mark.parametrize("case,kernel", FAST_SBC)
def test_kernels_leave_the_posterior_invariant_sbc(case, kernel):
    assert sbc_pvalue(case, kernel) > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("case,kernel", SLOW_SBC)
def test_kernels_leave_the_posterior_invariant_sbc_every_kernel_and_model(case, kernel):
    assert sbc_pvalue(case, kernel) > 1e-3


# chains from prior draws mix on these with the kernels' fixed tuning (on normal_scale,
# whose posterior scale varies by orders of magnitude, fixed-step MALA gets stuck)
PRIOR_START_SBC = [("gamma_poisson", k) for k in KERNELS] + [("regression", k) for k in KERNELS]


@pytest.mark.parametrize(
    "case,kernel", [pytest.param(*c, marks=[] if c == ("gamma_poisson", "mala") else [pytest.mark.slow]) for c in PRIOR_START_SBC]
)
def test_chains_from_the_prior_pass_sbc(case, kernel):
    assert sbc_pvalue(case, kernel, through_the_truth=False) > 1e-3


def test_sbc_detects_a_missing_hastings_correction():
    """The same asymmetric proposal without its backward term is not invariant; SBC must see it."""
    model, proposal, args = gamma_poisson, positive_proposal, ("rate", 0.4)

    def forgetful(key, trace):
        forward_key, update_key, accept_key = jax.random.split(key, 3)
        forward = proposal.simulate(forward_key, trace, *args)
        new_trace, weight = model.update(update_key, trace, forward.choices)
        accepted = jnp.log(jax.random.uniform(accept_key)) < weight - forward.score
        pick = lambda a, b: jnp.where(accepted, a, b)  # noqa: E731
        return mcmc.KernelStep(jax.tree_util.tree_map(pick, new_trace, trace), accepted)

    assert sbc_pvalue("gamma_poisson", None, kernel=forgetful, simulations=300) < 1e-3


# ---------------------------------------------------------------------------
# Long chains on a conjugate model: posterior mean and variance
# ---------------------------------------------------------------------------

CHAINS, STEPS = 16, 1500
LONG_CHAIN_KERNELS = {
    "mh": mcmc.mh(normal_mean, normal_mean_proposal),
    "random_walk": mcmc.random_walk(normal_mean, ["mu"], 0.6),
    "mala": mcmc.mala(normal_mean, ["mu"], 0.3),
}


def run_chains(kernel, model, obs, args, key, burn_in=200):
    """CHAINS chains from prior draws; the first burn_in states are dropped."""

    def one(k):
        start_key, run_key = jax.random.split(k)
        trace = model.generate(start_key, obs, *args).trace
        return mcmc.chain(run_key, kernel, trace, burn_in + STEPS)

    result = jax.jit(jax.vmap(one))(jax.random.split(key, CHAINS))
    return result._replace(choices=jax.tree_util.tree_map(lambda leaf: leaf[:, burn_in:], result.choices))


def assert_moments(samples, mean, variance, sigmas=4.0):
    """Per-chain means and variances; their spread over chains gives the standard errors."""
    chain_means = np.asarray(samples).mean(axis=1)
    chain_vars = np.asarray(samples).var(axis=1)
    mean_se = chain_means.std(ddof=1) / np.sqrt(len(chain_means))
    var_se = chain_vars.std(ddof=1) / np.sqrt(len(chain_vars))
    assert abs(chain_means.mean() - mean) < sigmas * mean_se, (chain_means.mean(), mean, mean_se)
    assert abs(chain_vars.mean() - variance) < sigmas * var_se + variance / STEPS, (chain_vars.mean(), variance)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n != "random_walk" else []) for n in sorted(LONG_CHAIN_KERNELS)]
)
def test_long_chain_matches_the_conjugate_posterior(name):
    result = run_chains(LONG_CHAIN_KERNELS[name], normal_mean, {"y": Y}, (4,), jax.random.key(3))
    mean, std = testing.normal_normal_posterior(Y, 0.0, PRIOR_STD, NOISE_STD)
    assert_moments(result.choices["mu"], float(mean), float(std) ** 2)
    assert 0.2 < float(result.acceptance_rate.mean()) < 0.95


def test_mala_on_a_positive_latent_matches_the_gamma_posterior():
    """MALA moves log(rate); without the Jacobian term this would be biased."""
    counts = jnp.array([2, 5, 3, 4])
    kernel = SBC_CASES["gamma_poisson"][3]["mala"]
    result = run_chains(kernel, gamma_poisson, {"counts": counts}, (), jax.random.key(4))
    shape, rate = 3.0 + 14.0, 1.0 + 4.0
    assert_moments(result.choices["rate"], shape / rate, shape / rate**2)


# ---------------------------------------------------------------------------
# The kernel contract
# ---------------------------------------------------------------------------


def test_mh_acceptance_is_the_update_weight_plus_the_proposal_ratio():
    """With a deterministic-acceptance key the kernel accepts iff log u < log alpha."""
    trace = gamma_poisson.generate(jax.random.key(0), {"counts": jnp.array([2, 5, 3, 4])}).trace
    kernel = SBC_CASES["gamma_poisson"][3]["mh"]
    key = jax.random.key(11)
    step = jax.jit(kernel)(key, trace)
    forward_key, update_key, accept_key = jax.random.split(key, 3)
    forward = positive_proposal.simulate(forward_key, trace, "rate", 0.4)
    new = forward.choices["rate"]
    log_p = lambda r: gamma_poisson.assess(trace.choices.set("rate", r)).log_density  # noqa: E731
    log_q = lambda to, frm: dist.LogNormal(jnp.log(frm), 0.4).log_prob(to)  # noqa: E731
    log_alpha = log_p(new) - log_p(trace.choices["rate"]) + log_q(trace.choices["rate"], new) - log_q(new, trace.choices["rate"])
    expected = bool(jnp.log(jax.random.uniform(accept_key)) < log_alpha)
    assert bool(step.accepted) == expected
    chosen = new if expected else trace.choices["rate"]
    np.testing.assert_allclose(step.trace.choices["rate"], chosen, rtol=1e-6)
    np.testing.assert_allclose(step.trace.score, log_p(chosen), rtol=1e-5)


def test_chain_shapes_thinning_and_vmap_over_chains():
    trace = regression.generate(jax.random.key(0), {"y": jnp.zeros(5)}).trace
    kernel = SBC_CASES["regression"][3]["random_walk"]
    result = mcmc.chain(jax.random.key(1), kernel, trace, 7, thin=3)
    assert result.choices["coef/w"].shape == (7, 2)
    assert result.scores.shape == result.accepted.shape == (7,)
    assert set(np.unique(np.asarray(result.accepted) * 3).tolist()) <= {0.0, 1.0, 2.0, 3.0}
    np.testing.assert_allclose(result.trace.choices["coef/w"], result.choices["coef/w"][-1])
    log_density = regression.assess(result.trace.choices).log_density
    np.testing.assert_allclose(result.trace.score, log_density, rtol=1e-5)
    # vmapped over 3 chains: same as the loop
    keys = jax.random.split(jax.random.key(2), 3)
    batch = jax.vmap(lambda k: mcmc.chain(k, kernel, trace, 7, thin=3))(keys)
    single = mcmc.chain(keys[1], kernel, trace, 7, thin=3)
    np.testing.assert_allclose(batch.choices["coef/w"][1], single.choices["coef/w"], rtol=1e-5)


def test_chain_compiles_once_per_kernel():
    calls = []

    @ppl.model
    def counted():
        calls.append(1)
        ppl.sample("x", dist.Normal(0.0, 1.0))

    kernel = mcmc.random_walk(counted, "x", 1.0)
    trace = counted.simulate(jax.random.key(0))
    mcmc.chain(jax.random.key(1), kernel, trace, 5)
    first = len(calls)
    mcmc.chain(jax.random.key(2), kernel, counted.simulate(jax.random.key(3)), 5)
    assert first > 0 and len(calls) == first + 1  # only the simulate above ran the model


# ---------------------------------------------------------------------------
# Robustness and errors
# ---------------------------------------------------------------------------


@ppl.model
def cliff():
    """log p is NaN for x > 1 (a broken likelihood): kernels must never step there."""
    x = ppl.sample("x", dist.Normal(0.0, 1.0))
    ppl.factor(jnp.where(x > 1.0, jnp.nan, 0.0))


@pytest.mark.parametrize("make", [lambda: mcmc.random_walk(cliff, "x", 2.0), lambda: mcmc.mala(cliff, "x", 1.5)])
def test_proposals_with_nan_density_are_rejected(make):
    trace = cliff.generate(jax.random.key(0), {"x": 0.0}).trace
    result = mcmc.chain(jax.random.key(1), make(), trace, 300)
    assert np.all(np.isfinite(result.scores))
    assert np.all(np.asarray(result.choices["x"]) <= 1.0)
    assert 0.05 < float(result.acceptance_rate) < 1.0


def test_chain_from_an_impossible_trace_raises():
    @ppl.model
    def impossible():
        ppl.sample("x", dist.Normal(0.0, 1.0))
        ppl.factor(-jnp.inf)

    trace = impossible.simulate(jax.random.key(0))
    with pytest.raises(ppl.errors.InferenceError, match="score is -inf"):
        mcmc.chain(jax.random.key(1), mcmc.random_walk(impossible, "x"), trace, 10)


def test_kernel_errors_name_the_address():
    trace = normal_scale.generate(jax.random.key(0), {"y": jnp.zeros(5)}).trace
    with pytest.raises(ppl.errors.UnknownAddressError, match="Did you mean 'sigma'"):
        mcmc.random_walk(normal_scale, ["sigm"])(jax.random.key(1), trace)
    counts_trace = gamma_poisson.simulate(jax.random.key(0))
    with pytest.raises(ppl.errors.InferenceError, match="discrete"):
        mcmc.random_walk(gamma_poisson, ["counts"])(jax.random.key(1), counts_trace)
    with pytest.raises(ppl.errors.InferenceError, match="discrete"):
        mcmc.mala(gamma_poisson, ["counts"])(jax.random.key(1), counts_trace)
    with pytest.raises(ppl.errors.InferenceError, match="steps >= 1"):
        mcmc.chain(jax.random.key(1), mcmc.random_walk(normal_scale, "mu"), trace, 0)
    with pytest.raises(ppl.errors.InferenceError, match="scale keys"):
        mcmc.random_walk(normal_scale, ["mu"], {"sigma": 1.0})
