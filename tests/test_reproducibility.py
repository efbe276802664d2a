"""The same key gives bit-identical results: across runs, across chunk sizes, and with 1 or 4 devices.

``reproducibility_worker.py`` runs importance, classify, a particle filter, an MCMC
chain and MAP with fixed keys in a fresh process; it runs twice on one CPU device
and once on four (forced host devices, where importance and classify also run
sharded over them). Every array must agree *bit for bit*: a particle's (or an
observation's) randomness depends only on the key and its index, never on how the
work is split, and XLA compiles this arithmetic the same way for every split.
The three processes run at once (about 40 s on the 2-core CPU): the slow pass.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("reproducibility_worker.py")
ROOT = Path(__file__).resolve().parents[1]
SPLIT = ("importance", "classify")  # the algorithms that run in chunks and over devices


def _start(out: Path, devices: int) -> subprocess.Popen:
    environment = dict(os.environ, JAX_PLATFORMS="cpu", PPL_PROGRESS="0", PYTHONPATH=str(ROOT))
    environment["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return subprocess.Popen([sys.executable, str(WORKER), str(out)], env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reproducibility")
    plan = {"first": 1, "second": 1, "four_devices": 4}
    processes = {name: _start(folder / f"{name}.npz", devices) for name, devices in plan.items()}
    for name, process in processes.items():
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, f"{name}: exit status {process.returncode}\n{output[-3000:]}"
    return {name: dict(np.load(folder / f"{name}.npz")) for name in plan}


def _results(saved):
    return {name: value for name, value in saved.items() if "/" in name}


def _reference(name, saved):
    """The plain (one-device, unchunked) run of the same algorithm and field."""
    run, field = name.split("/")
    algorithm = run.split("_")[0]
    return saved[f"{algorithm}_plain/{field}"] if algorithm in SPLIT else saved[name]


def test_the_same_key_gives_the_same_bits_in_another_run(runs):
    first, second = _results(runs["first"]), _results(runs["second"])
    assert set(first) == set(second) and len(first) > 20
    different = [name for name in first if not np.array_equal(first[name], second[name])]
    assert not different, different


def test_chunk_sizes_do_not_change_a_bit(runs):
    saved = _results(runs["first"])
    chunked = [name for name in saved if "chunks_of" in name]
    assert len(chunked) >= 10
    different = [name for name in chunked if not np.array_equal(saved[name], _reference(name, saved))]
    assert not different, different


def test_one_or_four_devices_give_the_same_bits(runs):
    assert int(runs["four_devices"]["device_count"]) == 4 and int(runs["first"]["device_count"]) == 1
    four, one = _results(runs["four_devices"]), _results(runs["first"])
    sharded = [name for name in four if name.split("/")[0].split("_", 1)[-1].startswith("devices")]
    assert len(sharded) >= 10  # importance and classify ran sharded over the four devices
    different = [name for name in four if not np.array_equal(four[name], _reference(name, one))]
    assert not different, different
