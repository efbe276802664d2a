"""Scaling the particle axis: chunked and sharded importance sampling equal the plain run."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import dist
from ppl.infer import scale
from ppl.infer.scale import block_starts, check_divisible, map_blocks, particle_mesh, scan_blocks
from ppl.testing import normal_normal_log_evidence

KEY = jax.random.key(11)
N = 5_000
CHUNK = 1_536  # 5000 = 3 * 1536 + 392: a ragged last block


@ppl.model
def location(count):
    mu = ppl.sample("mu", dist.Normal(0.5, 2.0))
    ppl.sample("y", dist.Normal(mu, 1.0).expand([count]).to_event(1))
    return mu


@ppl.model
def regression(design):
    w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    ppl.sample("y", dist.Normal(design @ w, 0.5).to_event(1))


Y = jnp.array([1.2, 0.7, 2.1, 1.6, 0.9])
DESIGN = jnp.stack([jnp.ones(20), jnp.linspace(-1.0, 1.0, 20)], axis=1)
RESPONSE = DESIGN @ jnp.array([0.3, -0.8]) + 0.5 * jax.random.normal(jax.random.key(7), (20,))


def _run(**options):
    return ppl.infer.importance(KEY, regression, {"y": RESPONSE}, DESIGN, n=N, **options)


@pytest.fixture(scope="module")
def plain():
    return _run()


def _assert_same_particles(result, reference):
    """Per-particle values bit for bit; the summaries (reductions over n) to float rounding.

    Bit for bit holds for this model on XLA's CPU backend (checked for every block
    size used here); a model whose arithmetic XLA compiles differently for another
    block size agrees to float rounding only (see the proposal test below).
    """
    np.testing.assert_array_equal(result.log_weights, reference.log_weights)
    np.testing.assert_array_equal(result.traces.choices["w"], reference.traces.choices["w"])
    np.testing.assert_array_equal(result.traces.score, reference.traces.score)
    np.testing.assert_array_equal(result.observations["y"], reference.observations["y"])
    assert result.traces.choices["y"].shape == (20,)
    jax.tree_util.tree_map(np.testing.assert_array_equal, result.traces.args, reference.traces.args)
    np.testing.assert_allclose(result.weights, reference.weights, rtol=1e-5, atol=1e-12)
    for name in ("log_evidence", "effective_sample_size", "log_evidence_standard_error"):
        np.testing.assert_allclose(getattr(result, name), getattr(reference, name), rtol=1e-5)


# --- chunks ------------------------------------------------------------------------


def test_chunked_run_with_a_ragged_last_block_equals_the_plain_run(plain):
    _assert_same_particles(_run(chunk_size=CHUNK), plain)


def test_a_chunk_as_large_as_n_is_the_plain_run(plain):
    _assert_same_particles(_run(chunk_size=N), plain)


def test_the_progress_bar_does_not_change_the_result(plain, capsys):
    shown = _run(chunk_size=CHUNK, progress=True)
    assert "importance (regression)" in capsys.readouterr().err
    hidden = _run(chunk_size=CHUNK, progress=False)
    assert capsys.readouterr().err == ""
    _assert_same_particles(shown, plain)
    _assert_same_particles(hidden, plain)


def test_chunking_inside_jit_equals_the_eager_run(plain):
    run = jax.jit(lambda key, y: ppl.infer.importance(key, regression, {"y": y}, DESIGN, n=N, chunk_size=CHUNK))
    _assert_same_particles(run(KEY, RESPONSE), plain)


def test_cpu_cache_blocks_inside_one_program_equal_the_plain_run(plain, monkeypatch):
    # large blocks run as a loop over cache-sized sub-blocks on CPU; shrink the size to see it
    monkeypatch.setattr(scale, "CPU_CACHE_BLOCK", 1_000)
    assert scale.cache_block_size(N, None) == 1_024 and scale.cache_block_size(1_000, None) is None
    run = jax.jit(lambda key: ppl.infer.importance(key, regression, {"y": RESPONSE}, DESIGN, n=N))
    _assert_same_particles(run(KEY), plain)


@ppl.model
def location_proposal(obs, count):
    ppl.sample("mu", dist.Normal(jnp.mean(obs["y"]), 0.6))


@ppl.model
def impossible(x):
    ppl.sample("y", dist.Uniform(0.0, x))


def test_chunks_with_a_proposal_equal_the_plain_run_and_failures_still_raise():
    run = lambda **options: ppl.infer.importance(  # noqa: E731
        KEY, location, {"y": Y}, 5, n=1_000, proposal=location_proposal, **options
    )
    plain, chunked = run(), run(chunk_size=384)
    # here XLA compiles the proposal's density differently for 384 and 1000 particles:
    # the same keys, values equal to float rounding (float32 epsilon is 1.2e-7)
    np.testing.assert_allclose(chunked.traces.choices["mu"], plain.traces.choices["mu"], rtol=1e-6)
    np.testing.assert_allclose(chunked.log_weights, plain.log_weights, rtol=1e-6)
    # every chunk gives -inf weights; the eager check then finds the off-support observation
    with pytest.raises(ppl.errors.SupportError, match="y"):
        ppl.infer.importance(KEY, impossible, {"y": 2.0}, jnp.array(1.0), n=100, chunk_size=30)


def test_keep_weights_keeps_only_weights_and_particles_can_be_regenerated(plain):
    light = _run(chunk_size=CHUNK, keep="weights")
    assert light.traces is None
    np.testing.assert_array_equal(light.log_weights, plain.log_weights)
    np.testing.assert_allclose(light.log_evidence, plain.log_evidence, rtol=1e-6)
    with pytest.raises(ppl.errors.InferenceError, match="keep='weights'"):
        ppl.infer.importance_resample(KEY, light, 10)
    indices = jnp.array([0, 1_535, 1_536, N - 1])
    again = ppl.infer.regenerate_particles(KEY, regression, {"y": RESPONSE}, DESIGN, indices=indices)
    chosen = ppl.infer.select_particles(plain, indices)
    np.testing.assert_array_equal(again.choices["w"], chosen.choices["w"])
    np.testing.assert_array_equal(again.choices["y"], chosen.choices["y"])
    # the same particle computed in a program of another size: equal up to float rounding
    np.testing.assert_allclose(again.score, chosen.score, rtol=1e-6)
    jax.tree_util.tree_map(np.testing.assert_array_equal, again.args, chosen.args)


def test_a_million_particles_in_chunks_estimate_the_exact_evidence():
    result = ppl.infer.importance(KEY, location, {"y": Y}, 5, n=10**6, chunk_size=2**18, keep="weights")
    exact = float(normal_normal_log_evidence(Y, 0.5, 2.0, 1.0))
    se = float(result.log_evidence_standard_error)
    assert se < 0.01 and abs(float(result.log_evidence) - exact) < 4 * se


@pytest.mark.slow
def test_ten_million_particles_in_chunks():
    result = ppl.infer.importance(KEY, location, {"y": Y}, 5, n=10**7, chunk_size=10**6, keep="weights")
    exact = float(normal_normal_log_evidence(Y, 0.5, 2.0, 1.0))
    se = float(result.log_evidence_standard_error)
    assert result.log_weights.shape == (10**7,)
    assert se < 0.002 and abs(float(result.log_evidence) - exact) < 4 * se


def test_bad_chunk_size_keep_and_devices_raise_inference_error():
    for options, message in [
        (dict(chunk_size=0), "chunk_size must be a positive"),
        (dict(chunk_size=2.5), "chunk_size must be a positive"),
        (dict(keep="traces"), "keep must be 'all'"),
        (dict(devices="gpu"), "devices must be None, 'all'"),
        (dict(devices=[]), "non-empty sequence of jax devices"),
    ]:
        with pytest.raises(ppl.errors.InferenceError, match=message):
            ppl.infer.importance(KEY, location, {"y": Y}, 5, n=8, **options)


def test_uneven_split_over_devices_says_which_counts_work():
    mesh = particle_mesh(jax.devices() * 1)
    check_divisible(10, mesh, "n")  # one device: anything goes
    fake = type("Mesh", (), {"devices": np.empty(4)})()
    with pytest.raises(ppl.errors.InferenceError, match="n=10 cannot be split evenly over 4 devices.*n=8 or 12"):
        check_divisible(10, fake, "n")


def test_all_local_devices_with_one_device_is_the_plain_run(plain):
    _assert_same_particles(_run(devices="all"), plain)


# --- the block helpers ------------------------------------------------------------------


def test_block_helpers_cover_every_unit_once():
    assert block_starts(10, 4) == [0, 4, 8]
    block = jax.jit(lambda start: ({"index": start + jnp.arange(4, dtype=jnp.uint32)}, jnp.ones(2)))
    eager, shared = map_blocks(block, 10, 4, progress=False)
    np.testing.assert_array_equal(eager["index"], np.arange(10))
    np.testing.assert_array_equal(shared, np.ones(2))
    traced, _ = jax.jit(lambda: scan_blocks(block, 10, 4))()
    np.testing.assert_array_equal(traced["index"], np.arange(10))


# --- sharding over 4 (forced host) devices, in a fresh process ---------------------------------

SHARDED_SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    import ppl
    from ppl import dist

    assert jax.device_count() == 4, jax.devices()

    @ppl.model
    def regression(design):
        w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        ppl.sample("y", dist.Normal(design @ w, 0.5).to_event(1))

    design = jnp.stack([jnp.ones(20), jnp.linspace(-1.0, 1.0, 20)], axis=1)
    response = design @ jnp.array([0.3, -0.8]) + 0.5 * jax.random.normal(jax.random.key(7), (20,))
    key = jax.random.key(11)
    run = lambda **options: ppl.infer.importance(key, regression, {"y": response}, design, n=4096, **options)

    def sharded_over_four(array):
        sharding = array.sharding
        return len(sharding.device_set) == 4 and sharding.spec == jax.sharding.PartitionSpec("particles")

    plain = run()
    out = {}
    for name, options in {
        "sharded": dict(devices="all"),
        "sharded_chunked": dict(devices="all", chunk_size=1024),
        "sharded_listed": dict(devices=jax.devices()),
    }.items():
        result = run(**options)
        assert sharded_over_four(result.log_weights), result.log_weights.sharding
        assert sharded_over_four(result.traces.choices["w"]), result.traces.choices["w"].sharding
        out[name] = dict(
            log_weights_equal=bool(np.array_equal(result.log_weights, plain.log_weights)),
            log_weights_error=float(np.max(np.abs(result.log_weights - plain.log_weights))),
            w_equal=bool(np.array_equal(result.traces.choices["w"], plain.traces.choices["w"])),
            log_evidence_error=float(abs(result.log_evidence - plain.log_evidence)),
            ess_relative_error=float(abs(result.effective_sample_size / plain.effective_sample_size - 1)),
        )
    jitted = jax.jit(lambda k: ppl.infer.importance(k, regression, {"y": response}, design, n=4096, devices="all"))(key)
    assert sharded_over_four(jitted.log_weights), jitted.log_weights.sharding
    out["jit_log_weights_error"] = float(np.max(np.abs(jitted.log_weights - plain.log_weights)))
    try:
        run(devices="all", chunk_size=1022)
    except ppl.errors.InferenceError as error:
        out["uneven_error"] = str(error)
    print("RESULT" + json.dumps(out))
    """
)


def test_sharded_over_four_devices_equals_the_plain_run():
    environment = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu", PPL_PROGRESS="0"
    )
    completed = subprocess.run(
        [sys.executable, "-c", SHARDED_SCRIPT], env=environment, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT"))
    out = json.loads(line[len("RESULT") :])
    for name in ("sharded", "sharded_chunked", "sharded_listed"):
        found = out[name]
        # every particle's draws are bit for bit the plain run's (the keys depend on the index only)
        assert found["w_equal"], (name, found)
        # its log weight up to float rounding (XLA compiles the per-device block size differently)
        assert found["log_weights_error"] < 1e-4, (name, found)
        assert found["log_evidence_error"] < 1e-5 and found["ess_relative_error"] < 1e-5, (name, found)
    assert out["sharded"]["log_weights_equal"]  # same per-device program shape here: bit for bit
    assert out["jit_log_weights_error"] < 1e-4
    assert "chunk_size=1022 cannot be split evenly over 4 devices" in out["uneven_error"]
