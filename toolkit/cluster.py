"""`edgetk train RECIPE... --cluster auto|ADDRESS`: training jobs as Ray tasks on a running Ray cluster.

What runs where (the driver is the `edgetk train` process; Ray is imported only here, and only when asked for):
- A batched `[fleet]` (mode "scratch"): each stack is one Ray task of 1 CPU and 1 torch thread, as a local fleet
  worker (`fleet.train_stack`). The driver loads the data and passes each stack its members' arrays as task
  arguments (through Ray's object store: the nodes need no dataset); the task sends its members' weights back
  as bytes and the driver writes the member runs and fleet.json exactly as the local job does (`fleet.json`
  adds `cluster`: where each stack ran and the epoch it started from).
- Every other recipe is one task of `train.threads` CPUs that runs the local job on a node, in the driver's
  working directory (relative paths in recipes resolve as they do locally) with the driver's EDGETK_* variables.
- Several recipes given at once are submitted together, so their tasks share the cluster's CPUs.
- Checkpoints: a task writes its stack's (or its run's) checkpoint under the output folder after every epoch.
  A task whose worker process or node dies is retried by Ray (`MAX_RETRIES`) and continues from that
  checkpoint, so the job's result is unchanged. The output folder (and a plain recipe's data) must therefore
  be on a filesystem every node mounts at the same path; the tasks check it.
- Every node needs the same edgetk and torch versions as the driver (checked by every task): members are
  bit-identical to the local job only on the same torch build and CPU kind.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from toolkit.errors import EdgetkError
from toolkit.proc import free_port

if TYPE_CHECKING:
    from torch import nn

    from toolkit.recipe import Recipe, TrainConfig
    from toolkit.specialize.fleet import Member

log = logging.getLogger(__name__)
INSTALL_FIX = "pip install 'edgetk[cluster]' (on the driver and on every node of the cluster)"
CONNECT_TIMEOUT_S = 5.0    # TCP probe of the head before ray.init (which retries an unreachable address forever)
MAX_RETRIES = 3            # Ray re-runs a task whose worker process or node died; it resumes from its checkpoint
ENV_PASSED = ("EDGETK_SHARED", "EDGETK_CACHE", "EDGETK_TARGETS", "EDGETK_HISTORY")
Job = Callable[..., Path]  # toolkit.commands.train._run: (recipe, out, json_progress, resume=..., stacks=...) -> out


def import_ray() -> Any:
    """The ray module, or one EdgetkError saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise EdgetkError(f"--cluster needs Ray, which is not installed ({e})", fix=INSTALL_FIX) from None
    return ray


def resolve_address(address: str) -> str:
    """host:port of the cluster's head: ADDRESS as given, or for "auto" $RAY_ADDRESS / the cluster `ray start`
    started on this machine (one EdgetkError when there is none). $RAY_ADDRESS overrides ADDRESS, as in Ray."""
    ray = import_ray()
    try:
        from ray._private.services import canonicalize_bootstrap_address_or_die
    except ImportError:                                          # a Ray without it: ray.init resolves it
        return os.environ.get("RAY_ADDRESS") or address
    try:
        return canonicalize_bootstrap_address_or_die(address.removeprefix("ray://"))
    except (ConnectionError, ValueError) as e:
        raise EdgetkError(f"no Ray cluster found for --cluster {address} ({e})".replace("\n", " "),
                          fix="start one (`ray start --head`), or give its head's address: --cluster HOST:6379 "
                          f"(Ray {ray.__version__})") from None


def probe(address: str, given: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """One EdgetkError naming `given` when nothing accepts TCP connections at host:port within `timeout` seconds."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        also = f"{address}: " if address != given else ""
        raise EdgetkError(f"cannot reach the Ray cluster at {given} ({also}{type(e).__name__}: {e})",
                          fix="check the head's address and port (`ray status` on the head prints it) and that "
                          "this machine can reach it; start a head with `ray start --head --port 6379`") from None


@dataclasses.dataclass(frozen=True)
class NodeCheck:
    """What every task checks on its node before it trains: the driver's versions and working directory."""

    edgetk: str
    torch: str
    cwd: str
    env: tuple[tuple[str, str], ...]

    @classmethod
    def here(cls) -> NodeCheck:
        import torch

        import toolkit

        return cls(toolkit.__version__, torch.__version__, os.getcwd(),
                   tuple((k, os.environ[k]) for k in ENV_PASSED if k in os.environ))

    def verify(self) -> None:
        """One EdgetkError naming this node when it runs other versions than the driver."""
        import torch

        import toolkit

        if (toolkit.__version__, torch.__version__) != (self.edgetk, self.torch):
            raise EdgetkError(f"node {socket.gethostname()} runs edgetk {toolkit.__version__} with torch "
                              f"{torch.__version__}, the driver edgetk {self.edgetk} with torch {self.torch}",
                              fix=f"install the driver's versions on every node: pip install 'edgetk[cluster]=="
                              f"{self.edgetk}' 'torch=={self.torch}'")


def _writable(folder: Path) -> None:
    """One EdgetkError when this node cannot write the job's folder (checkpoints live there)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe_file = folder / f".edgetk-probe-{socket.gethostname()}-{os.getpid()}"
        probe_file.write_bytes(b"")
        probe_file.unlink()
    except OSError as e:
        raise EdgetkError(f"node {socket.gethostname()} cannot write {folder} ({e})",
                          fix="put the output folder (-o) on a filesystem every node mounts at the same path") from None


def _where() -> dict:
    import ray

    return {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}


def _stack_task(check: NodeCheck, make_model: Callable[[int], nn.Module], members: list[Member], cfg: TrainConfig,
                ckpt: str | None, exact: bool) -> tuple[bytes, dict]:
    """Ray task: train one fleet stack from its checkpoint (if any); its members' weights and where it ran."""
    from toolkit.specialize.fleet import train_stack
    from toolkit.train.checkpoint import LOOP_KEYS, load_checkpoint

    check.verify()
    members = [dataclasses.replace(m, x_train=m.x_train.copy(), y_train=m.y_train.copy())   # Ray's arguments are
               for m in members]                                                           # read-only buffers
    path = Path(ckpt) if ckpt else None
    if path is not None:
        _writable(path.parent)
    start = int(load_checkpoint(path, LOOP_KEYS)["epoch"]) if path is not None and path.is_file() else 0
    t0 = time.perf_counter()
    states = train_stack(make_model, members, cfg, path, exact)
    return states, {**_where(), "start_epoch": start, "seconds": round(time.perf_counter() - t0, 3)}


def _recipe_task(check: NodeCheck, job: Job, recipe: Recipe, out: str) -> dict:
    """Ray task: run a whole recipe's local job into out (continuing from its checkpoints after a retry)."""
    import torch

    check.verify()
    folder = Path(out)
    _writable(folder)
    resume = any((folder / "checkpoints").glob("*.pt"))        # the driver refused a folder holding a run before
    saved = os.getcwd()
    os.chdir(check.cwd if Path(check.cwd).is_dir() else saved)
    try:
        torch.set_num_threads(max(1, recipe.train.threads))
        t0 = time.perf_counter()
        job(recipe, folder, False, resume=resume)
    finally:
        os.chdir(saved)
    return {**_where(), "resumed": resume, "seconds": round(time.perf_counter() - t0, 3)}


def _train_only(m: Member) -> Member:
    """The member as a stack task needs it: its training arrays (the driver evaluates on the test split)."""
    return dataclasses.replace(m, x_test=m.x_test[:0], y_test=m.y_test[:0], extra={})


class RayStacks:
    """A fleet's stack runner (fleet.StackRunner): one Ray task per stack; the driver loads the weights."""

    def __init__(self, cluster: Cluster, out: Path) -> None:
        self.cluster, self.out, self.tasks = cluster, out, []

    def __call__(self, make_model: Callable[[int], nn.Module], stacks: list[list[Member]], cfg: TrainConfig,
                 ckpts: list[Path | None], exact: bool) -> None:
        from toolkit.specialize.fleet import load_stack

        remote = self.cluster.remote(_stack_task)
        refs = [remote.options(name=f"edgetk-{self.out.name}-stack-{i}", num_cpus=1).remote(
                    self.cluster.check, make_model, [_train_only(m) for m in group], cfg,
                    str(ckpt.absolute()) if ckpt else None, exact)
                for i, (group, ckpt) in enumerate(zip(stacks, ckpts))]
        log.info("cluster: %d stacks of %s as Ray tasks", len(refs), self.out)
        results = self.cluster.gather(refs, [f"stack {i} ({', '.join(m.name for m in g)})"
                                             for i, g in enumerate(stacks)], self.out)
        for i, (group, (states, where)) in enumerate(zip(stacks, results)):
            load_stack(make_model, group, states)
            self.tasks.append({"stack": i, "members": [m.name for m in group], **where})

    def summary(self) -> dict:
        return {"address": self.cluster.address, "nodes": self.cluster.nodes, "tasks": self.tasks}


@dataclasses.dataclass
class Cluster:
    """A connected Ray cluster (the driver's side): submits tasks and gathers their results."""

    ray: Any
    address: str
    nodes: int
    cpus: float
    node_cpus: float          # the most CPUs one node has: a task asking for more would never be scheduled
    check: NodeCheck
    _remotes: dict = dataclasses.field(default_factory=dict)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def remote(self, fn: Callable) -> Any:
        """fn as a Ray remote function (made once), retried when its worker dies, never on an exception."""
        with self._lock:
            if fn not in self._remotes:
                self._remotes[fn] = self.ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(fn)
            return self._remotes[fn]

    def gather(self, refs: list, names: list[str], job: Path) -> list:
        """The tasks' results in order; the first failure cancels the others and is one EdgetkError."""
        ray, pending, index = self.ray, list(refs), {ref: i for i, ref in enumerate(refs)}
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done[0])
            except Exception as e:
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise _task_error(e, names[index[done[0]]], job) from None
        return ray.get(refs)

    def run(self, job: Job, recipe: Recipe, out: Path, json_progress: bool, resume: bool) -> Path:
        """Run one recipe on the cluster: a batched scratch fleet as a task per stack, anything else as one task."""
        fleet = recipe.extra.get("fleet")
        if fleet is not None and fleet.mode == "scratch" and fleet.batched:
            return job(recipe, out, json_progress, resume=resume, stacks=RayStacks(self, out))
        from toolkit.train.trainer import begin_run

        begin_run(recipe, out, resume, checkpoints="*.pt")      # refuse a folder holding a run, as locally
        cpus = max(1, min(recipe.train.threads, int(self.node_cpus)))   # torch still runs train.threads threads
        ref = self.remote(_recipe_task).options(name=f"edgetk-{out.name}", num_cpus=cpus).remote(
            self.check, job, recipe, str(out.absolute()))
        (where,) = self.gather([ref], [f"recipe {recipe.path or recipe.task}"], out)
        log.info("cluster: %s trained on node %s (%s, pid %d) in %.1f s%s", out, where["node"], where["host"],
                 where["pid"], where["seconds"], ", resumed" if where["resumed"] else "")
        if json_progress:
            _print_done(out)
        return out


def _task_error(e: Exception, what: str, job: Path) -> EdgetkError:
    """A failed task as one EdgetkError: its own EdgetkError as is, else what Ray says, with the resume fix."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, EdgetkError):
        return cause
    kind = type(cause or e).__name__
    last = (str(cause or e).strip().splitlines() or [""])[-1][:300]
    return EdgetkError(f"{job}: {what} failed on the Ray cluster ({kind}: {last}; a task whose worker process "
                       f"died was tried {MAX_RETRIES + 1} times)",
                       fix=f"run again with `edgetk train --resume {job} --cluster ...` (finished epochs are "
                       "checkpointed); `ray status` shows the cluster's nodes")


def _print_done(out: Path) -> None:
    """train --json's final line for a run trained by a task (its epoch lines went to the task's stderr)."""
    import json

    m = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").is_file() else {}
    print(json.dumps({"event": "done", "run_dir": str(out), "remote": True,
                      **{k: m[k] for k in ("metric", "value", "params", "macs") if k in m}}), flush=True)


@contextlib.contextmanager
def connect(address: str) -> Iterator[Cluster]:
    """Connect this process to the Ray cluster at address ("auto": the one on this machine); disconnect after."""
    ray = import_ray()
    resolved = resolve_address(address)
    probe(resolved, address)
    check = NodeCheck.here()
    try:
        ray.init(address=address if address.startswith("ray://") else resolved, namespace="edgetk",
                 runtime_env={"env_vars": dict(check.env)} if check.env else None, log_to_driver=True,
                 logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        if "AuthToken" in f"{e} {e.__cause__}" or "Authentication" in f"{e} {e.__cause__}":
            raise EdgetkError(f"the Ray cluster at {resolved} refused this process's authentication token "
                              f"(it runs with token authentication, RAY_AUTH_MODE here is "
                              f"{os.environ.get('RAY_AUTH_MODE', 'unset')})",
                              fix="export RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, or "
                              "RAY_AUTH_TOKEN_PATH; `ray get-auth-token` on the head prints it)") from None
        raise EdgetkError(f"cannot connect to the Ray cluster at {resolved} ({type(e).__name__}: {e})",
                          fix=f"check that a Ray {ray.__version__} head runs there (`ray status`); "
                          f"{INSTALL_FIX}") from None
    try:
        cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
        cluster = Cluster(ray, resolved, len(cpus), sum(cpus), max(cpus, default=0), check)
        log.info("cluster %s: %d node(s), %g CPUs", resolved, cluster.nodes, cluster.cpus)
        yield cluster
    finally:
        ray.shutdown()


@contextlib.contextmanager
def local_ray(cpus: int, object_store_bytes: int = 80_000_000) -> Iterator[Any]:
    """A Ray of `cpus` CPUs started in this process for one machine (`--cluster local`; a small object store, no
    dashboard); yields the ray module, shut down afterwards."""
    ray = import_ray()
    try:
        ray.init(address="local", num_cpus=max(1, cpus), object_store_memory=object_store_bytes,
                 include_dashboard=False, namespace="edgetk", log_to_driver=True, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise EdgetkError(f"cannot start a local Ray ({type(e).__name__}: {e})",
                          fix=f"see Ray's log under /tmp/ray; or start one (`ray start --head`) and pass "
                          f"--cluster auto; {INSTALL_FIX}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def train_all(job: Job, runs: list[tuple[Recipe, Path]], address: str, json_progress: bool,
              resume: bool = False) -> list[Path]:
    """Run every (recipe, out) on the cluster at once (one driver thread each); the first error after all end."""
    with connect(address) as cluster:
        pool = ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix="edgetk-cluster")
        try:
            futures = [pool.submit(cluster.run, job, recipe, out, json_progress, resume) for recipe, out in runs]
            errors = [f.exception() for f in futures]
        finally:                                  # Ctrl-C: disconnect now (Ray ends the tasks), do not wait for them
            pool.shutdown(wait=False, cancel_futures=True)
    for e in errors:
        if e is not None:
            raise e
    return [f.result() for f in futures]


# ---------------------------------------------------------------------------------------------------------
# A throwaway cluster on this machine, for the tests and bench/fleet_ray.py (Linux: processes found in /proc).

def _ray_cli() -> str:
    import shutil
    import sys

    here = Path(sys.executable).parent / "ray"
    found = str(here) if here.is_file() else shutil.which("ray")
    if not found:
        raise EdgetkError("the `ray` command is not installed beside this Python", fix=INSTALL_FIX)
    return found


def _session_pids(sessions: set[int]) -> list[int]:
    """Live (not zombie) processes of these sessions: the `ray start` processes and everything they started."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            fields = (d / "stat").read_text().rpartition(")")[2].split()
        except (OSError, ValueError):
            continue
        if d.name.isdigit() and fields[0] != "Z" and int(fields[3]) in sessions:
            pids.append(int(d.name))
    return pids


def _kill_sessions(procs: list) -> None:
    """SIGKILL every process of the nodes' sessions until none is left; one EdgetkError if some survive."""
    import signal

    sessions = {p.pid for p in procs}
    for _ in range(100):
        pids = _session_pids(sessions)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not pids:
            break
        time.sleep(0.1)
    for p in procs:
        p.wait(timeout=10)
    if _session_pids(sessions):
        raise EdgetkError(f"Ray processes of the local cluster survived SIGKILL: {_session_pids(sessions)}",
                          fix="kill them by pid (`ps -o pid,sid,args`)")


def _starting(procs: list, log: Path, deadline: float, what: str) -> None:
    """One EdgetkError with the nodes' log when a `ray start` process exited or time ran out."""
    if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
        raise EdgetkError(f"{what}: {log.read_text(errors='replace')[-1500:]}", fix=f"see {log}")


def _wait_nodes(port: int, nodes: int, procs: list, log: Path, deadline: float) -> None:
    """Wait until `nodes` nodes are alive (ray.nodes()); the head accepts connections already."""
    ray = import_ray()
    ray.init(address=f"127.0.0.1:{port}", log_to_driver=False, logging_level=logging.WARNING)
    try:
        while len([n for n in ray.nodes() if n["Alive"]]) < nodes:
            _starting(procs, log, deadline, f"{nodes} Ray nodes did not come up")
            time.sleep(0.2)
    finally:
        ray.shutdown()


@contextlib.contextmanager
def local_cluster(nodes: int, folder: Path, cpus: int = 1, object_store_bytes: int = 80_000_000,
                  timeout: float = 120.0) -> Iterator[str]:
    """A Ray cluster on 127.0.0.1: `nodes` separate `ray start --block` processes (the first the head, its files
    under folder: keep the path short, Ray's socket paths must stay under 108 bytes) of `cpus` CPUs and a small
    object store each (Ray's default is 30 % of RAM); yields its address; afterwards every process is killed."""
    import subprocess

    ray_cli, port = _ray_cli(), free_port()
    # No token authentication on this throwaway cluster, said explicitly: with RAY_AUTH_MODE unset a head turns it
    # on whenever ~/.ray/auth_token exists (any earlier local `ray.init()` writes one), and then a driver that
    # connects by address is refused. Drivers started while the cluster runs inherit the same setting.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_USAGE_STATS_ENABLED": "0",
                                                                          "RAY_AUTH_MODE": "disabled"}
    saved_mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    common = ["--num-cpus", str(cpus), "--object-store-memory", str(object_store_bytes), "--node-ip-address",
              "127.0.0.1", "--disable-usage-stats", "--block"]
    head = ["--head", "--port", str(port), "--temp-dir", str(folder), "--include-dashboard=false",
            "--ray-client-server-port", str(free_port())]          # not 10001: another cluster may hold it
    procs, deadline, log = [], time.monotonic() + timeout, folder / "nodes.log"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with open(log, "ab") as out:
            for i in range(nodes):
                where = head if i == 0 else ["--address", f"127.0.0.1:{port}"]
                procs.append(subprocess.Popen([ray_cli, "start", *where, *common], stdout=out,
                                              stderr=subprocess.STDOUT, env=env, start_new_session=True))
                while i == 0 and not _listening(port):           # the others join once the head listens
                    _starting(procs, log, deadline, "the Ray head did not start")
                    time.sleep(0.05)
        _wait_nodes(port, nodes, procs, log, deadline)
        yield f"127.0.0.1:{port}"
    finally:
        _kill_sessions(procs)
        if saved_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved_mode


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False

