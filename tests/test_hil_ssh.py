"""linux-ssh targets against a real OpenSSH server started here (127.0.0.1, a free port, throwaway host and client
keys in tmp_path, stopped afterwards); the robot's python3 is this venv's, so ONNX Runtime exists there."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import free_port, require_tool, stop_process, wait_listening
from toolkit.errors import EdgetkError
from toolkit.hil import profile
from toolkit.hil.bundle import load_bundle
from toolkit.hil.linux_local import profile_linux_local
from toolkit.hil.ssh import profile_ssh
from toolkit.targets import get_target, load_target_file


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on 127.0.0.1:PORT for the current user; yields (port, client key, folder)."""
    exe = shutil.which("sshd") or ("/usr/sbin/sshd" if os.access("/usr/sbin/sshd", os.X_OK) else None)
    exe = exe or require_tool("sshd")
    require_tool("ssh-keygen")
    d = tmp_path_factory.mktemp("sshd")
    host_key, client = _keygen(d / "host_key"), _keygen(d / "client_key")
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder when root
    port = free_port()
    (d / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1:{port}\nHostKey {host_key}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"PidFile {d / 'sshd.pid'}\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        "LogLevel ERROR\n")  # no SFTP subsystem, as on minimal robot images: the copy must not need one
    log = open(d / "sshd.log", "wb")
    proc = subprocess.Popen([exe, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_listening(port, proc, d / "sshd.log", "sshd")
    try:
        yield port, client, d
    finally:
        stop_process(proc)


def _robot(folder: Path, ssh_port: int, key: Path, known: Path, python: str = sys.executable, **over) -> Path:
    import getpass

    (folder / "robot.toml").write_text(
        'name = "robot"\ndescription = "a robot over SSH"\nkind = "linux-ssh"\ncore = "x86_64"\nclock_hz = 0\n'
        'flash_bytes = 0\nram_bytes = 0\nruntime = "onnxruntime"\n\n[ssh]\nhost = "127.0.0.1"\n'
        f'user = "{getpass.getuser()}"\nport = {over.get("port", ssh_port)}\nkey = "{key}"\nknown_hosts = "{known}"\n'
        f'python = "{python}"\nconnect_timeout_s = 5\nrun_timeout_s = 120.0\n')
    return folder / "robot.toml"


def test_profile_over_ssh_equals_local_and_golden(sshd, exported_bundle, tmp_path, monkeypatch):
    """The bundle profiled on the 'robot': outputs identical to the same runtime here, within 1 LSB of golden;
    latency percentiles, peak RSS and the robot's facts come from the robot; the temp folder is removed."""
    port, key, d = sshd
    bundle = exported_bundle("imu-motions")
    tdir = tmp_path / "targets"
    tdir.mkdir()
    _robot(tdir, port, key, tmp_path / "known_hosts")
    monkeypatch.setenv("EDGETK_TARGETS", str(tdir))
    before = set(Path("/tmp").glob("edgetk.*"))
    rep = profile(bundle, "robot", samples=10, out_dir=tmp_path / "p").report
    assert rep["ran_on"] == "robot" and rep["fallbacks"] == [] and rep["latency"]["measured"] is True
    lat = rep["latency"]
    assert 0 < lat["median_ms"] <= lat["p90_ms"] <= lat["p99_ms"] and len(lat["samples_ms"]) == 10
    assert "robot (" in lat["source"] and "over SSH" in lat["source"]
    assert rep["memory"]["peak_rss_bytes"] > 10 * 2**20 and "on robot" in rep["memory"]["source"]["peak RSS"]
    golden = next(c for c in rep["comparisons"] if c["reference"].startswith("golden"))
    assert golden["samples"] == 10 and golden["max_lsb_diff"] <= 1 and golden["top1_agreement"] >= 0.9
    assert rep["robot"]["host"] == "127.0.0.1" and rep["robot"]["runtime"].startswith("onnxruntime")
    assert not set(Path("/tmp").glob("edgetk.*")) - before  # the robot's temporary folder is gone (others' may go)
    host_key = (d / "host_key.pub").read_text().split()[1]
    assert host_key in (tmp_path / "known_hosts").read_text()  # accept-new recorded the throwaway host key
    spec = load_target_file(tdir / "robot.toml")
    remote = profile_ssh(spec, load_bundle(bundle), tmp_path, samples=10)
    local = profile_linux_local(dataclasses.replace(get_target("linux-local"), runtime="onnxruntime"),
                                load_bundle(bundle), tmp_path, samples=10)
    np.testing.assert_array_equal(remote["_outputs"], local["_outputs"])  # same runtime, same bytes: identical


def test_refusals_are_one_clear_error_each(sshd, exported_bundle, tmp_path):
    """Wrong key, nothing listening, no such python, python without the runtime: one EdgetkError with its fix."""
    port, _, d = sshd
    bundle = load_bundle(exported_bundle("imu-motions"))
    stranger = _keygen(tmp_path / "stranger")
    cases = [({"key": stranger}, "refused the SSH login", "ssh-copy-id"),
             ({"port": free_port()}, "unreachable over SSH", "sshd runs there"),
             ({"python": "/nonexistent/python3"}, "has no /nonexistent/python3", "ssh.python")]
    bare = Path("/usr/bin/python3")
    if bare.exists() and subprocess.run([str(bare), "-c", "import onnxruntime"], capture_output=True,
                                        timeout=30).returncode != 0:
        cases.append(({"python": str(bare)}, "(python", "pip install numpy onnxruntime"))
    for i, (over, said, fix) in enumerate(cases):
        folder = tmp_path / f"t{i}"
        folder.mkdir()
        args = {"key": d / "client_key", **over}
        spec = load_target_file(_robot(folder, port, args.pop("key"), tmp_path / "known", **args))
        with pytest.raises(EdgetkError) as e:
            profile_ssh(spec, bundle, folder, samples=2)
        assert said in str(e.value) and fix in (e.value.fix or ""), (over, str(e.value), e.value.fix)
