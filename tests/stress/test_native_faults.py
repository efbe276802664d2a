"""Native faults: long, varied workloads in child processes, and the XLA flag that prevents a known one.

An assert cannot see a segfault inside XLA: it kills the process running the
test. So every workload of ``workloads.py`` runs in a child process, and a
test fails when the child ends by a signal (named, with the tail of its
output) or with a non-zero exit code.

jaxlib 0.10.2's YNN fusions crash on CPUs without AVX-512 (``ppl.xla_flags``).
A machine with AVX-512 does not show that fault, so two checks here do not
depend on the CPU running them: the compiled programs hold no YNN fusion, and
(slow) the known-bad programs run under valgrind, whose virtual CPU has AVX2
and no AVX-512. With ppl's flag switched off (``PPL_XLA_FLAGS=off``) the
valgrind check fails with SIGSEGV on this project's machines.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from ppl import xla_flags

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = Path(__file__).with_name("workloads.py")
YNN_BY_DEFAULT = xla_flags._jaxlib_version() >= xla_flags.FIRST_JAXLIB_WITH_YNN_DEFAULT


def child_environment() -> dict[str, str]:
    """This process's environment without the flag ppl added, so the child's own ``import ppl`` sets it."""
    environ = dict(os.environ)
    ours = f"{xla_flags.YNN_FUSION_FLAG}="
    flags = [token for token in environ.get("XLA_FLAGS", "").split() if token != ours]
    environ["XLA_FLAGS"] = " ".join(flags)
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")]).strip(os.pathsep)
    environ.setdefault("PPL_PROGRESS", "0")
    return environ


def run_child(command: list[str], timeout: float, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``command``; fail the test, naming the signal, unless it exits with status 0."""
    done = subprocess.run(command, cwd=ROOT, env=environ or child_environment(), capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        if done.returncode < 0:
            what = f"was killed by {signal.Signals(-done.returncode).name} (a native crash)"
        else:
            what = f"exited with status {done.returncode}"
        pytest.fail(f"{' '.join(command[-2:])} {what}.\n--- stdout (tail) ---\n{done.stdout[-2000:]}"
                    f"\n--- stderr (tail) ---\n{done.stderr[-4000:]}", pytrace=False)
    return done


def test_known_bad_patterns_survive():
    done = run_child([sys.executable, str(WORKLOADS), "known_bad"], timeout=300)
    assert "finished" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["inference", "digits"])
def test_workload_survives(workload):
    done = run_child([sys.executable, str(WORKLOADS), workload], timeout=1200)
    assert "finished" in done.stdout


@pytest.mark.skipif(not YNN_BY_DEFAULT, reason="this jaxlib has no YNN fusions on by default")
def test_compiled_programs_hold_no_ynn_fusion():
    # the smallest program that crashes with YNN fusions on (ppl.xla_flags), as the user's process compiles it
    a, b = jnp.ones((20, 10, 1, 3, 6, 4, 2)), jnp.ones((20, 10, 1, 72, 2))
    program = jax.jit(lambda a, b: -(a * b.reshape(20, 10, 1, 3, 6, 4, 2)).sum(5))
    assert xla_flags.ynn_fusions_off()
    assert "__ynn_fusion" not in program.lower(a, b).compile().as_text()


def test_the_flag_is_what_xla_would_have_used():
    # a child that switched the fix off compiles the same program *with* a YNN fusion
    # (so the check above can fail), and one with the fix does not
    script = ("import ppl, jax, jax.numpy as jnp; a, b = jnp.ones((20, 10, 1, 3, 6, 4, 2)), jnp.ones((20, 10, 1, 72, 2)); "
              "f = jax.jit(lambda a, b: -(a * b.reshape(20, 10, 1, 3, 6, 4, 2)).sum(5)); "
              "print(f.lower(a, b).compile().as_text().count('__ynn_fusion'))")
    with_fix = run_child([sys.executable, "-c", script], timeout=120)
    assert with_fix.stdout.split()[-1] == "0"
    without = run_child([sys.executable, "-c", script], timeout=120,
                        environ=dict(child_environment(), PPL_XLA_FLAGS="off"))
    assert int(without.stdout.split()[-1]) >= (1 if YNN_BY_DEFAULT else 0)


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_known_bad_patterns_survive_on_a_cpu_without_avx512():
    """valgrind's virtual CPU has AVX2 and no AVX-512: the CPUs on which the YNN fault shows."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        if os.environ.get("CI"):
            pytest.fail("valgrind is not installed; CI needs it to run XLA on a CPU without AVX-512.")
        pytest.skip("valgrind is not installed")
    done = run_child([valgrind, "--tool=none", "--quiet", sys.executable, str(WORKLOADS), "known_bad"], timeout=2000)
    assert "finished" in done.stdout


# -- the flag itself -------------------------------------------------------------------------------------


def test_configure_adds_the_flag_and_keeps_the_users(monkeypatch):
    monkeypatch.setattr(xla_flags, "_jaxlib_version", lambda: (0, 10, 2))
    environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    assert xla_flags.configure(environ)
    assert environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=4 --xla_cpu_experimental_ynn_fusion_type="
    assert xla_flags.ynn_fusions_off(environ["XLA_FLAGS"])
    assert not xla_flags.configure(environ)  # idempotent
    mine = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=dot,reduce"}
    assert not xla_flags.configure(mine)
    assert mine["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=dot,reduce"
    assert not xla_flags.ynn_fusions_off(mine["XLA_FLAGS"])
    opted_out = {"PPL_XLA_FLAGS": "off"}
    assert not xla_flags.configure(opted_out) and "XLA_FLAGS" not in opted_out
    empty = {}
    assert xla_flags.configure(empty) and empty["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type="


def test_configure_leaves_jaxlibs_that_do_not_know_the_flag_alone(monkeypatch):
    # jaxlib 0.7 and older abort the process on an unknown XLA flag; 0.8.1-0.10.0 have YNN off anyway
    for version in [(0, 4, 30), (0, 7, 2), (0, 10, 0)]:
        monkeypatch.setattr(xla_flags, "_jaxlib_version", lambda v=version: v)
        environ = {}
        assert not xla_flags.configure(environ) and environ == {}


@pytest.mark.skipif(not YNN_BY_DEFAULT, reason="this jaxlib has no YNN fusions on by default")
def test_warns_when_jax_started_before_ppl():
    script = "import jax.numpy as jnp; jnp.ones(1).block_until_ready(); import ppl"
    environ = {k: v for k, v in child_environment().items() if k != "XLA_FLAGS"}
    done = run_child([sys.executable, "-c", script], timeout=120, environ=environ)
    assert "XlaFlagsWarning" in done.stderr and "Import ppl before" in done.stderr
