"""linux-ssh: the model on a Linux robot reached over SSH (ONNX Runtime or LiteRT there), validated like any device.

The system OpenSSH client does the work (no new Python dependency: ssh already reads ~/.ssh/config, Host aliases,
ProxyJump, the agent and known_hosts the way the user set them up). Every call is an argument list with
BatchMode (never a password prompt), accept-new host keys, a ConnectTimeout and a subprocess timeout; the few
words the remote shell parses are quoted with shlex.quote. A temporary folder is made on the robot, the model,
the inputs and toolkit/hil/robot_runner.py (numpy + the runtime, no edgetk) are copied there (a tar stream
into `tar -x` over ssh: no SFTP subsystem needed), the runner prints
one JSON line, and the folder is removed again (also after a failure).
"""
from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from toolkit.errors import EdgetkError
from toolkit.hil.bundle import Bundle
from toolkit.hil.linux_local import PIP, RUNNER, linux_report, runner_failure, write_job
from toolkit.targets import SshSpec, TargetSpec

log = logging.getLogger(__name__)

_UNREACHABLE = ("connection refused", "no route to host", "connection timed out", "could not resolve hostname",
                "network is unreachable", "operation timed out", "connection closed by", "connection reset")


def destination(ssh: SshSpec) -> str:
    """user@host, or the host (alias) alone when the target leaves the user to ssh."""
    return f"{ssh.user}@{ssh.host}" if ssh.user else ssh.host


def options(ssh: SshSpec) -> list[str]:
    """The -o options and key every ssh call gets."""
    opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"ConnectTimeout={ssh.connect_timeout_s}", "-o", "ServerAliveInterval=15"]
    if ssh.known_hosts:
        opts += ["-o", f"UserKnownHostsFile={Path(ssh.known_hosts).expanduser()}"]
    if ssh.key:
        opts += ["-i", str(Path(ssh.key).expanduser()), "-o", "IdentitiesOnly=yes"]
    return opts


def where(spec: TargetSpec) -> str:
    """The robot in words: target name and user@host:port."""
    s = spec.ssh
    return f"{spec.name} ({destination(s)}{f':{s.port}' if s.port else ''})"


def _classify(spec: TargetSpec, stderr: str, what: str) -> EdgetkError:
    """One EdgetkError for an ssh failure (exit 255): unreachable, auth refused, host key, else ssh's words."""
    s, text = spec.ssh, stderr.strip()
    low, robot = text.lower(), where(spec)
    manual = ["ssh", *(["-p", str(s.port)] if s.port else []), *(["-i", s.key] if s.key else []), destination(s),
              "true"]
    by_hand = " ".join(shlex.quote(a) for a in manual)
    if "permission denied" in low or "too many authentication failures" in low:
        return EdgetkError(f"{robot} refused the SSH login while {what}: {text.splitlines()[-1]}",
                           fix=f"authorise the key there (ssh-copy-id -i {s.key or '~/.ssh/id_ed25519'}.pub "
                               f"{destination(s)}), or set ssh.user / ssh.key in {spec.path}; test with: {by_hand}")
    if "host key verification failed" in low or "remote host identification has changed" in low:
        kh = f" -f {s.known_hosts}" if s.known_hosts else ""
        return EdgetkError(f"{robot}: its SSH host key does not match the one known for it ({what})",
                           fix=f"if the robot was reinstalled, forget the old key: ssh-keygen{kh} -R {s.host}")
    if any(w in low for w in _UNREACHABLE):
        return EdgetkError(f"{robot} is unreachable over SSH ({what}): {text.splitlines()[-1]}",
                           fix="check that the robot is on, its address and ssh.port in "
                               f"{spec.path}, and that sshd runs there; test with: {by_hand}")
    return EdgetkError(f"ssh to {robot} failed while {what}: {text[-600:] or 'no message'}",
                       fix=f"run it by hand to see why: {by_hand}")


def _run(spec: TargetSpec, cmd: list[str], what: str, timeout: float,
         data: bytes | None = None) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, input=data,
                              stdin=subprocess.DEVNULL if data is None else None)
        proc.stdout, proc.stderr = (b.decode(errors="replace") for b in (proc.stdout, proc.stderr))
    except subprocess.TimeoutExpired as e:
        raise EdgetkError(f"{where(spec)} did not finish {what} within {timeout:.0f} s",
                          fix=f"check the robot's load and link; raise ssh.run_timeout_s in {spec.path}") from e
    if proc.returncode == 255:
        raise _classify(spec, proc.stderr, what)
    return proc


def remote(spec: TargetSpec, words: list[str], what: str, timeout: float | None = None,
           data: bytes | None = None) -> subprocess.CompletedProcess:
    """Run a command on the robot (stdin: `data`): each word quoted for its shell; ssh errors (exit 255) become
    EdgetkError."""
    s = spec.ssh
    cmd = ["ssh", *options(s), *(["-p", str(s.port)] if s.port else []), "--", destination(s),
           " ".join(shlex.quote(w) for w in words)]
    return _run(spec, cmd, what, timeout or s.connect_timeout_s + 30, data)


def copy(spec: TargetSpec, files: list[Path], folder: str) -> None:
    """The files into the robot's folder, as a tar stream into `tar -x` there over the same ssh (no scp/SFTP
    subsystem needed: minimal robot images and dropbear often lack one)."""
    import io
    import tarfile

    s, buf = spec.ssh, io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in files:
            tar.add(f, arcname=f.name)
    proc = remote(spec, ["tar", "-x", "-f", "-", "-C", folder], "copying the model", s.connect_timeout_s + 120,
                  buf.getvalue())
    if proc.returncode != 0:
        raise EdgetkError(f"copying to {where(spec)}:{folder} failed: {proc.stderr.strip()[-600:]}",
                          fix=f"check free space and permissions under ssh.workdir ({s.workdir}) and that tar is "
                              "installed on the robot")


def check_client(spec: TargetSpec) -> None:
    """Refuse (one EdgetkError) when this machine cannot reach any robot: no ssh client, the key file missing."""
    missing = [t for t in ("ssh",) if shutil.which(t) is None]
    if missing:
        raise EdgetkError(f"{' and '.join(missing)} not found: {spec.name} is reached over SSH",
                          fix="install the OpenSSH client: apt-get install openssh-client")
    if spec.ssh.key and not Path(spec.ssh.key).expanduser().is_file():
        raise EdgetkError(f"{spec.path}: ssh.key {spec.ssh.key} does not exist",
                          fix="give the private key file (ssh-keygen -t ed25519 makes one), or drop ssh.key to "
                              "use ssh's defaults")


def _python_missing(spec: TargetSpec, proc: subprocess.CompletedProcess) -> EdgetkError | None:
    if proc.returncode == 127 or "not found" in proc.stderr.lower() and not proc.stdout.strip():
        return EdgetkError(f"{where(spec)} has no {spec.ssh.python}: {proc.stderr.strip()[-300:]}",
                           fix=f"install it there (sudo apt-get install python3 python3-numpy), or set ssh.python "
                               f"in {spec.path} to the interpreter's path")
    return None


def profile_ssh(spec: TargetSpec, bundle: Bundle, out_dir: Path, *, samples: int) -> dict[str, Any]:
    """Copy the model, the inputs and the runner to a temporary folder on the robot, run it with the robot's
    Python, remove the folder; latency percentiles, peak RSS and the CPU's state as the robot measured them,
    outputs vs TFLite-Micro here."""
    check_client(spec)
    s = spec.ssh
    made = remote(spec, ["mktemp", "-d", f"{s.workdir.rstrip('/') or ''}/edgetk.XXXXXX"], "making a temporary folder")
    folder = made.stdout.strip()
    if made.returncode != 0 or not folder.startswith("/"):
        raise EdgetkError(f"{where(spec)} could not make a folder under {s.workdir}: {made.stderr.strip()[-300:]}",
                          fix=f"set ssh.workdir in {spec.path} to a writable folder on the robot")
    try:
        model, xs, job_file, job = write_job(spec, bundle, out_dir, samples, model_dir=folder, input_dir=folder)
        copy(spec, [model, xs, job_file, RUNNER], folder)
        proc = remote(spec, [s.python, f"{folder}/{RUNNER.name}", f"{folder}/{job_file.name}"],
                      "running the model", s.run_timeout_s)
    finally:
        try:
            remote(spec, ["rm", "-rf", "--", folder], "removing its temporary folder")
        except EdgetkError as e:
            log.warning("could not remove %s on %s: %s", folder, where(spec), e)
    (out_dir / "robot_stdout.json").write_text(proc.stdout)
    lines = proc.stdout.strip().splitlines()
    res = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if proc.returncode != 0:
        if "error" in res:
            raise runner_failure(res, spec, f"on {where(spec)}", f"ssh {destination(s)} {PIP[spec.runtime]}")
        raise _python_missing(spec, proc) or EdgetkError(
            f"the runner failed on {where(spec)} (exit {proc.returncode}): {proc.stderr.strip()[-600:]}",
            fix=f"run it by hand there: {s.python} {RUNNER.name} job.json (both in {out_dir})")
    label = (f"{res['runtime']} on {where(spec)} ({res['machine']}, Python {res['python']}, 1 thread), wall clock "
             "of the robot (time.perf_counter in robot_runner.py, run over SSH)")
    report = linux_report(spec, bundle, res, model, samples, label,
                          f"getrusage(RUSAGE_SELF).ru_maxrss of robot_runner.py on {where(spec)}", job)
    report["robot"] = {"host": s.host, "user": s.user or None, "port": s.port or None, "node": res["node"],
                       "machine": res["machine"], "python": res["python"], "runtime": res["runtime"],
                       "cpu_before": res["cpu_before"], "cpu_after": res["cpu_after"],
                       "source": "read on the robot by robot_runner.py before and after the run: "
                                 "/sys/class/thermal, /sys/devices/system/cpu/cpufreq, thermal_throttle counters "
                                 "(parts the robot's kernel does not expose are absent)"}
    return report
