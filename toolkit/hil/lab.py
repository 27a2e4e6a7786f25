"""A board lab on the network: reserve a labgrid place, profile its board through RFC 2217, release it.

`hil/lab.toml` names the coordinator and the places ([lab] coordinator, wait_s; [places.NAME] target, tags,
url_options); LG_COORDINATOR overrides the coordinator. A place is a labgrid place whose serial resource is a
NetworkSerialPort (an exporter's RawSerialPort/USBSerialPort, served by the ser2net the exporter starts on
acquire, or a ser2net of the lab's own described as a NetworkSerialPort). Everything goes through the
`labgrid-client` CLI (argument lists, a bounded timeout on every call): reserve -> wait -> acquire -> read the
resource -> (profile) -> release -> cancel the reservation, the last two also on failure, Ctrl-C and SIGTERM.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from toolkit.errors import EdgetkError

log = logging.getLogger(__name__)

DEFAULT_COORDINATOR = "127.0.0.1:20408"  # labgrid's own default
DEFAULT_WAIT_S = 600.0
CALL_TIMEOUT_S = 30.0  # one labgrid-client call (not the wait for a busy place)
PORT_TIMEOUT_S = 15.0  # an exporter starts ser2net on acquire and then publishes its port
INSTALL_FIX = "pip install 'edgetk[lab]' (labgrid), or put labgrid-client on PATH"


@dataclass(frozen=True)
class LabPlace:
    """One place of hil/lab.toml: the labgrid place name, the edgetk target its board is, its tags."""

    name: str
    target: str | None = None                  # the edgetk target of the board (else the `board` tag names it)
    tags: tuple[tuple[str, str], ...] = ()      # as set on the coordinator (labgrid-client set-tags)
    url_options: str = ""                       # appended to rfc2217://host:port? (e.g. ign_set_control)


@dataclass(frozen=True)
class LabConfig:
    """The lab: coordinator address, how long to wait for a busy place, the known places."""

    coordinator: str = DEFAULT_COORDINATOR
    wait_s: float = DEFAULT_WAIT_S              # a busy place: wait this long, then one clear error
    places: tuple[LabPlace, ...] = ()
    path: Path | None = None

    def place(self, name: str) -> LabPlace | None:
        """The place of that name in the file, if any."""
        return next((p for p in self.places if p.name == name), None)


def parse_lab(text: str, path: Path | None = None, env: dict[str, str] | None = None) -> LabConfig:
    """The lab config from the text of a lab.toml (pure; LG_COORDINATOR in `env` overrides [lab] coordinator)."""
    where = str(path or "lab.toml")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise EdgetkError(f"{where}: not valid TOML ({e})", fix="fix the syntax (see hil/lab.toml)") from e
    lab = doc.get("lab", {})
    places = []
    for name, p in doc.get("places", {}).items():
        tags = p.get("tags", {})
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise EdgetkError(f"{where}: [places.{name}] tags must be a table of strings",
                              fix='e.g. tags = { board = "nucleo-l4r5zi" }')
        places.append(LabPlace(name, p.get("target"), tuple(sorted(tags.items())), str(p.get("url_options", ""))))
    wait = lab.get("wait_s", DEFAULT_WAIT_S)
    if not isinstance(wait, (int, float)) or wait < 0:
        raise EdgetkError(f"{where}: [lab] wait_s = {wait!r}", fix="seconds to wait for a busy place, e.g. 600")
    coord = (env if env is not None else os.environ).get("LG_COORDINATOR") or lab.get("coordinator")
    return LabConfig(str(coord or DEFAULT_COORDINATOR), float(wait), tuple(places), path)


def load_lab(path: str | Path | None) -> LabConfig:
    """The lab config of a file (absent file: the defaults, LG_COORDINATOR still applies)."""
    if path is None or not Path(path).is_file():
        return parse_lab("", Path(path) if path else None)
    return parse_lab(Path(path).read_text(), Path(path))


def lab_filter(spec: str, lab: LabConfig) -> dict[str, str]:
    """The reservation filter of --lab PLACE|TAG[=VALUE] (pure): KEY=VALUE is a tag, a place of the file or
    any other word is a place name (labgrid's `name` filter)."""
    if "=" in spec:
        key, _, value = spec.partition("=")
        if not re.fullmatch(r"[a-z][a-z0-9_]+", key) or not value:
            raise EdgetkError(f"--lab {spec}: a tag filter is KEY=VALUE with a lowercase key",
                              fix="e.g. --lab board=nucleo-l4r5zi, or --lab PLACE")
        return {key: value}
    if not spec:
        raise EdgetkError("--lab needs a place or a tag", fix="e.g. --lab board=nucleo-l4r5zi")
    return {"name": spec}


def lab_target(spec: str, lab: LabConfig, target: str | None) -> str:
    """The edgetk target of a --lab job (pure): --target, else the place's target in the file, else the value
    of a `board` tag (in the filter, or of the named place)."""
    if target:
        return target
    filt = lab_filter(spec, lab)
    place = lab.place(filt.get("name", ""))
    found = (place.target or dict(place.tags).get("board")) if place else filt.get("board")
    if not found:
        raise EdgetkError(f"--lab {spec}: which target is the board there?",
                          fix="pass --target T, or give the place `target = \"T\"` in the lab file, or ask "
                              "for a board tag (--lab board=T)")
    return found


def url_options(lab: LabConfig, place: str) -> str:
    """The RFC 2217 URL options of a place (from the file; none for a place it does not list)."""
    p = lab.place(place)
    return p.url_options if p else ""


def parse_token(text: str) -> str:
    """The token of `labgrid-client reserve --shell` output (pure)."""
    m = re.search(r"LG_TOKEN=(\S+)", text)
    if not m:
        raise EdgetkError(f"labgrid-client reserve gave no token: {text.strip()[-300:]!r}",
                          fix="check the coordinator's log")
    return m.group(1)


def parse_state(text: str) -> str | None:
    """The last `state:` of `labgrid-client wait` output (pure)."""
    states = re.findall(r"^\s*state:\s*(\S+)", text, re.M)
    return states[-1] if states else None


def parse_allocation(text: str) -> str | None:
    """The place a reservation was allocated, from `labgrid-client wait` output (pure; its last block)."""
    hits = re.findall(r"^\s*allocations:\s*\n\s+main:\s*(\S+)", text, re.M)
    return hits[-1] if hits else None


def parse_places(text: str) -> dict[str, dict[str, Any]]:
    """`labgrid-client -v places` output -> {place: {tags, acquired, reservation}} (pure)."""
    out: dict[str, dict[str, Any]] = {}
    cur: dict[str, Any] | None = None
    for line in text.splitlines():
        if m := re.match(r"^Place '([^']+)':", line):
            cur = out.setdefault(m.group(1), {"tags": {}, "acquired": None, "reservation": None})
        elif cur is not None and (m := re.match(r"^\s+(tags|acquired|reservation):\s*(.*)$", line)):
            key, value = m.group(1), m.group(2).strip()
            if key == "tags":
                cur["tags"] = dict(t.split("=", 1) for t in value.split(", ") if "=" in t)
            else:
                cur[key] = None if value in ("", "None") else value
    return out


def matching(places: dict[str, dict[str, Any]], filt: dict[str, str]) -> list[str]:
    """The places a reservation filter matches (pure: labgrid's scheduler matches every key, `name` too)."""
    return sorted(n for n, p in places.items() if all({**p["tags"], "name": n}.get(k) == v for k, v in filt.items()))


def parse_serial(env_yaml: str) -> dict[str, Any] | None:
    """The NetworkSerialPort of `labgrid-client env` output: {host, port, speed, protocol} (port None until the
    exporter's ser2net is up); None when the place has no network serial port (pure)."""
    import yaml

    doc = yaml.safe_load(env_yaml) or {}
    for target in (doc.get("targets") or {}).values():
        for res in (target or {}).get("resources") or []:
            if "NetworkSerialPort" in res:
                r = res["NetworkSerialPort"] or {}
                return {"host": r.get("host"), "port": r.get("port"), "speed": r.get("speed", 115200),
                        "protocol": r.get("protocol", "rfc2217")}
    return None


def serial_url(serial: dict[str, Any], options: str = "") -> str:
    """The pyserial URL of a place's serial resource (pure; rfc2217 only: a raw TCP port has no baud or lines)."""
    if serial["protocol"] != "rfc2217":
        raise EdgetkError(f"the place's serial port speaks {serial['protocol']}, not RFC 2217",
                          fix="export the board with an RFC 2217 accepter (labgrid's exporter does by default)")
    return f"rfc2217://{serial['host']}:{serial['port']}" + (f"?{options.lstrip('?')}" if options else "")


def labgrid_client() -> str:
    """Path of labgrid-client: beside this Python (a venv that is not activated), else on PATH."""
    here = Path(sys.executable).parent / "labgrid-client"
    path = str(here) if here.is_file() else shutil.which("labgrid-client")
    if path is None:
        raise EdgetkError("labgrid-client not found (needed to reserve a lab place)", fix=INSTALL_FIX)
    return path


class LabClient:
    """labgrid-client calls against one coordinator: argument lists, a timeout on each."""

    def __init__(self, coordinator: str) -> None:
        self.coordinator = coordinator
        self.exe = labgrid_client()

    def run(self, *args: str, timeout: float = CALL_TIMEOUT_S, place: str | None = None,
            check: bool = True, timeout_error: bool = True) -> subprocess.CompletedProcess:
        """One call; a failure is one EdgetkError naming the coordinator (a timeout too, unless
        timeout_error=False: then subprocess.TimeoutExpired)."""
        cmd = [self.exe, "-x", self.coordinator, *(["-p", place] if place else []), *args]
        env = {k: v for k, v in os.environ.items() if k not in ("LG_PLACE", "LG_TOKEN", "LG_ENV", "LG_STATE")}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            if not timeout_error:
                raise
            raise EdgetkError(f"labgrid-client {args[0]} got no answer from the coordinator at {self.coordinator} "
                              f"within {timeout:.0f} s", fix="check that labgrid-coordinator runs there") from e
        if check and proc.returncode != 0:
            raise client_error(args[0], self.coordinator, proc.stdout + proc.stderr)
        return proc

    def places(self) -> dict[str, dict[str, Any]]:
        """Every place on the coordinator with its tags, holder and reservation."""
        return parse_places(self.run("-v", "places").stdout)


def client_error(command: str, coordinator: str, output: str) -> EdgetkError:
    """One EdgetkError for a failed labgrid-client call (pure)."""
    text = output.strip().splitlines()
    last = text[-1] if text else "no output"
    if "connect" in output.lower() and ("coordinator" in output.lower() or "unavailable" in output.lower()):
        return EdgetkError(f"no labgrid coordinator answers at {coordinator} ({last})",
                           fix="start it (labgrid-coordinator --listen HOST:PORT) and set LG_COORDINATOR or "
                               "[lab] coordinator in hil/lab.toml")
    return EdgetkError(f"labgrid-client {command} failed at {coordinator}: {last}",
                       fix="see `labgrid-client -x COORDINATOR -v places` for the lab's state")


@dataclass
class Lease:
    """A place held for one job: where its board answers, when it was acquired and released (wall clock)."""

    place: str
    url: str
    token: str
    coordinator: str
    waited_s: float
    acquired_at: float
    released_at: float | None = None
    serial: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """What the report says about the place."""
        return {"place": self.place, "url": self.url, "token": self.token, "coordinator": self.coordinator,
                "waited_s": round(self.waited_s, 3), "acquired_at": self.acquired_at, "released_at": self.released_at,
                "via": "labgrid reservation, RFC 2217"}


class _Terminated(KeyboardInterrupt):
    """SIGTERM during a lease (a CI job cancelled): unwinds like Ctrl-C so the place is released."""


@contextlib.contextmanager
def _terminate_as_exception() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated(f"signal {signum}")

    before = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


@contextlib.contextmanager
def _uninterruptible() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the place is released (the labgrid-client children inherit it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def _wait(client: LabClient, token: str, filt: dict[str, str], wait_s: float) -> str:
    """Wait for the reservation to be allocated: its place; after wait_s one EdgetkError naming who holds the
    matching places."""
    try:
        proc = client.run("wait", token, timeout=max(wait_s, 0.5), timeout_error=False)
    except subprocess.TimeoutExpired:
        raise busy_error(filt, client.places(), wait_s, client.coordinator) from None
    state = parse_state(proc.stdout)
    if state not in ("allocated", "acquired"):
        raise EdgetkError(f"the reservation for {_fmt(filt)} ended {state or 'without a state'}",
                          fix="retry; see `labgrid-client reservations`")
    return parse_allocation(proc.stdout) or _reserved_place(client, token)


def busy_error(filt: dict[str, str], places: dict[str, dict[str, Any]], wait_s: float, coordinator: str) -> EdgetkError:
    """The error after waiting for a busy place (pure): who holds each matching place."""
    names = matching(places, filt)
    held = [f"{n} by {places[n]['acquired']}" if places[n]["acquired"] else f"{n} reserved ({places[n]['reservation']})"
            for n in names]
    return EdgetkError(f"no lab place matching {_fmt(filt)} came free within {wait_s:g} s (held: {', '.join(held) or 'none'})",
                       fix="wait and retry, raise --lab-wait / [lab] wait_s, or ask the holder to release it "
                           f"(labgrid-client -x {coordinator} -p PLACE release)")


def _fmt(filt: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in filt.items())


def _serial(client: LabClient, token: str, place: str) -> dict[str, Any]:
    """The place's serial resource once its port is published (an exporter starts ser2net on acquire)."""
    deadline = time.monotonic() + PORT_TIMEOUT_S
    while True:
        serial = parse_serial(client.run("env", place=f"+{token}").stdout)
        if serial is None:
            raise EdgetkError(f"lab place {place} has no NetworkSerialPort",
                              fix="export the board's serial port (RawSerialPort/USBSerialPort or NetworkSerialPort) "
                                  "and add-match it to the place")
        if serial["port"]:
            return serial
        if time.monotonic() > deadline:
            raise EdgetkError(f"lab place {place}: the exporter published no serial port within {PORT_TIMEOUT_S:g} s",
                              fix="check the exporter's log (ser2net installed there? the device present?)")
        time.sleep(0.2)


def _reserved_place(client: LabClient, token: str) -> str:
    hits = [n for n, p in client.places().items() if p["reservation"] == token]
    if not hits:
        raise EdgetkError(f"reservation {token} has no place", fix="retry; see `labgrid-client reservations`")
    return hits[0]


@contextlib.contextmanager
def lease(spec: str, lab: LabConfig, wait_s: float | None = None) -> Iterator[Lease]:
    """Hold a free lab place matching PLACE|TAG=VALUE for the body: reserve, wait (bounded), acquire, read its
    serial port; release and cancel the reservation afterwards, also on errors, Ctrl-C and SIGTERM."""
    filt = lab_filter(spec, lab)
    wait_s = lab.wait_s if wait_s is None else wait_s
    client = LabClient(lab.coordinator)
    places = client.places()
    if not matching(places, filt):
        raise EdgetkError(f"no place on the labgrid coordinator at {lab.coordinator} matches {_fmt(filt)} "
                          f"(places: {', '.join(sorted(places)) or 'none'})",
                          fix="labgrid-client -p PLACE create / add-match / set-tags KEY=VALUE")
    t0 = time.monotonic()
    with _terminate_as_exception():
        token = parse_token(client.run("reserve", "--shell", *[f"{k}={v}" for k, v in filt.items()]).stdout)
        held: Lease | None = None
        try:
            place = _wait(client, token, filt, wait_s)
            client.run("acquire", place=f"+{token}")
            held = Lease(place, "", token, lab.coordinator, time.monotonic() - t0, time.time())
            log.info("lab place %s acquired after %.1f s", place, held.waited_s)
            held.serial = _serial(client, token, place)
            held.url = serial_url(held.serial, url_options(lab, place))
            yield held
        finally:
            with _uninterruptible():
                _give_back(client, token, held)


def _give_back(client: LabClient, token: str, held: Lease | None) -> None:
    """Release the place (if acquired) and cancel the reservation, both at once; a failure here is logged, not
    raised over the job's own outcome."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        cancel = pool.submit(_quietly, client, "cancel-reservation", token)
        if held is not None:
            _quietly(client, "release", place=held.place)
            held.released_at = time.time()
            log.info("lab place %s let go", held.place)
        cancel.result()


def _quietly(client: LabClient, *args: str, place: str | None = None) -> None:
    """One clean-up call: its failure is logged (the job's own outcome is what the user must see)."""
    try:
        proc = client.run(*args, place=place, check=False)
        problem = (proc.stdout + proc.stderr).strip()[-300:] if proc.returncode else ""
    except EdgetkError as e:
        problem = str(e)
    if problem:
        log.error("labgrid-client %s %s failed: %s", args[0], place or "", problem)
