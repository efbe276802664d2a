"""Analysis by synthesis: a posterior over named hypotheses from their evidence.

``classify(key, models, obs, ...)`` asks each hypothesis (a generative model)
how well it explains the observations and turns the answers into posterior
probabilities::

    log_posterior[k] = log p(obs | model_k) + log prior[k] - log sum_j p(obs | model_j) prior[j]

where ``log p(obs | model_k)`` is estimated per hypothesis, by importance
sampling with ``n`` particles unless an ``estimator`` is given (MAP-refined,
SMC, ...).

**Batches.** ``obs`` holds one observation, or many: every observed leaf with
one extra leading axis ``B``. Which one is found by comparing the leaves'
shapes with the model's own choices (``batched=`` forces it). A batch runs as
one compiled program: ``vmap`` over the observations in a chunk, ``lax.map``
over chunks of ``chunk_size`` observations, so memory stays bounded however
large ``B`` is; no Python loop over observations.

**Hypotheses.** ``models`` maps names to generative functions, called with
``*args``, or to pairs ``(model, hypothesis_args)``, called with
``(*hypothesis_args, *args)``. When every hypothesis is the *same* generative
function and their arguments have one structure (e.g. one digit model whose
class prototype is an argument), the arguments are stacked and the
hypotheses run under one ``vmap``: the model is traced and compiled once for
all of them. Otherwise each hypothesis is traced in turn, inside the same
compiled program.

**Randomness.** Observation ``b`` and hypothesis ``k`` use the key
``fold_in(fold_in(key, b), k)``, so an observation's answer does not depend on
the batch it came in, nor on ``chunk_size`` or ``devices`` (up to
floating-point rounding of differently-sized vectorised arithmetic).

**Devices and processes.** ``devices="all"`` splits the batch over
``jax.devices()``; under ``jax.distributed`` those are every process's devices,
each process computes its share and every process gets the whole result (see
``docs/distributed.md``).

Example::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> def centred_at(mean):
    ...     @ppl.model(name=f"centred_at_{mean}")
    ...     def model():
    ...         mu = ppl.sample("mu", dist.Normal(mean, 1.0))
    ...         ppl.sample("y", dist.Normal(mu, 0.5))
    ...     return model
    >>> models = {"low": centred_at(-2.0), "high": centred_at(2.0)}
    >>> result = ppl.infer.classify(jax.random.key(0), models, {"y": jnp.array([-2.1, 0.3, 2.5])}, n=500)
    >>> result.probabilities.shape, [result.names[k] for k in result.best.tolist()]
    ((3, 2), ['low', 'high', 'high'])
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ppl.choices import ChoiceMap, as_choice_map
from ppl.errors import InferenceError, ModelDefinitionError, ShapeError
from ppl.infer.arguments import check_finite_observations, is_traced, join_args, split_args
from ppl.infer.evidence import as_evidence, log_sum_exp
from ppl.infer.importance import importance
from ppl.infer.scale import device_count, gather, particle_mesh, scan_blocks, shard_particles
from ppl.model import GenerativeFunction
from ppl.validation import check_key

__all__ = ["Classification", "classify"]

Estimator = Callable[..., Any]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class Classification(Mapping):
    """The posterior over hypotheses (a pytree, and a ``Mapping`` name -> probability).

    ``K`` is the number of hypotheses, in the order of ``names``; ``...`` is ``()``
    for one observation and ``(B,)`` for a batch.

    Attributes:
      names: the hypotheses' names (static).
      probabilities: ``(..., K)`` posterior probabilities (sum to 1 over ``K``).
      log_posterior: ``(..., K)`` their logarithms.
      log_evidence: ``(..., K)`` each hypothesis's ``log p(obs | model)`` estimate.
      log_evidence_standard_error: ``(..., K)`` its standard error as the
        estimator reports it (NaN when the estimator reports none).

    ``result[name]`` is that hypothesis's ``(...)`` probability; ``result.best``
    the ``(...)`` index of the most probable one; ``np.asarray(result)`` the
    ``(..., K)`` probabilities.
    """

    names: tuple[str, ...] = dataclasses.field(metadata={"static": True})
    probabilities: jax.Array
    log_posterior: jax.Array
    log_evidence: jax.Array
    log_evidence_standard_error: jax.Array

    def __getitem__(self, name: str) -> jax.Array:
        try:
            index = self.names.index(name)
        except ValueError:
            raise KeyError(f"no hypothesis named {name!r}; the hypotheses are {list(self.names)}") from None
        return self.probabilities[..., index]

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __array__(self, dtype=None, copy=None):
        """``np.asarray(result)`` is ``result.probabilities``, shape ``(..., K)``.

        (Without this NumPy would see a ``Mapping`` and build a 0-d object array,
        on which ``.argmax(-1)`` silently returns nonsense.)
        """
        array = np.asarray(self.probabilities, dtype=dtype)
        return array.copy() if copy else array

    @classmethod
    def from_log_evidence(cls, names, log_evidence, standard_error=None, prior=None) -> "Classification":
        """The posterior from evidences you computed yourself: ``log_evidence (..., K)``, one per name.

        ``standard_error`` defaults to NaN (none reported); ``prior`` is ``{name: probability}`` (default uniform).
        For estimators that do not fit :func:`classify`'s one-hypothesis-at-a-time protocol (e.g. one that
        spends more on the hypotheses that lead). Example::

            >>> import jax.numpy as jnp
            >>> result = Classification.from_log_evidence(("a", "b"), jnp.log(jnp.array([1.0, 3.0])))
            >>> [round(float(p), 2) for p in result.probabilities]
            [0.25, 0.75]
        """
        names = tuple(str(name) for name in names)
        log_evidence = jnp.asarray(log_evidence)
        if log_evidence.shape[-1:] != (len(names),):
            raise ShapeError(f"log_evidence needs a last axis of {len(names)} (one per name); got shape "
                             f"{tuple(log_evidence.shape)}.")
        if standard_error is None:
            standard_error = jnp.full(log_evidence.shape, jnp.nan)
        return _posterior(names, log_evidence, jnp.asarray(standard_error), _log_prior(prior, names))

    @property
    def best(self) -> jax.Array:
        """``(...)`` int index (into ``names``) of the most probable hypothesis."""
        return jnp.argmax(self.log_posterior, axis=-1)

    def __repr__(self) -> str:
        shape = tuple(self.probabilities.shape[:-1])
        return f"Classification(names={list(self.names)}, batch_shape={shape})"


def classify(
    key: jax.Array,
    models: Mapping[str, GenerativeFunction | tuple],
    obs: Mapping | ChoiceMap,
    *args,
    n: int = 1000,
    prior: Mapping[str, float] | None = None,
    estimator: Estimator | None = None,
    chunk_size: int | None = None,
    batched: bool | None = None,
    devices=None,
) -> Classification:
    """Posterior probabilities of named hypotheses given observations (see the module docstring).

    Args:
      key: a PRNG key.
      models: ``{name: model}`` or ``{name: (model, hypothesis_args)}``; at least two.
      obs: the observed choices ``{address: value}`` of one observation, or of
        ``B`` observations stacked on a leading axis.
      *args: arguments shared by every hypothesis (after its own).
      n: particles per (observation, hypothesis) for the default importance estimator.
      prior: ``{name: probability}`` over the hypotheses (``None``: uniform).
      estimator: ``estimator(key, model, obs, *args)`` for one observation and
        one hypothesis, returning ``log_evidence``, a pair ``(log_evidence,
        standard_error)`` or a result with a ``log_evidence`` attribute (e.g.
        ``ppl.infer.smc``'s). It must be jittable and vmappable; define it once
        (a new function object recompiles). ``None``: importance sampling with
        ``n`` prior particles.
      chunk_size: observations per vectorised chunk (``None``: all at once).
      batched: force the batch detection (``True``: leading axis is the batch).
      devices: ``None`` (the default device), ``"all"`` (``jax.devices()``: under
        ``jax.distributed``, every process's) or a sequence of devices: the batch of
        observations is split over them (padded to a multiple of their number);
        every process gets the whole result. Needs a batch.

    Returns:
      A :class:`Classification`.

    Raises:
      InferenceError: fewer than two hypotheses, a bad prior, a NaN evidence,
        an observation that every hypothesis gives zero probability, bad ``devices``
        or ``devices`` with a single observation.
      ShapeError: observations whose shapes fit neither one observation nor a batch.
    """
    names, hypotheses = _check_models(models)
    check_key(key, "classify")
    log_prior = _log_prior(prior, names)
    obs = as_choice_map(obs)
    if not obs:
        raise InferenceError("classify was given no observations. Pass {address: value} of the observed data.")
    batch = _batch_size(obs, hypotheses, args, batched)
    chunk_size = _check_chunk_size(chunk_size, batch)
    mesh = particle_mesh(devices)
    if mesh is not None and batch is None:
        raise InferenceError(
            "classify's devices= splits a batch of observations over the devices, but obs holds one "
            "observation. Stack several observations on a leading axis, or leave devices=None."
        )
    estimator = _default_estimator(n) if estimator is None else estimator
    traced = is_traced((key, obs, args, [h[1] for h in hypotheses]))
    if not traced:
        check_finite_observations(obs, batched=batch is not None)
    plan = _plan(hypotheses, args)
    if traced:
        log_evidence, standard_error = _program(key, obs, plan.dynamic, structure=plan.structure,
                                                estimator=estimator, batch=batch, chunk_size=chunk_size, mesh=mesh)
    else:
        log_evidence, standard_error = gather(_compiled_program(
            key, obs, plan.dynamic, structure=plan.structure, estimator=estimator, batch=batch,
            chunk_size=chunk_size, mesh=mesh), mesh)
    result = _posterior(names, log_evidence, standard_error, log_prior)
    if not traced:
        _check_result(result, key, obs, hypotheses, args, batch)
    return result


# ---------------------------------------------------------------------------
# The compiled program
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Plan:
    dynamic: tuple  # traced arrays: per hypothesis (looped) or stacked (vmapped)
    structure: tuple  # static: ("vmap", model, static_args) or ("loop", ((model, static_args), ...))


def _plan(hypotheses, shared_args) -> _Plan:
    calls = [(model, tuple(own) + tuple(shared_args)) for model, own in hypotheses]
    splits = [split_args(call_args, model) for model, call_args in calls]
    first_model, (first_dynamic, first_static) = calls[0][0], splits[0]
    same = all(model is first_model for model, _ in calls) and all(
        static == first_static and _signature(dynamic) == _signature(first_dynamic) for dynamic, static in splits
    )
    if same and len(first_dynamic) > 0:
        stacked = tuple(jnp.stack([jnp.asarray(dynamic[i]) for dynamic, _ in splits]) for i in range(len(first_dynamic)))
        return _Plan(stacked, ("vmap", first_model, first_static, len(calls)))
    loop = tuple((model, static) for (model, _), (_, static) in zip(calls, splits))
    return _Plan(tuple(dynamic for dynamic, _ in splits), ("loop", loop))


def _signature(arrays) -> tuple:
    return tuple((jnp.shape(a), jnp.result_type(a)) for a in arrays)


def _evidence_one(key, obs, dynamic, *, structure, estimator):
    """``(K,)`` log evidences and standard errors for one observation."""
    if structure[0] == "vmap":
        _, model, static, count = structure

        def one(k, hypothesis_dynamic):
            return _call(estimator, jax.random.fold_in(key, k), model, obs, join_args(hypothesis_dynamic, static))

        return jax.vmap(one)(jnp.arange(count), dynamic)
    results = [
        _call(estimator, jax.random.fold_in(key, k), model, obs, join_args(hypothesis_dynamic, static))
        for k, ((model, static), hypothesis_dynamic) in enumerate(zip(structure[1], dynamic))
    ]
    return tuple(jnp.stack(parts) for parts in zip(*results))


def _call(estimator, key, model, obs, args):
    return as_evidence(estimator(key, model, obs, *args), "classify's estimator")


def _program(key, obs, dynamic, *, structure, estimator, batch, chunk_size, mesh=None):
    one = functools.partial(_evidence_one, dynamic=dynamic, structure=structure, estimator=estimator)
    if batch is None:
        return one(jax.random.fold_in(key, 0), obs)
    keys = jax.vmap(lambda b: jax.random.fold_in(key, b))(jnp.arange(batch))
    return chunked_vmap(one, (keys, obs), batch, chunk_size, mesh)


_compiled_program = jax.jit(_program, static_argnames=("structure", "estimator", "batch", "chunk_size", "mesh"))


def chunked_vmap(fn: Callable, inputs, size: int, chunk_size: int | None, mesh=None):
    """``jax.vmap(fn)(*inputs)`` over a leading axis of ``size``, ``chunk_size`` at a time.

    Inside one program: the inputs are padded (with copies of the first row) to
    a multiple of ``chunk_size`` and :func:`ppl.infer.scale.scan_blocks` runs
    ``vmap(fn)`` on each chunk in a ``lax.map``; the padding is dropped.
    ``chunk_size=None`` (or ``>= size``) is a plain ``vmap``. With a ``mesh``
    (:func:`ppl.infer.scale.particle_mesh`) each chunk, rounded up to a multiple
    of the mesh's devices, is split over them.
    """
    devices = device_count(mesh)
    chunk = size if chunk_size is None or chunk_size >= size else chunk_size
    chunk = -(-chunk // devices) * devices
    padded_size = -(-size // chunk) * chunk
    padding = padded_size - size

    def pad(leaf):
        leaf = jnp.asarray(leaf)
        return jnp.concatenate([leaf, jnp.broadcast_to(leaf[:1], (padding, *leaf.shape[1:]))]) if padding else leaf

    def run(part):
        return jax.vmap(fn)(*shard_particles(part, mesh))

    padded = jax.tree_util.tree_map(pad, inputs) if padding else inputs
    if chunk == padded_size:
        return jax.tree_util.tree_map(lambda leaf: leaf[:size], run(padded)) if padding else run(padded)

    def block(start):
        part = jax.tree_util.tree_map(lambda leaf: jax.lax.dynamic_slice_in_dim(leaf, start, chunk), padded)
        return run(part), None

    return scan_blocks(block, size, chunk)[0]


def _default_estimator(n: int) -> Estimator:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InferenceError(f"classify needs a positive Python int number of particles, got n={n!r}.")
    return _importance_estimators.setdefault(int(n), functools.partial(_importance_evidence, n=int(n)))


_importance_estimators: dict[int, Estimator] = {}


def _importance_evidence(key, model, obs, *args, n):
    result = importance(key, model, obs, *args, n=n)
    return result.log_evidence, result.log_evidence_standard_error


def _posterior(names, log_evidence, standard_error, log_prior) -> Classification:
    joint = log_evidence + log_prior
    total = log_sum_exp(joint)[..., None]
    finite = jnp.isfinite(total)
    log_posterior = jnp.where(finite, joint - jnp.where(finite, total, 0.0), -jnp.inf)
    return Classification(names, jnp.exp(log_posterior), log_posterior, log_evidence, standard_error)


# ---------------------------------------------------------------------------
# Checks (Python, before or after the compiled program)
# ---------------------------------------------------------------------------


def _check_models(models) -> tuple[tuple[str, ...], list[tuple[GenerativeFunction, tuple]]]:
    if not isinstance(models, Mapping) or len(models) < 2:
        raise InferenceError(
            "classify needs a mapping {name: model} of at least two hypotheses to choose between, "
            f"got {models!r}."
        )
    names, hypotheses = [], []
    for name, hypothesis in models.items():
        if not isinstance(name, str):
            raise InferenceError(f"classify's hypotheses are named by strings, got the key {name!r}.")
        model, own_args = hypothesis if isinstance(hypothesis, tuple) and len(hypothesis) == 2 else (hypothesis, ())
        if not isinstance(model, GenerativeFunction):
            raise ModelDefinitionError(
                f"hypothesis {name!r} must be a generative function or a pair (model, args), got "
                f"{type(hypothesis).__name__} {hypothesis!r}. Decorate the function with @ppl.model."
            )
        if not isinstance(own_args, tuple):
            raise ModelDefinitionError(
                f"hypothesis {name!r}: the arguments in (model, args) must be a tuple, got {own_args!r}."
            )
        names.append(name)
        hypotheses.append((model, own_args))
    return tuple(names), hypotheses


def _log_prior(prior, names) -> jax.Array:
    if prior is None:
        return jnp.full(len(names), -np.log(len(names)), jnp.float32)
    if not isinstance(prior, Mapping) or set(prior) != set(names):
        raise InferenceError(
            f"classify's prior must give a probability for each hypothesis {list(names)}, got {prior!r}."
        )
    probabilities = np.array([float(prior[name]) for name in names])
    if np.any(~np.isfinite(probabilities)) or np.any(probabilities < 0) or abs(probabilities.sum() - 1) > 1e-5:
        raise InferenceError(
            f"classify's prior probabilities must be non-negative and sum to 1, got {dict(prior)} "
            f"(sum {probabilities.sum():.6g}). Normalise them."
        )
    with np.errstate(divide="ignore"):
        return jnp.asarray(np.log(probabilities), jnp.float32)


def _batch_size(obs: ChoiceMap, hypotheses, args, batched) -> int | None:
    """``None`` for one observation, else ``B`` (leaves' extra leading axis)."""
    model, own = hypotheses[0]
    call_args = tuple(own) + tuple(args)
    try:
        shapes = jax.eval_shape(lambda k: model.simulate(k, *call_args).choices, jax.random.key(0))
    except Exception:  # noqa: BLE001 - a model that cannot be simulated abstractly: fall back to `batched`
        shapes = None
    sizes = set()
    for address, leaf in obs.items():
        leaf_shape = np.shape(leaf)
        expected = None
        if shapes is not None and shapes.has_value(address):
            expected = tuple(shapes[address].shape)
        if batched is True or (batched is None and expected is not None and leaf_shape != expected):
            if len(leaf_shape) == 0 or (expected is not None and leaf_shape[1:] != expected):
                raise ShapeError(
                    f"the observation at '{address}' has shape {leaf_shape}; the model "
                    f"'{model.name}' makes it with shape {expected}, so classify expected that "
                    f"shape (one observation) or (B, *{expected}) (a batch of B).",
                    address=address,
                )
            sizes.add(leaf_shape[0])
        elif batched is None and expected is None:
            raise ShapeError(
                f"classify cannot tell whether '{address}' holds one observation or a batch: the "
                f"model '{model.name}' did not make it when simulated. Pass batched=True or False.",
                address=address,
            )
    if batched is False or not sizes:
        return None
    if len(sizes) > 1:
        raise ShapeError(
            f"the observed leaves have different batch sizes {sorted(sizes)}; stack the same "
            "number of observations at every address."
        )
    return int(sizes.pop())


def _check_chunk_size(chunk_size, batch) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise InferenceError(f"chunk_size must be a positive Python int, got {chunk_size!r}.")
    return None if batch is None else int(chunk_size)


def _check_result(result: Classification, key, obs: ChoiceMap, hypotheses, args, batch) -> None:
    log_evidence = np.asarray(result.log_evidence)
    if np.isnan(log_evidence).any():
        index = tuple(int(i) for i in np.argwhere(np.isnan(log_evidence))[0])
        name = result.names[index[-1]]
        which = f" for observation {index[0]}" if batch is not None else ""
        raise InferenceError(
            f"hypothesis {name!r} has a NaN log evidence{which}. The NaN comes from the model's "
            "arithmetic or the estimator; check it with model.generate(key, obs, ...).",
        )
    none = ~np.isfinite(np.asarray(result.log_posterior)).any(axis=-1)
    if none.any():
        index = int(np.argmax(none)) if batch is not None else None
        one = obs if batch is None else jax.tree_util.tree_map(lambda leaf: leaf[index], obs)
        for model, own in hypotheses:  # an invalid observation raises the core's error naming it
            model.generate(key, one, *own, *args)
        which = f"observation {index}" if batch is not None else "the observation"
        raise InferenceError(
            f"every hypothesis gives {which} zero probability (log evidence -inf for all of "
            f"{list(result.names)}), so the posterior is undefined. Use more particles, a better "
            "estimator, or check that the data is possible under at least one model.",
        )
