"""A board lab on the network: reserve a labgrid place, profile its board through RFC 2217, release it.

`hil/lab.toml` names the coordinator and the places ([lab] coordinator, wait_s; [places.NAME] target, tags,
url_options); LG_COORDINATOR overrides the coordinator. A place is a labgrid place whose serial resource is a
NetworkSerialPort (an exporter's RawSerialPort/USBSerialPort, served by the ser2net the exporter starts on
acquire, or a ser2net of the lab's own described as a NetworkSerialPort). The coordinator is reached through
labgrid's client API (one gRPC session on a thread of its own, a timeout on every call; the labgrid-client CLI
costs a second per call): reserve -> poll until allocated (bounded by wait_s) -> acquire -> read the resource ->
(profile) -> release -> cancel the reservation, the last two also on failure, Ctrl-C and SIGTERM.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
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
CALL_TIMEOUT_S = 30.0  # one call to the coordinator (not the wait for a busy place)
AGENT_OPS = ("places", "reservations", "reserve", "poll", "acquire", "serial", "release", "cancel")
START_TIMEOUT_S = 60.0  # the client process: Python and labgrid's imports, then the connection
POLL_S = 0.5  # how often a waiting reservation is polled (which also keeps it alive)
PORT_TIMEOUT_S = 15.0  # an exporter starts ser2net on acquire and then publishes its port
INSTALL_FIX = "pip install 'edgetk[lab]' (labgrid)"


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
    filt = lab_filter(spec, lab)
    if target:
        return target
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


def matching(places: dict[str, dict[str, Any]], filt: dict[str, str]) -> list[str]:
    """The places a reservation filter matches (pure: labgrid's scheduler matches every key, `name` too)."""
    return sorted(n for n, p in places.items() if all({**p["tags"], "name": n}.get(k) == v for k, v in filt.items()))


def serial_params(resources: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """The NetworkSerialPort among a place's acquired resources ([(cls, params)]): {host, port, speed, protocol}
    (port None until the exporter's ser2net is up); None when there is none (pure)."""
    for cls, params in resources:
        if cls == "NetworkSerialPort":
            return {"host": params.get("host"), "port": params.get("port"), "speed": params.get("speed", 115200),
                    "protocol": params.get("protocol", "rfc2217")}
    return None


def serial_url(serial: dict[str, Any], options: str = "") -> str:
    """The pyserial URL of a place's serial resource (pure; rfc2217 only: a raw TCP port has no baud or lines)."""
    if serial["protocol"] != "rfc2217":
        raise EdgetkError(f"the place's serial port speaks {serial['protocol']}, not RFC 2217",
                          fix="export the board with an RFC 2217 accepter (labgrid's exporter does by default)")
    return f"rfc2217://{serial['host']}:{serial['port']}" + (f"?{options.lstrip('?')}" if options else "")


class LabClient:
    """The coordinator, asked through a labgrid client process of its own (`python -m toolkit.hil.lab ADDRESS`,
    JSON lines on its stdin/stdout, a timeout on every answer). Not in this process: a gRPC session here made
    1 in 10 of the children that the profile forks meanwhile (TFLite-Micro, with a preexec_fn) die of SIGSEGV in
    gRPC's fork handlers, 3 in 30 when grpc was imported first (labgrid's pytest plugin does), which
    GRPC_ENABLE_FORK_SUPPORT=0 only helps when set before that import. The agent runs in a session of its own,
    so Ctrl-C reaches this process only, which then still releases the place through it."""

    def __init__(self, coordinator: str) -> None:
        import subprocess
        import sys

        self.coordinator = coordinator
        self.proc = subprocess.Popen([sys.executable, "-m", "toolkit.hil.lab", coordinator], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, start_new_session=True,
                                     env={**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "0"})
        try:
            self._reply(START_TIMEOUT_S)
        except BaseException:
            self._kill()
            raise

    def _ask(self, op: str, *args: Any, timeout: float = CALL_TIMEOUT_S) -> Any:
        try:
            self.proc.stdin.write(json.dumps({"op": op, "args": list(args)}) + "\n")
            self.proc.stdin.flush()
        except OSError as e:
            raise EdgetkError(f"the labgrid client process is gone ({e})", fix="see the messages above") from e
        return self._reply(timeout)

    def _reply(self, timeout: float) -> Any:
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not ready:
            self._kill()
            raise EdgetkError(f"the labgrid coordinator at {self.coordinator} did not answer within {timeout:g} s",
                              fix="check that labgrid-coordinator runs there")
        if not line:
            raise EdgetkError("the labgrid client process exited", fix="see its messages above; is labgrid installed? "
                              + INSTALL_FIX)
        doc = json.loads(line)
        if "error" in doc:
            raise EdgetkError(doc["error"], fix=doc.get("fix"))
        return doc["ok"]

    def places(self) -> dict[str, dict[str, Any]]:
        """Every place: {name: {tags, acquired, reservation}}."""
        return self._ask("places")

    def reservations(self) -> list[str]:
        """The tokens of every reservation on the coordinator."""
        return self._ask("reservations")

    def reserve(self, filt: dict[str, str]) -> str:
        """A reservation for the filter: its token."""
        return self._ask("reserve", filt)

    def poll(self, token: str) -> tuple[str, str | None]:
        """(state, allocated place or None) of a reservation; polling also keeps it from expiring."""
        state, place = self._ask("poll", token)
        return state, place

    def acquire(self, place: str) -> None:
        """Acquire the place (reserved for us)."""
        self._ask("acquire", place)

    def serial(self, place: str) -> dict[str, Any] | None:
        """The place's NetworkSerialPort parameters as the coordinator has them now."""
        return self._ask("serial", place)

    def release(self, place: str) -> None:
        """Release the place."""
        self._ask("release", place)

    def cancel(self, token: str) -> None:
        """Cancel the reservation."""
        self._ask("cancel", token)

    def close(self) -> None:
        """End the client process (it closes its session)."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - a client that will not stop is killed
            self._kill()
        self.proc.stdout.close()

    def _kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class _Session:
    """labgrid's client API (labgrid.remote.client.ClientSession) on an event loop of its own thread, in the
    client process: one connection to the coordinator, a timeout on every call."""

    def __init__(self, coordinator: str) -> None:
        try:
            from labgrid.remote.client import ClientSession
            from labgrid.remote.generated import labgrid_coordinator_pb2
            from labgrid.util.proxy import proxymanager
        except ImportError as e:
            raise EdgetkError(f"labgrid is not installed ({e}): needed to reserve a lab place", fix=INSTALL_FIX) from e
        self.coordinator, self.pb2 = coordinator, labgrid_coordinator_pb2
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="labgrid-client", daemon=True)
        self.thread.start()
        address = proxymanager.get_grpc_address(coordinator, default_port=20408)

        async def start() -> Any:
            session = ClientSession(address, self.loop)
            await session.start()
            return session

        try:
            self.session = self._call(start())
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro: Any, timeout: float = CALL_TIMEOUT_S) -> Any:
        """Run a coroutine on the client's loop; its failure is one EdgetkError naming the coordinator."""
        import concurrent.futures

        import grpc

        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as e:
            future.cancel()
            raise EdgetkError(f"the labgrid coordinator at {self.coordinator} did not answer within {timeout:g} s",
                              fix="check that labgrid-coordinator runs there") from e
        except grpc.aio.AioRpcError as e:
            raise EdgetkError(f"labgrid coordinator at {self.coordinator}: {e.details()}",
                              fix="see `labgrid-client -x COORDINATOR -v places` for the lab's state") from e
        except Exception as e:  # labgrid's ServerError/UserError
            if "connect" in str(e).lower():
                raise EdgetkError(f"no labgrid coordinator answers at {self.coordinator} ({e})",
                                  fix="start it (labgrid-coordinator --listen HOST:PORT) and set LG_COORDINATOR or "
                                      "[lab] coordinator in hil/lab.toml") from e
            raise EdgetkError(f"labgrid client: {e}", fix="see the coordinator's log") from e

    def _rpc(self, method: str, request: Any) -> Any:
        """One coordinator RPC, made on the client's loop."""
        async def call() -> Any:
            return await getattr(self.session.stub, method)(request)
        return self._call(call())

    def places(self) -> dict[str, dict[str, Any]]:
        """Every place: {name: {tags, acquired, reservation}}."""
        async def read() -> dict[str, dict[str, Any]]:
            await self.session.sync_with_coordinator()
            return {n: {"tags": dict(p.tags), "acquired": p.acquired, "reservation": p.reservation}
                    for n, p in self.session.places.items()}
        return self._call(read())

    def reservations(self) -> list[str]:
        """The tokens of every reservation on the coordinator."""
        reply = self._rpc("GetReservations", self.pb2.GetReservationsRequest())
        return [r.token for r in reply.reservations]

    def reserve(self, filt: dict[str, str]) -> str:
        """A reservation for the filter: its token."""
        req = self.pb2.CreateReservationRequest(filters={"main": self.pb2.Reservation.Filter(filter=filt)}, prio=0.0)
        return self._rpc("CreateReservation", req).reservation.token

    def poll(self, token: str) -> tuple[str, str | None]:
        """(state, allocated place or None) of a reservation; polling also keeps it from expiring."""
        from labgrid.remote.common import Reservation

        res = Reservation.from_pb2(self._rpc("PollReservation",
                                          self.pb2.PollReservationRequest(token=token)).reservation)
        return res.state.name, (res.allocations.get("main") or [None])[0]

    def acquire(self, place: str) -> None:
        """Acquire the place (reserved for us)."""
        async def go() -> None:
            await self.session.stub.AcquirePlace(self.pb2.AcquirePlaceRequest(placename=place))
            await self.session.sync_with_coordinator()
        self._call(go())

    def serial(self, place: str) -> dict[str, Any] | None:
        """The place's NetworkSerialPort parameters as the coordinator has them now."""
        async def read() -> list[tuple[str, dict[str, Any]]]:
            await self.session.sync_with_coordinator()
            found = self.session.get_target_resources(self.session.places[place])
            return [(r.cls, dict(r.params)) for r in found.values()]
        return serial_params(self._call(read()))

    def release(self, place: str) -> None:
        """Release the place."""
        self._rpc("ReleasePlace", self.pb2.ReleasePlaceRequest(placename=place))

    def cancel(self, token: str) -> None:
        """Cancel the reservation."""
        self._rpc("CancelReservation", self.pb2.CancelReservationRequest(token=token))

    def close(self) -> None:
        """Close the connection and stop the loop's thread."""
        async def stop() -> None:
            await self.session.stop()
            await self.session.close()
        try:
            self._call(stop(), timeout=5)
        except EdgetkError as e:
            log.warning("closing the labgrid client: %s", e)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


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
    deadline = time.monotonic() + wait_s
    while True:
        state, place = client.poll(token)
        if state in ("allocated", "acquired") and place:
            return place
        if state != "waiting":
            raise EdgetkError(f"the reservation for {_fmt(filt)} ended {state}",
                              fix="retry; see `labgrid-client reservations`")
        if time.monotonic() >= deadline:
            raise busy_error(filt, client.places(), wait_s, client.coordinator)
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


def busy_error(filt: dict[str, str], places: dict[str, dict[str, Any]], wait_s: float, coordinator: str) -> EdgetkError:
    """The error after waiting for a busy place (pure): who holds each matching place."""
    names = matching(places, filt)
    held = [f"{n} by {places[n]['acquired']}" if places[n]["acquired"] else f"{n} reserved ({places[n]['reservation']})"
            for n in names]
    return EdgetkError(f"no lab place matching {_fmt(filt)} came free within {wait_s:g} s "
                       f"(held: {', '.join(held) or 'none'})",
                       fix="wait and retry, raise --lab-wait / [lab] wait_s, or ask the holder to release it "
                           f"(labgrid-client -x {coordinator} -p PLACE release)")


def _fmt(filt: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in filt.items())


def _serial(client: LabClient, place: str) -> dict[str, Any]:
    """The place's serial resource once its port is published (an exporter starts ser2net on acquire)."""
    deadline = time.monotonic() + PORT_TIMEOUT_S
    while True:
        serial = client.serial(place)
        if serial is None:
            raise EdgetkError(f"lab place {place} has no NetworkSerialPort",
                              fix="export the board's serial port (RawSerialPort/USBSerialPort or NetworkSerialPort) "
                                  "and add-match it to the place")
        if serial["port"]:
            return serial
        if time.monotonic() > deadline:
            raise EdgetkError(f"lab place {place}: the exporter published no serial port within {PORT_TIMEOUT_S:g} s",
                              fix="check the exporter's log (ser2net installed there? the device present?)")
        time.sleep(0.1)


@contextlib.contextmanager
def lease(spec: str, lab: LabConfig, wait_s: float | None = None) -> Iterator[Lease]:
    """Hold a free lab place matching PLACE|TAG=VALUE for the body: reserve, wait (bounded), acquire, read its
    serial port; release and cancel the reservation afterwards, also on errors, Ctrl-C and SIGTERM."""
    filt = lab_filter(spec, lab)
    wait_s = lab.wait_s if wait_s is None else wait_s
    with _terminate_as_exception():
        client = LabClient(lab.coordinator)
        try:
            yield from _held(client, filt, lab, wait_s)
        finally:
            client.close()


def _held(client: LabClient, filt: dict[str, str], lab: LabConfig, wait_s: float) -> Iterator[Lease]:
    places = client.places()
    if not matching(places, filt):
        raise EdgetkError(f"no place on the labgrid coordinator at {lab.coordinator} matches {_fmt(filt)} "
                          f"(places: {', '.join(sorted(places)) or 'none'})",
                          fix="labgrid-client -p PLACE create / add-match / set-tags KEY=VALUE")
    t0 = time.monotonic()
    token = client.reserve(filt)
    held: Lease | None = None
    try:
        place = _wait(client, token, filt, wait_s)
        client.acquire(place)
        held = Lease(place, "", token, lab.coordinator, time.monotonic() - t0, time.time())
        log.info("lab place %s acquired after %.1f s", place, held.waited_s)
        held.serial = _serial(client, place)
        held.url = serial_url(held.serial, url_options(lab, place))
        yield held
    finally:
        with _uninterruptible():
            _give_back(client, token, held)


def _give_back(client: LabClient, token: str, held: Lease | None) -> None:
    """Release the place (if acquired), then cancel the reservation; a failure here is logged, not raised over
    the job's own outcome."""
    if held is not None:
        _quietly(client.release, held.place)
        held.released_at = time.time()
        log.info("lab place %s let go", held.place)
    _quietly(client.cancel, token)


def _quietly(call: Any, arg: str) -> None:
    """One clean-up call: its failure is logged (the job's own outcome is what the user must see)."""
    try:
        call(arg)
    except EdgetkError as e:
        log.error("labgrid %s %s failed: %s", call.__name__, arg, e)


def _agent(coordinator: str) -> None:
    """The client process: answer one JSON line per request until stdin closes."""
    import sys

    out, sys.stdout = sys.stdout, sys.stderr  # only answers go to the real stdout

    def answer(doc: dict[str, Any]) -> None:
        out.write(json.dumps(doc) + "\n")
        out.flush()

    def error(e: EdgetkError) -> dict[str, Any]:
        return {"error": str(e).split("\n  fix: ")[0], "fix": e.fix}

    try:
        session = _Session(coordinator)
    except EdgetkError as e:
        answer(error(e))
        return
    answer({"ok": None})
    held: set[str] = set()       # places acquired and reservations made that the parent has not given back yet
    tokens: set[str] = set()
    try:
        for line in sys.stdin:
            req = json.loads(line)
            try:
                if req["op"] not in AGENT_OPS:
                    raise EdgetkError(f"unknown request {req['op']!r}", fix="a bug: report it")
                result = getattr(session, req["op"])(*req["args"])
                _track(req["op"], req["args"], result, held, tokens)
                answer({"ok": result})
            except EdgetkError as e:
                answer(error(e))
    finally:
        # stdin closed with a place still held: the parent died without its clean-up (SIGKILL, OOM killer); this
        # process runs in a session of its own, so it outlives the parent and lets the place go.
        for place in sorted(held):
            _quietly(session.release, place)
        for token in sorted(tokens):
            _quietly(session.cancel, token)
        session.close()


def _track(op: str, args: list[Any], result: Any, held: set[str], tokens: set[str]) -> None:
    """What the agent must give back if its parent dies: acquired places and open reservations."""
    if op == "acquire":
        held.add(args[0])
    elif op == "release":
        held.discard(args[0])
    elif op == "reserve":
        tokens.add(result)
    elif op == "cancel":
        tokens.discard(args[0])


if __name__ == "__main__":
    import sys

    _agent(sys.argv[1])
