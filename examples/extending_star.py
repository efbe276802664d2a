"""Extending stdlib.shapes: a star with a latent number of points, and inference of the count from an image.

The tutorial in docs/extending.md ("A new shape: a star") walks through this file. It builds a new
primitive with the public API only (``ppl``, ``stdlib.render``), puts it in a scene with ``ppl.scene``,
draws a noisy 24x24 picture of a star from the model, and asks the core's Laplace approximation how
well each number of points (4 to 7) explains the picture. ``ppl.infer.Classification`` turns the four
evidences into a posterior over the count.

Run: ``python examples/extending_star.py [seed]`` (about half a minute on a 2-core CPU, most of it
compiling the Laplace program once).
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from ppl import dist
from stdlib import render

FEWEST, MOST = 4, 7  # the star has 4, 5, 6 or 7 points
INNER = 0.45  # the inner corners' radius, as a fraction of the outer ones'


def star_vertices(points, centre, size, angle):
    """The ``(2 * MOST, 2)`` corners of a star with ``points`` points (may be traced), outer diameter
    ``size``, turned by ``angle`` (first point straight up at ``angle = 0``).

    A star with fewer than ``MOST`` points repeats its first corner in the unused slots: the polygon
    keeps one shape whatever the count, and a repeated corner adds an edge of length zero."""
    corner = jnp.minimum(jnp.arange(2 * MOST), 2 * points)  # 0, 1, ..., 2 * points, 2 * points, ...
    theta = angle - jnp.pi / 2 + jnp.pi * corner / points
    radius = jnp.where(corner % 2 == 0, 0.5 * size, 0.5 * size * INNER)
    return centre + radius[:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=-1)


@ppl.model(name="star")
def star():
    points = FEWEST + ppl.sample("points", dist.Categorical(logits=jnp.zeros(MOST - FEWEST + 1)))  # uniform on 4..7
    centre = ppl.sample("centre", dist.Uniform(0.25, 0.75).expand([2]).to_event(1))
    size = ppl.sample("size", dist.Uniform(0.45, 0.9))
    angle = ppl.sample("angle", dist.Uniform(0.0, 2 * jnp.pi / points))  # one turn of its symmetry
    colour = ppl.sample("colour", dist.Uniform(0.0, 1.0).expand([3]).to_event(1))
    return render.Polygon(vertices=star_vertices(points, centre, size, angle), colour=colour)


@ppl.model(name="backdrop")
def backdrop():
    colour = ppl.sample("colour", dist.Uniform(0.0, 1.0).expand([3]).to_event(1))
    return render.Rectangle(centre=jnp.array([0.5, 0.5]), size=jnp.array([2.0, 2.0]), colour=colour)


SIZE = (24, 24)
star_scene = ppl.scene(
    size=SIZE, channels=3, softness=0.5, name="star_scene",
    noise=lambda canvas: dist.StudentT(4.0, canvas, 0.1).to_event(3),  # the pixels of shapes.scene_model
    backdrop=backdrop, star=star)


def draw_star_picture(key, noise=0.1):
    """A star scene drawn from the prior: ``(image (24, 24, 3) in [0, 1], the trace with the truth)``."""
    draw, pixels = jax.random.split(key)
    trace = star_scene.simulate(draw)
    canvas = trace.retval  # the clean rendering
    image = jnp.clip(canvas + noise * jax.random.normal(pixels, canvas.shape), 0.0, 1.0)
    return image, trace


COUNTS = tuple(str(points) for points in range(FEWEST, MOST + 1))
ESTIMATE = dict(restarts=16, steps=200, newton=5)  # Adam from 16 prior draws, then Newton at the best


def count_posterior(key, image):
    """``(posterior over the count, the best fit of each count)`` by the Laplace evidence of each count."""
    fits = [ppl.infer.laplace(key, star_scene, {"image": image, "star/points": index}, **ESTIMATE)
            for index in range(len(COUNTS))]
    log_evidence = jnp.stack([fit.log_evidence for fit in fits])
    return ppl.infer.Classification.from_log_evidence(COUNTS, log_evidence), fits


def main(seed: int = 0) -> dict:
    image, truth = draw_star_picture(jax.random.key(seed))
    posterior, fits = count_posterior(jax.random.key(seed + 1), image)
    best = fits[int(posterior.best)].trace.choices
    true_points = FEWEST + int(truth.choices["star/points"])
    found_points = int(COUNTS[int(posterior.best)])
    pixels = lambda xy: np.round(np.asarray(xy) * SIZE[0], 1)  # noqa: E731  canvas units -> pixels
    print(f"truth: a {true_points}-pointed star centred at {pixels(truth.choices['star/centre'])} px")
    print(f"found: a {found_points}-pointed star centred at {pixels(best['star/centre'])} px")
    print("P(points):", {name: round(float(posterior[name]), 3) for name in COUNTS})
    return {"true_points": true_points, "points": found_points,
            "probability": float(posterior[COUNTS[int(posterior.best)]]),
            "true_centre": np.asarray(truth.choices["star/centre"]), "centre": np.asarray(best["star/centre"])}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
