"""The sites of a model, and its continuous choices in unconstrained space.

Gradient-based inference (``ppl.infer.map``, the MALA kernel) moves continuous
choices in an unconstrained space. For a choice ``x`` at an address whose
distribution has support ``S``, numpyro's ``biject_to(S)`` gives a bijection
``T: R^k -> S`` and we work with ``u = T^{-1}(x)``:

=====================  ==========================================================
support                ``T`` (from numpyro)
=====================  ==========================================================
``real``               identity
``positive``           ``exp``
``interval(a, b)``     ``a + (b - a) * sigmoid(u)``
``simplex``            stick-breaking (``K`` values from ``K - 1`` reals)
=====================  ==========================================================

:func:`constrain` returns the choices ``x = T(u)`` and, per address, the
log-determinant ``log |det dT/du|``, so the density of ``u`` is
``log p(T(u)) + sum(log_abs_det_jacobian)``. The transforms are computed *while
the model runs*, from the distribution each ``ppl.sample`` call builds, so a
support that depends on other choices or on the arguments is handled exactly.

This module is the one place that knows how to look inside a model. It runs a
``@ppl.model`` function with a *site walker* standing in for the recorder of
``ppl.model`` (it sees each ``ppl.sample`` call: address, distribution), and
descends into sub-models. A generative function that is not a ``@ppl.model``
(a combinator with its own ``run``) is run as a whole; its choices can be
observed or fixed, but their distributions are hidden, so they cannot be
transformed (:class:`~ppl.errors.InferenceError` says so).

Example::

    >>> import jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> from ppl.infer.unconstrained import constrain, unconstrain
    >>> @ppl.model
    ... def scale_model():
    ...     return ppl.sample("s", dist.HalfNormal(1.0))
    >>> choices = ppl.ChoiceMap({"s": 2.0})
    >>> u = unconstrain(scale_model, choices, ("s",), ())
    >>> round(float(u["s"]), 4)            # log 2
    0.6931
    >>> x, log_det = constrain(scale_model, choices, u, ())
    >>> round(float(x["s"]), 4), round(float(log_det["s"]), 4)
    (2.0, 0.6931)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution
from numpyro.distributions.transforms import Transform, biject_to

from ppl import validation
from ppl.choices import ChoiceMap, join_address, split_address
from ppl.errors import (
    DuplicateAddressError,
    InferenceError,
    InvalidSampleTargetError,
    MissingChoiceError,
    ModelDefinitionError,
    PPLError,
    UnknownAddressError,
    did_you_mean,
)
from ppl.model import GenerativeFunction, Model, _handler_stack

__all__ = [
    "Site",
    "walk",
    "model_sites",
    "site_transform",
    "constrain",
    "unconstrain",
    "total_log_det",
    "split_static",
    "join_static",
]


class Site(NamedTuple):
    """What a model's run shows about one address.

    Attributes:
      distribution: the distribution sampled there, or ``None`` when the address
        lies inside a generative function that is not a ``@ppl.model``.
      owner: name of that opaque generative function (``None`` otherwise).
    """

    distribution: Distribution | None
    owner: str | None = None

    @property
    def is_discrete(self) -> bool | None:
        """True/False for a visible site; ``None`` when the distribution is hidden."""
        if self.distribution is None:
            return None
        return bool(getattr(self.distribution.support, "is_discrete", False))


# ---------------------------------------------------------------------------
# The site walker
# ---------------------------------------------------------------------------

OnSite = Callable[[str, Distribution], Any]
OnOpaque = Callable[[str, GenerativeFunction, tuple], Any]
OnFactor = Callable[[str, jax.Array], None]


def _walkable(target: Any) -> bool:
    """A ``@ppl.model`` whose ``run`` is the language's own (so its function can be walked)."""
    return isinstance(target, Model) and type(target).run is Model.run


class _SiteWalker:
    """Stands in for ``ppl.model``'s recorder during one run of a model function.

    ``ppl.sample`` and ``ppl.factor`` call ``visit`` and ``add_factor`` on the
    innermost handler; this one hands every site to callbacks with its full
    address and returns whatever value the callback chooses.
    """

    def __init__(self, model_name: str, prefix: str, on_site: OnSite, on_opaque: OnOpaque, on_factor: OnFactor):
        self.model_name = model_name
        self.prefix = prefix
        self.on_site = on_site
        self.on_opaque = on_opaque
        self.on_factor = on_factor
        self.visited: set[str] = set()

    def visit(self, address: Any, target: Any, args: tuple) -> Any:
        parts = split_address(address)
        if len(parts) != 1:
            raise ModelDefinitionError(
                f"ppl.sample address '{address}' contains '/'. Addresses nest through sub-models.",
                address=join_address(self.prefix, str(address)),
            )
        name = parts[0]
        full = join_address(self.prefix, name)
        if name in self.visited:
            raise DuplicateAddressError("this execution visits the address twice.", address=full)
        self.visited.add(name)
        if isinstance(target, Distribution):
            if args:
                raise ModelDefinitionError(
                    f"ppl.sample('{name}', <distribution>, ...) got extra arguments; only models take "
                    "arguments.",
                    address=full,
                )
            return self.on_site(full, target)
        if _walkable(target):
            return _walk(target, args, self.on_site, self.on_opaque, self.on_factor, full, self.model_name)
        if isinstance(target, GenerativeFunction):
            return self.on_opaque(full, target, args)
        raise InvalidSampleTargetError(
            f"ppl.sample needs a distribution or a model, got {type(target).__name__}.", address=full
        )

    def add_factor(self, log_weight: jax.Array) -> None:
        self.on_factor(self.prefix, jnp.sum(jnp.asarray(log_weight)))


def _walk(model, args, on_site, on_opaque, on_factor, prefix, top_name):
    stack = _handler_stack()
    stack.append(_SiteWalker(top_name, prefix, on_site, on_opaque, on_factor))
    try:
        return model.fn(*args)
    finally:
        stack.pop()


def _no_factor(prefix: str, log_weight: jax.Array) -> None:
    return None


def walk(
    model: GenerativeFunction,
    args: Sequence,
    on_site: OnSite,
    on_opaque: OnOpaque | None = None,
    on_factor: OnFactor | None = None,
) -> Any:
    """Run ``model``'s function once, handing every site to callbacks; return its retval.

    Args:
      model: a ``@ppl.model`` (sub-models are walked too, with nested addresses).
      args: the model's arguments.
      on_site: ``on_site(address, distribution) -> value`` for each
        ``ppl.sample`` of a distribution; ``value`` is what the model sees.
      on_opaque: ``on_opaque(address, generative_function, args) -> retval`` for
        a sub-generative-function that is not a ``@ppl.model``. Default: raise
        ``InferenceError``.
      on_factor: ``on_factor(prefix, log_weight)`` for each ``ppl.factor``.
    """
    if not _walkable(model):
        raise InferenceError(
            f"this inference needs to see the distributions inside '{model.name}', which is a "
            f"{type(model).__name__}, not a @ppl.model. Wrap it: @ppl.model def outer(*args): "
            f"return ppl.sample('part', {model.name}, *args) - its observed or fixed choices then "
            "work, but choices inside it cannot be transformed.",
            model=getattr(model, "name", None),
        )
    on_opaque = on_opaque or _opaque_unsupported
    try:
        return _walk(model, tuple(args), on_site, on_opaque, on_factor or _no_factor, "", model.name)
    except PPLError as err:
        if err.model is None:
            err.model = model.name
        raise


def _opaque_unsupported(address: str, target: GenerativeFunction, args: tuple) -> Any:
    raise InferenceError(
        f"'{{address}}' is the generative function '{target.name}' ({type(target).__name__}), which "
        "is not a @ppl.model, so its distributions are hidden from this inference.",
        address=address,
    )


def _given(choices: ChoiceMap, address: str, distribution: Distribution) -> jax.Array:
    """The value of ``address`` in ``choices``, as the model's own run would see it.

    A concrete value is checked eagerly even while tracing (e.g. observations
    closed over by a jitted function): its support check is evaluated at trace time.
    """
    if not choices.has_value(address):
        raise MissingChoiceError(
            "no value for this choice. Pass a complete choice map (e.g. a trace's choices).",
            address=address,
        )
    try:
        with jax.ensure_compile_time_eval():
            return validation.check_constraint(distribution, choices[address])
    except PPLError as err:
        err.address = address
        raise


def _run_opaque(choices: ChoiceMap) -> OnOpaque:
    """Run an opaque sub-generative-function on its (complete) choices; return its retval."""

    def on_opaque(address: str, target: GenerativeFunction, args: tuple) -> Any:
        sub = choices[address] if address in choices else ChoiceMap()
        sub = sub if isinstance(sub, ChoiceMap) else ChoiceMap()
        try:
            trace, _ = target.run(None, sub, tuple(args), True)
        except PPLError as err:
            raise err.within(address, target.name) from None
        return trace.retval

    return on_opaque


# ---------------------------------------------------------------------------
# Sites and transforms
# ---------------------------------------------------------------------------


def model_sites(model: GenerativeFunction, choices: ChoiceMap, args: Sequence) -> dict[str, Site]:
    """``{address: Site}`` for every choice of ``model`` run on the complete ``choices``.

    Addresses inside an opaque generative function get ``Site(None, owner)``.
    """
    sites: dict[str, Site] = {}

    def on_site(address: str, distribution: Distribution) -> jax.Array:
        sites[address] = Site(distribution)
        return _given(choices, address, distribution)

    run_opaque = _run_opaque(choices)

    def on_opaque(address: str, target: GenerativeFunction, args: tuple) -> Any:
        retval = run_opaque(address, target, args)
        sub = choices[address] if address in choices else ChoiceMap()
        if isinstance(sub, ChoiceMap):
            for inner in sub.addresses():
                sites[join_address(address, inner)] = Site(None, target.name)
        return retval

    walk(model, args, on_site, on_opaque)
    return sites


def site_transform(address: str, distribution: Distribution) -> Transform:
    """``biject_to(distribution.support)``, or an ``InferenceError`` saying why there is none."""
    support = distribution.support
    if getattr(support, "is_discrete", False):
        raise InferenceError(
            f"'{{address}}' is discrete ({validation.describe(distribution)}); gradient-based "
            "inference moves continuous choices only. Fix it (pass its value in obs) or leave it "
            "out of the selected addresses.",
            address=address,
        )
    try:
        return biject_to(support)
    except NotImplementedError:
        raise InferenceError(
            f"'{{address}}' has support {support}, which numpyro cannot map to unconstrained "
            "space (no biject_to). Reparametrise the model or fix this choice.",
            address=address,
        ) from None


def _check_selected(selected: Sequence[str], seen: set[str], model: GenerativeFunction) -> None:
    missing = [a for a in selected if a not in seen]
    if missing:
        raise UnknownAddressError(
            f"'{missing[0]}' is not a choice of the model.{did_you_mean(missing[0], sorted(seen))} "
            "Select addresses of continuous choices the model samples from a distribution.",
            model=model.name,
            address=missing[0],
        )


def constrain(
    model: GenerativeFunction,
    choices: ChoiceMap,
    unconstrained: Mapping[str, jax.Array],
    args: Sequence,
) -> tuple[ChoiceMap, dict[str, jax.Array]]:
    """Map unconstrained values back: ``x = T(u)`` at each address of ``unconstrained``.

    Args:
      model: a ``@ppl.model``.
      choices: values for every other choice (e.g. a trace's choices, or
        observations); entries at the addresses of ``unconstrained`` are ignored.
      unconstrained: ``{address: u}`` with ``u`` of ``T``'s input shape.
      args: the model's arguments.

    Returns:
      ``(choices with x = T(u) in place, {address: log |det dT/du| (scalar)})``.
      Differentiable in ``u``.
    """
    values: dict[str, jax.Array] = {}
    log_det: dict[str, jax.Array] = {}

    def on_site(address: str, distribution: Distribution) -> jax.Array:
        if address not in unconstrained:
            return _given(choices, address, distribution)
        transform = site_transform(address, distribution)
        u = jnp.asarray(unconstrained[address])
        x = transform(u)
        values[address] = x
        log_det[address] = jnp.sum(transform.log_abs_det_jacobian(u, x))
        return x

    walk(model, args, on_site, _opaque_guard(unconstrained, _run_opaque(choices)))
    _check_selected(tuple(unconstrained), set(values), model)
    return choices.merge(ChoiceMap(values)), log_det


def unconstrain(
    model: GenerativeFunction,
    choices: ChoiceMap,
    addresses: Sequence[str],
    args: Sequence,
) -> dict[str, jax.Array]:
    """``{address: u = T^{-1}(x)}`` for the given addresses of the complete ``choices``."""
    selected = set(addresses)
    out: dict[str, jax.Array] = {}

    def on_site(address: str, distribution: Distribution) -> jax.Array:
        x = _given(choices, address, distribution)
        if address in selected:
            out[address] = site_transform(address, distribution).inv(x)
        return x

    walk(model, args, on_site, _opaque_guard(selected, _run_opaque(choices)))
    _check_selected(tuple(addresses), set(out), model)
    return out


def _opaque_guard(selected, run_opaque: OnOpaque) -> OnOpaque:
    def on_opaque(address: str, target: GenerativeFunction, args: tuple) -> Any:
        inside = sorted(a for a in selected if a == address or a.startswith(address + "/"))
        if inside:
            raise InferenceError(
                f"'{inside[0]}' lies inside '{target.name}' ({type(target).__name__}), a generative "
                "function that is not a @ppl.model, so ppl cannot see its distribution to move it "
                "in unconstrained space. Fix it (pass it in obs), or leave it out of the selection.",
                address=inside[0],
            )
        return run_opaque(address, target, args)

    return on_opaque


def total_log_det(log_det: Mapping[str, jax.Array]) -> jax.Array:
    """Sum of the per-address log-determinants returned by :func:`constrain`."""
    return sum(log_det.values(), jnp.zeros(()))


# ---------------------------------------------------------------------------
# Compiling functions of model arguments
# ---------------------------------------------------------------------------


def _is_array(leaf: Any) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic))


class StaticPart(NamedTuple):
    """The hashable, non-array part of a pytree (Python numbers, strings, None)."""

    treedef: Any
    is_array: tuple[bool, ...]
    values: tuple[Any, ...]


def split_static(tree: Any) -> tuple[list[Any], StaticPart]:
    """Split ``tree`` into its array leaves (traced by ``jit``) and the rest (static).

    Model arguments that are Python numbers may decide shapes or loop counts
    (``range(n)``), so compiled inference programs keep them static; arrays are
    traced so new data reuses the compiled program.
    """
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    mask = tuple(_is_array(leaf) for leaf in leaves)
    dynamic = [leaf for leaf, is_array in zip(leaves, mask) if is_array]
    static = tuple(None if is_array else leaf for leaf, is_array in zip(leaves, mask))
    return dynamic, StaticPart(treedef, mask, static)


def join_static(static: StaticPart, dynamic: Sequence[Any]) -> Any:
    """Inverse of :func:`split_static`."""
    it = iter(dynamic)
    leaves = [next(it) if is_array else value for is_array, value in zip(static.is_array, static.values)]
    return jax.tree_util.tree_unflatten(static.treedef, leaves)
