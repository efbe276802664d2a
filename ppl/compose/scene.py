"""Spatial composition: ``ppl.scene``, "A and B are both present, in a certain relation".

* ``ppl.scene(*parts, size=(H, W), blend=...)`` renders parts into one
  ``(H, W, C)`` canvas with a differentiable soft rasteriser, and optionally
  observes a noisy image of it;
* ``ppl.place(m, at=..., scale=..., angle=...)`` gives a part a fixed or latent
  pose, and ``ppl.beside``, ``ppl.above``, ``ppl.inside`` put a prior on the
  pose of one part relative to another (:mod:`ppl.compose.placement`);
* ``ppl.many(m, max_parts=K, count=...)`` is an unknown number (up to ``K``)
  of copies of a part (:mod:`ppl.compose.many`).

The painters, poses and the compositing renderer live in
``ppl.compose.painting``. Every name is re-exported here.

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

from typing import Any

import jax
import numpy as np
from numpyro import distributions as dist
from numpyro.distributions import Distribution

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
from ppl.compose.many import Replicate, check_max_parts, count_spec, sample_many
from ppl.compose.placement import above, beside, check_part, inside, place, run_part
from ppl.errors import CompositionError
from ppl.interface import GenerativeFunction
from ppl.model import Model, sample

__all__ = [
    "scene",
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
    with jax.ensure_compile_time_eval():  # a concrete array, even when the scene is built inside jit
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
        max_parts = check_max_parts(max_parts, where)
        many_part = (Replicate(entries[0][1], max_parts), count_spec(count, max_parts, where))
        entries = []
    addresses = (("parts",) if many_part else ()) + tuple(address for address, _ in entries)

    def rendered(*args):
        values = [sample_many(*many_part, args)] if many_part else []
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
