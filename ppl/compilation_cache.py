"""A persistent cache of compiled programs: a second run of the same program skips XLA's compilation.

Compiling is most of a short run's time on the CPU (``ppl explain-series`` on a 400-point series spends
about half of it in XLA). JAX can keep what XLA compiled on disk, keyed by the program, the JAX version, the
device and the flags, and reuse it in a later process: JAX's *persistent compilation cache*. Tracing (Python
running the model once) is not cached; XLA's optimisation is.

The ``ppl`` command turns it on for its own process (``ppl demo``, ``explain-series``, ``parse-scene``), in
``$PPL_CACHE_DIR`` (default ``$XDG_CACHE_HOME/ppl/jax``, i.e. ``~/.cache/ppl/jax``); ``PPL_CACHE_DIR=off``
turns it off. In your own programs call :func:`enable_compilation_cache` once, before the first
computation. A cache directory you set yourself (``jax.config.update("jax_compilation_cache_dir", ...)``
or ``JAX_COMPILATION_CACHE_DIR``) is left as it is.

Example::

    >>> import ppl
    >>> path = ppl.enable_compilation_cache("/tmp/ppl-doctest-cache")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import pathlib

import jax

__all__ = ["MIN_COMPILE_SECONDS", "default_cache_dir", "enable_compilation_cache"]

MIN_COMPILE_SECONDS = 0.5  # programs that compile faster are not worth a file


def default_cache_dir() -> pathlib.Path | None:
    """``$PPL_CACHE_DIR``, else ``$XDG_CACHE_HOME/ppl/jax`` (``~/.cache/ppl/jax``); ``None`` when
    ``PPL_CACHE_DIR`` is ``off``."""
    chosen = os.environ.get("PPL_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in ("off", "0", "false", "") else pathlib.Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "ppl" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> pathlib.Path | None:
    """Keep compiled programs in ``path`` (default :func:`default_cache_dir`) for later processes.

    Returns the directory in use, or ``None`` when caching stays off (``PPL_CACHE_DIR=off`` with no
    ``path``, or a directory that cannot be created: then nothing changes and nothing is raised, since a
    cache only saves time). A directory already configured in JAX wins and is returned.
    """
    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return pathlib.Path(configured)
    directory = pathlib.Path(path).expanduser() if path is not None else default_cache_dir()
    if directory is None:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return directory
