"""Compatible and contradictory concepts, composed by feature ("purple jar", "stationary dancing").

Each concept predicts some feature channels of an object: its shape (round,
cylinder, box), its colour (RGB in [0, 1]) and its motion (speed in m/s).
``ppl.features`` multiplies the predictions of a shared channel (a product of
experts); the normaliser of that product is how compatible the concepts are.
A purple jar is an ordinary thing; a stationary dancer is a contradiction.

Run: ``python examples/purple_jar.py`` (a few seconds on a CPU).
"""

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from ppl import dist

SHAPES = ("round", "cylinder", "box")

CONCEPTS = {
    "purple": {"colour": dist.Normal(jnp.array([0.55, 0.1, 0.65]), 0.08).to_event(1)},
    "red": {"colour": dist.Normal(jnp.array([0.85, 0.1, 0.1]), 0.08).to_event(1)},
    "blue": {"colour": dist.Normal(jnp.array([0.1, 0.2, 0.85]), 0.08).to_event(1)},
    "stationary": {"motion": dist.Normal(0.0, 0.05)},
    "dancing": {"motion": dist.Normal(2.0, 0.5)},
    "jar": {
        "shape": dist.Categorical(probs=jnp.array([0.15, 0.75, 0.1])),
        "colour": dist.Normal(0.5, 0.3).expand([3]).to_event(1),  # jars come in any colour
        "motion": dist.Normal(0.0, 0.1),
    },
    "apple": {
        "shape": dist.Categorical(probs=jnp.array([0.85, 0.1, 0.05])),
        "colour": dist.Normal(jnp.array([0.75, 0.3, 0.1]), 0.12).to_event(1),
        "motion": dist.Normal(0.0, 0.1),
    },
}

PAIRS = [
    ("purple", "jar"),
    ("stationary", "dancing"),
    ("red", "apple"),
    ("blue", "apple"),
    ("stationary", "jar"),
    ("dancing", "jar"),
]


def compatibility_table() -> dict[str, float]:
    """log compatibility of each pair of concepts."""
    return {f"{a} {b}": float(ppl.log_compatibility(CONCEPTS[a], CONCEPTS[b])) for a, b in PAIRS}


def main() -> None:
    table = compatibility_table()
    best = max(table.values())
    print(f"{'composition':<18} {'log compatibility':>18} {'ratio to best':>14}")
    for name, log_c in table.items():
        print(f"{name:<18} {log_c:>18.2f} {np.exp(log_c - best):>14.3g}")

    for a, b in [("red apple", "blue apple"), ("purple jar", "stationary dancing")]:
        difference = table[a] - table[b]
        print(f"{a} vs {b}: {difference:.1f} nats, i.e. {np.exp(difference):.3g} times more compatible")

    # The composite is an ordinary generative function: sample a purple jar ...
    purple_jar = ppl.features(purple=CONCEPTS["purple"], jar=CONCEPTS["jar"])
    trace, log_weight = purple_jar.generate(jax.random.key(0), {})
    colour = np.round(np.asarray(trace.retval["colour"]), 2)
    print(
        f"a sampled purple jar: shape={SHAPES[int(trace.retval['shape'])]}, colour={colour}, "
        f"motion={float(trace.retval['motion']):.2f} m/s; generate weight {float(log_weight):.2f} "
        "= the log compatibility"
    )

    # ... or explain an observed object: its density under every part of each composition
    observed = {"shape": 1, "colour": jnp.array([0.5, 0.15, 0.6]), "motion": jnp.array(0.02)}
    print("an observed purple cylinder at rest, explained by:")
    for a, b in [("purple", "jar"), ("red", "apple"), ("dancing", "jar")]:
        composite = ppl.features(**{a: CONCEPTS[a], b: CONCEPTS[b]})
        _, log_density = composite.generate(jax.random.key(1), observed)
        print(f"  {a + ' ' + b:<12} log density {float(log_density):7.2f}")


if __name__ == "__main__":
    main()
