"""The digit models' pixel likelihood: clipped noise of unknown level, stray pixels, an ink blot or an erasure.

A scanned or photographed digit is a rendering corrupted in four ways, and
:class:`RobustPixels` models each as it happens, marginalising the nuisance
exactly (a closed form, so MAP and the Laplace evidence see a smooth function):

1. **Noise of unknown level, clipped.** Per image a noise level ``level_k`` is
   drawn from a grid (``noise_levels`` with prior ``noise_probs``); each pixel is
   ``clip(render + e, 0, 1)`` with ``e ~ Normal(0, sqrt(noise^2 + level_k^2))``.
   Clipping makes the likelihood *censored*: a pixel at exactly 0 has
   probability ``Phi(-render / s)``, at exactly 1 ``Phi((render - 1) / s)``, and in
   between the Normal density. (Intensities clipped to ``[0, 1]`` put real mass on
   0 and 1: the blank background of a clean scan, half the background of a
   noisy one.) The level is summed out: ``log sum_k p_k prod_ij p(y_ij | k)``.
2. **Stray pixels.** Each pixel is, with probability ``outlier``, a *stray*
   pixel instead (:func:`endpoint_log_prob`: mass ``spike`` at 0, ``spike`` at 1,
   the rest uniform in between).
3. **An ink blot.** With probability ``occluder`` the image holds one ``h x w``
   rectangle (``h, w`` from ``occluder_sides``, uniform; position uniform) of
   blot pixels: saturated ink (mass ``blot_ink`` at 1), some grey, almost never
   blank (mass ``blot_blank`` at 0). The blot is summed out over every shape and
   position, with box sums of the per-pixel log-ratio ``log blot - log p(y |
   render)`` (two small matrix products for all blocks at once), so a 3x3 blot
   costs one ``log(occluder / #blocks)`` instead of nine stray pixels, and the
   strokes are not pulled onto it.
4. **An erasure.** With probability ``eraser`` (instead of a blot) one block of
   the same shapes is rubbed out: the rendering under it is replaced by the blank
   background, and its pixels are drawn as every other pixel is (noise, stray
   pixels) around that blank. Its box sums are of ``log p(y | blank) - log p(y |
   render)``: a block where the rendering is blank gains exactly nothing, so an
   erasure only ever explains away ink the rendering has and the image lacks.
   It cannot tell a rubbed-out stroke of the true class from a wrong class's
   extra stroke hidden under a block, so it costs a little clean accuracy; the
   default ``eraser`` is the validation split's compromise (see docs/digits.md).
The per-pixel *curvature* :meth:`RobustPixels.curvature` (for the Laplace
evidence) weights each noise level's ``-d^2 log p / d render^2`` by the posterior
probability of that level and of the pixel being outside the blot or erasure.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, logsumexp
from numpyro import distributions as dist
from numpyro.distributions import constraints

__all__ = ["RobustPixels", "censored_normal_log_prob", "default_occluder_sides", "endpoint_log_prob"]


def censored_normal_log_prob(value, loc, scale):
    """``log p(value)`` of ``clip(Normal(loc, scale), 0, 1)``: a mass at 0 and at 1, a density in between."""
    at_zero, at_one = value <= 0.0, value >= 1.0
    # one log_ndtr for both ends: P(y = 0) = Phi(-loc / scale), P(y = 1) = Phi((loc - 1) / scale)
    tail = log_ndtr(jnp.where(at_zero, -loc, jnp.where(at_one, loc - 1.0, 0.0)) / scale)
    inside = dist.Normal(loc, scale).log_prob(value)
    return jnp.where(at_zero | at_one, tail, inside)


def endpoint_log_prob(value, at_zero, at_one):
    """``log p`` of a pixel with mass ``at_zero`` at 0, ``at_one`` at 1 and density ``1 - at_zero - at_one`` on ``(0, 1)``."""
    return jnp.where(value <= 0.0, jnp.log(at_zero), jnp.where(value >= 1.0, jnp.log(at_one), jnp.log1p(-at_zero - at_one)))


def _sample_endpoint(key, shape, at_zero, at_one):
    k_kind, k_value = jax.random.split(key)
    kind = jax.random.choice(k_kind, 3, shape, p=jnp.stack([at_zero, at_one, 1.0 - at_zero - at_one]))
    return jnp.where(kind == 0, 0.0, jnp.where(kind == 1, 1.0, jax.random.uniform(k_value, shape)))


def default_occluder_sides(size) -> tuple[int, ...]:
    """Side lengths of the blots for a canvas: a quarter, three eighths and half its height, at least 3 pixels.

    (A 2x2 block of ink is just a thick stroke: as a blot it would let a wrong class explain away ink it misses.)
    """
    height = int(size[0])
    return tuple(sorted({min(height, max(3, round(height * f))) for f in (0.25, 0.375, 0.5)}))


def _box_sum_operators(sides, event_shape):
    """Matrices ``rows (R, H)``, ``cols (C, W)`` and ``log_weight (R, C)``: ``rows @ x @ cols.T`` holds the sum of
    ``x (H, W)`` over every block (one row per top edge and height, one column per left edge and width), and
    ``log_weight`` each block's prior (uniform over shapes, then over positions)."""
    height, width = event_shape
    heights = [h for h in sides if h <= height]
    widths = [w for w in sides if w <= width]

    def band(side, n):  # (n - side + 1, n): row i sums x[i : i + side]
        start = np.arange(n - side + 1)[:, None]
        return ((np.arange(n)[None, :] >= start) & (np.arange(n)[None, :] < start + side)).astype(np.float32)

    rows = np.concatenate([band(h, height) for h in heights])
    cols = np.concatenate([band(w, width) for w in widths])
    row_count = np.concatenate([np.full(height - h + 1, height - h + 1) for h in heights])
    col_count = np.concatenate([np.full(width - w + 1, width - w + 1) for w in widths])
    log_weight = -np.log(len(heights) * len(widths) * np.outer(row_count, col_count))
    return rows, cols, log_weight.astype(np.float32)


class RobustPixels(dist.Distribution):
    """``(H, W)`` pixels in ``[0, 1]`` around a rendering ``loc``: see the module docstring.

    Args:
      loc: ``(..., H, W)`` the rendering, in ``[0, 1]``.
      noise: the model's own pixel sd (rendering error), added in quadrature to every level.
      outlier: per-pixel probability of a stray pixel.
      noise_levels, noise_probs: ``(K,)`` extra noise sd per image, and its prior.
      occluder: probability that the image holds one ink blot.
      occluder_sides: static tuple of the blocks' side lengths (pixels), for blots and erasures; ``()`` for none.
      spike: a stray pixel's mass at 0 and at 1.
      blot_blank, blot_ink: a blot pixel's mass at 0 and at 1.
      eraser: probability that the image holds one erasure instead (``occluder + eraser < 1``); ``None`` (the
        default) for no erasures, and no cost for them.

    Example::

        >>> pixels = RobustPixels(jnp.zeros((8, 8)), 0.2, 0.02, jnp.array([0.0, 0.5]), jnp.array([0.5, 0.5]),
        ...                       occluder=0.5, occluder_sides=(2, 3))
        >>> pixels.log_prob(jnp.zeros((8, 8))).shape
        ()
    """

    arg_constraints = {
        "loc": constraints.real,
        "noise": constraints.positive,
        "outlier": constraints.unit_interval,
        "noise_levels": constraints.independent(constraints.nonnegative, 1),
        "noise_probs": constraints.simplex,
        "occluder": constraints.unit_interval,
        "spike": constraints.interval(0.0, 0.5),
        "blot_blank": constraints.unit_interval,
        "blot_ink": constraints.unit_interval,
    }
    support = constraints.independent(constraints.unit_interval, 2)
    reparametrized_params = ["loc", "noise"]

    def __init__(self, loc, noise, outlier, noise_levels=(0.0,), noise_probs=(1.0,), occluder=0.0,
                 occluder_sides=(), spike=0.25, blot_blank=0.01, blot_ink=0.8, eraser=None, *, validate_args=None):
        self.loc, self.noise, self.outlier, self.occluder, self.spike = loc, noise, outlier, occluder, spike
        self.eraser = eraser
        self.blot_blank, self.blot_ink = blot_blank, blot_ink
        self.noise_levels = jnp.asarray(noise_levels, jnp.result_type(float))
        self.noise_probs = jnp.asarray(noise_probs, jnp.result_type(float))
        shape = jnp.shape(loc)
        self.occluder_sides = tuple(int(s) for s in occluder_sides)
        self.block_shapes = tuple((h, w) for h in self.occluder_sides for w in self.occluder_sides
                                  if h <= shape[-2] and w <= shape[-1])
        self.blocks = _box_sum_operators(self.occluder_sides, shape[-2:]) if self.block_shapes else None
        super().__init__(batch_shape=shape[:-2], event_shape=shape[-2:], validate_args=validate_args)

    # -- log density ---------------------------------------------------------

    def _scales(self):
        return jnp.sqrt(jnp.square(self.noise) + jnp.square(self.noise_levels))  # (K,)

    def level_log_prob(self, value, loc=None):
        """``(K, ..., H, W)``: each pixel's ``log p`` at each noise level (stray pixels mixed in, no block)."""
        loc = self.loc if loc is None else loc
        scales = self._scales().reshape((-1,) + (1,) * jnp.ndim(loc))
        clean = censored_normal_log_prob(value, loc, scales)
        stray = endpoint_log_prob(value, self.spike, self.spike)
        return jnp.logaddexp(jnp.log1p(-self.outlier) + clean, jnp.log(self.outlier) + stray)

    def _combine(self, per_level, value, erased):
        """``log p(image)`` from the per-level pixel terms ``(K, ..., H, W)``: block and level summed out.

        ``erased`` ``(K, ..., H, W)``: the same terms with the rendering replaced by the blank background (the
        pixels under an erasure); it does not depend on the rendering.
        """
        log_level = jnp.log(self.noise_probs).reshape((-1,) + (1,) * (per_level.ndim - 3))
        total = jnp.sum(per_level, axis=(-2, -1))  # (K, ...)
        if self.blocks is not None:
            rows, cols, log_weight = self.blocks
            block_sums = lambda x: jnp.einsum("rh,...hw,cw->...rc", rows, x, cols)  # (K, ..., R, C)  # noqa: E731
            blot = endpoint_log_prob(value, self.blot_blank, self.blot_ink)
            # every block's gain: the blot's pixels (ink) or the erasure's (the blank background) instead of the rendering
            in_blot = jnp.log(self.occluder) + logsumexp(log_weight + block_sums(blot - per_level), axis=(-2, -1))
            if self.eraser is None:
                total = total + jnp.logaddexp(jnp.log1p(-self.occluder), in_blot)
            else:
                in_erasure = jnp.log(self.eraser) + logsumexp(log_weight + block_sums(erased - per_level), axis=(-2, -1))
                neither = jnp.log1p(-self.occluder - self.eraser) * jnp.ones_like(in_blot)
                total = total + logsumexp(jnp.stack([neither, in_blot, in_erasure]), axis=0)
        return logsumexp(log_level + total, axis=0)

    def log_prob(self, value):
        return self._combine(self.level_log_prob(value), value, self._erased(value))

    def _erased(self, value):
        """``(K, ..., H, W)``: each pixel's ``log p`` at each level if it lay under an erasure (blank rendering)."""
        if self.eraser is None or self.blocks is None:
            return None
        blank = jnp.zeros(jnp.shape(self.loc), jnp.result_type(float))
        return self.level_log_prob(value, blank)

    def curvature(self, value):
        """``(..., H, W)`` the Gauss-Newton weight of each pixel: ``E[-d^2 log p(y_ij | k) / d loc_ij^2]`` over the
        posterior of the level and of the pixel being outside the blot or erasure, clipped at 0."""
        per_level, erased = self.level_log_prob(value), self._erased(value)
        responsibility = jax.grad(lambda terms: jnp.sum(self._combine(terms, value, erased)))(per_level)

        def second_derivative(loc, y):  # (K,): d^2 log p(y | loc, level k) / d loc^2 of one pixel
            return jax.hessian(lambda m: self.level_log_prob(y, m))(loc)

        flat_loc, flat_value = jnp.ravel(self.loc), jnp.ravel(jnp.broadcast_to(value, jnp.shape(self.loc)))
        per_pixel = jax.vmap(second_derivative)(flat_loc, flat_value)  # (H * W, K)
        per_level_curvature = -per_pixel.T.reshape(per_level.shape)
        return jnp.maximum(jnp.sum(responsibility * per_level_curvature, axis=0), 0.0)

    # -- sampling ------------------------------------------------------------

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        images = shape[:-2]
        k_level, k_noise, k_stray, k_pick, k_block, k_shape, k_row, k_col = jax.random.split(key, 8)
        inside, occlusion = jnp.zeros(shape, bool), jnp.zeros(images, jnp.int32)
        if self.block_shapes:
            heights = jnp.array([h for h, _ in self.block_shapes])
            widths = jnp.array([w for _, w in self.block_shapes])
            which = jax.random.randint(k_shape, images, 0, len(self.block_shapes))
            h, w = heights[which][..., None, None], widths[which][..., None, None]
            top = jax.random.randint(k_row, images, 0, shape[-2] - heights[which] + 1)[..., None, None]
            left = jax.random.randint(k_col, images, 0, shape[-1] - widths[which] + 1)[..., None, None]
            rows = jnp.arange(shape[-2])[:, None]
            cols = jnp.arange(shape[-1])[None, :]
            inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
            # 0: no block, 1: an ink blot, 2: an erasure (the rendering blanked out under the block)
            eraser = 0.0 if self.eraser is None else self.eraser
            probs = jnp.stack([1.0 - self.occluder - eraser, self.occluder, eraser]).astype(jnp.result_type(float))
            occlusion = jax.random.choice(k_block, 3, images, p=probs)
        erased = inside & (occlusion == 2)[..., None, None]
        level = jax.random.categorical(k_level, jnp.log(self.noise_probs), shape=images)
        scale = self._scales()[level][..., None, None]
        image = jnp.clip(jnp.where(erased, 0.0, self.loc) + scale * jax.random.normal(k_noise, shape), 0.0, 1.0)
        stray = _sample_endpoint(k_stray, shape, self.spike, self.spike)
        image = jnp.where(jax.random.bernoulli(k_pick, self.outlier, shape), stray, image)
        blot = _sample_endpoint(jax.random.fold_in(k_block, 1), shape, self.blot_blank, self.blot_ink)
        return jnp.where(inside & (occlusion == 1)[..., None, None], blot, image)
