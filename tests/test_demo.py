"""``ppl demo``: the orchestration (parts, summary, figures folder, --quick, --device) and the digit part."""

import pathlib

import pytest

from ppl import cli, demo


def test_quick_demo_without_the_digits_prints_a_summary(capsys, tmp_path):
    assert cli.main(["demo", "--quick", "--no-digits", "--figures", str(tmp_path / "figures")]) == 0
    out = capsys.readouterr().out
    assert "importance sampling, 10,000 particles" in out  # --quick: 10^4 particles
    assert "ppl demo: summary (--quick" in out and "sensor  posterior mean" in out
    assert "Nile" not in out and "scenes" not in out  # --quick skips the series and scene parts


def test_device_cpu_is_accepted_and_an_unknown_device_is_a_usage_error(capsys):
    assert cli.main(["demo", "--quick", "--no-digits", "--figures", "", "--device", "cpu"]) == 0
    with pytest.raises(SystemExit) as exited:
        cli.main(["demo", "--device", "tpu9"])
    assert exited.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_device_gpu_runs_on_a_gpu_or_says_what_to_do(capsys):
    import jax

    try:
        has_gpu = bool(jax.devices("gpu"))
    except RuntimeError:
        has_gpu = False
    status = cli.main(["demo", "--quick", "--no-digits", "--figures", "", "--device", "gpu"])
    if has_gpu:
        assert status == 0 and "on gpu" in capsys.readouterr().out
    else:  # CI and the development machine: no GPU
        err = capsys.readouterr().err
        assert status == 2 and "JAX finds no GPU" in err and "jax[cuda12]" in err


@pytest.mark.slow  # one compilation of the digit classifier (~30 s)
def test_the_digit_part_classifies_reads_numbers_and_writes_its_figures(capsys, tmp_path):
    result = demo.run_digits(seed=0, shots=1, test_images=40, numbers=3, figures=tmp_path)
    out = capsys.readouterr().out
    assert "accuracy" in out and "reading whole numbers" in out
    assert result["accuracy"] >= 0.6  # k = 1: 87.8% on 800 images in docs/digits.md; chance is 10%
    assert result["numbers"] == 3 and result["numbers_read"] >= 2
    assert sorted(pathlib.Path(path).name for path in result["figures"]) == ["digits.png", "numbers.png"]
    assert all(pathlib.Path(path).stat().st_size > 1000 for path in result["figures"])
