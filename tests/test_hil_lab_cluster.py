"""Many profile jobs over the lab of tests/test_hil_lab.py (a real labgrid coordinator, two exporters, two
host-simulator boards behind RFC 2217), one Ray actor per place on a Ray started by the command (--cluster local).

The lab's boards run the hello-world firmware and cannot be re-flashed, so the bundles are that model with
different test inputs; two profiles of one model take turns on the bundle's build lock (toolkit.hil.runner), so
the two places serve the jobs one after the other here, not at once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require_tool, stop_process
from test_hil_lab import REPO, lab, monkeypatch_module  # noqa: F401 - the lab fixture and the one it uses
from toolkit.hil.bundle import bundle_from_tflite
from toolkit.hil.lab import parse_lab
from toolkit.hil.lab_jobs import done_jobs, key_figures, place_targets, plan

RAY_FIX = "pip install 'edgetk[cluster]' (Ray)"


def _profile(lab, bundles: list[Path], out: Path, history: Path) -> tuple[int, dict, float]:
    require_tool("ray", fix=RAY_FIX)
    cmd = [sys.executable, "-m", "toolkit.cli", "--json", "profile", *map(str, bundles), "--lab", "board=lab-board",
           "--cluster", "local", "--lab-file", str(lab.lab_file), "--targets", str(lab.targets), "--samples", "3",
           "--no-layers", "-o", str(out)]
    t0 = time.monotonic()
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                           env={**os.environ, "EDGETK_HISTORY": str(history), "RAY_USAGE_STATS_ENABLED": "0"})
    try:
        stdout, stderr = job.communicate(timeout=150)
    finally:
        stop_process(job)
    assert job.returncode in (0, 1), stderr[-3000:]
    return job.returncode, json.loads(stdout), time.monotonic() - t0


def test_jobs_spread_over_both_places_stream_and_resume(lab, tmp_path):
    """3 bundles x the places' one target over 2 places: every result bit-exact (golden and TFLite-Micro), both
    places used, one line per job, history rows; a line deleted: the re-run runs only that job."""
    bundles = [bundle_from_tflite(lab.bundle.tflite, tmp_path / f"b{i}", samples=3 + i, seed=i).path
               for i in range(3)]
    out, history = tmp_path / "run", tmp_path / "history.sqlite"
    code, doc, wall = _profile(lab, bundles, out, history)
    assert code == 0, doc
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and sorted(r["bundle"] for r in rows) == sorted(str(b) for b in bundles)
    assert {r["place"] for r in rows} == {"lab-a", "lab-b"} and doc["places"] == ["lab-a", "lab-b"], rows
    for r in rows:
        assert r["ok"] and r["ran_on"] == "lab-board" and r["samples"] == 3 and r["bit_exact"], r
        assert r["max_lsb_diff_golden"] == 0 and r["max_lsb_diff_tflm"] == 0, r
        rep = json.loads(Path(r["report"]).read_text())
        assert rep["lab"]["place"] == r["place"] and rep["lab"]["url"].startswith("rfc2217://127.0.0.1:")
        assert len((Path(r["report"]).parent / "results.jsonl").read_text().splitlines()) == 3
    assert r["history"]["id"] and len({r["history"]["id"] for r in rows}) == 3
    assert lab.idle()

    kept = [x for x in (out / "results.jsonl").read_text().splitlines() if json.loads(x)["bundle"] != str(bundles[1])]
    (out / "results.jsonl").write_text("\n".join(kept) + "\n")
    code, again, wall2 = _profile(lab, bundles, out, history)
    assert code == 0 and again["jobs"] == 1 and again["skipped"] == 2, again
    assert [r["bundle"] for r in again["rows"]] == [str(bundles[1])] and again["rows"][0]["max_lsb_diff_golden"] == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    assert lab.idle()
    print(f"lab jobs: 3 jobs over 2 places {wall:.1f} s, 1 job re-run {wall2:.1f} s")


def test_places_targets_and_resume_are_planned_purely(tmp_path):
    lab = parse_lab('[places.p1]\ntarget = "t1"\n', env={})
    places = {"p1": {"tags": {"desk": "a"}}, "p2": {"tags": {"desk": "a", "board": "t2"}}, "p3": {"tags": {}}}
    assert place_targets(places, {"desk": "a"}, lab, None) == {"p1": "t1", "p2": "t2"}
    assert place_targets(places, {"desk": "a"}, lab, "t9") == {"p1": "t9", "p2": "t9"}
    with pytest.raises(Exception, match="which target"):
        place_targets(places, {"name": "p3"}, lab, None)
    with pytest.raises(Exception, match="no place .* matches desk=z"):
        place_targets(places, {"desk": "z"}, lab, None)
    jobs = plan([Path("/x/kws"), Path("/y/kws"), Path("/z/vww.tflite")], ["t2", "t1", "t2"], set())
    assert [(j.folder, j.target) for j in jobs[:2]] == [("0-kws-t1", "t1"), ("0-kws-t2", "t2")] and len(jobs) == 6
    assert jobs[-1].folder == "vww-t2"
    res = tmp_path / "results.jsonl"
    res.write_text(json.dumps({"bundle": "/x/kws", "target": "t1", "report": "r.json"}) + "\n"
                   + json.dumps({"bundle": "/x/kws", "target": "t2", "report": None, "error": "e"}) + '\n{"bund')
    assert done_jobs(res) == {("/x/kws", "t1")}
    assert len(plan([Path("/x/kws")], ["t1", "t2"], done_jobs(res))) == 1
    figs = key_figures({"ran_on": "b", "samples": 3, "fidelity": {"bit_exact": True},
                        "latency": {"per_inference_ms": 1.5},
                        "comparisons": [{"reference": "golden test_out_int8.npy", "max_lsb_diff": 0},
                                        {"reference": "TFLite-Micro on this host", "max_lsb_diff": 1}],
                        "checks": [{"name": "x", "verdict": "fail"}]})
    assert figs["max_lsb_diff_golden"] == 0 and figs["max_lsb_diff_tflm"] == 1 and figs["verdict"] == "fail"


def test_ctrl_c_on_the_driver_releases_every_place(lab, tmp_path):
    """SIGINT to the driver while both actors profile (one waits for the bundle's build lock): exit 130 within
    seconds, both places let go, every line whole."""
    require_tool("ray", fix=RAY_FIX)
    bundles = [bundle_from_tflite(lab.bundle.tflite, tmp_path / f"m{i}", samples=300, seed=i).path for i in range(2)]
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "toolkit.cli", "profile", *map(str, bundles), "--lab", "board=lab-board",
           "--cluster", "local", "--lab-file", str(lab.lab_file), "--targets", str(lab.targets), "--samples", "all",
           "--no-layers", "-o", str(out)]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                           env={**os.environ, "EDGETK_HISTORY": str(tmp_path / "h.sqlite")})
    try:
        deadline = time.monotonic() + 90
        while not any(f.read_text().count("\n") >= 5 for f in out.glob("*/results.jsonl")):
            if job.poll() is not None or time.monotonic() > deadline:
                stop_process(job)
                pytest.fail(f"the jobs did not get going: {job.communicate(timeout=10)[1][-2000:]}")
            time.sleep(0.05)
        t0 = time.monotonic()
        job.send_signal(signal.SIGINT)
        _, err = job.communicate(timeout=90)
        assert job.returncode == 130 and "interrupted" in err, (job.returncode, err[-3000:])
        stopped_s = time.monotonic() - t0
        assert stopped_s < 20, stopped_s   # the jobs' profile processes stop on SIGINT (not killed after 30 s)
        print(f"ctrl-c: ended {stopped_s:.1f} s after the signal")
        assert lab.idle(), err[-3000:]
        rows = (out / "results.jsonl").read_text().splitlines() if (out / "results.jsonl").is_file() else []
        assert all(json.loads(x)["bundle"] in map(str, bundles) for x in rows)
    finally:
        stop_process(job)
