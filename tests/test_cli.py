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
