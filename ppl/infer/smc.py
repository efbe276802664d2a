"""Sequential Monte Carlo: particle filters for sequences, tempering for static models.

``smc(key, model, obs, *args, n=...)`` runs ``n`` particles and returns an
:class:`SMCResult`: the particles (traces of the whole model), their weights,
``log_evidence`` (the log of an unbiased estimate of ``p(obs; args)``) and the
ESS after every step. Which algorithm runs depends on the model:

=====================================  =============================================
model                                  algorithm
=====================================  =============================================
``ppl.unfold(step, T)``                a particle filter: one step at a time
                                       (:mod:`ppl.infer.filtering`), one ``lax.scan``
``ppl.seq(a, b, ...)``                 a particle filter part by part: unfold parts
                                       step by step, other parts one importance step
anything else (``ppl.changepoint``,    annealed (tempered) SMC with an adaptive
a ``@ppl.model``, a ``Space`` model)   temperature schedule (:mod:`ppl.infer.tempering`)

(The filter applies to every generative function with segments,
:meth:`ppl.interface.GenerativeFunction.segments`; nothing here knows the
combinators.)
=====================================  =============================================

**Resampling** (``resample=``, see :mod:`ppl.infer.resample`) happens when the
ESS falls below ``ess * n`` (filters; ``ess=0`` never, ``ess=1`` at every step)
and after every temperature stage (tempering, whose next temperature is chosen
so that the conditional ESS is ``ess * n``). Off the CPU the resampling step is
branch-free and the trajectories are traced back with a log-depth scan.

**Rejuvenation** (``rejuvenate=``): a function ``target -> kernel`` that builds a
``ppl.infer.mcmc`` kernel for the generative function the particles live in,
e.g. ``lambda target: ppl.infer.mcmc.random_walk(target, ["x"], 0.5)``. A filter
calls it with the unfold's *step* (the kernel moves the step's latent choices,
with the step's observations fixed) and moves after every resampling, or at
every step with ``rejuvenate_when="always"`` (resample when the ESS is low,
move every step); tempered SMC calls it with the tempered model
(:class:`~ppl.infer.tempering.Tempered`) and moves after every stage.
``moves`` kernel applications each time. Kernels built with ``addresses=None``
(``ppl.infer.mcmc.mala(target)``) move every continuous latent of the target,
wherever it sits in a composition.

**Error bars.** One run's ``log_evidence`` comes without a standard error (no
single-run estimator is honest after systematic resampling). Run independent
replicates in one call and pool them with ``ppl.infer.combine_log_evidence``::

    runs = jax.jit(jax.vmap(lambda k: ppl.infer.smc(k, chain, obs, x0, n=1000).log_evidence))
    estimate = ppl.infer.combine_log_evidence(runs(jax.random.split(key, 16)))

**Compilation and failure** are as for :func:`ppl.infer.importance`: ``obs`` is
validated while the program is traced (unknown addresses, shapes, the unfold's
leading time axis); one compiled program is cached per model, ``n``, settings
and argument shapes (array arguments are traced, other arguments static).
Called eagerly, ``smc`` raises :class:`~ppl.errors.InferenceError` for a NaN
evidence or when every particle has zero weight (naming the step), after
checking the observations themselves (``NonFiniteError``, ``SupportError``).
Inside ``jit``/``vmap`` nothing raises: zero total weight gives
``log_evidence = -inf``, weights 0, ESS 0.

**Progress.** A filter over more than ``10^8`` particle-steps (or any filter with
``progress=True``) runs its time steps in chunks of compiled calls and shows a
progress bar once it has run 2 s; tempered SMC runs one compiled call per stage
and shows the temperature. ``progress=False`` or ``PPL_PROGRESS=0`` hides it.
Results do not depend on the chunking (keys depend only on the step).

Example::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> @ppl.model
    ... def walk(t, x):
    ...     x = ppl.sample("x", dist.Normal(x, 1.0))
    ...     ppl.sample("y", dist.Normal(x, 0.5))
    ...     return x
    >>> chain = ppl.unfold(walk, steps=20)
    >>> result = ppl.infer.smc(jax.random.key(0), chain, {"y": jnp.zeros(20)}, 0.0, n=500)
    >>> result.traces.choices["x"].shape, result.effective_sample_sizes.shape
    ((500, 20), (20,))
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ppl.choices import ChoiceMap, as_choice_map
from ppl.compose.unfold import strong_array
from ppl.errors import InferenceError, ModelDefinitionError
from ppl.infer import filtering, tempering
from ppl.infer.filtering import SMCConfig, SMCResult
from ppl.infer.arguments import check_log_evidence, check_observation_types, is_traced, join_args, split_args
from ppl.infer.progress import progress_bar, progress_enabled
from ppl.infer.resample import RESAMPLERS, ResampleMethodError
from ppl.interface import GenerativeFunction
from ppl.validation import check_key

__all__ = ["SMCResult", "smc"]

LONG_RUN_PARTICLE_STEPS = 10**8
PROGRESS_CHUNKS = 20


def smc(
    key: jax.Array,
    model: GenerativeFunction,
    obs: Mapping | ChoiceMap,
    *args,
    n: int,
    resample: str = "systematic",
    ess: float = 0.5,
    rejuvenate: Callable[[GenerativeFunction], Callable] | None = None,
    moves: int = 1,
    rejuvenate_when: str = "resampled",
    history: bool = True,
    progress: bool | None = None,
) -> SMCResult:
    """Sequential Monte Carlo with ``n`` particles; see the module docstring.

    Args:
      key: a PRNG key.
      model: an unfold or seq (particle filter), or any other generative function
        (tempered SMC).
      obs: the observed choices. For an unfold, every leaf has the leading time
        axis (``{"y": ys}`` with ``ys.shape[0] == steps``); for a seq, under the
        parts' addresses (``{"rise/y": ...}``).
      *args: the model's arguments (an unfold: ``init_state, *step_args``).
      n: the number of particles (a positive Python int).
      resample: ``"systematic"``, ``"stratified"``, ``"multinomial"`` or ``"residual"``.
      ess: in ``[0, 1]``; filters resample when ``ESS < ess * n``; tempering
        targets a conditional ESS of ``ess * n`` per stage (needs ``0 < ess < 1``).
      rejuvenate: ``None``, or ``target -> kernel`` building a ``ppl.infer.mcmc``
        kernel for the target it is given (define it once and reuse it: a new
        function object compiles a new program).
      moves: kernel applications per rejuvenation.
      rejuvenate_when: filters only: ``"resampled"`` (move after each
        resampling) or ``"always"`` (move at every step; resampling still
        happens only when the ESS is low).
      history: keep whole trajectories (``traces``, ``ancestors``; memory
        ``O(steps * n)``); ``False`` keeps only the final ``states`` (filters).
      progress: ``None`` (a bar for long runs, after 2 s), ``True`` or ``False``.

    Returns:
      An :class:`SMCResult`.

    Raises:
      InferenceError: bad settings; empty ``obs``; NaN evidence or every weight
        zero (eager calls).
      UnknownAddressError, ShapeError, DtypeError, NonFiniteError, SupportError:
        bad observations (from the core, naming the address).
    """
    config = _config(model, n, resample, ess, rejuvenate, moves, history, rejuvenate_when)
    check_key(key, "smc", model.name)
    obs = _as_observations(obs, model)
    sequence = filtering.is_sequence(model)
    if not sequence:
        _check_tempering_ess(model, ess)
    if is_traced((key, obs, args)):
        program = filtering.filter_program if sequence else tempering.tempering_program
        _validate(model, obs, args)
        return program(key, model, obs, tuple(args), config)
    obs = _strong(obs)
    dynamic_args, static_args = split_args(args, model)
    dynamic_args = _strong(dynamic_args)
    if sequence:
        result = _run_filter(key, model, obs, dynamic_args, static_args, config, progress)
    else:
        result = _run_tempering(key, model, obs, dynamic_args, static_args, config, progress)
    if result.traces is not None:
        result = result._replace(traces=result.traces._replace(args=tuple(args)))
    _check_result(result, key, model, obs, args)
    return result


# ---------------------------------------------------------------------------
# Settings and observations
# ---------------------------------------------------------------------------


def _config(model, n, method, ess, rejuvenate, moves, history, rejuvenate_when="resampled") -> SMCConfig:
    if not isinstance(model, GenerativeFunction):
        raise ModelDefinitionError(
            f"smc needs a generative function (a ppl.unfold, ppl.seq, @ppl.model, ...) as its model, "
            f"got {type(model).__name__} {model!r}. Decorate the function with @ppl.model."
        )
    name = model.name
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InferenceError(
            f"smc needs a positive Python int number of particles, got n={n!r}. Pass e.g. n=1000.", model=name
        )
    if method not in RESAMPLERS:
        raise ResampleMethodError(method)
    numeric = isinstance(ess, (int, float, np.floating, np.integer)) and not isinstance(ess, bool)
    if not numeric or not 0.0 <= float(ess) <= 1.0:
        raise InferenceError(
            f"smc's ess is the resampling threshold as a fraction of n, a number in [0, 1]; got ess={ess!r}. "
            "Pass e.g. ess=0.5 (resample when the ESS falls below n/2).",
            model=name,
        )
    if rejuvenate is not None and not callable(rejuvenate):
        raise InferenceError(
            f"smc's rejuvenate must be None or a function target -> kernel, got {type(rejuvenate).__name__} "
            f"{rejuvenate!r}. Pass e.g. rejuvenate=lambda target: ppl.infer.mcmc.random_walk(target, ['x'], 0.5).",
            model=name,
        )
    if isinstance(moves, bool) or not isinstance(moves, (int, np.integer)) or moves < 1:
        raise InferenceError(
            f"smc's moves must be a positive int (kernel applications per rejuvenation), got {moves!r}.", model=name
        )
    if rejuvenate_when not in ("resampled", "always"):
        raise InferenceError(
            f"smc's rejuvenate_when is 'resampled' (move after each resampling) or 'always' (move at every "
            f"step), got {rejuvenate_when!r}.",
            model=name,
        )
    defaults = filtering.backend_defaults(jax.default_backend())
    return SMCConfig(int(n), method, float(ess), rejuvenate, int(moves), bool(history), **defaults,
                     move_always=rejuvenate_when == "always")


def _as_observations(obs, model) -> ChoiceMap:
    obs = as_choice_map(obs)
    check_observation_types(obs, model)
    if not obs:
        raise InferenceError(
            "smc was given no observations, so there is nothing to weight the particles by. Pass the "
            f"observed values as {{address: value}}; to sample from the prior use {model.name}.simulate(key, ...).",
            model=model.name,
        )
    return obs


def _strong(tree):
    """Weakly typed arrays (``jnp.full(10, 1.0)``) made strong, so that they hit the same
    compiled program as strongly typed data of the same shape."""
    return jax.tree.map(lambda leaf: strong_array(leaf) if isinstance(leaf, jax.Array) else leaf, tree)


def _check_tempering_ess(model, ess) -> None:
    if not 0.0 < float(ess) < 1.0:
        raise InferenceError(
            f"'{model.name}' is not a sequence, so smc runs tempered SMC, which picks each next "
            f"temperature so that the conditional ESS is ess * n; that needs 0 < ess < 1, got ess={ess}. "
            "Pass e.g. ess=0.5.",
            model=model.name,
        )


def _validate(model, obs: ChoiceMap, args: tuple) -> None:
    """Trace ``model.generate(obs)`` abstractly: unknown addresses, shapes and dtypes raise
    the core's errors now, before anything compiles (once per compiled program)."""
    jax.eval_shape(lambda: model.generate(jax.random.key(0), obs, *args))


# ---------------------------------------------------------------------------
# Compiled programs (cached by jit on the static arguments)
# ---------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("model", "static_args", "config"))
def _filter_whole(key, obs, dynamic_args, *, model, static_args, config):
    args = join_args(dynamic_args, static_args)
    _validate(model, obs, args)
    return filtering.filter_program(key, model, obs, args, config)


def _run_filter(key, model, obs, dynamic_args, static_args, config, progress) -> SMCResult:
    steps = sum(segment.steps for segment in filtering.segments_of(model))
    chunked = filtering._is_single_chain(model) and progress_enabled(progress) and (
        progress is True or config.n * steps >= LONG_RUN_PARTICLE_STEPS
    )
    if not chunked or steps < 2:
        return _filter_whole(key, obs, dynamic_args, model=model, static_args=static_args, config=config)
    return _filter_in_chunks(key, model, obs, dynamic_args, static_args, config, progress, steps)


@functools.partial(jax.jit, static_argnames=("model", "static_args", "config"))
def _chunk_start(key, obs, dynamic_args, *, model, static_args, config):
    args = join_args(dynamic_args, static_args)
    _validate(model, obs, args)
    return filtering.filter_start(key, model, args, config)


@functools.partial(jax.jit, static_argnames=("model", "static_args", "config", "length"))
def _chunk_run(carry, obs_chunk, offset, dynamic_args, *, model, static_args, config, length):
    args = join_args(dynamic_args, static_args)
    return filtering.filter_chunk(carry, model, obs_chunk, offset, length, args, config)


@functools.partial(jax.jit, static_argnames=("model", "static_args", "config"))
def _chunk_finish(carry, obs, records, dynamic_args, *, model, static_args, config):
    args = join_args(dynamic_args, static_args)
    return filtering.filter_finish(carry, model, obs, records, args, config)


def _filter_in_chunks(key, model, obs, dynamic_args, static_args, config, progress, steps) -> SMCResult:
    statics = dict(model=model, static_args=static_args, config=config)
    carry = _chunk_start(key, obs, dynamic_args, **statics)
    length = -(-steps // PROGRESS_CHUNKS)
    records = []
    with progress_bar(steps, f"smc {model.name}", enabled=progress, unit="step") as bar:
        for start in range(0, steps, length):
            size = min(length, steps - start)
            obs_chunk = jax.tree.map(lambda leaf: leaf[start : start + size], obs)
            carry, chunk_records = _chunk_run(carry, obs_chunk, start, dynamic_args, length=size, **statics)
            records.append(chunk_records)
            jax.block_until_ready(carry)
            bar.update(size)
    records = jax.tree.map(lambda *leaves: jnp.concatenate(leaves, axis=0), *records)
    return _chunk_finish(carry, obs, records, dynamic_args, **statics)


@functools.partial(jax.jit, static_argnames=("model", "static_args", "config"))
def _tempering_start(key, obs, dynamic_args, *, model, static_args, config):
    args = join_args(dynamic_args, static_args)
    _validate(model, obs, args)
    return tempering.tempering_init(key, model, obs, args, config)


@functools.partial(jax.jit, static_argnames=("model", "observed_addresses", "static_args", "config"))
def _tempering_stage(state, key, dynamic_args, *, model, observed_addresses, static_args, config):
    args = join_args(dynamic_args, static_args)
    return tempering.tempering_stage(state, key, model, observed_addresses, args, config)


def _run_tempering(key, model, obs, dynamic_args, static_args, config, progress) -> SMCResult:
    statics = dict(model=model, static_args=static_args, config=config)
    state = _tempering_start(key, obs, dynamic_args, **statics)
    stage_key = tempering.first_stage_key(key)
    records = []
    units = 1000
    with progress_bar(units, f"smc {model.name} (temperature x{units})", enabled=progress) as bar:
        for index in range(tempering.MAX_STAGES):
            state, record = _tempering_stage(
                state, jax.random.fold_in(stage_key, index), dynamic_args, observed_addresses=obs.addresses(), **statics
            )
            records.append(record)
            reached = int(float(state.beta) * units)
            bar.update(reached - bar.count)
            if float(state.beta) >= 1.0:
                break
    args = join_args(dynamic_args, static_args)
    return tempering.tempering_finish(state, tempering.stack_records(records), args, config)


# ---------------------------------------------------------------------------
# Checks of an eager result
# ---------------------------------------------------------------------------


def _check_result(result: SMCResult, key, model, obs, args) -> None:
    check_log_evidence(
        result.log_evidence,
        result.log_weights,
        key,
        model,
        obs,
        args,
        increments=result.log_evidence_increments,
        unit="step" if result.temperatures is None else "temperature stage",
    )
