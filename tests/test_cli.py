import re
import subprocess
import sys

import numpy as np
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


# ---------------------------------------------------------------------------
# ppl parse-scene: images Pillow drew (32x32, max_shapes 2, small budgets: one compile of the scene scorer)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drawn_circle():
    """A 32x32 scene of one circle that Pillow drew (``draw_with_pillow`` seed 0), as 8-bit RGB."""
    from stdlib.shapes import drawn

    data = drawn.draw_with_pillow(0, 1, size=(32, 32), max_shapes=1)
    assert [s.kind for s in data.shapes[0]] == ["circle"]
    return np.round(255 * data.images[0]).astype(np.uint8), data.shapes[0][0]


def test_parse_scene_reads_a_png_pillow_drew_and_finds_its_shape(drawn_circle, tmp_path, capsys):
    from PIL import Image

    pixels, circle = drawn_circle
    path, figure = tmp_path / "circle.png", tmp_path / "found.png"
    Image.fromarray(pixels).save(path)
    # budget 6: the backdrop alone, then each of the five kinds as the first shape
    assert cli.main(["parse-scene", str(path), "--max-shapes", "2", "--budget", "6", "--plot", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "(32x32): 1 shape " in out and "Posterior over the count" in out and "parsed in" in out
    row = re.search(r"\n\s+0\s+(\w+)\s+[\d.]+\s+\(\s*([\d.]+),\s*([\d.]+)\)", out)  # depth 0: kind, p, centre
    assert row is not None and row.group(1) == "circle"
    centre = np.array([float(row.group(2)), float(row.group(3))])
    assert np.abs(centre - 32 * circle.centre).max() < 1.0  # pixels
    assert "  1: 1.000  <-" in out and figure.stat().st_size > 0


def test_parse_scene_reads_a_grey_jpeg(drawn_circle, tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "grey.jpg"
    Image.fromarray(drawn_circle[0]).convert("L").save(path, quality=90)
    assert cli.main(["parse-scene", str(path), "--max-shapes", "2", "--budget", "2"]) == 0
    out = capsys.readouterr().out
    assert "(32x32)" in out and "depth  kind" in out


def test_read_image_drops_alpha_and_converts_palettes(drawn_circle, tmp_path):
    from PIL import Image

    pixels = drawn_circle[0]
    rgb = cli.read_image(_save(Image.fromarray(pixels), tmp_path / "rgb.png"))
    np.testing.assert_allclose(rgb, pixels / 255.0, atol=1e-6)
    rgba = Image.fromarray(np.concatenate([pixels, np.full((32, 32, 1), 7, np.uint8)], axis=-1))
    np.testing.assert_array_equal(cli.read_image(_save(rgba, tmp_path / "rgba.png")), rgb)
    palette = Image.fromarray(pixels).quantize(16)
    assert palette.mode == "P"
    read = cli.read_image(_save(palette, tmp_path / "palette.png"))
    assert read.shape == (32, 32, 3) and np.abs(read - rgb).mean() < 0.05
    dark = cli.read_image(_save(Image.fromarray(np.ones((8, 8), np.uint8)), tmp_path / "dark.png"))
    np.testing.assert_allclose(dark, 1 / 255.0)  # 8-bit levels are read as [0, 255] even when all are <= 1


def _save(image, path):
    image.save(path)
    return str(path)


@pytest.mark.parametrize("case, message", [
    ("missing", "cannot read .*No such file"),
    ("not an image", "is not an image Pillow can read"),
    ("max shapes", "max_shapes must be an int >= 1"),
    ("too small", "H, W >= 4"),
])
def test_parse_scene_errors_exit_2_with_a_message(case, message, tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "image.png"
    arguments = ["parse-scene", str(path)]
    if case == "not an image":
        path.write_text("year,flow\n1871,1120\n")
    elif case == "max shapes":
        Image.new("RGB", (8, 8), (10, 200, 30)).save(path)
        arguments += ["--max-shapes", "0"]
    elif case == "too small":
        Image.new("RGB", (2, 3)).save(path)
    assert cli.main(arguments) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and re.search(message, captured.err) and not captured.out
