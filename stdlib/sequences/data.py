"""A series as the grammar sees it: checked, standardised, on a scaled time axis.

:func:`prepare` turns what a user has (a NumPy array, a list, a pandas Series
with a date index; NaNs for missing points; an optional time axis ``t``,
possibly irregular) into a :class:`Series`: the values standardised to mean 0
and standard deviation 1 (missing points filled with 0 and masked), time scaled
to ``u`` in ``[0, 1]``, and what is needed to map back (mean, scale, times,
dates). Bad input raises :class:`ppl.errors.DataError` saying what to fix.

Example::

    >>> import numpy as np
    >>> series = prepare(np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0]))
    >>> series.length, int(series.observed.sum())
    (6, 5)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ppl.errors import DataError
from stdlib.sequences.components import TimeScale

__all__ = ["MIN_POINTS", "Series", "prepare"]

MIN_POINTS = 6  # observed points the smallest structure needs (a level and its noise, with a margin)

# pandas offset aliases -> the natural period (in steps of that frequency) a user expects
_SEASONS = {"MS": 12, "ME": 12, "M": 12, "QS": 4, "QE": 4, "Q": 4, "W": 52, "D": 7, "B": 5, "h": 24, "H": 24}


@dataclasses.dataclass(frozen=True)
class Series:
    """A prepared series (see the module docstring); ``T`` points.

    Attributes:
      values: ``(T,)`` float32 standardised values, 0 where missing.
      observed: ``(T,)`` bool.
      times: ``(T,)`` float64 times in the user's units (steps of the date frequency for a date index).
      mean, scale: the standardisation: ``y = mean + scale * values``.
      dates: the pandas ``DatetimeIndex`` when the series had one, else ``None``.
      season: the natural period of a dated series' frequency (12 for monthly data), else ``None``.
      name: the series' name (for reports).
    """

    values: np.ndarray
    observed: np.ndarray
    times: np.ndarray
    mean: float
    scale: float
    dates: Any = None
    season: int | None = None
    name: str = "series"

    @property
    def length(self) -> int:
        return int(self.values.shape[0])

    @property
    def span(self) -> float:
        """``t_last - t_first`` in the user's units (from the first point seen, so extensions keep it)."""
        return float(self._span)

    @property
    def u(self) -> np.ndarray:
        """``(T,)`` float32 scaled times ``(t - t_first) / span``."""
        return ((self.times - self.times[0]) / self._span).astype(np.float32)

    @property
    def step(self) -> float:
        """The typical spacing in ``u`` (the median step)."""
        return float(np.median(np.diff(self.times)) / self._span)

    @property
    def time_scale(self) -> TimeScale:
        return TimeScale(self.span, self.step)

    @property
    def _span(self) -> float:
        return self.__dict__.get("span_", float(self.times[-1] - self.times[0]))

    def arguments(self) -> tuple:
        """The grammar's model arguments ``(u, span, step, observed)``."""
        return (self.u, self.span, self.step, self.observed)

    def original(self, standardised: np.ndarray) -> np.ndarray:
        """Values in the user's units."""
        return self.mean + self.scale * np.asarray(standardised)

    def label(self, time: float):
        """A time in the user's units as the user knows it: a date for a dated series, else the number."""
        if self.dates is None:
            return float(time)
        import pandas as pd

        offset = round(time)
        return pd.date_range(self.dates[0], periods=offset + 1, freq=self.dates.freq)[-1] if offset >= 0 else time

    def extended(self, y_new, t_new=None) -> Series:
        """This series with more points appended (same standardisation and time scale)."""
        values, times, dates = _read(y_new, t_new, start=self.times[-1], dates=self.dates, name=self.name)
        if t_new is None and self.dates is None:
            times = self.times[-1] + self.times.ravel()[-1] * 0 + np.arange(1, len(values) + 1) * np.median(
                np.diff(self.times))
        all_times = np.concatenate([self.times, times])
        _check_times(all_times)
        _check_values(values)
        observed = np.isfinite(values)
        standardised = np.where(observed, (values - self.mean) / self.scale, 0.0).astype(np.float32)
        if dates is not None and self.dates is not None:
            dates = self.dates.append(dates)
            dates.freq = self.dates.freq
        series = dataclasses.replace(self, values=np.concatenate([self.values, standardised]),
                                     observed=np.concatenate([self.observed, observed]), times=all_times,
                                     dates=dates if dates is not None else self.dates)
        object.__setattr__(series, "span_", self._span)
        return series


def prepare(y, t=None, *, name: str | None = None) -> Series:
    """Check and standardise a series (see the module docstring).

    Args:
      y: ``(T,)`` values: a NumPy array, a list or a pandas Series (a ``DatetimeIndex`` with a regular
        frequency gives the time axis in steps of that frequency, and the natural season).
      t: optional ``(T,)`` increasing times (irregular spacing allowed); default ``0, 1, ..., T - 1``.
      name: the series' name for reports (default: the pandas Series' name, or ``"series"``).

    Raises:
      DataError: non-numeric values, infinite values, a series that is not one-dimensional, fewer than
        :data:`MIN_POINTS` observed points, all values missing, a constant series, or
        ``t`` of the wrong length, not finite or not strictly increasing.
    """
    values, times, dates = _read(y, t, start=None, dates=None, name=name)
    _check_times(times)
    _check_values(values)
    observed = np.isfinite(values)
    if not observed.any():
        raise DataError("every value of the series is missing (NaN); pass a series with observed values.")
    if observed.sum() < MIN_POINTS:
        raise DataError(f"the series has {int(observed.sum())} observed points; the smallest structure (a level "
                        f"and its noise) needs at least {MIN_POINTS}.")
    mean = float(np.mean(values[observed]))
    scale = float(np.std(values[observed]))
    if not scale > 0 or np.ptp(values[observed]) == 0:  # rounding makes the std of a constant series 1e-16, not 0
        raise DataError(f"the series is constant ({mean:g} at every observed point): there is nothing to explain.")
    standardised = np.where(observed, (values - mean) / scale, 0.0).astype(np.float32)
    season = _season(dates)
    label = name if name is not None else (getattr(y, "name", None) or "series")
    return Series(standardised, observed, times, mean, scale, dates, season, str(label))


def _read(y, t, *, start, dates, name):
    """``(values float64 (T,), times float64 (T,), dates or None)`` from the user's input."""
    index = getattr(y, "index", None)
    raw = getattr(y, "to_numpy", lambda: y)()
    if _is_complex(raw):
        raise DataError("the series holds complex numbers; pass real values (e.g. y.real or np.abs(y)).")
    try:
        values = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as error:
        sample = next((v for v in np.asarray(raw, dtype=object).ravel()
                       if not isinstance(v, (int, float, np.number))), None)
        raise DataError(f"the series must be numeric; found the value {sample!r}. Convert it (e.g. "
                        "pandas.to_numeric(column, errors='coerce') turns bad entries into missing values).") \
            from error
    if values.ndim != 1:
        raise DataError(f"the series must be one-dimensional, got shape {values.shape}; pass one column.")
    new_dates = None
    if t is not None:
        if _is_complex(t):
            raise DataError("t holds complex numbers; pass real times (e.g. years as numbers).")
        try:
            times = np.asarray(t, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise DataError("t must be numeric times (e.g. years as numbers); for dates pass a pandas Series "
                            "with a DatetimeIndex as y.") from error
        if times.shape != values.shape:
            raise DataError(f"t has shape {times.shape} but the series has {values.shape}; give one time per "
                            "value.")
    elif index is not None and _is_dates(index):
        freq = index.freq or _infer_freq(index)
        if freq is None:
            raise DataError("the series' dates are irregular; pass t= (e.g. days since the first date) or "
                            "resample the series to a regular frequency first.")
        origin = dates[0] if dates is not None else index[0]
        import pandas as pd

        steps = len(pd.date_range(origin, index[0], freq=freq)) - 1
        times = steps + np.arange(len(values), dtype=np.float64)
        new_dates = pd.DatetimeIndex(index, freq=freq)
    else:
        first = 0.0 if start is None else None
        times = np.arange(len(values), dtype=np.float64) if first is not None else np.zeros(len(values))
    return values, times, new_dates


def _is_complex(values) -> bool:
    try:
        return bool(np.iscomplexobj(values))
    except (TypeError, ValueError):  # ragged: reported as not numeric
        return False


def _check_values(values: np.ndarray) -> None:
    if np.isinf(values).any():
        bad = int(np.argmax(np.isinf(values)))
        raise DataError(f"the series holds {values[bad]:g} at index {bad}. Fix that value, or set it to NaN to mark a "
                        "missing point.")


def _check_times(times: np.ndarray) -> None:
    if not np.all(np.isfinite(times)):
        raise DataError("t must be finite at every point.")
    if times.size > 1 and np.any(np.diff(times) <= 0):
        bad = int(np.argmax(np.diff(times) <= 0))
        raise DataError(f"t must be strictly increasing; t[{bad}] = {times[bad]:g} is followed by "
                        f"t[{bad + 1}] = {times[bad + 1]:g}. Sort the series by time (and merge repeated times).")


def _is_dates(index) -> bool:
    return getattr(index, "dtype", None) is not None and np.issubdtype(index.dtype, np.datetime64)


def _infer_freq(index):
    import pandas as pd

    try:
        return pd.infer_freq(index)
    except (TypeError, ValueError):
        return None


def _season(dates) -> int | None:
    if dates is None or dates.freq is None:
        return None
    code = getattr(dates.freq, "rule_code", None) or str(dates.freq)
    return _SEASONS.get(code.split("-")[0])
