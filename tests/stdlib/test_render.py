"""stdlib.render: soft rasterisation primitives and painters.

Areas: for a convex shape of area A the summed sigmoid coverage over the plane
is A + pi^3 s^2 / 3 exactly (s = softness; the sigmoid is symmetric about the
edge, and Steiner's formula gives the second-order term), so the pixel sums are
compared with that up to the pixel-sampling error.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl.errors import ShapeError
from stdlib import render

SIZE = 32
POINTS = ppl.pixel_centres((SIZE, SIZE))
PIXEL = 1.0 / SIZE
SOFTNESS = 0.5 * PIXEL  # what ppl.render uses by default (softness=0.5 pixels)
BLUR = np.pi**3 * SOFTNESS**2 / 3  # extra summed coverage of any convex shape


def area(alpha):
    return float(jnp.sum(alpha)) * PIXEL**2


TRIANGLE = jnp.array([[0.2, 0.2], [0.8, 0.3], [0.4, 0.9]])
CURVE = jnp.array([[0.2, 0.6], [0.5, 0.1], [0.8, 0.6]])

# (name, coverage function of params, params, exact area or None)
SHAPES = {
    "disc": (lambda p: render.soft_disc(POINTS, p["c"], p["r"], SOFTNESS), {"c": jnp.array([0.5, 0.5]), "r": jnp.array(0.25)}, np.pi * 0.25**2),
    "ellipse": (
        lambda p: render.soft_ellipse(POINTS, p["c"], p["radii"], p["angle"], SOFTNESS),
        {"c": jnp.array([0.5, 0.5]), "radii": jnp.array([0.3, 0.15]), "angle": jnp.array(0.4)},
        np.pi * 0.3 * 0.15,
    ),
    "box": (
        lambda p: render.coverage(render.box_distance(POINTS, p["c"], p["half"], p["angle"]), SOFTNESS),
        {"c": jnp.array([0.5, 0.5]), "half": jnp.array([0.25, 0.15]), "angle": jnp.array(0.3)},
        0.5 * 0.3,
    ),
    "triangle": (lambda p: render.soft_polygon(POINTS, p["v"], SOFTNESS), {"v": TRIANGLE}, 0.2),
    "segment": (
        lambda p: render.soft_stroke(POINTS, p["v"], p["w"], SOFTNESS),
        {"v": jnp.array([[0.2, 0.5], [0.8, 0.5]]), "w": jnp.array(0.1)},
        0.6 * 0.1 + np.pi * 0.05**2,  # a capsule: rectangle plus two half discs
    ),
    "quadratic": (
        lambda p: render.soft_stroke(POINTS, render.bezier_spline(p["v"], 2), p["w"], SOFTNESS),
        {"v": CURVE, "w": jnp.array(0.05)},
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_coverage_in_unit_interval_with_finite_gradients(name):
    fn, params, _ = SHAPES[name]
    alpha = jax.jit(fn)(params)
    assert alpha.shape == (SIZE, SIZE)
    assert float(alpha.min()) >= 0.0 and float(alpha.max()) <= 1.0
    assert float(alpha.max()) > 0.8  # the shape is really drawn (thin strokes are not opaque)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(fn(p) * jnp.linspace(0.0, 1.0, SIZE))))(params)
    for key, grad in grads.items():
        assert np.all(np.isfinite(np.asarray(grad))), key
        assert float(jnp.max(jnp.abs(grad))) > 0.0, f"{name}: no gradient reaches '{key}'"


@pytest.mark.parametrize("name", ["disc", "ellipse", "box", "triangle", "segment"])
def test_summed_coverage_is_the_area(name):
    fn, params, exact = SHAPES[name]
    # disc and capsule are exact up to sampling; the ellipse distance is first
    # order; polygon corners shrink faster inside than Steiner's smooth term
    tolerance = {"disc": 0.002, "segment": 0.01, "box": 0.01, "ellipse": 0.01, "triangle": 0.02}[name]
    np.testing.assert_allclose(area(jax.jit(fn)(params)), exact + BLUR, rtol=tolerance)


def test_disc_area_is_resolution_independent():
    disc = render.Disc(centre=jnp.array([0.5, 0.5]), radius=0.3)
    for size in (16, 48):
        canvas = jax.jit(lambda d: ppl.render(d, (size, size), softness=0.5))(disc)
        blur = np.pi**3 * (0.5 / size) ** 2 / 3
        np.testing.assert_allclose(float(canvas.sum()) / size**2, np.pi * 0.09 + blur, rtol=3e-3)


def test_signed_distances_known_values():
    p = jnp.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(render.disc_distance(p, jnp.zeros(2), 1.0), [-1.0, 4.0, 0.0], atol=1e-5)
    # an ellipse with equal radii is a circle: the approximation is exact
    np.testing.assert_allclose(render.ellipse_distance(p, jnp.zeros(2), jnp.array([1.0, 1.0])), [-1.0, 4.0, 0.0], atol=1e-5)
    # on the boundary of a true ellipse the distance is 0; at the centre -min(radii)
    boundary = jnp.array([[2.0, 0.0], [0.0, 0.5], [2 * np.cos(1.0), 0.5 * np.sin(1.0)]])
    np.testing.assert_allclose(render.ellipse_distance(boundary, jnp.zeros(2), jnp.array([2.0, 0.5])), 0.0, atol=1e-5)
    assert float(render.ellipse_distance(jnp.zeros(2), jnp.zeros(2), jnp.array([2.0, 0.5]))) == pytest.approx(-0.5)
    box = render.box_distance(jnp.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.5, 0.0]]), jnp.zeros(2), jnp.array([1.0, 1.0]))
    np.testing.assert_allclose(box, [-1.0, 1.0, np.sqrt(2.0), -0.5], atol=1e-5)
    seg = render.segment_distance(jnp.array([[0.5, 1.0], [-1.0, 0.0], [2.0, 0.0]]), jnp.zeros(2), jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(seg, [1.0, 1.0, 1.0], atol=1e-5)


@pytest.mark.parametrize("winding", [1, -1])
def test_polygon_distance_sign_and_value_either_winding(winding):
    square = jnp.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])[::winding]
    p = jnp.array([[0.5, 0.5], [0.5, 0.1], [1.5, 0.5], [2.0, 2.0]])
    np.testing.assert_allclose(render.polygon_distance(p, square), [-0.5, -0.1, 0.5, np.sqrt(2.0)], atol=1e-5)


def test_gradients_are_finite_at_degenerate_points():
    centre = POINTS[5, 7]  # exactly on a pixel centre: |p - c| = 0 there
    checks = {
        "disc": lambda c: render.soft_disc(POINTS, c, 0.2, SOFTNESS),
        "ellipse": lambda c: render.soft_ellipse(POINTS, c, jnp.array([0.2, 0.1]), 0.0, SOFTNESS),
        "dot stroke": lambda c: render.soft_stroke(POINTS, jnp.stack([c, c]), 0.1, SOFTNESS),
        "polygon": lambda c: render.soft_polygon(POINTS, jnp.stack([c, POINTS[20, 7], POINTS[5, 20]]), SOFTNESS),
    }
    for name, fn in checks.items():
        grad = jax.jit(jax.grad(lambda c: jnp.sum(fn(c) ** 2)))(centre)
        assert np.all(np.isfinite(np.asarray(grad))), name


def test_stroke_gradient_matches_finite_differences():
    """Every stroke parameter, against central differences in float64."""
    with jax.enable_x64(True):
        points = ppl.pixel_centres((12, 12)).astype(jnp.float64)
        weights = jnp.cos(jnp.arange(144.0).reshape(12, 12))

        @jax.jit
        def loss(params):
            stroke = render.Stroke(control=params["control"], width=params["width"], ink=params["ink"], degree=2)
            _, alpha = stroke.paint(points, 0.05)
            return jnp.sum(alpha * weights)

        params = {"control": jnp.array(CURVE, jnp.float64), "width": jnp.array(0.12), "ink": jnp.array(0.8)}
        grad = jax.grad(loss)(params)
        eps = 1e-6
        for key, value in params.items():
            flat = np.asarray(value, np.float64).ravel()
            for i in range(flat.size):
                step = np.zeros_like(flat)
                step[i] = eps
                up = dict(params, **{key: jnp.asarray((flat + step).reshape(np.shape(value)))})
                down = dict(params, **{key: jnp.asarray((flat - step).reshape(np.shape(value)))})
                numeric = (loss(up) - loss(down)) / (2 * eps)
                np.testing.assert_allclose(np.asarray(grad[key]).ravel()[i], numeric, rtol=1e-5, atol=1e-7)


def test_bezier_curves():
    p0, p1, p2 = CURVE
    curve = render.bezier_curve(CURVE, samples=3)
    np.testing.assert_allclose(curve, jnp.stack([p0, (p0 + 2 * p1 + p2) / 4, p2]), atol=1e-6)
    cubic = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(render.bezier_curve(cubic, samples=3)[1], [0.5, 0.75], atol=1e-6)
    # a two-segment quadratic spline passes through its shared end points
    spline = render.bezier_spline(jnp.concatenate([CURVE, CURVE[1:] + 0.1]), degree=2, samples=5)
    assert spline.shape == (9, 2)
    np.testing.assert_allclose(spline[jnp.array([0, 4, 8])], jnp.stack([CURVE[0], CURVE[2], CURVE[2] + 0.1]), atol=1e-6)
    # batched: (strokes, control points, 2)
    assert render.bezier_curve(jnp.stack([CURVE, CURVE + 1.0]), samples=7).shape == (2, 7, 2)


def test_vmap_over_strokes_and_images_matches_loop():
    controls = jnp.stack([CURVE, CURVE[::-1] + 0.05, CURVE * 0.8])  # 3 strokes
    widths = jnp.array([0.05, 0.08, 0.1])
    one = lambda c, w: render.soft_stroke(POINTS, render.bezier_spline(c, 2), w, SOFTNESS)
    batched = jax.jit(jax.vmap(one))(controls, widths)
    single = jax.jit(one)
    for i in range(3):
        np.testing.assert_allclose(batched[i], single(controls[i], widths[i]), atol=1e-6)
    images = jax.jit(jax.vmap(jax.vmap(one)))(jnp.stack([controls, controls + 0.1]), jnp.stack([widths, widths]))
    assert images.shape == (2, 3, SIZE, SIZE)
    ink = render.union(images, axis=1)
    assert float(ink.min()) >= 0.0 and float(ink.max()) <= 1.0
    np.testing.assert_allclose(ink[0], 1 - (1 - batched[0]) * (1 - batched[1]) * (1 - batched[2]), atol=1e-6)


def test_painters_render_in_scenes_with_colour():
    red = jnp.array([1.0, 0.0, 0.0])
    parts = (
        render.Rectangle(centre=jnp.array([0.5, 0.5]), size=jnp.array([0.8, 0.8]), colour=red),
        render.Disc(centre=jnp.array([0.5, 0.5]), radius=0.2),
    )
    canvas = jax.jit(lambda p: ppl.render(p, (32, 32), channels=3))(parts)
    np.testing.assert_allclose(canvas[16, 16], [1.0, 1.0, 1.0], atol=5e-3)  # the grey disc on top
    np.testing.assert_allclose(canvas[6, 16], [1.0, 0.0, 0.0], atol=5e-3)  # red rectangle around it
    np.testing.assert_allclose(canvas[0, 0], [0.0, 0.0, 0.0], atol=5e-3)
    ink = render.Stroke(control=jnp.array([[0.1, 0.5], [0.9, 0.5]]), width=0.4, ink=0.6)
    # pixel row 8 is centred 1/32 below the stroke's axis; softness 0.5 px = 1/32
    expected = 0.6 * jax.nn.sigmoid((0.2 - 1 / 32) / (1 / 32))
    assert float(jax.jit(lambda p: ppl.render(p, (16, 16)))(ink)[8, 8, 0]) == pytest.approx(float(expected), abs=1e-5)


def test_bad_shapes_raise():
    with pytest.raises(ShapeError, match="m \\* 2 \\+ 1 control points"):
        render.bezier_spline(jnp.zeros((4, 2)), degree=2)
    with pytest.raises(ShapeError, match="n >= 3"):
        render.polygon_distance(POINTS, jnp.zeros((2, 2)))
    with pytest.raises(ShapeError, match="n >= 2"):
        render.polyline_distance(POINTS, jnp.zeros((1, 2)))
    with pytest.raises(ShapeError, match="colour"):
        render.Disc(centre=jnp.zeros(2), radius=0.1, colour=jnp.ones((2, 2))).paint(POINTS, SOFTNESS)


@pytest.mark.slow  # compile-bound (8-20 s); keeps the default run under 10 min on 2 cores
def test_gaussian_pen_is_a_line_integral():
    """A straight stroke has density 1 on its axis, and total ink sqrt(2 pi) sigma * length (in canvas units)."""
    size, width = (64, 64), 0.1
    line = jnp.array([[[0.2, 0.5], [0.5, 0.5], [0.8, 0.5]]])  # one stroke, two segments
    density = jax.jit(lambda v: render.gaussian_pen(v, width, size, dabs=16))(line)
    assert density.shape == size
    sigma = width / 3.42
    # pixel rows 31, 32 straddle the axis y = 0.5; their average of the Gaussian profile, 1/128 off-axis
    np.testing.assert_allclose(float(density[31:33, 24:40].mean()), np.exp(-0.5 * (1 / 128 / sigma) ** 2), rtol=0.02)
    total = float(density.sum()) / (size[0] * size[1])
    np.testing.assert_allclose(total, np.sqrt(2 * np.pi) * sigma * 0.6, rtol=1e-3)
    # weights scale strokes (0 removes one); gradients reach every vertex
    two = jnp.concatenate([line, line + 0.1])
    only_first = render.gaussian_pen(two, width, size, weights=jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(only_first, render.gaussian_pen(line, width, size), atol=1e-6)
    pattern = jnp.cos(0.37 * jnp.arange(64.0 * 64.0)).reshape(size)
    grad = jax.grad(lambda v: jnp.sum(render.gaussian_pen(v, width, size) * pattern))(line)
    assert np.all(np.abs(np.asarray(grad)) > 0)
