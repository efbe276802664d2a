"""``ppl.many``: an unknown number (up to ``K``) of copies of a part, run with ``jax.vmap``.

All ``K`` copies always run (``context.vmap``: fixed shapes, one compilation
whatever the count); their choices are stacked ``(K, ...)`` under
``"parts/..."``. Copy ``k`` is *active* when ``k < count``; the others are
auxiliary variables drawn from and scored under their prior (the convention
of :mod:`ppl.interface`, shared with ``ppl.either`` and ``ppl.Space``). Weights:
:mod:`ppl.interface`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import distributions as dist
from numpyro.distributions import Distribution

from ppl.compose.painting import Layers
from ppl.context import Context
from ppl.errors import CompositionError
from ppl.interface import GenerativeFunction
from ppl.model import Model, sample

__all__ = ["many", "Replicate"]


class Replicate(GenerativeFunction):
    """``K`` independent runs of ``part`` with ``context.vmap``; choices stacked ``(K, ...)``.

    Called as ``replicate(active, *args)`` with ``active`` a ``(K,)`` boolean
    mask (which copies the structure uses) or ``None``. ``score = sum_k
    score_k``: every copy is scored, active or not.
    """

    def __init__(self, part: GenerativeFunction, count: int):
        self.part = part
        self.count = count
        self.name = f"{part.name}[{count}]"

    def body(self, context: Context, active, *args):
        return context.vmap(lambda copy, _: copy.call(None, self.part, *args), None, self.count, active=active,
                            what=f"this stack of {self.count} parts (inactive slots need values too)",
                            axis="part-slot")


def count_spec(count: Any, max_parts: int, where: str):
    if count is None:
        return dist.Categorical(probs=jnp.full(max_parts + 1, 1.0 / (max_parts + 1)))
    if isinstance(count, Distribution):
        support = count.support
        lower = getattr(support, "lower_bound", None)
        upper = getattr(support, "upper_bound", None)
        shape = tuple(count.batch_shape) + tuple(count.event_shape)
        if not getattr(support, "is_discrete", False) or shape != ():
            raise CompositionError(
                f"{where}: count must be a scalar discrete distribution over 0..{max_parts}; "
                f"got {type(count).__name__} with support {support} and shape {shape}. Use e.g. "
                f"dist.Categorical(probs) with {max_parts + 1} probabilities or "
                f"dist.DiscreteUniform(1, {max_parts})."
            )
        if lower is None or upper is None or not (np.all(np.asarray(lower) >= 0) and np.all(np.asarray(upper) <= max_parts)):
            raise CompositionError(
                f"{where}: count's support {support} is not inside 0..{max_parts} = 0..max_parts, "
                f"so it could ask for more parts than there are slots. Use a distribution "
                f"bounded by {max_parts}, e.g. dist.Categorical(probs) with {max_parts + 1} "
                f"probabilities, dist.Binomial({max_parts}, p) or "
                f"dist.DiscreteUniform(1, {max_parts}), or raise max_parts."
            )
        return count
    if isinstance(count, (int, np.integer)) and not isinstance(count, bool) and 0 <= count <= max_parts:
        return int(count)
    raise CompositionError(
        f"{where}: count must be a discrete distribution over 0..{max_parts}, a fixed integer "
        f"in that range, or None (uniform); got {count!r}."
    )


def check_max_parts(max_parts: Any, where: str) -> int:
    if isinstance(max_parts, bool) or not isinstance(max_parts, (int, np.integer)) or max_parts < 1:
        raise CompositionError(f"{where}: max_parts must be a positive integer (the number of part slots); got {max_parts!r}.")
    return int(max_parts)


def sample_many(replicate: Replicate, count_spec, args: tuple) -> Layers:
    n = sample("count", count_spec) if isinstance(count_spec, Distribution) else count_spec
    active = jnp.arange(replicate.count) < n
    stacked = sample("parts", replicate, active, *args)
    return Layers(stacked, active)


def many(part: GenerativeFunction, max_parts: int, *, count: Any = None, name: str | None = None) -> Model:
    """Between 0 and ``max_parts`` copies of ``part``, as one stack of layers.

    The number of copies drawn is latent: ``count`` (a discrete distribution
    over ``0..max_parts``, sampled at address ``"count"``; default uniform) or
    a fixed integer. All ``max_parts`` copies are always run, with ``jax.vmap``
    over their keys and constraints, so shapes are fixed and the model compiles
    once whatever the count. Their choices are stacked under ``"parts/..."``
    with a leading axis ``max_parts``; copy ``k`` is drawn only when
    ``k < count``.

    Scoring (the inactive-structure convention of :mod:`ppl.interface`): every
    copy is scored under its prior, drawn or not:
    ``score = log p(count) + sum_{k < max_parts} score_k`` (+ the scores of the
    images the scene observes). The copies that are not drawn are auxiliary
    variables: they leave the marginal of the drawn copies and of the image
    unchanged, keep the density normalised, and make ``update`` moves that
    change ``count`` valid Metropolis-Hastings moves (a copy switched on keeps
    values drawn from its prior). Constraints and ``assess`` need values for
    all ``max_parts`` copies.

    Returns a model whose return value is a ``ppl.Layers`` (render it with
    ``ppl.scene`` or ``ppl.render``).
    """
    where = f"ppl.many({getattr(part, 'name', type(part).__name__)})"
    if not isinstance(part, GenerativeFunction):
        raise CompositionError(
            f"{where}: the part must be a model (its copies are independent draws); got "
            f"{type(part).__name__}. Wrap a constant painter in ppl.place(painter, at=<distribution>)."
        )
    max_parts = check_max_parts(max_parts, where)
    with jax.ensure_compile_time_eval():  # concrete probabilities, even when the model is built inside jit
        spec = count_spec(count, max_parts, where)
    replicate = Replicate(part, max_parts)
    return Model(lambda *args: sample_many(replicate, spec, args), name=name or f"many({part.name})")
