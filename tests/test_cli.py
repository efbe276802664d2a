import subprocess
import sys

import pytest

from ppl import cli, demo


def test_help_and_version(capsys):
    assert cli.main([]) == 0
    assert "demo" in capsys.readouterr().out
    assert cli.main(["version"]) == 0
    assert "ppl 0.1.0" in capsys.readouterr().out


def test_demo_recovers_the_exact_answer(capsys):
    result = demo.run(seed=0, particles=20_000)
    out = capsys.readouterr().out
    assert "log evidence" in out and "posterior mean" in out
    # the importance-sampling answer is within 4 reported standard errors of the closed form
    assert abs(result["log_evidence"] - result["exact_log_evidence"]) < 4 * result["log_evidence_se"] + 1e-3
    assert abs(result["posterior_mean"] - result["exact_posterior_mean"]) < 0.02


def test_console_script_entry_point():
    done = subprocess.run([sys.executable, "-m", "ppl.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "ppl demo" not in done.stderr and "demo" in done.stdout


@pytest.mark.slow
def test_demo_recognises_real_digits(capsys):
    # the digit part of `ppl demo`, smaller: 1 example per class, 40 test images
    result = demo.run_digits(seed=0, shots=1, test_images=40)
    out = capsys.readouterr().out
    assert "accuracy" in out
    assert result["accuracy"] >= 0.6  # k = 1: 87.8% on 800 images in docs/digits.md; chance is 10%


@pytest.mark.slow  # one compile of the series scorer (~30-60 s)
def test_demo_explains_the_nile(capsys):
    result = demo.run_series(seed=0)
    assert result is not None
    year = max(result["changepoints"].items(), key=lambda item: item[1])[0]
    assert year == 1898
    assert "1898" in capsys.readouterr().out


CACHED_PROGRAM = """
import sys, jax, jax.numpy as jnp, ppl
print(ppl.enable_compilation_cache())
def f(x):
    for i in range(80):
        x = jnp.sin(x @ x.T + i)
    return jax.hessian(lambda y: jnp.sum(jnp.tanh(y @ x)))(x[0])
jax.jit(f)(jnp.ones((8, 8))).block_until_ready()
"""


def test_the_compilation_cache_keeps_programs_for_the_next_process(tmp_path):
    """``ppl.enable_compilation_cache`` (which the ``ppl`` command calls) stores what XLA compiled in
    ``PPL_CACHE_DIR``; ``off`` stores nothing. In a child process: JAX's cache settings are process-wide."""
    import os

    def run(setting):
        environment = dict(os.environ, PPL_CACHE_DIR=setting, JAX_COMPILATION_CACHE_DIR="")
        done = subprocess.run([sys.executable, "-c", CACHED_PROGRAM], capture_output=True, text=True,
                              env=environment, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip().splitlines()[-1]

    directory = tmp_path / "cache"
    assert run(str(directory)) == str(directory)
    assert any(directory.iterdir())  # the program compiled for longer than MIN_COMPILE_SECONDS is kept
    assert run("off") == "None"
