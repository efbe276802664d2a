"""What ppl sets in ``XLA_FLAGS``, and why: XLA's YNNPACK fusions are switched off on the CPU.

jaxlib 0.10.2 hands some fused reductions and elementwise programs on the CPU to
YNNPACK ("YNN fusions"). On CPUs without AVX-512 one such fusion kills the
process with SIGSEGV: a fused reduction over a non-innermost axis of a rank-7
array that the same fusion reshaped (a ``bitcast``) from a lower rank. YNNPACK
moves the reduced axis innermost with a transpose, and the transpose
(``ynn::make_transpose_impl`` -> ``slinky::fuse_contiguous_dims``) reads out of
bounds. Vectorised inference makes such arrays all the time: ``vmap`` over
images, classes and hypotheses adds three axes to a four-axis gradient (the
digit models' stroke gradient is one). The smallest program we found that
crashes, on jaxlib 0.10.2 (in 3 of 3 runs, under valgrind, whose virtual CPU
has AVX2 and no AVX-512)::

    a = jnp.ones((20, 10, 1, 3, 6, 4, 2)); b = jnp.ones((20, 10, 1, 72, 2))
    jax.jit(lambda a, b: -(a * b.reshape(20, 10, 1, 3, 6, 4, 2)).sum(5))(a, b)

So ``import ppl`` adds ``--xla_cpu_experimental_ynn_fusion_type=`` (the empty
list: no YNN fusions) to ``XLA_FLAGS``, before JAX starts its CPU backend, when:

- the installed jaxlib turns YNN fusions on by default (0.10.1 and newer;
  older versions leave them off, and versions before 0.8.1 would abort on the
  unknown flag);
- ``XLA_FLAGS`` does not already name ``--xla_cpu_experimental_ynn_fusion_type``
  (your own setting always wins: set it to re-enable YNN fusions);
- ``PPL_XLA_FLAGS`` is not ``off`` (``PPL_XLA_FLAGS=off`` makes ppl leave
  ``XLA_FLAGS`` alone).

XLA reads ``XLA_FLAGS`` once, when the first JAX computation starts the
backend. If that happened before ``import ppl``, the setting cannot take effect
and ppl warns (:class:`XlaFlagsWarning`); import ppl first, or set the flag in
the environment yourself. The flag applies to every JAX program of the process,
ppl's or not; other backends (GPU, TPU) ignore it.

Example::

    >>> from ppl import xla_flags
    >>> xla_flags.flags_with_ynn_off("--xla_force_host_platform_device_count=2")
    '--xla_force_host_platform_device_count=2 --xla_cpu_experimental_ynn_fusion_type='
    >>> xla_flags.flags_with_ynn_off("--xla_cpu_experimental_ynn_fusion_type=dot")   # yours is kept
    '--xla_cpu_experimental_ynn_fusion_type=dot'
"""

from __future__ import annotations

import os
import warnings
from collections.abc import MutableMapping

__all__ = ["YNN_FUSION_FLAG", "XlaFlagsWarning", "flags_with_ynn_off", "configure", "ynn_fusions_off"]

YNN_FUSION_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
FIRST_JAXLIB_WITH_YNN_DEFAULT = (0, 10, 1)
OPT_OUT_VARIABLE = "PPL_XLA_FLAGS"


class XlaFlagsWarning(RuntimeWarning):
    """ppl could not switch XLA's YNN fusions off, because JAX's backend had already started."""


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _jaxlib_version() -> tuple[int, ...]:
    try:
        from jaxlib import version
    except ImportError:  # no jaxlib: nothing to configure
        return ()
    return _version_tuple(version.__version__)


def _names_flag(flags: str) -> bool:
    return any(token.split("=", 1)[0] == YNN_FUSION_FLAG for token in flags.split())


def flags_with_ynn_off(flags: str) -> str:
    """``flags`` (an ``XLA_FLAGS`` string) with the YNN fusions switched off, unless it names the flag already."""
    if _names_flag(flags):
        return flags
    return f"{flags} {YNN_FUSION_FLAG}=".strip()


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if callable(started) else False


def configure(environ: MutableMapping[str, str] | None = None) -> bool:
    """Switch XLA's YNN fusions off in ``environ`` (default ``os.environ``) where the module docstring says.

    Returns True when the flag was added. Called once by ``import ppl``.
    """
    environ = os.environ if environ is None else environ
    if environ.get(OPT_OUT_VARIABLE, "").strip().lower() == "off":
        return False
    if _jaxlib_version() < FIRST_JAXLIB_WITH_YNN_DEFAULT:
        return False
    flags = environ.get("XLA_FLAGS", "")
    if _names_flag(flags):
        return False
    if environ is os.environ and _backend_started():
        warnings.warn(
            "JAX started its backend before ppl was imported, so ppl could not switch off XLA's YNN "
            "fusions, which crash some programs with a segmentation fault on CPUs without AVX-512 "
            "(jaxlib 0.10.2). Import ppl before running any JAX computation, or set "
            f"XLA_FLAGS='{YNN_FUSION_FLAG}=' in the environment. See ppl.xla_flags.",
            XlaFlagsWarning,
            stacklevel=3,
        )
        return False
    environ["XLA_FLAGS"] = flags_with_ynn_off(flags)
    return True


def ynn_fusions_off(flags: str | None = None) -> bool:
    """Whether ``flags`` (default: this process's ``XLA_FLAGS``) switch every YNN fusion off."""
    flags = os.environ.get("XLA_FLAGS", "") if flags is None else flags
    values = [token.split("=", 1)[1] for token in flags.split() if token.startswith(YNN_FUSION_FLAG + "=")]
    return bool(values) and values[-1].strip() == ""
