"""A progress bar for long inference runs, shown only when a run is long.

Inference loops that run in several compiled calls (chunks of particles, MCMC
sweeps, benchmark sizes) report progress *between* calls, from Python, never
from inside ``jit``. The bar is `tqdm <https://tqdm.github.io>`_'s (installed with
numpyro), written to stderr, and appears only once a run has lasted
``delay`` seconds (2 s by default), so short runs — tests, small problems — print
nothing. Libraries print nothing else.

Switch it off per call (``progress=False`` on the functions that take it), or
everywhere with the environment variable ``PPL_PROGRESS=0``. ``progress=True``
shows the bar from the start.

Example::

    >>> from ppl.infer.progress import progress_bar
    >>> with progress_bar(3, "chunks", enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.update()
    >>> bar.count
    3
"""

from __future__ import annotations

import os
import sys

__all__ = ["ProgressBar", "progress_bar", "progress_enabled"]

DEFAULT_DELAY_S = 2.0
ENVIRONMENT_VARIABLE = "PPL_PROGRESS"


def progress_enabled(progress: bool | None = None) -> bool:
    """Resolve a ``progress`` argument: ``True``/``False`` win; ``None`` follows ``PPL_PROGRESS``.

    ``PPL_PROGRESS`` set to ``0``, ``false``, ``no`` or ``off`` disables bars; unset
    (the default) enables them (they still wait ``delay`` seconds before showing).
    """
    if progress is not None:
        return bool(progress)
    value = os.environ.get(ENVIRONMENT_VARIABLE, "1").strip().lower()
    return value not in {"0", "false", "no", "off"}


class ProgressBar:
    """Counts finished units of work; draws a tqdm bar when enabled.

    Use :func:`progress_bar` to make one. ``update(k)`` adds ``k`` finished units;
    ``count`` is the number so far. A context manager: the bar closes on exit.
    """

    def __init__(self, total: int, description: str, *, enabled: bool, delay: float, unit: str):
        self.total = total
        self.count = 0
        self._bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # tqdm comes with numpyro; without it, no bar
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(
                    total=total, desc=description, unit=unit, delay=delay, file=sys.stderr, leave=False
                )

    def update(self, units: int = 1) -> None:
        self.count += units
        if self._bar is not None:
            self._bar.update(units)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def progress_bar(
    total: int,
    description: str,
    *,
    enabled: bool | None = None,
    delay: float | None = None,
    unit: str = "it",
) -> ProgressBar:
    """A progress bar over ``total`` units of work, updated from Python between compiled calls.

    Args:
      total: how many units the run has (chunks, sweeps, ...).
      description: a short label, e.g. ``"importance"``.
      enabled: ``True`` shows the bar from the start; ``False`` never shows it;
        ``None`` (default) shows it once the run has lasted ``delay`` seconds,
        unless ``PPL_PROGRESS=0``.
      delay: seconds before the bar appears (default 2 s; 0 when ``enabled=True``).
      unit: the unit's name on the bar.
    """
    if delay is None:
        delay = 0.0 if enabled else DEFAULT_DELAY_S
    return ProgressBar(total, description, enabled=progress_enabled(enabled), delay=delay, unit=unit)
