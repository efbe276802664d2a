"""The ``ppl demo`` job: a small end-to-end inference, then the standard library's showcases on real data.

1. :func:`run`: a sensor reads a quantity ``mean`` twenty times with Gaussian
   noise. We write the generative model, constrain the readings, and infer
   ``mean`` by importance sampling over 10^5 prior particles in one jitted,
   vmapped call — then compare the answer and the log evidence with their
   closed forms (the model is conjugate).
2. :func:`run_series`: the Nile's annual flow explained by structure
   discovery (``stdlib.sequences``).
3. :func:`run_scenes`: images of shapes explained by inverse graphics: how many
   shapes, which kinds, where, which in front (``stdlib.shapes``).
4. :func:`run_digits`: scikit-learn's handwritten digits (8x8), recognised by
   analysis by synthesis: stroke models of the ten classes fitted to a few
   examples each, every test image explained by all ten; then whole numbers
   read by the same models glued side by side (``stdlib.digits``).

:func:`run_all` runs them in turn (``--quick``: the sensor and zero-shot digits
and numbers only, under 30 s), writes the figures to a folder and prints a summary.
"""

from __future__ import annotations

import pathlib
import time

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jax.scipy.stats import multivariate_normal

import ppl
from ppl import dist

PRIOR_MEAN, PRIOR_SD, NOISE_SD = 0.0, 2.0, 0.5
TRUE_MEAN, READINGS = 1.3, 20


@ppl.model
def sensor(n_readings: int):
    """``mean ~ Normal(0, 2)``; ``readings[i] ~ Normal(mean, 0.5)``."""
    mean = ppl.sample("mean", dist.Normal(PRIOR_MEAN, PRIOR_SD))
    ppl.sample("readings", dist.Normal(mean, NOISE_SD).expand([n_readings]).to_event(1))
    return mean


def exact_answer(readings: jax.Array) -> tuple[float, float, float]:
    """Closed-form posterior mean, posterior sd and log evidence."""
    n = readings.shape[0]
    precision = 1 / PRIOR_SD**2 + n / NOISE_SD**2
    post_mean = (PRIOR_MEAN / PRIOR_SD**2 + readings.sum() / NOISE_SD**2) / precision
    cov = NOISE_SD**2 * jnp.eye(n) + PRIOR_SD**2 * jnp.ones((n, n))
    log_evidence = multivariate_normal.logpdf(readings, jnp.full(n, PRIOR_MEAN), cov)
    return float(post_mean), float(precision**-0.5), float(log_evidence)


def run(seed: int = 0, particles: int = 100_000) -> dict[str, float]:
    key_data, key_infer = jax.random.split(jax.random.key(seed))
    readings = TRUE_MEAN + NOISE_SD * jax.random.normal(key_data, (READINGS,))
    observations = {"readings": readings}

    @jax.jit
    def infer(key):
        keys = jax.random.split(key, particles)
        traces, log_weights = jax.vmap(lambda k: sensor.generate(k, observations, READINGS))(keys)
        log_evidence = logsumexp(log_weights) - jnp.log(particles)
        weights = jnp.exp(log_weights - logsumexp(log_weights))
        ess = 1.0 / jnp.sum(weights**2)
        means = traces.choices["mean"]
        post_mean = jnp.sum(weights * means)
        post_sd = jnp.sqrt(jnp.sum(weights * (means - post_mean) ** 2))
        log_evidence_se = jnp.sqrt(jnp.maximum(particles / ess - 1.0, 0.0) / particles)
        return post_mean, post_sd, log_evidence, log_evidence_se, ess

    start = time.perf_counter()
    post_mean, post_sd, log_evidence, se, ess = jax.block_until_ready(infer(key_infer))
    seconds = time.perf_counter() - start
    exact_mean, exact_sd, exact_log_evidence = exact_answer(readings)

    print("ppl demo: infer a sensor's true value from 20 noisy readings")
    print(f"  model: mean ~ Normal({PRIOR_MEAN}, {PRIOR_SD}); readings ~ Normal(mean, {NOISE_SD}) x {READINGS}")
    print(f"  importance sampling, {particles:,} particles, seed {seed}, {seconds:.2f} s "
          f"(incl. compilation) on {jax.default_backend()}")
    print(f"  posterior mean   {float(post_mean):.4f} ± {float(post_sd):.4f}"
          f"   (exact {exact_mean:.4f} ± {exact_sd:.4f}; true value {TRUE_MEAN})")
    print(f"  log evidence     {float(log_evidence):.4f} ± {float(se):.4f}"
          f"   (exact {exact_log_evidence:.4f})")
    print(f"  effective sample size {float(ess):,.0f} of {particles:,}")
    return {
        "posterior_mean": float(post_mean),
        "exact_posterior_mean": exact_mean,
        "log_evidence": float(log_evidence),
        "log_evidence_se": float(se),
        "exact_log_evidence": exact_log_evidence,
    }


def run_digits(seed: int = 0, shots: int = 5, test_images: int = 128, numbers: int = 4,
               figures: str | pathlib.Path | None = None) -> dict | None:
    """The digit part of the demo (``stdlib.digits.digits_demo``): classify digits, then read whole numbers.

    Needs scikit-learn; returns its summary, or ``None`` (after saying how to install it) without it.
    """
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("ppl demo: digit recognition needs scikit-learn's digits; install the examples extra: "
              'pip install -e ".[examples]"')
        return None
    from stdlib.digits import digits_demo

    return digits_demo(seed=seed, shots=shots, test_images=test_images, numbers=numbers,
                       figures=figures if _can_plot(figures) else None)


def run_scenes(seed: int = 0, scenes: int = 2, max_shapes: int = 2,
               figures: str | pathlib.Path | None = None) -> dict:
    """The scene part of the demo: ``scenes`` generated images of 1-``max_shapes`` shapes (64x64, pixel noise
    0.1), each parsed back by ``stdlib.shapes.parse``; prints the truth, the scene found and its table, and
    with ``figures`` writes ``scene.png`` (the first image, its reconstruction and the outlines found).

    Returns ``{"correct": scenes whose count and kinds were found, "scenes": ..., "seconds": ..., "figures"}``.
    """
    from stdlib import shapes

    data = shapes.make_dataset(jax.random.key(seed), scenes, size=(64, 64), max_shapes=max_shapes)
    print(f"ppl demo: explain {scenes} images of shapes (64x64, noisy) by inverse graphics")
    start, correct, written = time.perf_counter(), 0, []
    for index, image in enumerate(data.images):
        scene = shapes.parse(jax.random.key(seed + index), image, max_shapes=max_shapes)
        truth = sorted(s.kind for s in data.shapes[index])
        found = sorted(s.kind for s in scene.shapes)
        correct += truth == found
        print(f"  image {index}: drawn {', '.join(truth)}; found {', '.join(found) or 'nothing'} "
              f"(P(count = {scene.count}) = {scene.count_posterior[scene.count]:.2f})")
        if index == 0:
            print("    " + scene.table().replace("\n", "\n    "))
            if _can_plot(figures):
                path = pathlib.Path(figures) / "scene.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                scene.plot(str(path))
                written.append(path)
    seconds = time.perf_counter() - start
    print(f"  {correct} of {scenes} scenes with the right count and kinds, {seconds:.1f} s (incl. compilation)")
    return {"correct": correct, "scenes": scenes, "seconds": seconds, "figures": written}


def run_series(seed: int = 0, budget: int = 4, figures: str | pathlib.Path | None = None) -> dict | None:
    """The time-series part of the demo: explain the Nile's annual flow (statsmodels' data set) by structure
    discovery, print the structure, the dated changepoint and the report (``figures`` is accepted but unused:
    the explanation's figure compiles for about 70 s). Needs statsmodels.

    Returns a summary, or ``None`` (after saying how to install it) without statsmodels.
    """
    try:
        import statsmodels.api as sm
    except ImportError:
        print("ppl demo: the series showcase needs statsmodels' data sets; install the examples extra: "
              'pip install -e ".[examples]"')
        return None
    from stdlib import sequences

    data = sm.datasets.nile.load_pandas().data
    print("ppl demo: explain the Nile's annual flow, 1871-1970, by structure discovery (about 1.5 minutes) ...")
    start = time.perf_counter()
    explanation = sequences.discover(jax.random.key(seed), data["volume"].to_numpy(), data["year"].to_numpy(),
                                     budget=budget, name="Nile", refine=0,  # refinement: same answer, 15-20 s
                                     progress=False)  # a bar runs the search step by step: 2x slower cold
    changepoints = explanation.changepoints
    seconds = time.perf_counter() - start
    print(f"  {int(explanation.found.scored[-1])} structures scored in {seconds:.1f} s (incl. compilation)")
    for text, probability, _ in explanation.posterior[:3]:
        print(f"  {probability:6.3f}  {text}")
    if changepoints:
        year, probability = max(changepoints.items(), key=lambda item: item[1])
        print(f"  most probable last year before a change: {year:g} (probability {probability:.2f})")
    print()
    print(explanation.report())
    # no figure: Explanation.plot (components' bands, a forecast fan) compiles for ~70 s on a 2-core CPU, which
    # would take the demo past 3 minutes; `ppl explain-series nile.csv --plot nile.png` draws it
    return {"structure": explanation.structure, "changepoints": changepoints, "seconds": seconds, "figures": []}


def _can_plot(figures) -> bool:
    if figures is None:
        return False
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def run_all(seed: int = 0, *, particles: int = 100_000, quick: bool = False, series: bool = True,
            scenes: bool = True, digits: bool = True, shots: int = 5, images: int = 128,
            figures: str | pathlib.Path | None = "ppl-demo") -> dict:
    """The whole ``ppl demo``: every part in turn, the figures in ``figures``, then a summary.

    ``quick=True``: the sensor (10^4 particles) and the digits with the prototypes (zero-shot: no fitting)
    on 64 images and 2 numbers; the series and scene parts are skipped (under 30 s on a 2-core CPU).
    Returns ``{part: its summary}``.
    """
    start = time.perf_counter()
    if figures is not None and not _can_plot(figures):
        print('ppl demo: figures need matplotlib (pip install -e ".[examples]"); writing none.\n')
        figures = None
    if quick:
        particles, series, scenes, shots, images, numbers = min(particles, 10_000), False, False, 0, 64, 2
    else:
        numbers = 4
    parts: dict = {}
    timings: dict[str, float] = {}

    def part(name, function, *args, **kwargs):
        began = time.perf_counter()
        if parts:
            print()
        parts[name] = function(*args, **kwargs)
        timings[name] = time.perf_counter() - began

    part("sensor", run, seed=seed, particles=particles)
    if series:
        part("series", run_series, seed=seed, figures=figures)
    if scenes:
        part("scenes", run_scenes, seed=seed, figures=figures)
    if digits:
        part("digits", run_digits, seed=seed, shots=shots, test_images=images, numbers=numbers, figures=figures)
    print("\nppl demo: summary" + (" (--quick: the series and scene parts skipped)" if quick else ""))
    sensor = parts["sensor"]
    print(f"  sensor  posterior mean {sensor['posterior_mean']:.3f} (exact {sensor['exact_posterior_mean']:.3f}), "
          f"log evidence {sensor['log_evidence']:.2f} (exact {sensor['exact_log_evidence']:.2f})"
          f"{_took(timings, 'sensor')}")
    if parts.get("series"):
        found = parts["series"]
        years = found["changepoints"]
        change = f"; change after {max(years, key=years.get):g}" if years else ""
        print(f"  Nile    {found['structure']}{change}{_took(timings, 'series')}")
    if parts.get("scenes"):
        found = parts["scenes"]
        print(f"  scenes  {found['correct']} of {found['scenes']} parsed right{_took(timings, 'scenes')}")
    if parts.get("digits"):
        found = parts["digits"]
        numbers_text = (f"; {found['numbers_read']} of {found['numbers']} numbers read right"
                        if found["numbers"] else "")
        print(f"  digits  {100 * found['accuracy']:.1f}% of {int(found['images'])} images{numbers_text}"
              f"{_took(timings, 'digits')}")
    written = [path for found in parts.values() if found for path in found.get("figures", [])]
    if written:
        folder = pathlib.Path(figures).resolve()
        print(f"  figures in {folder}: {', '.join(pathlib.Path(path).name for path in written)}")
    print(f"  total {time.perf_counter() - start:.1f} s on {jax.default_backend()}")
    return parts


def _took(timings, name) -> str:
    return f"  ({timings[name]:.1f} s)"
