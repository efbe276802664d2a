"""B3 - gradient MAP: optax adam, 500 steps, 64 restarts vmapped, a 10-latent model.

The model is a Bayesian linear regression with 10 latent dimensions: 8
coefficients ``w ~ Normal(0, 1)``, an intercept ``b ~ Normal(0, 5)`` and a noise
scale ``sigma ~ HalfNormal(1)`` (positive: optimised as ``log sigma``), with
``y ~ Normal(X w + b, sigma)`` observed at 200 points. Three ways in one process:

- ``jax``: hand-written pure JAX, the limit: parameters ``(w, b, log sigma)``
  drawn from the prior, the log joint written out, ``optax.adam`` in a
  ``lax.scan``, ``jit(vmap)`` over the restarts, the best restart picked;
- ``ppl``: ``ppl.infer.map(key, model, obs, restarts=64, steps=500,
  optimizer=adam)`` called the way a user calls it (observations checked
  eagerly, a cached compiled program, the result checked for non-finite values);
- ``numpyro``: NumPyro's MAP: ``SVI`` with an ``AutoDelta`` guide (initialised
  from the prior, ``init_to_sample``) and the same optax adam, ``svi.init`` +
  ``lax.scan`` of ``svi.update``, ``jit(vmap)`` over the restarts.

Every system returns the best restart's ``(w, b, sigma)`` and its log joint.
Timings are medians over interleaved calls after compilation; ratios are to the
hand-written JAX.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as ndist
import optax
from numpyro.infer import SVI, Trace_ELBO, init_to_sample
from numpyro.infer.autoguide import AutoDelta

import ppl
from benchmarks import common
from ppl import dist

NAME = "b3"
TITLE = "B3 - gradient MAP, adam 500 steps x 64 restarts, 10-latent regression"
POINTS, FEATURES = 200, 8
RESTARTS, STEPS = 64, 500
QUICK_STEPS = 50
LEARNING_RATE = 0.05
TARGET = 1.2
REFERENCE = {"GenJAX": "2.0x", "NumPyro": "1.0x"}  # reported ratios to hand-written JAX (issue text)
ADAM = optax.adam(LEARNING_RATE)  # one object: ppl reuses its compiled program across calls


def data():
    x = jax.random.normal(jax.random.key(0), (POINTS, FEATURES))
    w = jnp.linspace(-1.0, 1.0, FEATURES)
    y = x @ w + 0.5 + 0.3 * jax.random.normal(jax.random.key(1), (POINTS,))
    return x, y


# --- ppl -------------------------------------------------------------------------


@ppl.model
def regression(x):
    w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([FEATURES]).to_event(1))
    b = ppl.sample("b", dist.Normal(0.0, 5.0))
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    ppl.sample("y", dist.Normal(x @ w + b, sigma).to_event(1))


def ppl_map(key, x, y, steps):
    result = ppl.infer.map(key, regression, {"y": y}, x, restarts=RESTARTS, steps=steps, optimizer=ADAM)
    choices = result.trace.choices
    return choices["w"], choices["b"], choices["sigma"], result.log_joint


# --- hand-written JAX ---------------------------------------------------------------


def _log_joint(params, x, y):
    w, b, log_sigma = params
    sigma = jnp.exp(log_sigma)
    norm = jax.scipy.stats.norm.logpdf
    log_prior = jnp.sum(norm(w, 0.0, 1.0)) + norm(b, 0.0, 5.0) + jnp.log(2.0) + norm(sigma, 0.0, 1.0)
    return log_prior + jnp.sum(norm(y, x @ w + b, sigma))


@functools.partial(jax.jit, static_argnames="steps")
def handwritten_map(key, x, y, steps):
    def one(restart_key):
        w_key, b_key, s_key = jax.random.split(restart_key, 3)
        params = (
            jax.random.normal(w_key, (FEATURES,)),
            5.0 * jax.random.normal(b_key),
            jnp.log(jnp.abs(jax.random.normal(s_key))),
        )
        value_and_grad = jax.value_and_grad(lambda p: -_log_joint(p, x, y))

        def step(carry, _):
            params, state = carry
            _, grad = value_and_grad(params)
            updates, state = ADAM.update(grad, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, ADAM.init(params)), None, length=steps)
        return params, _log_joint(params, x, y)

    params, log_joint = jax.vmap(one)(jax.random.split(key, RESTARTS))
    best = jnp.argmax(jnp.where(jnp.isfinite(log_joint), log_joint, -jnp.inf))
    w, b, log_sigma = (leaf[best] for leaf in params)
    return w, b, jnp.exp(log_sigma), log_joint[best]


# --- NumPyro: SVI with AutoDelta -------------------------------------------------------


def numpyro_regression(x, y):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([FEATURES]).to_event(1))
    b = numpyro.sample("b", ndist.Normal(0.0, 5.0))
    sigma = numpyro.sample("sigma", ndist.HalfNormal(1.0))
    numpyro.sample("y", ndist.Normal(x @ w + b, sigma).to_event(1), obs=y)


NUMPYRO_GUIDE = AutoDelta(numpyro_regression, init_loc_fn=init_to_sample)
NUMPYRO_SVI = SVI(numpyro_regression, NUMPYRO_GUIDE, ADAM, Trace_ELBO())


@functools.partial(jax.jit, static_argnames="steps")
def numpyro_map(key, x, y, steps):
    def one(restart_key):
        state = NUMPYRO_SVI.init(restart_key, x, y)
        state, losses = jax.lax.scan(lambda s, _: NUMPYRO_SVI.update(s, x, y), state, None, length=steps)
        params = NUMPYRO_GUIDE.median(NUMPYRO_SVI.get_params(state))
        return params, -NUMPYRO_SVI.evaluate(state, x, y)

    params, log_joint = jax.vmap(one)(jax.random.split(key, RESTARTS))
    best = jnp.argmax(jnp.where(jnp.isfinite(log_joint), log_joint, -jnp.inf))
    return params["w"][best], params["b"][best], params["sigma"][best], log_joint[best]


ppl_map_in_jit = jax.jit(ppl_map, static_argnames="steps")  # no per-call Python work

SYSTEMS = {"jax": handwritten_map, "ppl": ppl_map, "ppl in jit": ppl_map_in_jit, "numpyro": numpyro_map}


def run(options: common.Options) -> list[dict]:
    x, y = data()
    steps = QUICK_STEPS if options.quick else STEPS
    repeats = options.repeats or (3 if options.quick else 30)
    keys = iter(jax.random.split(jax.random.key(3), 10_000))
    calls = {name: (lambda f=f: f(next(keys), x, y, steps=steps)) for name, f in SYSTEMS.items()}
    seconds = common.time_interleaved(calls, repeats)
    rows = []
    for name, f in SYSTEMS.items():
        w, b, sigma, log_joint = f(jax.random.key(0), x, y, steps=steps)
        rows.append(
            dict(
                benchmark=NAME,
                system=name,
                steps=steps,
                restarts=RESTARTS,
                seconds=common.median(seconds[name]),
                log_joint=float(log_joint),
                sigma=float(sigma),
            )
        )
    return rows


def report(rows: list[dict], options: common.Options) -> str:
    by = {row["system"]: row for row in rows}
    base = by["jax"]["seconds"]
    ratio = lambda system: by[system]["seconds"] / base  # noqa: E731
    header = [
        "hand-written JAX (ms)",
        "ppl (ms)",
        "NumPyro (ms)",
        "ppl / JAX",
        "ppl in jit / JAX",
        "NumPyro / JAX",
        "GenJAX / JAX (reported)",
        "NumPyro / JAX (reported)",
        "best log joint: JAX / ppl / NumPyro",
    ]
    table = [
        [
            f"{base * 1e3:.2f}",
            f"{by['ppl']['seconds'] * 1e3:.2f}",
            f"{by['numpyro']['seconds'] * 1e3:.2f}",
            f"{ratio('ppl'):.2f}x",
            f"{ratio('ppl in jit'):.2f}x",
            f"{ratio('numpyro'):.2f}x",
            REFERENCE["GenJAX"],
            REFERENCE["NumPyro"],
            " / ".join(f"{by[s]['log_joint']:.3f}" for s in ("jax", "ppl", "numpyro")),
        ]
    ]
    within = ratio("ppl") <= TARGET
    not_slower = by["ppl"]["seconds"] <= by["numpyro"]["seconds"]
    jit_not_slower = by["ppl in jit"]["seconds"] <= by["numpyro"]["seconds"]
    verdict = (
        f"ppl called eagerly is {'within' if within else 'outside'} the {TARGET}x target "
        f"({ratio('ppl'):.2f}x) and {'not slower than' if not_slower else 'slower than'} NumPyro "
        f"({ratio('numpyro'):.2f}x); inside `jax.jit` it is {ratio('ppl in jit'):.2f}x, "
        f"{'not slower than' if jit_not_slower else 'slower than'} NumPyro."
    )
    steps = rows[0]["steps"]
    return "\n\n".join(
        [
            f"## {TITLE}",
            f"Measured on {common.machine_description()}" + (" (quick mode: smoke test only)." if options.quick else "."),
            f"`w ~ Normal(0, I_8)`, `b ~ Normal(0, 5)`, `sigma ~ HalfNormal(1)`, `y ~ Normal(X w + b, sigma)` "
            f"at {POINTS} points; optax adam({LEARNING_RATE}), {steps} steps, {RESTARTS} restarts from prior "
            "draws, vmapped; the best restart returned. Median seconds per call after compilation, calls "
            "interleaved.",
            common.markdown_table(header, table),
            verdict,
            NOTE,
        ]
    )


NOTE = """Where the time goes. All three run the same XLA-level algorithm: a
`lax.scan` of adam steps on the gradient of the log joint in unconstrained
space, `vmap`ped over restarts. ppl's model code (the recorder, the site walker
that applies `biject_to`, the choice maps) exists only at trace time: the walker
pass that computes `T(u)` is dead code after `jit` except for `T` itself. Per
call, ppl looks up its cached plan (about 10 us), re-checks the observed values
on the host, dispatches the cached program and reads back one flag (to raise
when every restart failed): about 0.1-0.3 ms in all.

The rest of the gap is the density. ppl's log joint is `model.assess`: numpyro's
`log_prob`s (numpyro 0.22 validates samples by default, a support mask per
site, as in the NumPyro column). ppl's own `-inf` mask for traced values
(`ppl.validation.site_log_density`) is skipped inside `map`'s loss
(`ppl.validation.values_in_support`): the observations are checked eagerly and
the latents are in their supports by construction. That took B3 from 1.24x to
about 1.17x on this CPU.

Designs measured and rejected (same loop, CPU unless noted): a per-step
finiteness guard with best-point tracking (+25% on CPU; map instead marks a
restart whose final point is not finite as failed); optimising one flattened
vector (+30% on an H100 GPU: the slices and concatenations add kernels per
step); recording the log joint at every step (+15%; now `history=True`).

GPU: only an earlier version was timed on an H100 (ppl 2.42x, NumPyro 1.00x;
that version had the per-step guard, the flattening and no plan cache; there,
the per-step loop the current version runs, timed alone with history recording,
measured 1.15x). The current version has not been timed on a GPU."""
