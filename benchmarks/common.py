"""Shared pieces of the benchmarks: options, interleaved timing, tables, docs/performance.md.

A benchmark is a module ``benchmarks/bN_name.py`` exposing::

    NAME = "b1"                      # its section's name in docs/performance.md
    TITLE = "B1 - importance sampling ..."
    def run(options: Options) -> list[dict]      # one row per (system, size)
    def report(rows, options) -> str             # Markdown for its section

``python -m benchmarks`` discovers the modules, runs them, prints each report
and rewrites each benchmark's own marked section of the output page, so
benchmarks written by different people slot into one page.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax

ROOT = pathlib.Path(__file__).resolve().parents[1]
PERFORMANCE_PAGE = ROOT / "docs" / "performance.md"
PAGE_HEADER = """# Performance

Benchmarks live in `benchmarks/` and run with `python -m benchmarks` (options:
`--quick`, `--device cpu|gpu`, `--only b1,b3`). Each compares ppl with a
hand-written JAX version of the same algorithm, and with NumPyro where it has
one, in one process, after compilation, with the systems' calls interleaved so
that drift of the machine hits all of them equally. Each section below is
rewritten by its benchmark; numbers are medians of the repeated calls.
"""


@dataclasses.dataclass(frozen=True)
class Options:
    """What the harness passes to every benchmark's ``run``.

    Attributes:
      quick: a smoke test: smallest sizes, few repeats (seconds, not minutes).
      device: ``"cpu"`` or ``"gpu"`` (the harness selects the JAX platform).
      sizes: overrides a benchmark's problem sizes (``None``: its defaults).
      repeats: overrides the number of timed calls per size (``None``: its defaults).
      progress: show a progress bar over the sizes (still only after 2 s).
    """

    quick: bool = False
    device: str = "cpu"
    sizes: tuple[int, ...] | None = None
    repeats: int | None = None
    progress: bool | None = None


def block(value: Any) -> Any:
    """Wait until every array in ``value`` is computed."""
    return jax.block_until_ready(value)


def time_interleaved(calls: dict[str, Callable[[], Any]], repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call for each system, calls interleaved round by round.

    Each callable is first called ``warmup`` times (compiling it), then
    ``repeats`` rounds call every system once, in an order rotated each round,
    so a slow period of the machine is shared by all systems.
    """
    for call in calls.values():
        for _ in range(warmup):
            block(call())
    names = list(calls)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            block(calls[name]())
            seconds[name].append(time.perf_counter() - start)
    return seconds


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_description() -> str:
    """One line: device, CPU count, library versions (for the report)."""
    import numpyro

    device = jax.devices()[0]
    kind = getattr(device, "device_kind", device.platform)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{device.platform} ({kind}), {cores} CPU cores, {platform.python_implementation()} "
        f"{platform.python_version()}, jax {jax.__version__}, numpyro {numpyro.__version__}"
    )


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def available_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def section_markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(name: str, markdown: str, page: pathlib.Path = PERFORMANCE_PAGE) -> None:
    """Replace the ``name`` section of ``page`` (create the page or section if missing)."""
    start, end = section_markers(name)
    block_text = f"{start}\n{markdown.strip()}\n{end}"
    text = page.read_text() if page.exists() else PAGE_HEADER
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block_text + after
    else:
        text = text.rstrip("\n") + "\n\n" + block_text + "\n"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text)


def save_and_report(results: dict, out: str | None, report: Callable[[dict], str]) -> dict:
    """Write ``results`` as JSON to ``out`` (when given) and print ``report(results)``; returns ``results``."""
    import json

    if out:
        pathlib.Path(out).write_text(json.dumps(results, indent=1))
    print(report(results))
    return results
