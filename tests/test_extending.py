"""docs/extending.md: its code is excerpts of the examples, and each example's inference gets the right answer.

The guide's ```python blocks are verbatim excerpts of ``examples/extending_*.py`` (checked here), so
``test_docs.py`` does not run them itself; the examples run here instead, through their ``main()``. The
decay example (about 15 s on the 2-core CPU, most of it compiling one Laplace program) runs in the
default pass; the star (about 25 s) and the letters (about 35 s) run in the slow pass (``pytest -m
slow``, which CI runs).
"""

import importlib.util
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from stdlib import render

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "extending.md"
EXAMPLES = {name: ROOT / "examples" / f"extending_{name}.py" for name in ("star", "decay", "letters")}
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)  # as in test_docs.py


def load(name):
    """Import ``examples/extending_<name>.py`` as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"extending_{name}", EXAMPLES[name])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_python_block_of_the_guide_is_an_excerpt_of_an_example():
    sources = {name: path.read_text() for name, path in EXAMPLES.items()}
    blocks = BLOCK.findall(PAGE.read_text())
    assert blocks, "docs/extending.md has no ```python blocks"
    quoted = set()
    for index, block in enumerate(blocks):
        owners = [name for name, source in sources.items() if block in source]
        assert owners, (f"docs/extending.md's python block {index} is not a verbatim excerpt of any of "
                        f"{sorted(p.name for p in EXAMPLES.values())}; copy it from the example (or fix the "
                        f"example) so the two agree. It begins:\n{block[:400]}")
        quoted.update(owners)
    assert quoted == set(EXAMPLES), f"examples never quoted in the guide: {sorted(set(EXAMPLES) - quoted)}"


def test_every_example_is_listed_in_the_examples_readme():
    readme = (ROOT / "examples" / "README.md").read_text()
    for path in EXAMPLES.values():
        assert path.name in readme


def test_a_star_with_fewer_points_draws_as_its_own_polygon():
    """The repeated corners in the unused slots change nothing: a 4-pointed star drawn from 14 corner slots
    is the 8-corner polygon."""
    star = load("star")
    centre, size, angle = jnp.array([0.45, 0.55]), jnp.asarray(0.7), jnp.asarray(0.3)
    slots = star.star_vertices(jnp.asarray(4), centre, size, angle)
    assert slots.shape == (2 * star.MOST, 2)
    drawn = ppl.render(render.Polygon(vertices=slots, colour=1.0), star.SIZE)
    own = ppl.render(render.Polygon(vertices=slots[:8], colour=1.0), star.SIZE)
    np.testing.assert_allclose(np.asarray(drawn), np.asarray(own), atol=1e-6)
    area = float(drawn.sum()) / star.SIZE[0] ** 2  # between the inner and the outer circle's
    assert np.pi * (0.5 * 0.7 * star.INNER) ** 2 < area < np.pi * 0.35**2


def test_the_decay_is_zero_before_the_impulse_and_decays_after_it():
    decay = load("decay")
    trace = decay.impulse_decay.simulate(jax.random.key(0), decay.t)
    time, size, rate = (float(trace.choices[name]) for name in ("time", "size", "rate"))
    t, value = np.asarray(decay.t), np.asarray(trace.retval)
    assert value.shape == t.shape
    far_before, far_after = t < time - 0.02, t > time + 0.02
    np.testing.assert_allclose(value[far_before], 0.0, atol=1e-6)
    np.testing.assert_allclose(value[far_after], size * np.exp(-rate * (t[far_after] - time)), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_the_star_count_and_centre_are_recovered():
    star = load("star")
    for seed in (0, 1, 2):  # one compilation serves every picture
        result = star.main(seed)
        assert result["points"] == result["true_points"], (seed, result)
        assert result["probability"] > 0.9, (seed, result)
        error_px = np.abs(result["centre"] - result["true_centre"]).max() * star.SIZE[0]
        assert error_px < 1.0, (seed, error_px)


@pytest.mark.slow  # ~14 s of compilation: the default run is at its 10-minute budget
def test_the_impulse_time_size_and_rate_are_recovered():
    result = load("decay").main()
    assert result["structure"] == "level + decay"
    assert result["probability"] > 0.99
    found, truth = result["found"], result["truth"]
    assert abs(found["time"] - truth["time"]) < 1 / 60  # within one time step
    assert abs(found["size"] - truth["size"]) < 0.3
    assert abs(found["rate"] / truth["rate"] - 1) < 0.25


@pytest.mark.slow
def test_the_letters_are_read_after_learning_from_three_examples_each():
    answers = load("letters").main()
    assert answers["learned"]["accuracy"] >= 0.9  # 30 held-out letters, 10 of each
    assert answers["prototypes only"]["accuracy"] >= 0.9
    # the learned templates explain the writer's hand better than the prototypes alone
    assert answers["learned"]["log_evidence"] > answers["prototypes only"]["log_evidence"]
