"""Spatial composition: "A and B are both present, in a certain relation".

* ``ppl.place(m, at=..., scale=..., angle=...)`` gives a part a fixed or latent pose;
* ``ppl.beside``, ``ppl.above``, ``ppl.inside`` put a prior on the pose of one
  part relative to another;
* ``ppl.many(m, max_parts=K, count=...)`` is an unknown number (up to ``K``)
  of copies of a part, run with ``jax.vmap`` (fixed shapes, one compilation);
* ``ppl.scene(*parts, size=(H, W), blend=...)`` renders parts into one
  ``(H, W, C)`` canvas with a differentiable soft rasteriser, and optionally
  observes a noisy image of it.

The painters, poses and the renderer live in ``ppl.compose.painting``; poses
and relations in ``ppl.compose.placement``. Every name is re-exported here.

Example::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> blob = ppl.place(ppl.Sprite(jnp.ones((3, 3, 1))),
    ...                  at=dist.Uniform(0.2, 0.8).expand([2]).to_event(1), scale=0.25)
    >>> picture = ppl.scene(blob, size=(16, 16), noise=0.1)
    >>> trace = picture.simulate(jax.random.key(0))
    >>> trace.retval.shape, trace.choices.addresses()
    ((16, 16, 1), ('0/at', 'image'))
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import distributions as dist
from numpyro.distributions import Distribution

from ppl.choices import ChoiceMap
from ppl.compose.painting import (
    Canvas,
    Layers,
    Painter,
    Placed,
    Pose,
    Sprite,
    check_background,
    check_blend,
    check_channels,
    check_size,
    check_softness,
    painter,
    pixel_centres,
    render,
    render_parts,
)
from ppl.compose.placement import above, beside, check_part, inside, place, run_part
from ppl.errors import CompositionError
from ppl.model import GenerativeFunction, Model, Trace, sample

__all__ = [
    "scene",
    "many",
    "place",
    "beside",
    "above",
    "inside",
    "render",
    "pixel_centres",
    "Canvas",
    "Painter",
    "painter",
    "Pose",
    "Placed",
    "Sprite",
    "Layers",
]

RESERVED = ("count", "parts", "image")


# ---------------------------------------------------------------------------
# many: an unknown number of copies of a part
# ---------------------------------------------------------------------------


class _Replicate(GenerativeFunction):
    """``K`` independent runs of ``part`` with ``jax.vmap``; choices stacked ``(K, ...)``.

    ``score = sum_k score_k`` and ``log_weight = sum_k log_weight_k``: every copy
    is scored, active or not (the mask only affects rendering).
    """

    def __init__(self, part: GenerativeFunction, count: int):
        self.part = part
        self.count = count
        self.name = f"{part.name}[{count}]"
        # one compiled program per mode, cached by the shapes of its inputs
        self._compiled = {assess: jax.jit(functools.partial(self._batched, assess)) for assess in (False, True)}

    def run(self, key, constraints, args, assess):
        self._check_stacked(constraints)
        keys = None if assess else jax.random.split(key, self.count)
        inputs = (keys, constraints, tuple(args))
        leaves = jax.tree_util.tree_leaves(inputs)
        if all(isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float, bool)) for leaf in leaves):
            out = self._compiled[assess](*inputs)  # inlined under an outer jit/vmap/grad
        else:
            out = self._batched(assess, *inputs)
        choices, scores, retval, log_weights = out
        return Trace(choices, jnp.sum(scores), retval, tuple(args)), jnp.sum(log_weights)

    def _batched(self, assess, keys, constraints, args):
        def one(sub_key, sub_constraints):
            trace, log_weight = self.part.run(sub_key, sub_constraints, args, assess)
            return trace.choices, trace.score, trace.retval, log_weight

        return jax.vmap(one, in_axes=(None if keys is None else 0, 0), axis_size=self.count)(keys, constraints)

    def _check_stacked(self, constraints: ChoiceMap) -> None:
        for address, value in constraints.items():
            shape = tuple(jnp.shape(value))
            if shape[:1] != (self.count,):
                raise CompositionError(
                    f"this is a stack of {self.count} parts, so every value under it needs a "
                    f"leading axis of size {self.count} (one entry per part slot); got shape "
                    f"{shape}. Stack the values with jnp.stack([...]) (inactive slots need "
                    "values too).",
                    address=address,
                )


def _count_spec(count: Any, max_parts: int, where: str):
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


def _check_max_parts(max_parts: Any, where: str) -> int:
    if isinstance(max_parts, bool) or not isinstance(max_parts, (int, np.integer)) or max_parts < 1:
        raise CompositionError(f"{where}: max_parts must be a positive integer (the number of part slots); got {max_parts!r}.")
    return int(max_parts)


def _sample_many(replicate: _Replicate, count_spec, args: tuple) -> Layers:
    n = sample("count", count_spec) if isinstance(count_spec, Distribution) else count_spec
    stacked = sample("parts", replicate, *args)
    return Layers(stacked, jnp.arange(replicate.count) < n)


def many(part: GenerativeFunction, max_parts: int, *, count: Any = None, name: str | None = None) -> Model:
    """Between 0 and ``max_parts`` copies of ``part``, as one stack of layers.

    The number of copies drawn is latent: ``count`` (a discrete distribution
    over ``0..max_parts``, sampled at address ``"count"``; default uniform) or
    a fixed integer. All ``max_parts`` copies are always run, with ``jax.vmap``
    over their keys and constraints, so shapes are fixed and the model compiles
    once whatever the count. Their choices are stacked under ``"parts/..."``
    with a leading axis ``max_parts``; copy ``k`` is drawn only when
    ``k < count``.

    Scoring: every copy is scored under its prior, drawn or not:
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
    max_parts = _check_max_parts(max_parts, where)
    count_spec = _count_spec(count, max_parts, where)
    replicate = _Replicate(part, max_parts)
    return Model(lambda *args: _sample_many(replicate, count_spec, args), name=name or f"many({part.name})")


# ---------------------------------------------------------------------------
# scene
# ---------------------------------------------------------------------------


def scene(
    *parts: Any,
    size: tuple[int, int],
    blend: str = "over",
    channels: int = 1,
    background: Any = 0.0,
    softness: float = 0.5,
    noise: Any = None,
    max_parts: int | None = None,
    count: Any = None,
    name: str | None = None,
    **named_parts: Any,
) -> Model:
    """Render parts into one ``(H, W, channels)`` canvas (the model's return value).

    Args:
      *parts: generative functions (run with the scene's arguments at
        addresses ``"0"``, ``"1"``, ...) whose return value is a painter, a
        group (tuple) of painters, a ``ppl.Layers`` stack (``ppl.many``) or a
        canvas of exactly this size; or constant painters (no address).
      size: ``(H, W)`` in pixels. Coordinates are normalised: the canvas is the
        unit square, ``x`` right, ``y`` down.
      blend: ``"over"`` (alpha compositing, later parts on top), ``"max"`` or
        ``"sum"`` of premultiplied colour ``colour * alpha``; see ``ppl.render``.
      channels: ``C`` (1 grey, 3 RGB). A 1-channel part colour is broadcast.
      background: a number, a ``(C,)`` colour or an ``(H, W, C)`` image.
      softness: edge width of soft painters in pixels (differentiability
        against sharpness; raise it for MAP from far-off starting points).
      noise: ``None`` (no observation), ``sigma > 0`` (observe ``"image" ~
        Normal(canvas, sigma).to_event(3)``) or a function ``canvas ->
        distribution`` with shape ``(H, W, C)`` (e.g. ``lambda c:
        dist.Bernoulli(probs=jnp.clip(c, 1e-3, 1 - 1e-3)).to_event(3)``).
      max_parts, count: shorthand for ``scene(ppl.many(part, max_parts,
        count=count))`` with one part and its choices at the top level:
        ``"count"`` and ``"parts/..."`` (stacked ``(max_parts, ...)``).
      name: the model's name (default ``"scene"``).
      **named_parts: parts at addresses of your choosing, drawn after the
        positional ones (not ``count``, ``parts`` or ``image``).

    ``score = sum of the parts' scores (+ log p(count)) + log p(image | canvas)``.
    Rendering is differentiable in every part parameter and pose, so
    ``jax.grad`` of ``assess`` drives gradient MAP.

    Raises ``CompositionError`` (before compiling) for bad options, for a part
    that is neither a model nor a painter, and, when the scene runs, for parts
    whose colours have the wrong number of channels or that render to a canvas
    of another size.
    """
    name = name or "scene"
    where = f"ppl.scene '{name}'"
    height, width = check_size(size)
    channels = check_channels(channels)
    blend = check_blend(blend)
    background = check_background(background, (height, width), channels)
    softness = check_softness(softness)
    likelihood = _likelihood(noise, (height, width, channels), where)
    entries = _entries(parts, named_parts, where)
    many_part = None
    if max_parts is not None or count is not None:
        if max_parts is None:
            raise CompositionError(f"{where}: count= needs max_parts= (the number of part slots).")
        if len(entries) != 1 or not isinstance(entries[0][1], GenerativeFunction):
            raise CompositionError(
                f"{where}: with max_parts= a scene takes exactly one part, a model, repeated up "
                f"to max_parts times; got {len(entries)} part(s). To mix fixed parts with a "
                "varying number of others, pass ppl.many(part, max_parts, count=...) as one of "
                "the parts."
            )
        max_parts = _check_max_parts(max_parts, where)
        many_part = (_Replicate(entries[0][1], max_parts), _count_spec(count, max_parts, where))
        entries = []
    addresses = (("parts",) if many_part else ()) + tuple(address for address, _ in entries)

    def rendered(*args):
        values = [_sample_many(*many_part, args)] if many_part else []
        values += [run_part(address, part, args) for address, part in entries]
        canvas = render_parts(tuple(values), addresses, (height, width), channels, blend, softness, background)
        if likelihood is not None:
            sample("image", likelihood(canvas))
        return canvas

    return Model(rendered, name=name)


def _entries(parts: tuple, named_parts: dict, where: str) -> list[tuple[str, Any]]:
    if not parts and not named_parts:
        raise CompositionError(f"{where}: a scene needs at least one part, e.g. ppl.scene(part, size=(28, 28)).")
    entries = [(str(i), check_part(p, f"{where}: part {i}")) for i, p in enumerate(parts)]
    for key, part in named_parts.items():
        if "/" in key or key in RESERVED or key.isdigit():
            raise CompositionError(
                f"{where}: part name {key!r} is not allowed: names may not contain '/', be a "
                f"number (positional parts use those), or be one of {', '.join(map(repr, RESERVED))}."
            )
        entries.append((key, check_part(part, f"{where}: part {key!r}")))
    return entries


def _likelihood(noise: Any, shape: tuple[int, int, int], where: str):
    """``canvas -> distribution`` of the observed image, or None."""
    if noise is None:
        return None
    if callable(noise) and not isinstance(noise, (jax.Array, np.ndarray)):

        def custom(canvas):
            observation = noise(canvas)
            got = (tuple(observation.batch_shape) + tuple(observation.event_shape)) if isinstance(observation, Distribution) else None
            if got != shape:
                raise CompositionError(
                    f"{where}: noise(canvas) must return a distribution over images of shape "
                    f"{shape}; got {type(observation).__name__}"
                    + (f" of shape {got}" if got is not None else "")
                    + ". Build it from the whole canvas, e.g. lambda canvas: "
                    "dist.Normal(canvas, 0.1).to_event(3)."
                )
            return observation

        return custom
    try:
        sigma = float(noise)
    except (TypeError, ValueError):
        sigma = float("nan")
    if not sigma > 0 or not np.isfinite(sigma):
        raise CompositionError(
            f"{where}: noise must be None, a positive number (the pixel noise's standard "
            f"deviation) or a function canvas -> distribution; got {noise!r}."
        )
    return lambda canvas: dist.Normal(canvas, sigma).to_event(3)
