"""The modelling language: ``@ppl.model``, ``ppl.sample`` and ``ppl.factor``.

A model is a Python function that makes random choices with
:func:`sample`; :func:`model` turns it into a :class:`Model`, a generative
function with the interface of :mod:`ppl.interface` (``simulate``,
``assess``, ``generate``, ``update``). While a model runs, ``ppl.sample``
hands each choice to the context of the current call (:mod:`ppl.context`),
so the same function serves every interpreter.

Example (a model that samples another at an address)::

    >>> import jax, jax.numpy as jnp, ppl
    >>> from ppl import dist
    >>> @ppl.model
    ... def offset(centre):
    ...     return ppl.sample("x", dist.Normal(centre, 1.0))
    >>> @ppl.model
    ... def pair():
    ...     first = ppl.sample("first", offset, 0.0)
    ...     return ppl.sample("second", offset, first)
    >>> pair.simulate(jax.random.key(0)).choices.addresses()
    ('first/x', 'second/x')
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from numpyro.distributions import Distribution

from ppl.context import Context
from ppl.errors import InvalidSampleTargetError, ModelDefinitionError, ParameterError, PPLError
from ppl.interface import Assessment, Generated, GenerativeFunction, Trace, Updated

__all__ = [
    "Trace",
    "Assessment",
    "Generated",
    "Updated",
    "GenerativeFunction",
    "Model",
    "model",
    "sample",
    "factor",
]


# ---------------------------------------------------------------------------
# The DSL: @ppl.model and ppl.sample
# ---------------------------------------------------------------------------

_active = threading.local()


def _context_stack() -> list[Context]:
    stack = getattr(_active, "stack", None)
    if stack is None:
        stack = _active.stack = []
    return stack


def sample(address: str, target: Distribution | GenerativeFunction, *args) -> Any:
    """Make a random choice at ``address`` inside a model; return its value.

    Args:
      address: a name unique within this execution of the model (no ``/``).
      target: a ``ppl.dist`` (numpyro) distribution, or another model /
        generative function, whose choices then live under ``"address/..."``.
      *args: arguments for ``target`` when it is a model.

    Returns:
      The sampled (or constrained) value, or the sub-model's return value.
    """
    stack = _context_stack()
    if not stack:
        raise ModelDefinitionError(
            f"ppl.sample('{address}', ...) was called outside a model. Put it in a function "
            "decorated with @ppl.model and run that with .simulate/.generate/.assess/.update."
        )
    context = stack[-1]
    if isinstance(target, Distribution):
        if args:
            raise ModelDefinitionError(
                f"ppl.sample('{address}', <distribution>, ...) got extra arguments {args!r}; only "
                "models take arguments.",
                address=str(address), model=context.owner,
            )
        return context.sample(address, target)
    if isinstance(target, GenerativeFunction):
        return context.call(address, target, *args)
    raise InvalidSampleTargetError(
        f"ppl.sample needs a distribution (ppl.dist.*) or a model (@ppl.model) as its "
        f"second argument, got {type(target).__name__} {target!r}. If it is a plain Python "
        "function, decorate it with @ppl.model.",
        address=str(address), model=context.owner,
    )


def factor(log_weight) -> None:
    """Add ``log_weight`` to the model's log density (a soft constraint).

    The density of the model becomes unnormalised: ``score = log p(x) + sum of
    factors``. Factors count as observed evidence, so they enter the
    ``generate``/``update`` weights too: with factors, ``generate`` with no
    constraints returns ``log_weight = sum of factors`` rather than 0.

    Example::

        >>> @ppl.model
        ... def near_one():
        ...     x = ppl.sample("x", dist.Normal(0.0, 1.0))
        ...     ppl.factor(-((x - 1.0) ** 2))
    """
    stack = _context_stack()
    if not stack:
        raise ModelDefinitionError(
            "ppl.factor(...) was called outside a model. Put it in a function decorated "
            "with @ppl.model."
        )
    stack[-1].factor(log_weight)


class Model(GenerativeFunction):
    """A generative function written as a Python function with ``ppl.sample`` calls.

    Create one with the :func:`model` decorator. Control flow on traced values
    must use ``jax.lax``; the set of addresses visited must not depend on the
    values sampled (so the choice map has a fixed structure under ``jit``).
    """

    def __init__(self, fn: Callable, name: str | None = None):
        if not callable(fn):
            raise ModelDefinitionError(f"@ppl.model decorates a function, got {fn!r}.")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "model")
        functools.update_wrapper(self, fn)

    def body(self, context: Context, *args):
        self._check_arguments(args)
        stack = _context_stack()
        stack.append(context)
        try:
            return self.fn(*args)
        except PPLError:
            raise
        except (ValueError, OverflowError) as err:  # OverflowError: a Python int beyond JAX's integers
            if "distribution got invalid" in str(err):
                raise _parameter_error(err, context, self.name) from None
            raise _failure(ParameterError, err, context, self.name, args) from err
        except TypeError as err:
            raise _failure(ModelDefinitionError, err, context, self.name, args) from err
        finally:
            stack.pop()

    def _check_arguments(self, args: tuple) -> None:
        """``ModelDefinitionError`` when ``args`` do not fit the function's parameters (too few, too many)."""
        if "_signature" not in self.__dict__:
            try:
                self._signature = inspect.signature(self.fn)
            except (TypeError, ValueError):  # a callable without a signature: not checked
                self._signature = None
        if self._signature is None:
            return
        try:
            self._signature.bind(*args)
        except TypeError as err:
            raise ModelDefinitionError(
                f"'{self.name}{self._signature}' was called with {len(args)} argument(s) "
                f"({_describe_arguments(args)}): {err}. Pass the model's arguments after the key, as in "
                f"{self.name}.simulate(key, ...), or after the model, as in ppl.sample('address', {self.name}, ...).",
                model=self.name,
            ) from None

    def __repr__(self) -> str:
        return f"<ppl.model {self.name}>"


def model(fn: Callable | None = None, *, name: str | None = None):
    """Turn a Python function that calls ``ppl.sample`` into a :class:`Model`.

    Use as ``@ppl.model`` or ``@ppl.model(name="stroke")``.
    """
    if fn is None:
        return lambda f: Model(f, name=name)
    return Model(fn, name=name)


def _failure(kind: type[PPLError], err: Exception, context: Context, name: str, args: tuple) -> PPLError:
    """An error the model's own code raised (often from an argument of the wrong type or shape), re-raised as
    a ``ppl.errors`` exception that says where in the model it happened and with which arguments."""
    visited = list(context.choices)
    where = f"after address '{visited[-1]}'" if visited else "before the first ppl.sample"
    return kind(
        f"running the model raised {type(err).__name__} {where}: {str(err).rstrip('.')}. The model was called with "
        f"({_describe_arguments(args)}). Check that its arguments have the types and shapes the model expects, "
        "and the model's code at the line shown above this error.",
        model=name,
    )


def _describe_arguments(args: tuple) -> str:
    def one(value) -> str:
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            return f"{type(value).__name__} {value.dtype}{list(value.shape)}"
        text = repr(value)
        return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"

    return ", ".join(one(value) for value in args) or "no arguments"


def _parameter_error(err: ValueError, context: Context, name: str) -> ParameterError:
    """numpyro validates concrete parameters when a distribution is built (in user
    code, before ``ppl.sample`` sees it); say where in the model that happened."""
    visited = list(context.choices)
    where = f"after address '{visited[-1]}'" if visited else "before the first ppl.sample"
    return ParameterError(
        f"{err} It was built {where}. Check the parameters passed to that dist.*(...) "
        "call (e.g. a scale must be positive).",
        model=name,
    )
