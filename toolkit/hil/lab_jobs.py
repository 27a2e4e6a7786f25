"""Many profile jobs spread over a board lab: `edgetk profile B1 B2 ... --lab TAG=VALUE --cluster auto|ADDRESS|local`.

One Ray actor (1 CPU) per lab place matching the filter: it leases its place once (toolkit.hil.lab.lease, on its
first job) and profiles the jobs the driver gives it through the place's RFC 2217 URL. A job is a bundle on a
target; the targets are those of the matching places (the file's `target`, else the `board` tag; --target
overrides), and a job goes only to the actors whose place has its target. The driver appends each result as it
arrives to OUT/results.jsonl (one line per job, fsync'd): a re-run with the same OUT skips every job that has a
line with a report (a failed check is a result; a job that ended in an error runs again). The history row of a
job is written by its profile (to the driver's store path, passed to the actors); when the actor could not write
it, the driver does. The actors release their places when they end: after the last job, on an error and when
the driver is interrupted (Ctrl-C). Reports go to OUT/<bundle>-<target>/, which every node must reach at the
same path (as for `edgetk train --cluster`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from toolkit.errors import EdgetkError
from toolkit.hil.lab import LabClient, LabConfig, lab_filter, lease, matching

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"
CLOSE_TIMEOUT_S = 60.0  # an actor's release of its place (the labgrid client's calls are bounded by 30 s each)
STOP_TIMEOUT_S = 30.0   # an interrupted job's profile process gets this long to stop its target, then SIGKILL
JOB_TIMEOUT_S = 3600.0  # one job's profile, at most


@dataclass(frozen=True)
class ProfileOptions:
    """The profile settings every job of the run shares (from the command line)."""

    samples: int | None = 20
    max_lsb: int = 0
    max_drop: float = 0.0
    optimize: str = "size"
    mlperf_key: str | None = None
    layers: bool = True


@dataclass(frozen=True)
class LabJob:
    """One profile: a bundle on a target; its reports go to OUT/<folder>."""

    bundle: str      # absolute path of the bundle folder (or .tflite)
    target: str
    folder: str      # under OUT, unique in the run

    @property
    def key(self) -> tuple[str, str]:
        return self.bundle, self.target


def place_targets(places: dict[str, dict[str, Any]], filt: dict[str, str], lab: LabConfig,
                  target: str | None) -> dict[str, str]:
    """{place: edgetk target} of the places the filter matches (pure): --target, else the place's `target` in
    the lab file, else its `board` tag."""
    found = {}
    for name in matching(places, filt):
        known = lab.place(name)
        found[name] = target or (known.target if known else None) or places[name]["tags"].get("board")
        if not found[name]:
            raise EdgetkError(f"lab place {name}: which target is its board?",
                              fix=f"give it `target = \"T\"` under [places.{name}] in the lab file, a board tag "
                                  f"(labgrid-client -p {name} set-tags board=T), or pass --target T")
    if not found:
        asked = " ".join(f"{k}={v}" for k, v in filt.items())
        raise EdgetkError(f"no place on the labgrid coordinator at {lab.coordinator} matches {asked} "
                          f"(places: {', '.join(sorted(places)) or 'none'})",
                          fix="labgrid-client -p PLACE create / add-match / set-tags KEY=VALUE")
    return found


def plan(bundles: list[Path], targets: list[str], done: set[tuple[str, str]]) -> list[LabJob]:
    """Every bundle on every target, less the jobs already done (pure; folders named <bundle>-<target>, with
    the bundle's position added when two bundles share a name)."""
    names = [b.name.removesuffix(".tflite") for b in bundles]
    jobs = []
    for i, (b, name) in enumerate(zip(bundles, names)):
        stem = name if names.count(name) == 1 else f"{i}-{name}"
        for t in sorted(set(targets)):
            job = LabJob(str(b.absolute()), t, f"{stem}-{t}")
            if job.key not in done:
                jobs.append(job)
    return jobs


def done_jobs(path: Path) -> set[tuple[str, str]]:
    """(bundle, target) of every line of a results.jsonl that has a report (a torn last line is ignored)."""
    if not path.is_file():
        return set()
    done = set()
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("report"):
            done.add((row["bundle"], row["target"]))
    return done


def append_row(path: Path, row: dict[str, Any]) -> None:
    """One JSON line, flushed and fsync'd (a torn line from a killed run is first ended)."""
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write((json.dumps(row, sort_keys=True) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


def key_figures(report: dict[str, Any]) -> dict[str, Any]:
    """What a results.jsonl line says about a profile (pure): verdict, where it ran, fidelity, latency, flash."""
    comps = report.get("comparisons") or []
    golden = [c["max_lsb_diff"] for c in comps if c["reference"].startswith("golden")]
    tflm = [c["max_lsb_diff"] for c in comps if "TFLite-Micro" in c["reference"]]
    checks = report.get("checks") or []
    return {"verdict": "fail" if any(c["verdict"] == "fail" for c in checks) else "pass",
            "ran_on": report.get("ran_on"), "samples": report.get("samples"),
            "bit_exact": (report.get("fidelity") or {}).get("bit_exact"),
            "max_lsb_diff_golden": golden[0] if golden else None, "max_lsb_diff_tflm": tflm[0] if tflm else None,
            "latency_ms": (report.get("latency") or {}).get("per_inference_ms"),
            "flash_bytes": (report.get("memory") or {}).get("flash_bytes"),
            "device_error": report.get("device_error")}


class PlaceWorker:
    """A Ray actor's body (2 threads: a job, and stop/close beside it): one lab place, leased on the first job
    and held until close(). Each job's profile runs in a child process (`python -m toolkit.hil.lab_jobs`), so
    stop() can interrupt it (SIGINT: the target is stopped as on Ctrl-C) and close() can then release the place;
    a Python thread cannot be interrupted, and a Ray actor task is not cancelled while it runs."""

    def __init__(self, place: str, lab: LabConfig, wait_s: float | None, options: ProfileOptions, out: str) -> None:
        self.place, self.lab, self.wait_s, self.options, self.out = place, lab, wait_s, options, Path(out)
        self.stack = contextlib.ExitStack()
        self.held = None
        self.child: subprocess.Popen | None = None
        self.stopping = False
        self.lock = threading.Lock()

    def run(self, job: LabJob) -> dict[str, Any]:
        """Profile one job on the place (leasing it first if not held yet): its report path and figures."""
        if self.held is None:
            self.held = self.stack.enter_context(lease(self.place, self.lab, self.wait_s))
        request = {"job": asdict(job), "url": self.held.url, "lab": self.held.to_dict(),
                   "out": str(self.out / job.folder), "options": asdict(self.options)}
        t0 = time.monotonic()
        with self.lock:
            if self.stopping:
                raise EdgetkError(f"lab place {self.place}: stopped before {job.folder}", fix="run again")
            self.child = subprocess.Popen([sys.executable, "-m", "toolkit.hil.lab_jobs"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            answer, _ = self.child.communicate(json.dumps(request), timeout=JOB_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.communicate()
            raise EdgetkError(f"{job.folder} on lab place {self.place} took over {JOB_TIMEOUT_S:g} s",
                              fix="see its report folder; profile it alone with edgetk profile --lab") from None
        doc = json.loads(answer.strip().splitlines()[-1]) if answer.strip() else {
            "error": f"the profile process ended with status {self.child.returncode}", "fix": "see its messages"}
        if "error" in doc:
            raise EdgetkError(doc["error"], fix=doc.get("fix"))
        return {**doc, "seconds": round(time.monotonic() - t0, 3)}

    def stop(self) -> None:
        """Interrupt the running job (SIGINT, then SIGKILL after STOP_TIMEOUT_S); no job starts after this."""
        with self.lock:
            self.stopping, child = True, self.child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()

    def close(self) -> dict[str, Any] | None:
        """Release the place (when held): the lease's times."""
        held, self.held = self.held, None
        self.stack.close()
        return held.to_dict() if held is not None else None


def profile_job(request: dict[str, Any]) -> dict[str, Any]:
    """One job's profile (in the child process of an actor): its report path, history row and figures."""
    from toolkit.hil import profile
    from toolkit.hil.checks import Limits

    job, o = LabJob(**request["job"]), ProfileOptions(**request["options"])
    result = profile(Path(job.bundle), job.target, port=request["url"], samples=o.samples, out_dir=request["out"],
                     limits=Limits(max_lsb=o.max_lsb, max_drop=o.max_drop), mlperf_key=o.mlperf_key,
                     optimize=o.optimize, layers=o.layers, lab=request["lab"])
    history = result.report.get("history") or {}
    return {"report": str(result.out_dir / "report.json"),
            "history": {k: v for k, v in history.items() if k != "runs"} or None, **key_figures(result.report)}


def actor_env() -> dict[str, str]:
    """The variables the actors get: the driver's EDGETK_*, its history store's path, and no gRPC fork handlers
    (the profile forks TFLite-Micro children; see toolkit.hil.lab.LabClient)."""
    from toolkit.hil.history import store_path

    env = {k: v for k, v in os.environ.items() if k.startswith("EDGETK_")}
    return {**env, "EDGETK_HISTORY": str(store_path().absolute()), "GRPC_ENABLE_FORK_SUPPORT": "0"}


@dataclass
class Run:
    """The driver's state: what is queued per target, what each actor is doing, what came back."""

    out: Path
    queue: list[LabJob]
    rows: list[dict[str, Any]]
    places_used: set[str]


def _row(job: LabJob, place: str, got: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    return {"bundle": job.bundle, "target": job.target, "place": place, "ok": error is None and
            (got or {}).get("verdict") == "pass", "error": error, **(got or {"report": None})}


def _record(run: Run, job: LabJob, place: str, got: dict[str, Any] | None, error: str | None) -> None:
    """Append the job's line; write its history row here when the actor could not."""
    from toolkit.hil import history

    row = _row(job, place, got, error)
    if got is not None and got.get("history") is None:
        with contextlib.suppress(OSError, EdgetkError):
            report = json.loads(Path(got["report"]).read_text())
            row["history"] = {"id": history.append(report, got["report"])[0], "by": "driver"}
    append_row(run.out / RESULTS, row)
    run.rows.append(row)
    log.info("%s on %s (%s): %s", Path(job.bundle).name, place, job.target,
             error or f"{row['verdict']}, {row.get('latency_ms')} ms")


def _next(run: Run, target: str) -> LabJob | None:
    job = next((j for j in run.queue if j.target == target), None)
    if job is not None:
        run.queue.remove(job)
    return job


def drive(ray: Any, actors: dict[str, Any], targets: dict[str, str], run: Run) -> None:
    """Give each actor a job of its place's target whenever it is free, record results as they arrive; an
    actor whose job ended in an error gets no more (its jobs go to the others; what none can run stays queued)."""
    busy: dict[Any, tuple[str, LabJob]] = {}

    def feed(place: str) -> None:
        job = _next(run, targets[place])
        if job is not None:
            busy[actors[place].run.remote(job)] = (place, job)

    for place in actors:
        feed(place)
    while busy:
        (ref,), _ = ray.wait(list(busy), num_returns=1)
        place, job = busy.pop(ref)
        try:
            got = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - the job's failure is its result line; the run goes on
            _record(run, job, place, None, _cause(e))
            continue
        run.places_used.add(place)
        _record(run, job, place, got, None)
        feed(place)


def _cause(e: Exception) -> str:
    """A failed actor call in one line: its EdgetkError as is, else the exception's last line."""
    cause = getattr(e, "cause", None) or e
    if isinstance(cause, EdgetkError):
        return str(cause).replace("\n", " ")
    return f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[-1][:300]}"


def _release(ray: Any, actors: dict[str, Any]) -> None:
    """Every actor stops its job, lets its place go (bounded), then ends."""
    with contextlib.suppress(Exception):
        ray.get([a.stop.remote() for a in actors.values()], timeout=STOP_TIMEOUT_S + 10)
    refs = {place: a.close.remote() for place, a in actors.items()}
    for place, ref in refs.items():
        try:
            ray.get(ref, timeout=CLOSE_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - one actor's failed release must not keep the others'
            log.error("lab place %s: release by its actor failed: %s", place, _cause(e))
        ray.kill(actors[place])


@contextlib.contextmanager
def _ray(address: str, cpus: int) -> Iterator[Any]:
    """The ray module, connected: to the cluster at address (auto|ADDRESS), or to a Ray started in this
    process for `local`."""
    from toolkit import cluster

    if address == "local":
        with cluster.local_ray(cpus) as ray:
            yield ray
    else:
        with cluster.connect(address) as c:
            yield c.ray


def run_lab_jobs(bundles: list[Path], spec: str, lab: LabConfig, out: Path, address: str, *,
                 target: str | None = None, wait_s: float | None = None,
                 options: ProfileOptions = ProfileOptions()) -> dict[str, Any]:
    """Profile every bundle on every target of the places matching PLACE|TAG=VALUE, one Ray actor per place;
    results stream into OUT/results.jsonl. Returns the summary (jobs run now, skipped, places used, rows)."""
    filt = lab_filter(spec, lab)
    client = LabClient(lab.coordinator)
    try:
        targets = place_targets(client.places(), filt, lab, target)
    finally:
        client.close()
    out.mkdir(parents=True, exist_ok=True)
    done = done_jobs(out / RESULTS)
    every = plan(bundles, list(targets.values()), set())
    jobs = [j for j in every if j.key not in done]
    run = Run(out, list(jobs), [], set())
    t0 = time.monotonic()
    if jobs:
        places = {p: t for p, t in targets.items() if any(j.target == t for j in jobs)}
        with _ray(address, len(places)) as ray:
            actors = {p: ray.remote(num_cpus=1, max_restarts=0, max_concurrency=2)(PlaceWorker).options(
                          name=f"edgetk-lab-{p}-{os.getpid()}", runtime_env={"env_vars": actor_env()}).remote(
                          p, lab, wait_s, options, str(out.absolute())) for p in places}
            try:
                drive(ray, actors, targets, run)
            finally:
                _release(ray, actors)
    return {"out": str(out), "results": str(out / RESULTS), "jobs": len(jobs), "skipped": len(every) - len(jobs),
            "not_run": [asdict(j) for j in run.queue], "places": sorted(run.places_used),
            "wall_s": round(time.monotonic() - t0, 3), "rows": run.rows}


def _child() -> int:
    """`python -m toolkit.hil.lab_jobs`: one job's request on stdin, one JSON line on stdout."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})   # the actor's thread blocks it, and exec
    signal.signal(signal.SIGINT, signal.default_int_handler)      # keeps the mask and an ignored signal
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        doc = profile_job(json.loads(sys.stdin.read()))
    except EdgetkError as e:
        doc = {"error": str(e).split("\n  fix: ")[0], "fix": e.fix}
    except KeyboardInterrupt:
        doc = {"error": "interrupted", "fix": "run again with the same -o: the jobs done are skipped"}
    print(json.dumps(doc, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child())
