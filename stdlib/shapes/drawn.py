"""Scenes of shapes drawn by other software (Pillow, matplotlib), with their ground truth.

``make_dataset`` draws its scenes with the scene model's own rasteriser, so a
parser tested only on them is tested on its own edge profile. These draw the
same kind of scene with another renderer: :func:`draw_with_pillow`
(``PIL.ImageDraw``, anti-aliased by drawing at ``supersample`` times the size and
shrinking with Lanczos) and :func:`draw_with_matplotlib` (``Circle``,
``Ellipse``, ``Rectangle`` and ``Polygon`` patches and a thick round-capped
line, through Agg). Both return a :class:`~stdlib.shapes.scene.Dataset` whose
ground truth means what ``make_dataset``'s does:

* the shapes are drawn as ``make_dataset`` draws them (the priors of
  :mod:`stdlib.shapes.primitives`), in canvas units (the unit square, ``x``
  right, ``y`` down), each kind's ``size`` and ``angle`` drawn by the geometry
  of :func:`~stdlib.shapes.primitives.outline` (a triangle's base and height,
  apex up before turning; a line's length and thickness, round ends);
* the same identifiability rules: every colour at least ``min_contrast`` from
  the background's and the others' (largest channel difference), and every
  shape at least ``min_visible`` seen, measured by
  :func:`~stdlib.shapes.scene.visible_fractions` on each shape's coverage drawn
  alone by the same software;
* a plain background of a uniform random colour; ``clean`` is the drawing,
  ``images`` the drawing plus ``Normal(0, noise)`` noise, clipped to ``[0, 1]``.

Example::

    >>> from stdlib.shapes import drawn
    >>> data = drawn.draw_with_pillow(0, 2, size=(32, 32), max_shapes=2)
    >>> data.images.shape, [s.kind for s in data.shapes[0]]
    ((2, 32, 32, 3), ['triangle', 'ellipse'])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ppl.errors import MissingDependencyError, ShapeError
from stdlib.shapes.primitives import KINDS, outline
from stdlib.shapes.scene import Dataset, Shape, draw_scenes

__all__ = ["draw_with_matplotlib", "draw_with_pillow"]

OUTLINE_POINTS = 128  # vertices of a turned ellipse's polygon


# (shapes, background, size) -> ((H, W, 3) the drawing in [0, 1], (k, H, W) each shape's coverage drawn alone)
Painter = Callable[[list, np.ndarray, tuple], tuple]


def _generator(key_or_seed) -> np.random.Generator:
    if isinstance(key_or_seed, (int, np.integer)) and not isinstance(key_or_seed, bool):
        return np.random.default_rng(int(key_or_seed))
    import jax

    try:
        seed = int(jax.random.randint(key_or_seed, (), 0, 2**31 - 1))
    except (TypeError, ValueError) as error:
        raise ShapeError(f"key_or_seed must be an int seed or a jax PRNG key, got {key_or_seed!r}.") from error
    return np.random.default_rng(seed)


def _draw(key_or_seed, n, size, max_shapes, noise, min_shapes, kinds, min_visible, min_contrast,
          paint: Painter) -> Dataset:
    """``n`` scenes drawn by ``paint``, redrawn until identifiable (the rules of ``make_dataset``)."""
    return draw_scenes(_generator(key_or_seed), n, size, max_shapes, noise, min_shapes, kinds, min_visible,
                       min_contrast, paint)


# ---------------------------------------------------------------------------
# Pillow
# ---------------------------------------------------------------------------

INSET = 0.4  # Pillow pixels; measured against matplotlib: areas within 1.5% on average for every kind


def _inset(vertices: np.ndarray, distance: float) -> np.ndarray:
    """A convex polygon ``(m, 2)`` with every edge moved ``distance`` inward (each vertex where its two moved
    edges meet)."""
    edges = np.roll(vertices, -1, axis=0) - vertices
    normals = np.stack([-edges[:, 1], edges[:, 0]], axis=1) / np.linalg.norm(edges, axis=1, keepdims=True)
    inward = np.sign(np.sum((vertices.mean(axis=0) - vertices) * normals, axis=1, keepdims=True))
    # vertex i joins edge i-1 and edge i: moving both by d moves it by d (n_prev + n_i) / (1 + n_prev . n_i)
    n_prev, n_here = np.roll(normals * inward, 1, axis=0), normals * inward
    return vertices + distance * (n_prev + n_here) / (1.0 + np.sum(n_prev * n_here, axis=1, keepdims=True))


def _pillow():
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        raise MissingDependencyError("drawing with Pillow needs Pillow: pip install -e '.[examples]' "
                                     "(or pip install pillow).") from None
    return Image, ImageDraw


def _pillow_painter(supersample: int) -> Painter:
    Image, ImageDraw = _pillow()

    def draw_one(draw, shape: Shape, size, fill):
        height, width = size
        scale = np.array([width, height]) * supersample
        # canvas units to Pillow's pixels (the picture's edge at 0 in both)
        pixels = lambda points: np.asarray(points) * scale
        # Pillow fills every pixel its outline touches: half a pixel outward on average, so draw INSET inside
        polygon = lambda points: draw.polygon([tuple(p) for p in _inset(pixels(points), INSET)], fill=fill)

        def disc(centre, diameter):
            (x, y), (rx, ry) = pixels(centre), 0.5 * diameter * scale - INSET
            draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=fill)

        if shape.kind == "circle":
            disc(shape.centre, shape.size[0])
        elif shape.kind == "line":
            # the body as a polygon (Pillow's own wide line is up to 9% thin when turned), round ends as discs
            polygon(outline("rectangle", shape.centre, shape.size, shape.angle)[:-1])
            for end in outline("line", shape.centre, shape.size, shape.angle):
                disc(end, shape.size[1])
        else:
            points = OUTLINE_POINTS if shape.kind == "ellipse" else 64
            polygon(outline(shape.kind, shape.centre, shape.size, shape.angle, points)[:-1])

    def shrink(image, size):
        return np.asarray(image.resize((size[1], size[0]), Image.LANCZOS), np.float32) / 255.0

    def paint(shapes, background, size):
        big = (size[1] * supersample, size[0] * supersample)
        byte = lambda colour: tuple(round(255 * float(c)) for c in colour)
        image = Image.new("RGB", big, byte(background))
        draw = ImageDraw.Draw(image)
        for shape in shapes:
            draw_one(draw, shape, size, byte(shape.colour))
        alphas = []
        for shape in shapes:
            mask = Image.new("L", big, 0)
            draw_one(ImageDraw.Draw(mask), shape, size, 255)
            alphas.append(shrink(mask, size))
        return shrink(image, size), np.asarray(alphas, np.float32).reshape(len(shapes), *size)

    return paint


def draw_with_pillow(key_or_seed, n: int, size: tuple[int, int] = (64, 64), max_shapes: int = 4,
                     noise: float = 0.03, *, min_shapes: int = 1, kinds=KINDS, min_visible: float = 0.5,
                     min_contrast: float = 0.25, supersample: int = 4) -> Dataset:
    """``n`` scenes drawn by Pillow's ``ImageDraw`` (see the module docstring).

    Each shape is drawn at ``supersample`` times the size without anti-aliasing (a circle as Pillow's ellipse,
    a turned ellipse, rectangle or triangle as a polygon, a line as a polygon with a disc at each end), and
    the picture shrunk with ``Image.LANCZOS``; values are whole 8-bit levels before the noise.

    Args:
      key_or_seed: an int seed or a jax PRNG key; the same one gives the same scenes.
      n: how many scenes.
      size: ``(H, W)`` pixels.
      max_shapes, min_shapes, kinds, min_visible, min_contrast: as for :func:`~stdlib.shapes.make_dataset`.
      noise: the Gaussian pixel noise's standard deviation.

    Raises:
      MissingDependencyError: Pillow is not installed.
      ShapeError: bad arguments, or no identifiable scene in 1000 tries.
    """
    if not (isinstance(supersample, (int, np.integer)) and supersample >= 1):
        raise ShapeError(f"supersample must be an int >= 1, got {supersample!r}.")
    return _draw(key_or_seed, n, size, max_shapes, noise, min_shapes, kinds, min_visible, min_contrast,
                 _pillow_painter(int(supersample)))


# ---------------------------------------------------------------------------
# matplotlib
# ---------------------------------------------------------------------------


def _matplotlib_painter(size) -> Painter:
    try:
        from matplotlib import lines, patches
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("drawing with matplotlib needs matplotlib: pip install -e '.[examples]'.") \
            from None
    height, width = size
    dpi = 100.0
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    points_per_unit = 0.5 * (width + height) * 72.0 / dpi  # a line's thickness, canvas units to points

    def artist(shape: Shape, colour):
        (x, y), (w, h), degrees = shape.centre, shape.size, float(np.degrees(shape.angle))
        style = {"facecolor": colour, "edgecolor": "none", "antialiased": True, "snap": False}
        if shape.kind == "circle":
            return patches.Circle((x, y), 0.5 * w, **style)
        if shape.kind == "ellipse":  # data coordinates are y-down, so the turn is the model's
            return patches.Ellipse((x, y), w, h, angle=degrees, **style)
        if shape.kind == "rectangle":
            return patches.Rectangle((x - 0.5 * w, y - 0.5 * h), w, h, angle=degrees, rotation_point="center",
                                     **style)
        if shape.kind == "triangle":
            return patches.Polygon(outline("triangle", shape.centre, shape.size, shape.angle)[:-1], closed=True,
                                   **style)
        ends = outline("line", shape.centre, shape.size, shape.angle)
        return lines.Line2D(ends[:, 0], ends[:, 1], color=colour, linewidth=h * points_per_unit,
                            solid_capstyle="round", antialiased=True, snap=False)

    def draw(items, background) -> np.ndarray:
        axes.clear()
        axes.set_axis_off()
        axes.set_xlim(0.0, 1.0)
        axes.set_ylim(1.0, 0.0)  # y down, as the canvas
        figure.set_facecolor(tuple(background))
        for shape, colour in items:
            axes.add_artist(artist(shape, tuple(colour)))
        canvas.draw()
        return np.asarray(canvas.buffer_rgba(), np.float32)[..., :3] / 255.0

    def paint(shapes, background, _size):  # the figure is made for one size
        picture = draw([(s, s.colour) for s in shapes], background)
        alphas = [draw([(s, (1.0, 1.0, 1.0))], (0.0, 0.0, 0.0))[..., 0] for s in shapes]
        return picture, np.asarray(alphas, np.float32).reshape(len(shapes), *size)

    return paint


def draw_with_matplotlib(key_or_seed, n: int, size: tuple[int, int] = (64, 64), max_shapes: int = 4,
                         noise: float = 0.03, *, min_shapes: int = 1, kinds=KINDS, min_visible: float = 0.5,
                         min_contrast: float = 0.25) -> Dataset:
    """``n`` scenes drawn by matplotlib's patches through Agg (see the module docstring).

    A circle is a ``Circle``, an ellipse an ``Ellipse``, a rectangle a ``Rectangle`` turned about its centre,
    a triangle a ``Polygon``, a line a ``Line2D`` with round caps (its width in points from the thickness
    times the mean of ``H`` and ``W``: on a canvas that is not square, slightly off the model's). Arguments as
    for :func:`draw_with_pillow`.

    Raises:
      MissingDependencyError: matplotlib is not installed.
      ShapeError: bad arguments, or no identifiable scene in 1000 tries.
    """
    size = (int(size[0]), int(size[1]))
    return _draw(key_or_seed, n, size, max_shapes, noise, min_shapes, kinds, min_visible, min_contrast,
                 _matplotlib_painter(size))
