"""The particle axis over two processes (``jax.distributed``) gives the one-process answer.

Two local CPU processes join JAX's multi-process runtime (gloo collectives); each
runs ``importance(..., devices="all")`` and ``classify(..., devices="all")`` over the
two processes' devices and must end with the same, whole result as one process alone.
Three processes (about 15 s on the 2-core CPU): the slow pass.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("distributed_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _start(port, process_id, process_count, out):
    environment = dict(os.environ, JAX_PLATFORMS="cpu", PPL_PROGRESS="0", PYTHONPATH=str(ROOT))
    environment.pop("XLA_FLAGS", None)  # one CPU device per process
    return subprocess.Popen([sys.executable, str(WORKER), str(port), str(process_id), str(process_count), str(out)],
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process):
    try:
        output, _ = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"a process of the distributed run hung:\n{output[-3000:]}")
    assert process.returncode == 0, f"exit status {process.returncode}:\n{output[-3000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed")
    port = _free_port()
    outs = [folder / f"process_{i}.npz" for i in range(2)]
    processes = [_start(port, i, 2, out) for i, out in enumerate(outs)]
    alone = _start(0, 0, 1, folder / "alone.npz")
    for process in (*processes, alone):
        _finish(process)
    return [dict(np.load(out)) for out in outs], dict(np.load(folder / "alone.npz"))


def test_two_processes_each_get_the_one_process_importance_result(runs):
    (first, second), alone = runs
    assert int(first["process_count"]) == 2 and int(alone["process_count"]) == 1
    for got in (first, second):
        assert bool(got["shared_out"])  # under jit: split over both processes' devices, each holding its share
        np.testing.assert_array_equal(got["jitted_log_weights"], alone["log_weights"])
        np.testing.assert_array_equal(got["chunked_log_weights"], alone["log_weights"])  # blocks of 1024, split
        np.testing.assert_allclose(got["chunked_log_evidence"], alone["log_evidence"], rtol=1e-6)
        # every particle's draws and log weight bit for bit (its randomness depends on the key and its index)
        np.testing.assert_array_equal(got["w"], alone["w"])
        np.testing.assert_array_equal(got["log_weights"], alone["log_weights"])
        # the reductions over the particles combine the two processes' shares: to float rounding
        np.testing.assert_allclose(got["log_evidence"], alone["log_evidence"], rtol=1e-6)
        np.testing.assert_allclose(got["effective_sample_size"], alone["effective_sample_size"], rtol=1e-5)


def test_two_processes_each_get_the_one_process_classification(runs):
    (first, second), alone = runs
    for got in (first, second):
        np.testing.assert_array_equal(got["class_log_evidence"], alone["class_log_evidence"])
        np.testing.assert_array_equal(got["probabilities"], alone["probabilities"])
        np.testing.assert_allclose(got["chunked_probabilities"], alone["probabilities"], rtol=1e-6, atol=1e-7)
    assert alone["probabilities"].shape == (10, 2)
    np.testing.assert_array_equal(alone["probabilities"].argmax(-1), [0] * 5 + [1] * 5)
