"""The exceptions users see.

Every error says four things: which model, which address, what was expected and
what came, and what to do next. They are raised while JAX *traces* a model (at
the Python level), so a mistake surfaces before XLA compiles anything and never
as a bare XLA traceback or a silent NaN.

All of them derive from :class:`PPLError`; each also derives from the builtin
exception a Python user would reach for (``KeyError``, ``ValueError``,
``TypeError``), so ``except ValueError`` keeps working.

Example::

    >>> import ppl
    >>> from ppl import dist
    >>> @ppl.model
    ... def coin():
    ...     return ppl.sample("heads", dist.Bernoulli(0.5))
    >>> coin.assess({"head": 1})            # doctest: +SKIP
    UnknownAddressError: model 'coin' never visits address 'head'. Did you mean 'heads'? ...
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "AddressError",
    "CompositionError",
    "ConstraintError",
    "DataError",
    "DtypeError",
    "DuplicateAddressError",
    "InferenceError",
    "InvalidAddressError",
    "InvalidSampleTargetError",
    "MissingChoiceError",
    "MissingDependencyError",
    "ModelDefinitionError",
    "NonFiniteError",
    "PPLError",
    "ParameterError",
    "ShapeError",
    "SupportError",
    "UnknownAddressError",
    "did_you_mean",
]


def did_you_mean(address: str, candidates: Iterable[str]) -> str:
    """A " Did you mean 'x'?" suffix for the closest candidate address, or ""."""
    matches = difflib.get_close_matches(address, list(candidates), n=1, cutoff=0.5)
    return f" Did you mean '{matches[0]}'?" if matches else ""


class PPLError(Exception):
    """Base class of every error raised by ppl.

    Attributes:
      model: name of the outermost model being run (``None`` when not known).
      address: slash-joined address of the offending choice (``None`` when the
        error is not about one choice). The literal text ``{address}`` in a message
        is replaced by it, so a message written deep inside a sub-model can show
        the user the full address.
    """

    def __init__(self, message: str, *, model: str | None = None, address: str | None = None):
        super().__init__(message)
        self.message = message
        self.model = model
        self.address = address

    def within(self, prefix: str, model: str) -> PPLError:
        """Re-home this error under a parent model: ``address`` gains ``prefix/``.

        Used when an error raised inside a sub-model travels up to its caller, so
        the final message names the outermost model and the full address.
        """
        self.address = prefix if self.address is None else f"{prefix}/{self.address}"
        self.model = model
        return self

    def __str__(self) -> str:
        where = []
        if self.model is not None:
            where.append(f"model '{self.model}'")
        if self.address is not None:
            where.append(f"address '{self.address}'")
        head = f"In {', '.join(where)}: " if where else ""
        message = self.message
        if self.address is not None:
            message = message.replace("{address}", self.address)
        return head + message


class AddressError(PPLError, KeyError):
    """An address is used wrongly: twice, never visited, or missing."""

    __str__ = PPLError.__str__  # KeyError would otherwise repr() the message


class DuplicateAddressError(AddressError):
    """One execution of a model visited the same address twice."""


class UnknownAddressError(AddressError):
    """A choice map names an address the model never visits (often a typo)."""


class MissingChoiceError(AddressError):
    """``assess`` was given a choice map without a value for a visited address."""


class InvalidAddressError(AddressError, ValueError):
    """An address is not slash-joined names (``''``, ``'a//x'``, ``'x/'``), or a choice map gives one
    address twice, or both a value and sub-addresses."""


class ConstraintError(PPLError, ValueError):
    """A constrained value does not fit the distribution at its address."""


class ShapeError(ConstraintError):
    """A constrained value has the wrong shape."""


class DtypeError(ConstraintError, TypeError):
    """A constrained value has the wrong dtype (e.g. a float for a Categorical)."""


class SupportError(ConstraintError):
    """A constrained value lies outside the support of its distribution."""


class NonFiniteError(ConstraintError):
    """A constrained value (or observed data) contains NaN or inf."""


class ParameterError(PPLError, ValueError):
    """A distribution was built with a parameter outside its allowed range."""


class ModelDefinitionError(PPLError, TypeError):
    """A model is written or called in a way the language does not allow."""


class InvalidSampleTargetError(ModelDefinitionError):
    """``ppl.sample`` was given something that is neither a distribution nor a model."""


class CompositionError(PPLError, ValueError):
    """A combinator was built or called with arguments that cannot compose.

    Examples: ``unfold`` with ``steps <= 0``; scene parts rendering to canvases
    of different sizes; two ``features`` parts predicting one channel with
    incompatible distribution types or shapes; ``either`` probabilities of the
    wrong length or not summing to one; a grammar code outside its space.
    """


class InferenceError(PPLError, RuntimeError):
    """An inference algorithm cannot produce a meaningful answer.

    Examples: every particle has zero weight (all log weights ``-inf``), NaN
    log weights or gradients, an observation set that is empty.
    """


class DataError(PPLError, ValueError):
    """Data handed to a standard-library routine cannot be used as it is.

    Examples: a series too short for the smallest model, non-numeric values,
    a non-increasing time axis, an all-missing series, a column that does not
    exist; the message says what was expected and how to fix the data.
    """


class MissingDependencyError(PPLError, ImportError):
    """An optional package a routine needs is not installed; the message names the extra to install
    (e.g. ``pip install -e '.[examples]'``)."""
