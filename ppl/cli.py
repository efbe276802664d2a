"""The ``ppl`` command: ``ppl demo``, ``ppl explain-series``, ``ppl parse-scene``, ``ppl version``, ``ppl --help``."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from ppl import demo

    if not _use_device(args.device):
        return 2
    demo.run_all(seed=args.seed, particles=args.particles, quick=args.quick, series=args.series,
                 scenes=args.scenes, digits=args.digits, shots=args.shots, images=args.images,
                 figures=args.figures or None)
    return 0


def _use_device(device: str | None) -> bool:
    """Make ``device`` ("cpu" or "gpu") JAX's default before anything runs; ``None`` keeps JAX's choice (a GPU
    when one is present). Says what to do and returns False when no GPU is found."""
    import jax

    if device is None:
        return True
    if device == "cpu":
        jax.config.update("jax_platforms", "cpu")
        return True
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        print("error: --device gpu, but JAX finds no GPU here (it sees: "
              f"{', '.join(sorted({d.platform for d in jax.devices()}))}). Install JAX with CUDA "
              '(pip install -U "jax[cuda12]") on a machine with an NVIDIA GPU, or leave --device out.',
              file=sys.stderr)
        return False
    jax.config.update("jax_default_device", gpus[0])
    return True


def read_series(path: str, column: str, time_column: str | None = None):
    """``(y, t)`` from a CSV file: ``y`` a float array (blank or non-numeric cells are missing, NaN), ``t`` a float
    array, a pandas Series of ``y`` with a date index when the time column holds dates, or ``None``.

    Raises:
      DataError: a file that cannot be read, or a column that does not exist (the message lists those that do).
    """
    import csv

    import numpy as np

    from ppl.errors import DataError

    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise DataError(f"cannot read {path!r}: {error.strerror}.") from error
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path!r} is not a CSV text file ({error}); give a CSV file with a header row.") from error
    columns = list(rows[0].keys()) if rows else []
    for name in (column, time_column):
        if name is not None and name not in columns:
            raise DataError(f"{path!r} has no column {name!r}; its columns are: {', '.join(columns) or '(none)'}.")

    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return float("nan")

    raw = [row[column] for row in rows]
    y = np.array([number(v) for v in raw])
    if raw and np.all(np.isnan(y)) and any(v.strip() for v in raw):
        raise DataError(f"column {column!r} of {path!r} is not numeric (e.g. {raw[0]!r}); pick a numeric column.")
    if time_column is None:
        return y, None
    stamps = [row[time_column] for row in rows]
    times = np.array([number(v) for v in stamps])
    if np.all(np.isfinite(times)):
        return y, times
    import pandas as pd

    try:
        index = pd.DatetimeIndex(pd.to_datetime(stamps))
    except (ValueError, TypeError) as error:
        raise DataError(f"time column {time_column!r} holds neither numbers nor dates (e.g. {stamps[0]!r}).") \
            from error
    return pd.Series(y, index=index, name=column), None


def _explain_series(args: argparse.Namespace) -> int:
    import jax

    from ppl.errors import PPLError
    from stdlib.sequences.discover import discover

    try:
        y, t = read_series(args.path, args.column, args.time_column)
        periods = tuple(args.period) if args.period else None
        explanation = discover(jax.random.key(args.seed), y, t, budget=args.budget, periods=periods,
                               progress=True, name=args.column)
    except PPLError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Structure: {explanation.structure}\n")
    print("Posterior over structures:")
    for text, probability, log_evidence in explanation.posterior[:5]:
        print(f"  {probability:6.3f}  {text}  (log evidence {log_evidence:.2f})")
    print("\nReport:\n")
    print(explanation.report())
    changepoints = sorted(explanation.changepoints.items(), key=lambda item: -item[1])[:5]
    print("\nChangepoints (time: probability it is the last point before a change):")
    print("  none probable" if not changepoints else "\n".join(f"  {time}: {p:.3f}" for time, p in changepoints))
    if args.horizon > 0:
        print(f"\nForecast ({args.horizon} steps, from 1000 sample paths):")
        print(explanation.forecast_table(jax.random.key(args.seed + 1), args.horizon, 1000))
    if args.plot:
        explanation.plot(args.plot, horizon=args.horizon)
        print(f"\nFigure written to {args.plot}")
    return 0


def read_image(path: str):
    """``(H, W, 3)`` float32 in ``[0, 1]`` from an image file Pillow reads (PNG, JPEG, ...): grey is lifted to
    RGB, an alpha channel dropped, a palette converted, 8-bit levels read as ``[0, 255]`` and 16-bit as
    ``[0, 65535]``; the first frame of an animation.

    Raises:
      DataError: a file that does not exist or is not an image Pillow can read.
      ShapeError: an image the scene parser cannot take (see :func:`stdlib.shapes.check_image`).
      MissingDependencyError: Pillow is not installed.
    """
    import numpy as np

    from ppl.errors import DataError, MissingDependencyError
    from stdlib.shapes import check_image

    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise MissingDependencyError("reading images needs Pillow: pip install -e '.[examples]' (or pip install "
                                     "pillow).") from None
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                return check_image(np.asarray(image), (0.0, 65535.0))
            if image.mode == "F":
                return check_image(np.asarray(image))
            if image.mode not in ("L", "RGB", "RGBA"):
                image = image.convert("RGBA" if image.mode in ("LA", "PA") else "RGB")
            return check_image(np.asarray(image), (0.0, 255.0))
    except UnidentifiedImageError as error:
        raise DataError(f"{path!r} is not an image Pillow can read; give a PNG or JPEG file.") from error
    except OSError as error:
        raise DataError(f"cannot read {path!r}: {error.strerror or error}.") from error


def _parse_scene(args: argparse.Namespace) -> int:
    import time

    import jax

    from ppl.errors import PPLError
    from stdlib import shapes

    try:
        image = read_image(args.path)
        start = time.perf_counter()
        scene = shapes.parse(jax.random.key(args.seed), image, max_shapes=args.max_shapes, budget=args.budget)
        seconds = time.perf_counter() - start
    except PPLError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    height, width = image.shape[:2]
    print(f"{args.path} ({width}x{height}): {scene.count} shape{'s' if scene.count != 1 else ''} (front first; depth "
          f"0 is at the back)\n")
    print(scene.table())
    print(f"\nBackdrop colour: {' '.join(f'{c:.2f}' for c in scene.background)}")
    print("\nPosterior over the count (the best structure of each count):")
    for count, probability in enumerate(scene.count_posterior):
        print(f"  {count}: {probability:.3f}{'  <-' if count == scene.count else ''}")
    print(f"\nlog evidence {scene.log_evidence:.1f}; {len(scene.history)} steps; parsed in {seconds:.1f} s "
          f"(compiling included on a first run)")
    if args.plot:
        scene.plot(args.plot)
        print(f"Figure written to {args.plot}")
    return 0


def _version(args: argparse.Namespace) -> int:
    import jax
    import numpyro

    import ppl

    print(f"ppl {ppl.__version__} (jax {jax.__version__}, numpyro {numpyro.__version__}, "
          f"backend {jax.default_backend()})")
    return 0


def _integer(low: int, high: int | None = None):
    """An argparse type: an int in ``[low, high]``; anything else is a usage error (exit 2) saying what is allowed."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            allowed = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    return parse


SEED = _integer(-(2**63), 2**63 - 1)  # what jax.random.key takes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppl",
        description="ppl: probabilistic programming for analysis by synthesis, on JAX.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="run a small end-to-end inference, explain a real series, parse images of shapes, recognise "
                "real handwritten digits and read whole numbers; write the figures (--quick: under 30 s)"
    )
    demo.add_argument("--seed", type=SEED, default=0, help="PRNG seed (default 0)")
    demo.add_argument("--particles", type=_integer(1), default=100_000,
                      help="particles of the first part (default 100,000)")
    demo.add_argument("--no-series", dest="series", action="store_false",
                      help="skip the time-series part (one to two minutes on a 2-core CPU)")
    demo.add_argument("--no-scenes", dest="scenes", action="store_false",
                      help="skip the inverse-graphics part (about half a minute on a 2-core CPU)")
    demo.add_argument("--no-digits", dest="digits", action="store_false",
                      help="skip the digit recognition and number reading part (about a minute on a 2-core CPU)")
    demo.add_argument("--shots", type=_integer(1), default=5, help="training examples per digit class (default 5)")
    demo.add_argument("--images", type=_integer(1), default=128, help="test images to classify (default 128)")
    demo.add_argument("--quick", action="store_true",
                      help="a short run (under 30 s on a 2-core CPU): the sensor, zero-shot digits and numbers")
    demo.add_argument("--device", choices=["cpu", "gpu"], default=None,
                      help="run on this device (default: JAX's choice, a GPU when one is present)")
    demo.add_argument("--figures", default="ppl-demo", metavar="FOLDER",
                      help="write the figures here (default ./ppl-demo; '' for none; needs matplotlib)")
    demo.set_defaults(handler=_demo)
    explain = commands.add_parser(
        "explain-series", help="find the composition of components that explains a series in a CSV file")
    explain.add_argument("path", help="a CSV file with a header row")
    explain.add_argument("--column", required=True, help="the column holding the series")
    explain.add_argument("--time-column", dest="time_column", default=None,
                         help="a column of times (numbers, possibly irregular) or dates (a regular frequency)")
    explain.add_argument("--horizon", type=_integer(0), default=24, help="forecast steps (default 24; 0: none)")
    explain.add_argument("--period", type=float, action="append",
                         help="a cycle length in time units to consider (repeatable; default: the season of dates)")
    explain.add_argument("--budget", type=int, default=6, help="search steps (default 6)")
    explain.add_argument("--seed", type=SEED, default=0, help="PRNG seed (default 0)")
    explain.add_argument("--plot", default=None, help="save a figure to this path (needs matplotlib)")
    explain.set_defaults(handler=_explain_series)
    scene = commands.add_parser(
        "parse-scene", help="find the shapes (kinds, places, sizes, colours, depth order) that explain an image")
    scene.add_argument("path", help="a PNG or JPEG image (grey, RGB, RGBA or palette)")
    scene.add_argument("--max-shapes", dest="max_shapes", type=int, default=4,
                       help="the most shapes to look for (default 4)")
    scene.add_argument("--budget", type=int, default=None,
                       help="the most candidate scenes to evaluate (default: all the search asks for)")
    scene.add_argument("--seed", type=SEED, default=0, help="PRNG seed (default 0)")
    scene.add_argument("--plot", default=None,
                       help="save a figure (image, reconstruction, residual, outlines) to this path")
    scene.set_defaults(handler=_parse_scene)
    version = commands.add_parser("version", help="print the versions of ppl, jax and numpyro")
    version.set_defaults(handler=_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command in ("demo", "explain-series", "parse-scene"):
        from ppl.compilation_cache import enable_compilation_cache

        enable_compilation_cache()  # a second run skips XLA's compilation (PPL_CACHE_DIR=off: no cache)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
