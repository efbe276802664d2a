"""Infer a sensor's true value from noisy readings (the `ppl demo` job).

Run: python examples/sensor.py [--seed 0] [--particles 100000]
"""

import argparse

from ppl import demo

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--particles", type=int, default=100_000)
    options = parser.parse_args()
    demo.run(seed=options.seed, particles=options.particles)
