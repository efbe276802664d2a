"""Run the benchmarks: ``python -m benchmarks [--quick] [--device cpu|gpu] [--only b1,b3]``.

Discovers every module ``benchmarks/bN_*.py``, runs those selected, prints each
one's report and rewrites its section of ``docs/performance.md`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import pkgutil
import re
import sys

from benchmarks import common

MODULE_NAME = re.compile(r"^b\d+_\w+$")


def discover() -> dict[str, str]:
    """``{"bN": "benchmarks.bN_name"}`` for every ``benchmarks/bN_*.py``, in order of N.

    Modules are imported only when selected, so one benchmark's import error
    does not stop the others.
    """
    import benchmarks

    found = {}
    for info in pkgutil.iter_modules(benchmarks.__path__):
        if MODULE_NAME.match(info.name):
            found[info.name.split("_")[0]] = f"benchmarks.{info.name}"
    return dict(sorted(found.items(), key=lambda item: int(item[0][1:])))


def _select_device(device: str) -> None:
    import jax

    if device == "cpu":
        try:  # only possible before JAX starts its backends (always so from the command line)
            jax.config.update("jax_platforms", "cpu")
        except RuntimeError:
            pass
    expected = {"cpu": "cpu", "gpu": "gpu"}[device]
    if jax.default_backend() != expected:
        raise SystemExit(f"--device {device} asked for, but JAX's default backend is {jax.default_backend()}.")


def parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke test: small sizes, few repeats")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--only", default="", help="comma-separated benchmark names, e.g. b1,b3")
    parser.add_argument("--output", type=pathlib.Path, default=common.PERFORMANCE_PAGE)
    parser.add_argument("--sizes", default="", help="comma-separated sizes overriding the defaults")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    _select_device(args.device)
    options = common.Options(
        quick=args.quick,
        device=args.device,
        sizes=tuple(int(s) for s in args.sizes.split(",") if s) or None,
        repeats=args.repeats,
        progress=False if args.no_progress else None,
    )
    modules = discover()
    wanted = [name for name in args.only.split(",") if name] or list(modules)
    unknown = sorted(set(wanted) - set(modules))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; available: {sorted(modules)}")
    for name in wanted:
        module = importlib.import_module(modules[name])
        print(f"== {module.TITLE} ({common.machine_description()})", flush=True)
        rows = module.run(options)
        report = module.report(rows, options)
        print(report, flush=True)
        section = name if args.device == "cpu" else f"{name}-{args.device}"
        common.write_section(section, report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
