"""Speed and quality benchmarks (``python -m benchmarks``); not part of the test run.

See :mod:`benchmarks.common` for what a benchmark module exposes.
"""
