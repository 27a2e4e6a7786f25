"""The history store: every profile appends a row (temp $EDGETK_HISTORY here); `edgetk history` lists them,
`edgetk compare A B` gives the deltas (run ids or report.json files), the HTML report plots past runs."""
from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import require_tool
from toolkit.cli import main
from toolkit.hil import history, profile
from toolkit.hil.bundle import bundle_from_tflite

HELLO = "tflite_micro/tensorflow/lite/micro/examples/hello_world/models/hello_world_int8.tflite"


@pytest.fixture(scope="module")
def two_runs(external, tmp_path_factory):
    """Two profiles of the same bundle on qemu-m4 into a fresh store ($EDGETK_HISTORY set for the module)."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    tmp = tmp_path_factory.mktemp("history")
    store = tmp / "history.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGETK_HISTORY", str(store))
        b = bundle_from_tflite(external / HELLO, tmp / "bundle", samples=3)
        r1 = profile(b.path, "qemu-m4", samples=2, out_dir=tmp / "p1", build_dir=tmp / "b")
        r2 = profile(b.path, "qemu-m4", samples=3, out_dir=tmp / "p2", build_dir=tmp / "b")
        yield store, b, r1, r2


def test_profiles_append_and_history_lists_them(two_runs, capsys):
    store, b, r1, r2 = two_runs
    assert (r1.report["history"]["id"], r2.report["history"]["id"]) == (1, 2)
    with sqlite3.connect(store) as con:  # the rows are in the store itself, not only in the reports
        rows = con.execute("SELECT id, model_sha256, target, ran_on, flash_bytes, checks_failed FROM runs").fetchall()
    assert [r[0] for r in rows] == [1, 2] and {r[1] for r in rows} == {b.sha256}
    assert rows[0][2:4] == ("qemu-m4", "qemu-m4") and rows[0][5] == 0
    assert main(["history", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["store"] == str(store) and [r["id"] for r in doc["runs"]] == [1, 2]
    assert doc["runs"][1]["git_commit"] == r2.report["header"]["git_commit"]
    assert doc["runs"][1]["latency_measured"] == 0  # an emulator's ms is an estimate
    assert doc["runs"][1]["instructions"] == pytest.approx(r2.report["instructions"]["per_inference"])
    assert main(["history", "--model", b.sha256[:12], "--target", "qemu-m4", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["runs"]) == 2
    assert main(["history", "--target", "host-sim", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == []
    assert main(["history"]) == 0
    out = capsys.readouterr().out
    assert "history store:" in out and "(2 runs)" in out and "qemu-m4" in out
    # the second report's HTML plots this model's runs on this target (both of them)
    html = r2.html_path.read_text()
    assert "<section id='history'>" in html and html.count("<circle") >= 2


def test_compare_ids_and_report_files(two_runs, capsys, tmp_path):
    _, _, r1, r2 = two_runs
    assert main(["compare", "1", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    d = {x["figure"]: x for x in doc["deltas"]}
    assert d["flash_bytes"]["a"] == r1.report["memory"]["flash_bytes"] and d["flash_bytes"]["delta"] == 0
    ins = d["instructions"]
    assert ins["a"] == pytest.approx(r1.report["instructions"]["per_inference"])
    assert ins["delta"] == pytest.approx(ins["b"] - ins["a"])
    assert main(["compare", str(r1.out_dir / "report.json"), str(r2.out_dir), "--json"]) == 0
    by_file = json.loads(capsys.readouterr().out)
    assert by_file["a"]["model_sha256"] == doc["a"]["model_sha256"] and by_file["a"]["id"] is None
    assert main(["compare", "1", "2"]) == 0
    assert "flash_bytes" in capsys.readouterr().out
    assert main(["compare", "1", "99"]) == 2
    assert "no run 99" in capsys.readouterr().err
    assert main(["compare", "1", "nonsense", "--json"]) == 2
    err = json.loads(capsys.readouterr().out)
    assert "neither a run id nor a report.json" in err["error"] and err["fix"]


def test_store_path_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGETK_HISTORY", raising=False)
    monkeypatch.setenv("EDGETK_HOME", str(tmp_path / "home"))
    assert history.store_path() == tmp_path / "home" / "history.sqlite"
    monkeypatch.setenv("EDGETK_HISTORY", str(tmp_path / "x.sqlite"))
    assert history.store_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("EDGETK_HISTORY")
    monkeypatch.delenv("EDGETK_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert history.store_path() == tmp_path / ".local" / "share" / "edgetk" / "history.sqlite"
