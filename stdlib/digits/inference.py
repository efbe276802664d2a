"""Inference for the digit models: MAP stroke fits, Laplace evidence, ``classify``, ``fit``, ``explain``.

**Evidence estimator** (one image, one class). Every density comes from the
core: one run of the digit model in the core's *standardised* unconstrained
coordinates ``z`` (``ppl.infer.unconstrained.log_density(...,
standardise=True)``: a Normal choice is ``x = loc + scale * z``, so its prior
is ``N(0, 1)`` in ``z`` and one Adam learning rate suits pose, strokes and pen
alike). For each template ``m`` (and ``restarts`` pose jitters of it) Adam
maximises ``f_m(z) = log p(image, x(z), m) + log |dx/dz|`` for ``steps``
steps (vmapped, one ``lax.scan``). The evidence of template ``m`` is the
Laplace approximation at its best optimum ``z*``::

    log p(image, m) ~= f_m(z*) + d/2 log(2 pi) - 1/2 log det(P + J^T W J)

with ``P`` the prior's precision in ``z`` (the Hessian of the core's density
with the image's term tempered away: ``I`` for the Normal priors),
``J = d render / d z`` (forward-mode Jacobian of the core's run) and ``W`` the
per-pixel curvature ``-d^2 log p(y | mean) / d mean^2`` of the pixel
likelihood, weighted by the posterior of the noise level and of the pixel
lying outside the blot or erasure, clipped at 0
(:meth:`stdlib.digits.pixels.RobustPixels.curvature`: a generalised
Gauss-Newton Hessian of the likelihood, always positive definite; blotted
pixels carry no curvature). Nothing here restates the priors: change them in
:func:`~stdlib.digits.model.digit_model` and the evidence follows. Absent
strokes cancel exactly (their prior term is ``log N(0) + 1/2 log 2 pi = 0`` per
coordinate), so classes with 1, 2 or 3 strokes compare fairly. The class's
evidence is ``logsumexp_m``. It is a deterministic approximation: no Monte
Carlo standard error (reported as 0).

**fit** is one EM-style pass (``iterations`` of them): each example is
explained by MAP under its class's current model; its fitted strokes become a
new template (an exemplar, prior weight 1 each; the prototype keeps weight
``prototype_weight``), and the pose, pen and ink priors move to the
examples' fitted values with conjugate-style shrinkage towards the old prior.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from ppl import linalg
from ppl.choices import as_choice_map
from ppl.errors import InferenceError, ShapeError
from ppl.infer.classify import Classification, chunked_vmap
from ppl.infer.unconstrained import log_density
from ppl.validation import check_key
from stdlib.digits.model import (
    DigitModels,
    DigitParams,
    check_images,
    check_labels,
    digit_model,
    pixels,
    place_strokes,
    prototypes,
)

__all__ = ["Budget", "StrokeFit", "classify", "evidence_estimator", "explain", "fit", "fit_strokes", "plot_explanation"]


class Budget(NamedTuple):
    """How hard to look, per (image, class).

    ``steps``: Adam steps per hypothesis; ``restarts``: hypotheses per template
    (the prior pose and jittered poses); ``keep``: hypotheses refined after the
    first quarter of the steps (0: all); ``learning_rate``; ``laplace``: add
    the Laplace volume term to the evidence (else the MAP joint alone);
    ``contenders``: in :func:`classify`, the volume term is computed for this
    many classes per image, those with the best MAP joints; the others take
    the smallest of theirs (they trail by far, and the term is the costly part).
    """

    steps: int = 20
    restarts: int = 1
    keep: int = 1
    learning_rate: float = 0.15
    laplace: bool = True
    contenders: int = 3


CAREFUL = Budget(steps=60, restarts=3, keep=0, learning_rate=0.1)  # fit's and explain's default: every hypothesis runs all steps


class StrokeFit(NamedTuple):
    """The best explanation of one image by one class (leaves gain leading axes when vmapped).

    ``choices``: the latent choices at the MAP (``component``, ``pose``,
    ``strokes``, ``log_width``, ``ink``); ``log_joint``: ``log p(image, choices)``;
    ``log_evidence``: the Laplace ``log p(image | class)``; ``rendering``: ``(H, W)``.
    """

    choices: dict
    log_joint: jax.Array
    log_evidence: jax.Array
    rendering: jax.Array


MAX_STEPS = 2**31 - 1  # a lax.scan length


def _as_budget(budget) -> Budget:
    if budget is None:
        return Budget()
    if isinstance(budget, Budget):
        _check_budget_fields(budget)
        return budget
    if _is_int(budget) and 0 <= budget <= MAX_STEPS:
        return Budget(steps=int(budget))
    raise ShapeError(f"budget must be a non-negative int (Adam steps per hypothesis, below 2**31) or a digits.Budget; "
                     f"got {budget!r}.")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_budget_fields(budget: Budget) -> None:
    steps, restarts, keep, learning_rate, laplace, contenders = budget
    problems = []
    if not (_is_int(steps) and 0 <= steps <= MAX_STEPS):
        problems.append(f"steps={steps!r} (an int >= 0)")
    if not (_is_int(restarts) and 1 <= restarts <= MAX_STEPS):
        problems.append(f"restarts={restarts!r} (an int >= 1)")
    if not (_is_int(keep) and 0 <= keep <= MAX_STEPS):
        problems.append(f"keep={keep!r} (an int >= 0; 0: all)")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.number)) \
            or not 0 < learning_rate < float("inf"):
        problems.append(f"learning_rate={learning_rate!r} (a positive number)")
    if not (isinstance(laplace, (bool, np.bool_)) or _is_int(laplace) and laplace in (0, 1)):
        problems.append(f"laplace={laplace!r} (True or False)")
    if not (_is_int(contenders) and contenders >= 1):
        problems.append(f"contenders={contenders!r} (an int >= 1)")
    if problems:
        raise ShapeError(f"digits.Budget got {', '.join(problems)}.")


def _check_call(key, models, who: str) -> None:
    """The key and the models of a public call, checked before anything compiles."""
    check_key(key, f"digits.{who}")
    if not isinstance(models, DigitModels):
        raise ShapeError(f"models must be digits.DigitModels (from digits.prototypes or digits.fit); got "
                         f"{type(models).__name__}.")


LATENTS = ("pose", "strokes", "log_width", "ink")  # the continuous choices the MAP moves (the component is enumerated)


def _density(model, z, component, image, params, **options):
    """The core's run of the digit model at ``x(z)`` (standardised coordinates): density, choices, rendering."""
    return log_density(model, {"component": component, "image": image}, z, (params,), jacobian=True,
                       standardise=True, **options)


def _log_joint(model, z, component, image, params):
    """``f(z) = log p(image, x(z), component) + log |dx/dz|``: the objective of the MAP fit."""
    return _density(model, z, component, image, params).log_density


def _laplace(model, z, component, image, params, occluder_sides):
    """``d/2 log 2 pi - 1/2 log det(P + J^T W J)`` at ``z`` (generalised Gauss-Newton for the likelihood)."""
    flat, unravel = jax.flatten_util.ravel_pytree(z)
    prior = lambda f: _density(model, unravel(f), component, image, params, tempering=(("image",), 0.0)).log_density  # noqa: E731
    rendering = lambda f: _density(model, unravel(f), component, image, params).retval.ravel()  # noqa: E731
    jacobian = jax.jacfwd(rendering)(flat)  # (H*W, d)
    mean = rendering(flat)
    weights = pixels(mean.reshape(image.shape), params, occluder_sides).curvature(image).ravel()
    precision = -jax.hessian(prior)(flat) + jacobian.T @ (weights[:, None] * jacobian)
    _, log_det = linalg.slogdet(precision)
    return 0.5 * flat.shape[0] * jnp.log(2 * jnp.pi) - 0.5 * log_det


def map_hypotheses(key, model, image, params: DigitParams, budget: Budget):
    """MAP fits of ``image (H, W)`` by one class: ``(z, component, log_joint)`` of the kept hypotheses; jittable.

    ``M * budget.restarts`` hypotheses (each template, at the prior pose and at
    ``restarts - 1`` jittered poses of it) take ``steps // 4`` Adam steps; the
    ``budget.keep`` best continue for the remaining steps (all of them when
    ``keep`` is 0 or covers the population). ``z``: their standardised
    coordinates (leading axis: the kept hypotheses); ``log_joint``: ``f(z)``,
    with ``-inf`` for a template's second copy (a template counts once).
    """
    components = params.component_probs.shape[0]
    population = components * budget.restarts
    component = jnp.repeat(jnp.arange(components), budget.restarts)
    jitter = jax.random.normal(key, (population, 6)) * 0.7
    jitter = jitter * (jnp.arange(population) % budget.restarts != 0)[:, None]  # restart 0: the prior mean
    z = {
        "pose": jitter,
        "strokes": jnp.zeros((population,) + params.stroke_mean.shape[1:]),
        "log_width": jnp.zeros(population),
        "ink": jnp.zeros(population),
    }
    optimizer = optax.adam(budget.learning_rate)
    loss = lambda z, m: -_log_joint(model, z, m, image, params)  # noqa: E731

    def optimise(z, state, m, steps):
        def step(carry, _):
            z, state = carry
            updates, state = optimizer.update(jax.grad(loss)(z, m), state, z)
            return (optax.apply_updates(z, updates), state), None

        (z, state), _ = jax.lax.scan(step, (z, state), None, length=steps)
        return z, state

    state = jax.vmap(optimizer.init)(z)
    keep = population if budget.keep <= 0 else min(budget.keep, population)
    screen = budget.steps if keep == population else min(budget.steps, max(1, budget.steps // 4))
    z, state = jax.vmap(functools.partial(optimise, steps=screen))(z, state, component)
    if keep < population:
        score = -jax.vmap(loss)(z, component)
        _, kept = jax.lax.top_k(jnp.where(jnp.isfinite(score), score, -jnp.inf), keep)
        z, state, component = jax.tree_util.tree_map(lambda leaf: leaf[kept], (z, state, component))
        z, state = jax.vmap(functools.partial(optimise, steps=budget.steps - screen))(z, state, component)
    log_joint = -jax.vmap(loss)(z, component)
    log_joint = jnp.where(jnp.isfinite(log_joint), log_joint, -jnp.inf)
    order = jnp.arange(keep)
    better_twin = (component[None, :] == component[:, None]) & (
        (log_joint[None, :] > log_joint[:, None]) | ((log_joint[None, :] == log_joint[:, None]) & (order[None, :] < order[:, None])))
    return z, component, jnp.where(better_twin.any(axis=1), -jnp.inf, log_joint)


def _volume(model, z, component, log_joint, image, params, occluder_sides, laplace: bool):
    """The Laplace volume term at the best of the hypotheses ``z`` (0 without ``laplace``)."""
    if not laplace:
        return jnp.zeros(())
    top = jnp.argmax(log_joint)
    return _laplace(model, jax.tree_util.tree_map(lambda leaf: leaf[top], z), component[top], image, params,
                    occluder_sides)


def fit_strokes(key, model, image, params: DigitParams, budget: Budget, size, supersample,
                occluder_sides: tuple) -> StrokeFit:
    """MAP explanations of ``image (H, W)`` by one class (:func:`map_hypotheses`) with their evidence; jittable.

    Returns a :class:`StrokeFit` with a leading axis of the kept hypotheses;
    each one's ``log_evidence`` is its ``f(z*)`` plus the Laplace volume term
    of the best one (shared: it is the costly part, ``d`` Jacobian columns).
    """
    z, component, log_joint = map_hypotheses(key, model, image, params, budget)
    correction = _volume(model, z, component, log_joint, image, params, occluder_sides, budget.laplace)
    at_mode = jax.vmap(lambda zz, m: _density(model, zz, m, image, params))(z, component)
    latents = {name: at_mode.choices[name] for name in ("component", *LATENTS)}
    # f includes log|dx/dz|; the joint of the choices themselves does not
    return StrokeFit(latents, at_mode.log_density - at_mode.log_det, log_joint + correction, at_mode.retval)


@functools.cache
def evidence_estimator(budget: Budget, size: tuple, supersample: int, occluder_sides: tuple):
    """``estimator(key, model, obs, params) -> (log_evidence, 0.0)`` for ``ppl.infer.classify`` (one object per budget).

    ``size``, ``supersample`` and ``occluder_sides`` are the models' (``DigitModels``): the Laplace term must see
    the same likelihood as ``model``, so there is no default.
    """

    def estimator(key, model, obs, params):
        image = as_choice_map(obs)["image"]
        fits = fit_strokes(key, model, image, params, budget, size, supersample, occluder_sides)
        return jax.nn.logsumexp(fits.log_evidence), jnp.zeros(())

    return estimator


def classify(key, models: DigitModels, images, budget: Any = None, *, chunk_size: int | None = 32):
    """``(N, 10)`` class probabilities of ``images (N, H, W)`` by analysis by synthesis.

    Each class model explains each image (:func:`map_hypotheses`); the Laplace volume term is added for the
    ``budget.contenders`` classes with the best MAP joints. ``budget``: Adam steps per (image, class,
    template), or a :class:`Budget` (default ``Budget()``). Observation ``b`` and class ``k`` use the key
    ``fold_in(fold_in(key, b), k)``, as ``ppl.infer.classify`` does, so an image's answer does not depend on
    its batch; with ``contenders=10`` the evidences are ``ppl.infer.classify``'s with
    :func:`evidence_estimator`. Returns a ``ppl.infer.Classification`` (``.probabilities (N, 10)``,
    ``.log_evidence``, ``.best``; standard errors 0: a deterministic approximation).
    """
    _check_call(key, models, "classify")
    budget = _as_budget(budget)
    images = check_images(images, models.size)
    chunk = None if chunk_size is None else min(int(chunk_size), images.shape[0])
    log_evidence = _classify_program(key, jnp.asarray(images), models.params, budget=budget, size=models.size,
                                     supersample=models.supersample, occluder_sides=models.occluder_sides,
                                     chunk_size=chunk)
    result = Classification.from_log_evidence(tuple(str(c) for c in range(10)), log_evidence,
                                              jnp.zeros_like(log_evidence))
    values = np.asarray(log_evidence)
    if np.isnan(values).any() or not np.isfinite(values).any(axis=-1).all():
        index = int(np.argwhere(~np.isfinite(values).any(axis=-1) | np.isnan(values).any(axis=-1))[0, 0])
        raise InferenceError(f"image {index} got no finite evidence from any class model (NaN or -inf). Check the "
                             "models' parameters (e.g. a prior scale of 0) and the image.")
    return result


@functools.partial(jax.jit, static_argnames=("budget", "size", "supersample", "occluder_sides", "chunk_size"))
def _classify_program(key, images, params, *, budget, size, supersample, occluder_sides, chunk_size):
    model = digit_model(size, supersample, occluder_sides)
    contenders = max(1, min(int(budget.contenders), 10))

    def one_image(image_key, image):
        keys = jax.vmap(lambda k: jax.random.fold_in(image_key, k))(jnp.arange(10))
        z, component, log_joint = jax.vmap(lambda k, p: map_hypotheses(k, model, image, p, budget))(keys, params)
        best = jnp.max(log_joint, axis=1)  # (10,)
        if not budget.laplace:
            return jax.nn.logsumexp(log_joint, axis=1)
        _, leading = jax.lax.top_k(best, contenders)
        pick = lambda tree: jax.tree_util.tree_map(lambda leaf: leaf[leading], tree)  # noqa: E731
        volume = jax.vmap(lambda zz, m, f, p: _volume(model, zz, m, f, image, p, occluder_sides, True))(
            pick(z), pick(component), pick(log_joint), pick(params))
        finite = jnp.isfinite(best[leading]) & jnp.isfinite(volume)  # a contender with no finite fit has no term
        smallest = jnp.min(jnp.where(finite, volume, jnp.inf))
        volume = jnp.where(finite, volume, smallest)
        correction = jnp.full((10,), smallest).at[leading].set(volume)
        return jax.nn.logsumexp(log_joint, axis=1) + correction

    count = images.shape[0]
    keys = jax.vmap(lambda b: jax.random.fold_in(key, b))(jnp.arange(count))
    return chunked_vmap(one_image, (keys, images), count, chunk_size)


@functools.partial(jax.jit, static_argnames=("budget", "size", "supersample", "occluder_sides"))
def _fit_batch(keys, images, params, *, budget, size, supersample, occluder_sides):
    model = digit_model(size, supersample, occluder_sides)
    fits = jax.vmap(lambda k, im, p: fit_strokes(k, model, im, p, budget, size, supersample, occluder_sides))(
        keys, images, params)
    return fits


def _best(fits: StrokeFit) -> StrokeFit:
    """Per image (leading axis), the template with the highest evidence."""
    index = jnp.argmax(fits.log_evidence, axis=-1)
    return jax.tree_util.tree_map(lambda leaf: jnp.take_along_axis(leaf, index.reshape(index.shape + (1,) * (leaf.ndim - 1)), 1)[:, 0], fits)


def fit(key, images, labels, size=None, *, models: DigitModels | None = None, budget: Any = None,
        iterations: int = 1, max_exemplars: int = 5, prototype_weight: float = 1.0,
        exemplar_scale: float = 0.15, prior_strength: float = 2.0) -> DigitModels:
    """Refine the class models from ``k`` labelled examples per class (``k >= 1``).

    Args:
      key: PRNG key.
      images: ``(N, H, W)`` floats in ``[0, 1]``; labels: ``(N,)`` ints 0-9, every class present.
      size: ``(H, W)`` (default: the images'); models: the starting models (default ``prototypes(size)``).
      budget: the MAP effort per example (default ``Budget(steps=60, restarts=3, keep=0)``). iterations: EM passes.
      max_exemplars: templates kept per class besides the prototype (the first ones of each class).
      prototype_weight: prior weight of the prototype template (each exemplar has weight 1).
      exemplar_scale: prior sd of the vertices around an exemplar template.
      prior_strength: pseudo-count of the old pose / pen / ink prior against the examples.

    Returns:
      :class:`DigitModels` with ``1 + min(max k, max_exemplars)`` templates per class.
    """
    if models is None:
        check_key(key, "digits.fit")
    else:
        _check_call(key, models, "fit")
    images = check_images(images)
    size = tuple(images.shape[1:]) if size is None else tuple(size)
    images = check_images(images, size)
    labels = check_labels(labels, images.shape[0])
    missing = sorted(set(range(10)) - set(labels.tolist()))
    if missing:
        raise ShapeError(f"fit needs at least one example of every class 0-9; none of {missing}. "
                         "Add examples of those classes (k >= 1 per class).")
    base = prototypes(size) if models is None else models
    if tuple(base.size) != size:
        raise ShapeError(f"the starting models are for {base.size} images, the examples are {size}.")
    budget = CAREFUL if budget is None else _as_budget(budget)
    current = base
    for iteration in range(iterations):
        keys = jax.random.split(jax.random.fold_in(key, iteration), images.shape[0])
        per_image = jax.tree_util.tree_map(lambda leaf: leaf[labels], current.params)
        fits = _best(_fit_batch(keys, jnp.asarray(images), per_image, budget=budget, size=size,
                                supersample=current.supersample, occluder_sides=current.occluder_sides))
        current = _update(base, fits, labels, max_exemplars, prototype_weight, exemplar_scale, prior_strength)
    return current


def _update(base: DigitModels, fits: StrokeFit, labels, max_exemplars, prototype_weight, exemplar_scale,
            strength) -> DigitModels:
    """New class models from the examples' fitted latents (numpy; small)."""
    p = jax.tree_util.tree_map(np.asarray, base.params)
    x = jax.tree_util.tree_map(np.asarray, fits.choices)
    counts = np.bincount(labels, minlength=10)
    templates = 1 + min(int(counts.max()), max_exemplars)
    stroke_mean = np.repeat(p.stroke_mean[:, :1], templates, axis=1).copy()
    stroke_scale = np.full((10, templates), exemplar_scale, np.float32)
    stroke_scale[:, 0] = p.stroke_scale[:, 0]
    probs = np.zeros((10, templates), np.float32)
    pose_mean, pose_scale = p.pose_mean.copy(), p.pose_scale.copy()
    width_mean, width_scale, ink_mean, ink_scale = (a.copy() for a in (p.width_mean, p.width_scale, p.ink_mean, p.ink_scale))

    def shrink(prior_mean, prior_scale, values):
        n = values.shape[0]
        mean = (strength * prior_mean + values.sum(0)) / (strength + n)
        var = (strength * prior_scale**2 + ((values - mean) ** 2).sum(0)) / (strength + n)
        return mean, np.sqrt(var)

    for c in range(10):
        mine = np.flatnonzero(labels == c)
        kept = mine[:max_exemplars]
        stroke_mean[c, 1 : 1 + len(kept)] = x["strokes"][kept]
        probs[c, 0] = prototype_weight
        probs[c, 1 : 1 + len(kept)] = 1.0
        probs[c] /= probs[c].sum()
        pose_mean[c], pose_scale[c] = shrink(p.pose_mean[c], p.pose_scale[c], x["pose"][mine])
        width_mean[c], width_scale[c] = shrink(p.width_mean[c], p.width_scale[c], x["log_width"][mine])
        ink_mean[c], ink_scale[c] = shrink(p.ink_mean[c], p.ink_scale[c], x["ink"][mine])
    params = p._replace(
        component_probs=probs, stroke_mean=stroke_mean.astype(np.float32), stroke_scale=stroke_scale,
        pose_mean=pose_mean, pose_scale=pose_scale, width_mean=width_mean,
        width_scale=width_scale, ink_mean=ink_mean, ink_scale=ink_scale,
    )
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    return DigitModels(params, base.size, base.supersample, base.occluder_sides)


def explain(key, models: DigitModels, image, budget: Any = None) -> StrokeFit:
    """Every class's best explanation of one ``image (H, W)``: a :class:`StrokeFit` with a leading axis of 10.

    ``budget`` defaults to ``Budget(steps=60, restarts=3, keep=0)``.
    ``fit.choices['strokes'][c]`` are class ``c``'s fitted strokes (canonical
    frame; ``stdlib.digits.place_strokes`` maps them to the canvas),
    ``fit.rendering[c]`` its reconstruction, ``fit.log_evidence[c]`` its score.
    """
    _check_call(key, models, "explain")
    image = check_images(image, models.size, single=True)
    budget = CAREFUL if budget is None else _as_budget(budget)
    keys = jax.random.split(key, 10)
    images = jnp.broadcast_to(jnp.asarray(image), (10,) + image.shape)
    return _best(_fit_batch(keys, images, models.params, budget=budget, size=models.size, supersample=models.supersample,
                            occluder_sides=models.occluder_sides))


def plot_explanation(image, explanation: StrokeFit, models: DigitModels, path=None, classes=None):
    """Figure: the image, then per class its fitted strokes over the image and the reconstruction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = range(10) if classes is None else classes
    classes = list(classes)
    height, width = models.size
    evidence = np.asarray(explanation.log_evidence)
    posterior = np.exp(evidence - evidence.max())
    posterior /= posterior.sum()
    fig, axes = plt.subplots(2, len(classes) + 1, figsize=(1.4 * (len(classes) + 1), 3.0))
    for row in range(2):
        axes[row, 0].imshow(np.asarray(image), cmap="gray_r", vmin=0, vmax=1)
        axes[row, 0].set_title("image" if row == 0 else "", fontsize=8)
    for i, c in enumerate(classes):
        strokes = np.asarray(explanation.choices["strokes"][c])
        pose = explanation.choices["pose"][c]
        mask = np.asarray(models.params.stroke_mask[c])
        ax = axes[0, i + 1]
        ax.imshow(np.asarray(image), cmap="gray_r", vmin=0, vmax=1, alpha=0.5)
        for s in range(strokes.shape[0]):
            if mask[s] > 0:
                canvas = np.asarray(place_strokes(jnp.asarray(strokes[s]), pose, models.size)) * height - 0.5
                ax.plot(canvas[:, 0], canvas[:, 1], "-o", lw=1.5, ms=2)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_title(f"{c}: p={posterior[c]:.2f}", fontsize=8)
        axes[1, i + 1].imshow(np.asarray(explanation.rendering[c]), cmap="gray_r", vmin=0, vmax=1)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig
