"""Spatial composition: place, relations, many, scene and the compositing renderer.

Canvases are 16x16 so compiles stay small; models are defined once at module
level so compiled programs are shared between tests.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ppl
from ppl import dist
from ppl.errors import CompositionError
from ppl.testing import check_interface, check_vmap_matches_loop

SIZE = (16, 16)


@ppl.painter
class Dot:
    """A soft disc of ``radius`` at the local origin, grey level ``brightness``."""

    radius: Any
    brightness: Any

    def paint(self, points, softness):
        distance = jnp.sqrt(jnp.sum(points**2, axis=-1) + 1e-12) - self.radius
        alpha = jax.nn.sigmoid(-distance / softness)
        return jnp.broadcast_to(self.brightness, alpha.shape)[..., None], alpha


@ppl.painter
class Flat:
    """The same colour and coverage everywhere (for checking blend formulas)."""

    colour: Any
    alpha: Any

    def paint(self, points, softness):
        shape = points.shape[:-1]
        return jnp.broadcast_to(jnp.atleast_1d(self.colour), shape + (jnp.size(self.colour),)), jnp.full(shape, self.alpha)


@ppl.model
def dot():
    radius = ppl.sample("radius", dist.Uniform(0.3, 0.5))
    brightness = ppl.sample("brightness", dist.Uniform(0.5, 1.0))
    return Dot(radius, brightness)


@ppl.model
def not_a_painter():
    return ppl.sample("x", dist.Normal(0.0, 1.0))


AT = dist.Uniform(0.2, 0.8).expand([2]).to_event(1)
PLACED = ppl.place(dot, at=AT, scale=dist.LogNormal(jnp.log(0.3), 0.2), angle=dist.Normal(0.0, 0.5))
FIXED = ppl.place(dot, at=jnp.array([0.3, 0.7]), scale=0.2)
SPRITE = ppl.Sprite(jnp.linspace(0.0, 1.0, 12).reshape(3, 4, 1))

SCENE = ppl.scene(PLACED, FIXED, ppl.place(SPRITE, at=jnp.array([0.7, 0.3]), scale=0.3), size=SIZE, noise=0.1)
BESIDE = ppl.beside(PLACED, dot)
ABOVE = ppl.above(PLACED, ppl.place(dot, scale=dist.Uniform(0.5, 1.0)))
INSIDE = ppl.inside(dot, PLACED)
RELATED = ppl.scene(BESIDE, ppl.inside(dot, FIXED), size=SIZE, noise=0.1)
COUNTED = ppl.scene(PLACED, size=SIZE, max_parts=3, count=dist.Categorical(jnp.array([0.1, 0.2, 0.3, 0.4])), noise=0.1)
MIXED = ppl.scene(
    SPRITE,
    ppl.many(PLACED, 3, count=dist.DiscreteUniform(1, 3)),
    extra=FIXED,
    size=SIZE,
    blend="max",
    noise=lambda canvas: dist.Normal(canvas, 0.2).to_event(3),
)
SUMMED = ppl.scene(PLACED, ppl.above(FIXED, dot), size=SIZE, blend="sum", channels=3, background=jnp.array([0.1, 0.2, 0.3]), noise=0.1)

# (model, a change to one continuous or discrete choice)
MODELS = {
    "place": (PLACED, {"at": jnp.array([0.4, 0.6])}),
    "beside": (BESIDE, {"gap": jnp.array(1.2)}),
    "above": (ABOVE, {"bottom/scale": jnp.array(0.7)}),
    "inside": (INSIDE, {"scale": jnp.array(0.5)}),
    "scene": (SCENE, {"0/angle": jnp.array(0.3)}),
    "related": (RELATED, {"0/left/part/radius": jnp.array(0.4)}),
    "counted": (COUNTED, {"count": jnp.array(2)}),
    "mixed": (MIXED, {"1/count": jnp.array(3)}),
    "summed": (SUMMED, {"1/gap": jnp.array(1.1)}),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_interface_is_consistent(name):
    model, changes = MODELS[name]
    check_interface(model, (), changes=changes)


# every combinator at once: place, a relation, many, scene (the relations share one code path)
EVERYTHING = ppl.scene(ppl.many(INSIDE, 2), size=SIZE)


@pytest.mark.parametrize("model", [EVERYTHING, COUNTED], ids=["everything", "counted"])
def test_vmap_matches_loop(model):
    check_vmap_matches_loop(model, (), jax.random.key(1), n=6, loop=1)


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("blend", ["over", "max", "sum"])
def test_blend_formulas_and_masking(blend):
    c1, a1, c2, a2, bg = 0.8, 0.5, 0.3, 0.6, 0.2
    stack = ppl.Layers(Flat(jnp.array([[0.9], [0.7]]), jnp.array([1.0, 1.0])), jnp.array([False, False]))
    canvas = ppl.render((Flat(c1, a1), stack, Flat(c2, a2)), (2, 3), blend=blend, background=bg)
    expected = {
        "over": c2 * a2 + (c1 * a1 + bg * (1 - a1)) * (1 - a2),
        "max": max(bg, c1 * a1, c2 * a2),
        "sum": bg + c1 * a1 + c2 * a2,
    }[blend]
    np.testing.assert_allclose(canvas, np.full((2, 3, 1), expected), atol=1e-6)
    # an active layer in the stack does count
    stack = ppl.Layers(stack.painters, jnp.array([False, True]))
    canvas = ppl.render((Flat(c1, a1), stack), (2, 3), blend=blend, background=bg)
    expected = {"over": 0.7, "max": 0.7, "sum": bg + c1 * a1 + 0.7}[blend]
    np.testing.assert_allclose(canvas, np.full((2, 3, 1), expected), atol=1e-6)


@ppl.painter
class Kinded:
    """A disc or a square by a traced ``kind`` (``lax.switch``), painted one layer at a time."""

    kind: Any
    centre: Any
    branching = True

    def paint(self, points, softness):
        distance = [lambda p: jnp.linalg.norm(p - self.centre, axis=-1) - 0.2,
                    lambda p: jnp.max(jnp.abs(p - self.centre), axis=-1) - 0.2]
        alpha = jax.nn.sigmoid(-jax.lax.switch(self.kind, distance, points) / softness)
        return jnp.ones(alpha.shape + (1,)), alpha


@ppl.painter
class KindedBatched(Kinded):
    branching = False


def test_branching_layers_render_as_under_vmap_and_differentiate():
    """A branching painter's layers are painted one at a time (each runs its own branch); the canvas and its
    gradient are those of the vmapped path, under jit and under an outer vmap."""
    kinds, centres = jnp.array([0, 1, 0]), jnp.array([[0.3, 0.3], [0.6, 0.5], [0.4, 0.7]])
    active = jnp.array([True, True, False])

    def canvas(cls, centres):
        return ppl.render(ppl.Layers(cls(kinds, centres), active), (8, 8))

    program = lambda cls: str(jax.make_jaxpr(lambda c: canvas(cls, c))(centres))  # noqa: E731
    assert program(Kinded).count("cond[") == 3 and "cond[" not in program(KindedBatched)  # a branch per layer
    np.testing.assert_allclose(jax.jit(canvas, static_argnums=0)(Kinded, centres),
                               canvas(KindedBatched, centres), atol=1e-6)
    gradient = lambda cls: jax.grad(lambda c: jnp.sum(canvas(cls, c) ** 2))(centres)  # noqa: E731
    np.testing.assert_allclose(gradient(Kinded), gradient(KindedBatched), atol=1e-5)
    shifted = jnp.stack([centres, centres + 0.05])
    np.testing.assert_allclose(jax.vmap(lambda c: canvas(Kinded, c))(shifted),
                               jax.vmap(lambda c: canvas(KindedBatched, c))(shifted), atol=1e-6)


def test_coordinates_x_right_y_down():
    canvas = ppl.render(ppl.Placed(Dot(0.5, 1.0), ppl.Pose(jnp.array([0.25, 0.75]), 0.1, 0.0)), SIZE)
    row, col = np.unravel_index(int(jnp.argmax(canvas[..., 0])), SIZE)
    assert (row, col) in {(11, 3), (11, 4), (12, 3), (12, 4)}  # y = 0.75 is row 11.5, x = 0.25 column 3.5
    np.testing.assert_allclose(ppl.pixel_centres((2, 4))[1, 3], [7 / 8, 3 / 4])


def test_non_square_canvas_stretches_the_unit_square():
    centred = ppl.Placed(Dot(0.2, 1.0), ppl.Pose(jnp.array([0.5, 0.5]), 1.0, 0.0))
    canvas = ppl.render(centred, (8, 16))  # the canvas is the unit square whatever its shape
    assert canvas.shape == (8, 16, 1)
    np.testing.assert_allclose(canvas, canvas[::-1], atol=1e-6)  # centred: symmetric both ways
    np.testing.assert_allclose(canvas, canvas[:, ::-1], atol=1e-6)
    # pixel (0, 0) is centred at (x, y) = (0.5 / 16, 0.5 / 8); softness 0.5 px = 0.5 / sqrt(8 * 16)
    distance = np.hypot(0.5 - 1 / 32, 0.5 - 1 / 16) - 0.2
    assert float(canvas[0, 0, 0]) == pytest.approx(1 / (1 + np.exp(distance / (0.5 / np.sqrt(128)))), abs=1e-6)


def test_pose_rotation_direction_and_composition():
    quarter = ppl.Pose(jnp.zeros(2), jnp.array(1.0), jnp.array(np.pi / 2))
    np.testing.assert_allclose(quarter.to_canvas(jnp.array([1.0, 0.0])), [0.0, 1.0], atol=1e-6)  # +x turns to +y (down)
    outer = ppl.Pose(jnp.array([0.6, 0.4]), jnp.array(0.5), jnp.array(0.7))
    inner = ppl.Pose(jnp.array([0.2, -0.1]), jnp.array(0.3), jnp.array(-0.4))
    points = ppl.pixel_centres(SIZE)
    np.testing.assert_allclose(outer.to_local(outer.to_canvas(points)), points, atol=1e-5)
    paint = jax.jit(lambda placed: placed.paint(points, 0.01))
    nested = paint(ppl.Placed(ppl.Placed(SPRITE, inner), outer))
    composed = paint(ppl.Placed(SPRITE, outer.compose(inner)))
    for a, b in zip(nested, composed):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_sprite_at_native_resolution_reproduces_its_image():
    image = jax.random.uniform(jax.random.key(3), SIZE + (3,))
    placed = ppl.Placed(ppl.Sprite(image), ppl.Pose(jnp.array([0.5, 0.5]), 1.0, 0.0))
    # pixel centres of canvas and sprite coincide; a sharp edge keeps the border opaque
    canvas = ppl.render(placed, SIZE, channels=3, softness=0.05)
    np.testing.assert_allclose(canvas, image, atol=1e-4)
    # an alpha map multiplies the coverage
    half = ppl.Placed(ppl.Sprite(image, alpha=jnp.full(SIZE, 0.5)), placed.pose)
    np.testing.assert_allclose(ppl.render(half, SIZE, channels=3, softness=0.05, background=1.0), 0.5 * image + 0.5, atol=1e-4)


def test_scene_score_is_parts_plus_image():
    trace = SCENE.simulate(jax.random.key(4))
    choices = trace.choices
    parts = sum(
        model.assess(choices[address]).log_density for address, model in (("0", PLACED), ("1", FIXED))
    )
    image = dist.Normal(trace.retval, 0.1).to_event(3).log_prob(choices["image"])
    np.testing.assert_allclose(SCENE.assess(choices).log_density, parts + image, rtol=1e-5)
    assert choices.addresses() == ("0/angle", "0/at", "0/part/brightness", "0/part/radius", "0/scale", "1/part/brightness", "1/part/radius", "image")


def test_many_draws_active_copies_and_scores_every_copy():
    trace = COUNTED.simulate(jax.random.key(5))
    choices = trace.choices
    stacked = jax.tree_util.tree_map(lambda x: x, choices["parts"])
    copies = [jax.tree_util.tree_map(lambda x: x[k], stacked) for k in range(3)]
    painters = [PLACED.assess(copy).retval for copy in copies]
    for count in range(4):
        fixed = choices.set("count", jnp.array(count))
        log_density, canvas = COUNTED.assess(fixed)
        expected = ppl.render(tuple(painters[:count]), SIZE) if count else jnp.zeros(SIZE + (1,))
        np.testing.assert_allclose(canvas, expected, atol=1e-5)
        every_copy = sum(PLACED.assess(copy).log_density for copy in copies)
        prior = jnp.log(jnp.array([0.1, 0.2, 0.3, 0.4])[count])
        image = dist.Normal(canvas, 0.1).to_event(3).log_prob(choices["image"])
        np.testing.assert_allclose(log_density, prior + every_copy + image, rtol=1e-5)
    assert choices["parts/at"].shape == (3, 2) and choices["parts/part/radius"].shape == (3,)


def test_unknown_count_compiles_once():
    traced = []

    @jax.jit
    def log_density(choices):
        traced.append(1)
        return COUNTED.assess(choices).log_density

    choices = COUNTED.simulate(jax.random.key(6)).choices
    values = [float(log_density(choices.set("count", jnp.array(n, jnp.int32)))) for n in range(4)]
    assert len(traced) == 1 and len(set(values)) == 4


def test_relations_place_the_second_part_in_the_first_ones_frame():
    fixed_beside = ppl.beside(PLACED, dot, gap=1.2, shift=-0.1)
    left, right = fixed_beside.simulate(jax.random.key(7)).retval
    pose = left.pose
    rotation = np.array([[np.cos(pose.angle), -np.sin(pose.angle)], [np.sin(pose.angle), np.cos(pose.angle)]])
    np.testing.assert_allclose(right.pose.at, pose.at + pose.scale * rotation @ np.array([1.2, -0.1]), atol=1e-5)
    np.testing.assert_allclose([right.pose.scale, right.pose.angle], [pose.scale, pose.angle], atol=1e-6)
    top, bottom = ppl.above(FIXED, dot, gap=1.5, shift=0.0).simulate(jax.random.key(8)).retval
    np.testing.assert_allclose(bottom.pose.at, [0.3, 0.7 + 0.2 * 1.5], atol=1e-6)  # below: larger y
    outer, inner = INSIDE.simulate(jax.random.key(9)).retval
    trace = INSIDE.simulate(jax.random.key(9))
    np.testing.assert_allclose(inner.pose.scale, outer.pose.scale * trace.choices["scale"], rtol=1e-6)
    # chains nest: x, then y right of x, then z right of y
    row = ppl.beside(FIXED, ppl.beside(dot, dot, gap=1.0, shift=0.0), gap=1.0, shift=0.0)
    x, (y, z) = row.simulate(jax.random.key(10)).retval
    np.testing.assert_allclose(jnp.stack([y.pose.at, z.painter.pose.at]), [[0.5, 0.7], [1.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(ppl.Pose.compose(y.pose, z.painter.pose).at, [0.7, 0.7], atol=1e-6)


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------


def test_scene_gradient_matches_finite_differences():
    """d log p / d (every pose and part parameter of every copy), against central
    differences in float64, through many + place + scene rendering."""
    model = COUNTED
    choices = model.simulate(jax.random.key(11)).choices
    with jax.enable_x64(True):
        choices = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, choices)
        choices = choices.set("count", jnp.array(2))
        continuous = [a for a in choices.addresses() if a not in ("image", "count")]
        log_density = jax.jit(lambda c: model.assess(c).log_density)
        grad = jax.jit(jax.grad(lambda c: model.assess(c).log_density, allow_int=True))(choices)
        eps = 1e-6
        for address in continuous:
            value = np.asarray(choices[address], np.float64)
            for index in np.ndindex(value.shape):
                step = np.zeros_like(value)
                step[index] = eps
                up = log_density(choices.set(address, jnp.asarray(value + step)))
                down = log_density(choices.set(address, jnp.asarray(value - step)))
                numeric = (up - down) / (2 * eps)
                analytic = np.asarray(grad[address])[index]
                np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6, err_msg=f"{address}{index}")


def test_gradient_map_recovers_a_position():
    """Observing the noiseless canvas, the log density (flat prior on 'at') peaks
    at the true position; gradient ascent from 1 pixel away must reach it."""
    trace = SCENE.simulate(jax.random.key(12))
    truth = trace.choices.set("image", trace.retval)
    start = truth["0/at"] + jnp.array([0.06, -0.05])
    optimiser = optax.adam(0.01)

    @jax.jit
    def fit(at):
        loss = lambda at: -SCENE.assess(truth.set("0/at", at)).log_density  # noqa: E731

        def step(state, _):
            at, opt = state
            updates, opt = optimiser.update(jax.grad(loss)(at), opt)
            return (optax.apply_updates(at, updates), opt), None

        (at, _), _ = jax.lax.scan(step, (at, optimiser.init(at)), None, length=150)
        return at

    np.testing.assert_allclose(fit(start), truth["0/at"], atol=2e-3)


# ---------------------------------------------------------------------------
# Misuse: a clear CompositionError for each
# ---------------------------------------------------------------------------

BAD_BUILDS = {
    "size": (lambda: ppl.scene(PLACED, size=(16,)), "size must be \\(H, W\\)"),
    "blend": (lambda: ppl.scene(PLACED, size=SIZE, blend="add"), "blend must be one of"),
    "channels": (lambda: ppl.scene(PLACED, size=SIZE, channels=0), "channels must be a positive integer"),
    "softness": (lambda: ppl.scene(PLACED, size=SIZE, softness=0.0), "softness must be a positive"),
    "background": (lambda: ppl.scene(PLACED, size=SIZE, channels=3, background=jnp.zeros(2)), "background must be"),
    "no parts": (lambda: ppl.scene(size=SIZE), "at least one part"),
    "plain function": (lambda: ppl.scene(lambda: None, size=SIZE), "decorate it with @ppl.model"),
    "reserved name": (lambda: ppl.scene(size=SIZE, image=PLACED), "part name 'image' is not allowed"),
    "noise": (lambda: ppl.scene(PLACED, size=SIZE, noise=-1.0), "noise must be None, a positive number"),
    "count without max_parts": (lambda: ppl.scene(PLACED, size=SIZE, count=dist.Poisson(2.0)), "count= needs max_parts="),
    "max_parts two parts": (lambda: ppl.scene(PLACED, FIXED, size=SIZE, max_parts=3), "exactly one part"),
    "max_parts zero": (lambda: ppl.many(PLACED, 0), "max_parts must be a positive integer"),
    "unbounded count": (lambda: ppl.many(PLACED, 3, count=dist.Poisson(2.0)), "not inside 0..3"),
    "too many categories": (lambda: ppl.many(PLACED, 3, count=dist.Categorical(jnp.ones(5) / 5)), "not inside 0..3"),
    "continuous count": (lambda: ppl.many(PLACED, 3, count=dist.Uniform(0.0, 3.0)), "discrete distribution"),
    "many of a constant": (lambda: ppl.many(SPRITE, 3), "must be a model"),
    "at shape": (lambda: ppl.place(dot, at=0.5), "'at' must be a fixed value of shape \\(2,\\)"),
    "at distribution shape": (lambda: ppl.place(dot, at=dist.Uniform(0.0, 1.0)), "draws values of shape \\(\\)"),
    "scale support": (lambda: ppl.place(dot, scale=dist.Normal(0.3, 0.1)), "'scale' must be positive"),
    "negative scale": (lambda: ppl.place(dot, scale=-0.3), "'scale' must be positive"),
    "relation part": (lambda: ppl.beside(PLACED, 3.0), "ppl.beside's right part must be"),
    "painter without paint": (lambda: ppl.painter(type("Blob", (), {})), "has no paint method"),
}


@pytest.mark.parametrize("case", sorted(BAD_BUILDS))
def test_bad_construction_raises(case):
    build, message = BAD_BUILDS[case]
    with pytest.raises(CompositionError, match=message):
        build()


def test_part_rendering_to_another_canvas_size_raises():
    small = ppl.scene(PLACED, size=(8, 8))
    with pytest.raises(CompositionError, match="canvas of shape \\(8, 8, 1\\).*scene's canvas is \\(16, 16, 1\\)") as err:
        ppl.scene(FIXED, small, size=SIZE).simulate(jax.random.key(0))
    assert err.value.address == "1" and err.value.model == "scene"
    # placed, a canvas is resampled as a sprite at any size
    ppl.scene(FIXED, ppl.place(small, at=jnp.array([0.5, 0.5]), scale=0.5), size=SIZE).simulate(jax.random.key(0))


def test_mismatched_channels_raise_with_the_part_address():
    rgb = ppl.Sprite(jnp.ones((2, 2, 3)))
    with pytest.raises(CompositionError, match="canvas has 1 channel.*channels=3") as err:
        ppl.scene(PLACED, logo=rgb, size=SIZE).simulate(jax.random.key(0))
    assert err.value.address == "logo"


def test_part_returning_no_painter_raises_at_its_address():
    outer = ppl.model(lambda: ppl.sample("picture", ppl.scene(FIXED, not_a_painter, size=SIZE)), name="outer")
    with pytest.raises(CompositionError, match="must return a painter.*got an array of shape \\(\\)") as err:
        outer.simulate(jax.random.key(0))
    assert err.value.address == "picture/1" and err.value.model == "outer"


def test_unstacked_constraint_for_many_raises():
    with pytest.raises(ppl.errors.ShapeError, match="leading part-slot axis of length 3") as err:
        COUNTED.generate(jax.random.key(0), {"parts/at": jnp.array([0.5, 0.5])})
    assert err.value.address == "parts/at"


def test_noise_function_of_wrong_shape_raises():
    bad = ppl.scene(PLACED, size=SIZE, noise=lambda canvas: dist.Normal(canvas[..., 0], 0.1))
    with pytest.raises(CompositionError, match="must return a distribution over images of shape \\(16, 16, 1\\)"):
        bad.simulate(jax.random.key(0))
    with pytest.raises(CompositionError, match="noise\\(canvas\\) must return a distribution"):
        ppl.scene(PLACED, size=SIZE, noise=lambda canvas: jnp.zeros(SIZE + (1,))).simulate(jax.random.key(0))


def test_relation_to_a_stack_raises():
    with pytest.raises(CompositionError, match="reference part is a stack"):
        ppl.beside(ppl.many(PLACED, 2), dot).simulate(jax.random.key(0))
