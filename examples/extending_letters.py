"""Extending stdlib.digits: stroke models of the letters L, T and X, learned from three examples each.

The tutorial in docs/extending.md ("A new stroke-based symbol set: L, T and X") walks through this
file. Each letter is the digits' pen model (``stdlib.digits.digit_model``) with the letter's strokes as
its template. A "writer" with a hand of its own makes 12x12 examples by rendering jittered strokes
with ``stdlib.digits.render_digit``; three examples per letter are explained stroke by stroke
(``stdlib.digits.fit_strokes``) and their fitted strokes become extra templates; then held-out
examples are read by ``ppl.infer.classify`` with the digits' evidence estimator (MAP strokes plus a
Laplace volume term), once with the prototypes alone and once with the learned templates.

Run: ``python examples/extending_letters.py`` (about a minute on a 2-core CPU, most of it compiling).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from stdlib import digits

SIZE = (12, 12)
POINTS = 4  # vertices per stroke

# every letter is two straight strokes, (start, end), in the digits' canonical frame: x right, y down,
# the letter's height from y = -1 to y = 1
LETTERS = {
    "L": [[(-0.45, -1.0), (-0.45, 1.0)], [(-0.45, 1.0), (0.55, 1.0)]],
    "T": [[(-0.65, -1.0), (0.65, -1.0)], [(0.0, -1.0), (0.0, 1.0)]],
    "X": [[(-0.6, -1.0), (0.6, 1.0)], [(0.6, -1.0), (-0.6, 1.0)]],
}
NAMES = tuple(LETTERS)


def straight_strokes(ends, points=POINTS):
    """``(S, points, 2)`` vertices evenly spaced along each stroke of ``ends (S, 2, 2)``."""
    ends = jnp.asarray(ends, jnp.float32)
    along = jnp.linspace(0.0, 1.0, points)[None, :, None]
    return ends[:, :1] + (ends[:, 1:] - ends[:, :1]) * along


digit_models = digits.prototypes(SIZE)  # the digits' pen, pose and pixel settings for 12x12 images
model = digit_models.model  # one generative function for every class: a class is its parameters
settings = digit_models.of(0)  # one class's parameters, as a template for the letters'


def letter(ends):
    """A letter's parameters: the digit settings with the letter's strokes as its one template."""
    return settings._replace(component_probs=jnp.ones(1), stroke_mean=straight_strokes(ends)[None],
                             stroke_scale=jnp.full(1, 0.12), stroke_mask=jnp.ones(len(ends)))


letters = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *[letter(LETTERS[n]) for n in NAMES])


# the writer's hand: an L leaning right with a rising foot, a T with a tilted bar off to the right, a narrow X
HAND = {
    "L": [[(-0.2, -1.0), (-0.5, 0.9)], [(-0.5, 0.9), (0.7, 0.6)]],
    "T": [[(-0.3, -0.7), (0.8, -1.0)], [(0.3, -0.85), (0.1, 1.0)]],
    "X": [[(-0.3, -1.0), (0.5, 1.0)], [(0.5, -1.0), (-0.6, 0.9)]],
}
EXTENT = np.log(0.43)  # the digits' prior pose: half the letter's height is 0.43 of the canvas


@jax.jit
def handwrite(key, ends):
    """One example: the writer's strokes ``ends (2, 2, 2)`` jittered, posed, inked and rendered, with noise."""
    jitter_key, pose_key, pen_key, noise_key = jax.random.split(key, 4)
    strokes = straight_strokes(ends + 0.08 * jax.random.normal(jitter_key, ends.shape))
    pose = jnp.array([0.0, 0.0, EXTENT, EXTENT, 0.0, 0.0]) + jnp.array([0.04, 0.04, 0.08, 0.08, 0.1, 0.1]) \
        * jax.random.normal(pose_key, (6,))  # shift x, y, log scale x, y, rotation, shear
    log_width = jnp.log(0.22) + 0.15 * jax.random.normal(pen_key)  # the digits' pen: 0.22 canvas heights
    clean = digits.render_digit(strokes, jnp.ones(2), pose, log_width, jnp.log(3.0), SIZE, digit_models.supersample)
    return jnp.clip(clean + 0.05 * jax.random.normal(noise_key, SIZE), 0.0, 1.0)


def write(key, per_letter):
    """``per_letter`` examples of each letter: ``(images (N, 12, 12), labels (N,))``, letter by letter."""
    labels = np.repeat(np.arange(len(NAMES)), per_letter)
    ends = jnp.asarray([HAND[NAMES[label]] for label in labels], jnp.float32)
    images = jax.vmap(handwrite)(jax.random.split(key, len(labels)), ends)
    return images, labels


SHOTS, HELD_OUT = 3, 10  # examples per letter to learn from, and to read afterwards
images, labels = write(jax.random.key(0), SHOTS + HELD_OUT)
learning = np.arange(len(labels)) % (SHOTS + HELD_OUT) < SHOTS  # the first three of each letter
train_images, train_labels = images[learning], labels[learning]
test_images, test_labels = images[~learning], labels[~learning]


FIT = digits.Budget(steps=60, restarts=3, keep=0, learning_rate=0.1)  # the effort digits.fit spends per example


@jax.jit
def fit_examples(keys, images, params):
    """Each example's best explanation by its own letter's model (vmapped over the examples)."""
    def one(key, image, own):
        return digits.fit_strokes(key, model, image, own, FIT, SIZE, digit_models.supersample,
                                  digit_models.occluder_sides)
    return jax.vmap(one)(keys, images, params)


def learn(key, letters, images, labels, exemplar_scale=0.1):
    """The letters with every example's fitted strokes as an extra template (the prototype kept first).

    Every letter needs the same number of examples (the templates of the three letters are stacked)."""
    own = jax.tree_util.tree_map(lambda leaf: leaf[labels], letters)
    fits = fit_examples(jax.random.split(key, len(labels)), images, own)
    best = jnp.argmax(fits.log_evidence, axis=1)  # the best of each example's hypotheses
    strokes = fits.choices["strokes"][jnp.arange(len(labels)), best]  # (N, S, P, 2)
    examples = np.bincount(labels).max()
    stroke_mean = jnp.stack([jnp.concatenate([letters.stroke_mean[c, :1], strokes[labels == c]])
                             for c in range(len(NAMES))])
    stroke_scale = jnp.concatenate([letters.stroke_scale[:, :1], jnp.full((len(NAMES), examples), exemplar_scale)], 1)
    probs = jnp.full((len(NAMES), 1 + examples), 1.0 / (1 + examples))
    return letters._replace(component_probs=probs, stroke_mean=stroke_mean, stroke_scale=stroke_scale)


estimator = digits.evidence_estimator(digits.Budget(steps=20), SIZE, digit_models.supersample,
                                      digit_models.occluder_sides)


def recognise(key, letters, images):
    """``ppl.infer.classify`` over the letters: one generative function, one parameter set per letter."""
    hypotheses = {name: (model, (jax.tree_util.tree_map(lambda leaf: leaf[i], letters),))
                  for i, name in enumerate(NAMES)}
    return ppl.infer.classify(key, hypotheses, {"image": images}, estimator=estimator, chunk_size=16)


def main() -> dict:
    learned = learn(jax.random.key(1), letters, train_images, train_labels)
    # the prototypes alone: the same arrays with every learned template's prior weight set to 0
    prototypes_only = learned._replace(component_probs=jnp.zeros_like(learned.component_probs).at[:, 0].set(1.0))
    answers = {}
    for name, params in (("prototypes only", prototypes_only), ("learned", learned)):
        result = recognise(jax.random.key(2), params, test_images)
        accuracy = float(np.mean(np.asarray(result.best) == test_labels))
        right = float(np.mean(np.asarray(result.log_evidence)[np.arange(len(test_labels)), test_labels]))
        print(f"{name:>15}: {accuracy:.0%} of {len(test_labels)} held-out letters read right; "
              f"mean log evidence of the right letter {right:.1f}")
        answers[name] = {"accuracy": accuracy, "log_evidence": right}
    print("P(letter) of the first held-out image, an L:", {n: round(float(result[n][0]), 3) for n in NAMES})
    return answers


if __name__ == "__main__":
    main()
