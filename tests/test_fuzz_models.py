"""Short seeded fuzz campaigns (issue #14) for the TFLite reader + code generator lowering and for `edgetk inspect`
of ONNX files; long runs: bench/fuzz_models.py, bench/fuzz_onnx.py. Property: accepted, or one EdgetkError."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import require_tool
from toolkit import fuzz

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def tflite_seeds(external) -> list[bytes]:
    return fuzz.tflite_seeds(external)


def test_seeds_are_accepted(tflite_seeds):
    assert len(tflite_seeds) >= 12
    assert [fuzz.check_tflite(s) for s in tflite_seeds] == ["accepted"] * len(tflite_seeds)


def test_tflite_campaign_no_traceback_no_catch_all_and_codegen_matches_tflm(tflite_seeds, tmp_path):
    """300 mutated models (seed 0); the first accepted one is compiled with ASan/UBSan and compared with TFLite-Micro."""
    require_tool("gcc")
    rep = fuzz.run_campaign("tflite", tflite_seeds, fuzz.mutate_tflite, fuzz.check_tflite, n=300, seed=0,
                            out_dir=tmp_path / "failures", suffix=".tflite",
                            deep=fuzz.deep_check_tflite(tmp_path / "deep"), deep_every=1000)
    assert not rep.failures, rep.summary()
    assert rep.accepted > 20 and rep.refused > 100 and rep.deep_checked == 1, rep.summary()


@SETTINGS
@given(k=st.integers(0, 100), mutation=st.integers(0, 2**32 - 1))
def test_tflite_field_mutations_hypothesis(tflite_seeds, k, mutation):
    try:
        data = fuzz.mutate_tflite_fields(np.random.default_rng(mutation), tflite_seeds[k % len(tflite_seeds)])
    except (TypeError, ValueError, OverflowError, struct.error):   # a value the flatbuffer field cannot hold
        assume(False)
    try:
        assert fuzz.check_tflite(data) in ("accepted", "refused")
    except fuzz.Finding as e:
        pytest.fail(str(e))


def test_harness_reports_what_it_must():
    """The campaign records any other exception, a Finding and a slow input as failures (a harness that cannot fail
    is a defect)."""
    def check(data: bytes) -> str:
        if data[:1] == b"a":
            raise ValueError("boom")
        if data[:1] == b"b":
            raise fuzz.Finding("mismatch", "differs")
        return "accepted"
    rep = fuzz.run_campaign("t", [b"a", b"b", b"c"], lambda rng, d: d, check, n=30, seed=0)
    assert {f.kind for f in rep.failures} == {"traceback", "mismatch"} and rep.accepted + len(rep.failures) == 30
    slow = fuzz.run_campaign("t", [b"x"], lambda rng, d: d, lambda d: __import__("time").sleep(1) or "accepted",
                             n=1, per_input_s=0.2)
    assert [f.kind for f in slow.failures] == ["timeout"]


def test_onnx_campaign_no_traceback(tmp_path):
    rep = fuzz.run_campaign("onnx", fuzz.onnx_seeds(), fuzz.mutate_onnx, fuzz.onnx_checker(tmp_path), n=1000, seed=0,
                            out_dir=tmp_path / "failures", suffix=".onnx")
    assert not rep.failures, rep.summary()
    assert rep.accepted > 100 and rep.refused > 100, rep.summary()


@SETTINGS
@given(mutation=st.integers(0, 2**32 - 1), k=st.integers(0, 1))
def test_onnx_field_mutations_hypothesis(tmp_path_factory, mutation, k):
    check = fuzz.onnx_checker(tmp_path_factory.mktemp("onnx"))
    assert check(fuzz.mutate_onnx_fields(np.random.default_rng(mutation), fuzz.onnx_seeds()[k])) in ("accepted", "refused")


def test_supervised_chunk_runs_in_a_child(tmp_path):
    rep = fuzz.supervise("onnx", tmp_path, n=40, seconds=None, seed=1, chunk=20)
    assert rep.tried == 40 and not rep.failures and (tmp_path / "chunk-20.json").is_file()


def test_replay_reruns_saved_inputs_through_the_check_and_the_deep_check(tflite_seeds, tmp_path, monkeypatch):
    """bench/fuzz_models.py --replay: an accepted input is deep-checked (seeded by the index in its name), a refused
    one is a pass, and a check that raises is reported with its kind (a replay that cannot fail is a defect)."""
    require_tool("gcc")
    good, bad = tmp_path / "tflite-1-7-mismatch.tflite", tmp_path / "cut.tflite"
    good.write_bytes(tflite_seeds[0])
    bad.write_bytes(tflite_seeds[0][:40])
    assert [r[1] for r in fuzz.replay("tflite", [good, bad], tmp_path / "w")] == ["accepted", "refused"]
    assert (tmp_path / "w" / "deep" / "deep-7" / "run").exists()

    def catch_all(data: bytes) -> str:
        raise fuzz.Finding("catch-all", "could not be lowered (IndexError)")
    monkeypatch.setattr(fuzz, "check_tflite", catch_all)
    assert [r[1] for r in fuzz.replay("tflite", [good], tmp_path / "w2")] == ["catch-all"]


@pytest.mark.parametrize("case", ["slice-batch-3", "fc-rank-1"])
def test_deep_check_feeds_and_reads_whole_tensors(tmp_path, case):
    """The deep check fed [6, 8] samples to a model whose input is [3, 6, 8] ('wrote 16 values for 8 inputs') and
    TFLite-Micro's results kept only index 0 of the first axis, so a rank-1 output [5] compared one value: inputs
    and outputs whose first dimension is not 1 are whole samples now."""
    require_tool("gcc")
    from toolkit.tflite.build import OpSpec as O
    from toolkit.tflite.build import TensorSpec as T
    from toolkit.tflite.build import build_model

    q, q2 = dict(scale=(0.05,), zero_point=(3,)), dict(scale=(0.1,), zero_point=(-4,))
    rng = np.random.default_rng(4)
    if case == "slice-batch-3":
        def i32(*v: int) -> T:
            return T((len(v),), "int32", None, data=np.array(v, np.int32))
        t = [T((3, 6, 8), **q), i32(0, 1, 0), i32(1, 5, 8), i32(1, 2, 2), T((1, 2, 4), **q), T((1, 2, 4), **q2)]
        data = build_model(t, [O("STRIDED_SLICE", (0, 1, 2, 3), (4,)), O("LEAKY_RELU", (4,), (5,), dict(alpha=0.2))],
                           [0], [5])
    else:
        t = [T((12,), **q), T((5, 12), data=rng.integers(-127, 128, (5, 12), dtype=np.int8), scale=(0.01,),
                              zero_point=(0,)), T((5,), "int32", None, data=rng.integers(-99, 99, 5).astype(np.int32)),
             T((5,), **q2)]
        data = build_model(t, [O("FULLY_CONNECTED", (0, 1, 2), (3,))], [0], [3])
    assert fuzz.check_tflite(data) == "accepted"
    fuzz.deep_check_tflite(tmp_path)(data, 3)


def test_an_input_is_rebuilt_from_its_seed_and_index(tflite_seeds, tmp_path):
    """A crashed child leaves only the index it wrote to its pipe: nth_input(seed, index) must give the very bytes the
    campaign checked (field mutations reuse one unpacked seed, so they must never change it either)."""
    seen: list[bytes] = []

    def check(data: bytes) -> str:
        seen.append(data)
        return "accepted"
    fuzz.run_campaign("tflite", tflite_seeds, fuzz.mutate_tflite, check, n=60, seed=9, start=100)
    again = [fuzz.nth_input(tflite_seeds, fuzz.mutate_tflite, 9, i) for i in range(100, 160)]
    assert again == seen and len(set(seen)) > 50 and not set(seen) & set(tflite_seeds)
    marks: list[int] = []
    fuzz.run_campaign("tflite", tflite_seeds, fuzz.mutate_tflite, check, n=3, seed=9, start=7,
                      out_dir=tmp_path, mark=marks.append)
    assert marks == [7, 8, 9] and not list(tmp_path.iterdir())   # the mark replaces the per-input files


def test_the_supervisor_records_a_crashed_child_with_its_input(tmp_path, monkeypatch):
    """A child killed by a signal (SIGKILL at input 12: the harness's self-test switch) is one crash failure whose
    saved input is the one the child was checking, and the campaign goes on after it."""
    import signal

    monkeypatch.setenv("EDGETK_FUZZ_SELFTEST_KILL_AT", "12")
    rep = fuzz.supervise("recipe", tmp_path, n=20, seconds=None, seed=3, chunk=1000)
    assert [(f.kind, f.index) for f in rep.failures] == [("crash", 12)], rep.summary()
    assert f"child exit {-signal.SIGKILL}" in rep.failures[0].message and rep.tried == 20
    saved = (tmp_path / "failures" / "recipe-3-12-crash.toml").read_bytes()
    assert saved == fuzz.nth_input(fuzz.recipe_seeds(), fuzz.mutate_recipe, 3, 12)


def test_the_deep_checks_kernel_objects_are_reused_only_for_the_same_text(tflite_seeds, tmp_path):
    """compile_host(object_cache=...): the campaign's deep checks reuse each kernel's ASan/UBSan object; the runner
    built from cached objects gives the same bytes as one built from the sources, and a kernel header that changes
    gives a new object (the key is the text of the file and of every header beside it, and the flags)."""
    require_tool("gcc")
    import shutil

    from toolkit.codegen import generate
    from toolkit.codegen.host import compile_host, run_host

    model = tmp_path / "m.tflite"
    model.write_bytes(tflite_seeds[0])                       # the CONV_2D seed: et_conv.c, et_conv_sched.c
    lib = generate(model, tmp_path / "c", kernels="reference").out_dir
    x = np.random.default_rng(0).integers(-128, 128, size=(4, 6, 6, 3), dtype=np.int8)
    plain = run_host(compile_host(lib, tmp_path / "plain", sanitize=True), x, 144)
    cache = tmp_path / "objects"
    first = run_host(compile_host(lib, tmp_path / "a", sanitize=True, object_cache=cache), x, 144)
    objects = sorted(p.name for p in cache.glob("*.o"))
    assert len(objects) == len(list((lib / "kernels").glob("*.c"))) >= 2
    again = run_host(compile_host(lib, tmp_path / "b", sanitize=True, object_cache=cache), x, 144)
    assert np.array_equal(plain, first) and np.array_equal(plain, again)
    assert sorted(p.name for p in cache.glob("*.o")) == objects         # reused, nothing compiled again
    other = tmp_path / "c2"
    shutil.copytree(lib, other)
    with (other / "kernels" / "et_kernels.h").open("a") as f:
        f.write("\n/* changed */\n")
    compile_host(other, tmp_path / "d", sanitize=True, object_cache=cache)
    assert len(list(cache.glob("*.o"))) == 2 * len(objects)
