"""Simulation-based calibration (Talts et al. 2018, arXiv:1804.06788).

Simulate ``(latents, data)`` from the model, run the posterior sampler on the
data, and rank the true latent among the posterior draws: for a correct sampler
the ranks are uniform on ``{0, ..., draws}``. :func:`sbc_ranks` runs every
simulation in one jitted, vmapped program; :func:`rank_uniformity_pvalue` tests
the ranks with a chi-square test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ppl.choices import ChoiceMap, as_choice_map
from ppl.errors import UnknownAddressError, did_you_mean
from ppl.interface import GenerativeFunction, Trace

__all__ = ["sbc_ranks", "rank_uniformity_pvalue"]


def sbc_ranks(
    key: jax.Array,
    model: GenerativeFunction,
    args: Sequence,
    posterior_sampler: Callable[[jax.Array, ChoiceMap], ChoiceMap | Trace],
    *,
    latents: Sequence[str],
    observations: Sequence[str],
    simulations: int,
    draws: int,
) -> ChoiceMap:
    """Simulation-based-calibration ranks of ``latents`` (Talts et al. 2018).

    For each of ``simulations`` runs (all in one ``jit(vmap(...))`` program):
    simulate a trace from ``model(*args)``, give its ``observations`` choices to
    ``posterior_sampler(key, observed)``, which returns ``draws`` posterior draws
    as a ``ChoiceMap`` (or ``Trace``) with leading axis ``draws``, and count, for
    every element of every latent, the draws below the simulated value (ties,
    possible for discrete latents, are broken uniformly at random).

    For a correct posterior sampler each rank is uniform on ``{0, ..., draws}``;
    test that with :func:`rank_uniformity_pvalue`. The sampler must be jittable
    (the observations it gets are traced).

    Returns:
      A ``ChoiceMap`` from each latent address to int32 ranks of shape
      ``(simulations, *latent_shape)``.

    Example::

        >>> import jax, ppl
        >>> from ppl import dist
        >>> @ppl.model
        ... def coin():
        ...     p = ppl.sample("p", dist.Beta(2.0, 2.0))
        ...     ppl.sample("flips", dist.Bernoulli(p).expand([5]).to_event(1))
        >>> def posterior(key, observed):
        ...     a, b = beta_bernoulli_posterior(observed["flips"], 2.0, 2.0)
        ...     return ChoiceMap({"p": dist.Beta(a, b).sample(key, (99,))})
        >>> ranks = sbc_ranks(jax.random.key(0), coin, (), posterior, latents=["p"],
        ...                   observations=["flips"], simulations=200, draws=99)
        >>> rank_uniformity_pvalue(ranks, draws=99) > 0.001
        True
    """
    latents, observations, args = tuple(latents), tuple(observations), tuple(args)

    def one_simulation(sim_key):
        simulate_key, posterior_key, tie_key = jax.random.split(sim_key, 3)
        trace = model.simulate(simulate_key, *args)
        _check_addresses(model, trace.choices, latents + observations)
        observed = trace.choices.filter(observations)
        posterior = posterior_sampler(posterior_key, observed)
        posterior = posterior.choices if isinstance(posterior, Trace) else as_choice_map(posterior)
        ranks = {}
        for index, address in enumerate(latents):
            truth = jnp.asarray(trace.choices[address])
            sampled = jnp.asarray(posterior[address])
            if sampled.shape != (draws,) + truth.shape:
                raise ValueError(
                    f"sbc_ranks: posterior_sampler returned shape {sampled.shape} at '{address}', "
                    f"expected (draws,) + latent shape = {(draws,) + truth.shape}. Return a "
                    "ChoiceMap whose leaves stack the draws along a leading axis."
                )
            below = jnp.sum(sampled < truth, axis=0)
            ties = jnp.sum(sampled == truth, axis=0)
            tie_break = jax.random.randint(jax.random.fold_in(tie_key, index), truth.shape, 0, ties + 1)
            ranks[address] = (below + tie_break).astype(jnp.int32)
        return ChoiceMap(ranks)

    keys = jax.random.split(key, simulations)
    return jax.jit(jax.vmap(one_simulation))(keys)


def _check_addresses(model, choices: ChoiceMap, addresses) -> None:
    known = choices.addresses()
    for address in addresses:
        if address not in choices:
            raise UnknownAddressError(
                f"sbc_ranks was asked for '{address}', but the model never visits that address."
                f"{did_you_mean(address, known)} Its addresses are: {', '.join(known)}.",
                model=model.name,
                address=address,
            )


def rank_uniformity_pvalue(ranks, draws: int, bins: int = 10) -> float:
    """Chi-square p-value that SBC ranks are uniform on ``{0, ..., draws}``.

    The ``draws + 1`` rank values are grouped into ``bins`` contiguous bins
    (expected counts proportional to their widths) and each latent element is
    tested separately with ``bins - 1`` degrees of freedom; the result is the
    Bonferroni-corrected smallest p-value, ``min(1, m * min_j p_j)`` over the
    ``m`` elements. Keep ``simulations / bins`` at 20 or more.

    Args:
      ranks: ``(simulations, ...)`` int ranks, or a ``ChoiceMap``/dict of them
        (as :func:`sbc_ranks` returns).
      draws: the number of posterior draws each rank was computed from.
      bins: the number of histogram bins (at most ``draws + 1``).

    Returns:
      A Python float; small values (e.g. < 0.001) mean the sampler is miscalibrated.
    """
    leaves = list(as_choice_map(ranks).to_dict().values()) if isinstance(ranks, (Mapping, ChoiceMap)) else [ranks]
    if not 2 <= bins <= draws + 1:
        raise ValueError(f"rank_uniformity_pvalue needs 2 <= bins <= draws + 1 = {draws + 1}, got bins={bins}.")
    edges = np.floor(np.arange(bins + 1) * (draws + 1) / bins).astype(int)
    expected_fraction = np.diff(edges) / (draws + 1)
    pvalues = []
    for leaf in leaves:
        values = np.asarray(leaf).reshape(np.shape(leaf)[0], -1)
        if values.min() < 0 or values.max() > draws:
            raise ValueError(f"ranks must lie in [0, {draws}], got values in [{values.min()}, {values.max()}].")
        simulations = values.shape[0]
        for column in values.T:
            # bin b holds the integers edges[b] .. edges[b + 1] - 1
            counts = np.histogram(column, bins=edges - 0.5)[0]
            expected = simulations * expected_fraction
            statistic = float(np.sum((counts - expected) ** 2 / expected))
            pvalues.append(float(jax.scipy.special.gammaincc((bins - 1) / 2.0, statistic / 2.0)))
    return float(min(1.0, len(pvalues) * min(pvalues)))
