"""The ``ppl`` command: ``ppl demo``, ``ppl version``, ``ppl --help``."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from ppl import demo

    demo.run(seed=args.seed, particles=args.particles)
    if args.digits:
        print()
        demo.run_digits(seed=args.seed, shots=args.shots, test_images=args.images)
    return 0


def _version(args: argparse.Namespace) -> int:
    import jax
    import numpyro

    import ppl

    print(f"ppl {ppl.__version__} (jax {jax.__version__}, numpyro {numpyro.__version__}, "
          f"backend {jax.default_backend()})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppl",
        description="ppl: probabilistic programming for analysis by synthesis, on JAX.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="run a small end-to-end inference, then recognise real handwritten digits"
    )
    demo.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    demo.add_argument("--particles", type=int, default=100_000, help="number of particles")
    demo.add_argument("--no-digits", dest="digits", action="store_false",
                      help="skip the digit recognition part (about a minute on a 2-core CPU)")
    demo.add_argument("--shots", type=int, default=5, help="training examples per digit class (default 5)")
    demo.add_argument("--images", type=int, default=200, help="test images to classify (default 200)")
    demo.set_defaults(handler=_demo)
    version = commands.add_parser("version", help="print the versions of ppl, jax and numpyro")
    version.set_defaults(handler=_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
