"""report.html in headless Chromium: the page loads, every section renders (DOM after load), and the screenshot
(kept under the test's tmp dir) is a real picture with the verdict colours in it."""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from conftest import require_tool
from toolkit.hil import profile
from toolkit.hil.bundle import bundle_from_tflite

HELLO = "tflite_micro/tensorflow/lite/micro/examples/hello_world/models/hello_world_int8.tflite"
SECTIONS = ("header", "figures", "checks", "layers", "memory-map", "accuracy", "capacity", "history")


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    msg = "chromium not found; fix: apt-get install chromium (scripts/sysdeps.sh installs it when run as root)"
    if os.environ.get("EDGETK_REQUIRE_QEMU") == "1":
        pytest.fail(f"{msg} (EDGETK_REQUIRE_QEMU=1 turns this skip into a failure)")
    pytest.skip(msg)


def _headless(browser: str, *args: str, tmp) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           f"--user-data-dir={tmp / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_report_html_renders_in_headless_chromium(external, tmp_path, monkeypatch):
    browser = _chromium()
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    monkeypatch.setenv("EDGETK_HISTORY", str(tmp_path / "history.sqlite"))
    b = bundle_from_tflite(external / HELLO, tmp_path / "bundle", samples=2)
    res = profile(b.path, "qemu-m4", samples=2, out_dir=tmp_path / "out", build_dir=tmp_path / "b", layers=True)
    url = res.html_path.resolve().as_uri()
    dom = _headless(browser, "--dump-dom", url, tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for sec in SECTIONS:
        assert f'<section id="{sec}">' in dom.stdout, (sec, dom.stdout[:500])
    assert dom.stdout.count("<svg") >= 4 and "<img" in dom.stdout  # inline SVG charts and the matplotlib PNGs
    shot = tmp_path / "report.png"
    r = _headless(browser, f"--screenshot={shot}", "--window-size=1200,3000", "--hide-scrollbars", url, tmp=tmp_path)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (3000, 1200)
    green = ((abs(img[..., 0] - 0x2E) < 8) & (abs(img[..., 1] - 0x7D) < 8) & (abs(img[..., 2] - 0x32) < 8)).sum()
    assert green > 200, "the PASS cells and the fitting memory bars are drawn in green"
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # text, tables and charts, not a blank page
    print(f"screenshot: {shot} ({shot.stat().st_size:,} B)")
