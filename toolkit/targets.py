"""Targets as data: one TOML file per board, emulator, simulator or host runtime (targets/*.toml).

The shipped files, then the user's: folders from `--targets DIR` (the CLI passes them as $EDGETK_TARGETS_OPTION),
$EDGETK_TARGETS (os.pathsep-separated) and ./targets of the current folder, in that order of precedence. A user
file replaces a shipped (or lower) one of the same name, with a warning; each TargetSpec says its `origin`.

Every file is validated when loaded; errors name the file and the field. Nothing below the CLI and
the pytest plugin sees raw TOML dicts: they get the frozen `TargetSpec`. Templates (the emulator and flash
commands, the connection URL) may use only the fields the adapters fill in, checked at load time.

`--port` is for boards only: QEMU serves its UART on a TCP port it picks itself, the host simulator on a
pseudo-terminal it opens, linux-local has no link; `check_port` refuses a --port given to those (one error that
says so) rather than ignoring it.
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import EdgetkError
from toolkit.paths import repo_dir

log = logging.getLogger(__name__)

KINDS = ("board", "qemu", "host", "linux", "linux-ssh")
RUNTIMES = ("generated-c", "onnxruntime", "litert")
LINE_POLICIES = ("low", "high", "keep")


@dataclass(frozen=True)
class BuildSpec:
    """How the firmware is compiled: compiler, flags, the port folder and its linker script."""

    port: str                          # folder under firmware_stubs/ports/
    cc: str                            # compiler executable
    cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()      # port sources, relative to firmware_stubs/
    includes: tuple[str, ...] = ()     # include folders, relative to firmware_stubs/
    linker_script: str = ""            # relative to firmware_stubs/, empty for the host
    defines: tuple[tuple[str, str], ...] = ()
    size_tool: str = ""                # e.g. arm-none-eabi-size; empty: no size report


@dataclass(frozen=True)
class ConnectionSpec:
    """How to reach the device's serial link."""

    url: str = ""                      # pyserial URL or device path; "{port}" filled for emulators
    baud: int = 115200
    dtr: str = "low"                   # low | high | keep: line state set before opening
    rts: str = "low"
    settle_s: float = 0.0              # wait after opening (boards that reset on open)
    timeout_s: float = 5.0             # per-command reply timeout
    retries: int = 3


@dataclass(frozen=True)
class EmulatorSpec:
    """The emulator command (a template run without a shell: {elf}, {port})."""

    command: tuple[str, ...]
    ns_per_tick: float = 40.0          # virtual ns per timer tick
    ns_per_instruction: float = 1.0    # -icount shift=0: one instruction is 1 ns of virtual time
    timing_label: str = "QEMU virtual time, -icount shift=0"
    insn_plugin: bool = True           # count instructions exactly with firmware_stubs/qemu-plugin


@dataclass(frozen=True)
class SshSpec:
    """How to reach a Linux machine over SSH (a linux-ssh target's [ssh] table); the system ssh/scp do the work,
    so ~/.ssh/config (Host aliases, ProxyJump, keys) applies to whatever the table leaves out."""

    host: str                          # name or address, or a Host alias of ~/.ssh/config
    user: str = ""                     # empty: ssh's default (the config's User, else the local user)
    port: int = 0                      # 0: ssh's default (the config's Port, else 22)
    key: str = ""                      # private key file (~ expanded); empty: ssh's default keys / the agent
    known_hosts: str = ""              # UserKnownHostsFile (~ expanded); empty: ssh's default
    python: str = "python3"            # the interpreter on the machine
    connect_timeout_s: int = 10        # ssh ConnectTimeout
    run_timeout_s: float = 600.0       # the whole run on the machine
    workdir: str = "/tmp"              # where the temporary folder is made there


@dataclass(frozen=True)
class TargetSpec:
    """One target, as loaded from targets/<name>.toml."""

    name: str
    path: Path
    description: str
    kind: str                          # board | qemu | host | linux | linux-ssh
    core: str                          # cortex-m4, cortex-m7, x86_64, aarch64
    clock_hz: int
    flash_bytes: int
    ram_bytes: int
    runtime: str                       # generated-c | onnxruntime | litert
    simulator: str = ""                # the target that stands in when this one is absent
    cycles_per_mac: float = 0.0        # analytic estimate, labelled as one
    cycles_per_instruction: float = 0.0  # turns emulator instruction counts into a labelled estimate
    kernels: str = ""                  # generated-C kernel set for this core ("" = codegen's default)
    build: BuildSpec | None = None
    flash_command: tuple[str, ...] = ()
    connection: ConnectionSpec = field(default_factory=ConnectionSpec)
    emulator: EmulatorSpec | None = None
    usb_ids: tuple[str, ...] = ()      # "vid:pid", lowercase hex
    cycles: tuple[tuple[str, Any], ...] = ()  # [cycles]: memory of the cycle estimate (toolkit/hil/cycles.py)
    ssh: SshSpec | None = None         # [ssh]: a linux-ssh target's machine
    origin: str = "shipped"            # where the file came from: shipped, --targets, EDGETK_TARGETS, ./targets


_TOP = {"name": str, "description": str, "kind": str, "core": str, "clock_hz": int,
        "flash_bytes": int, "ram_bytes": int, "runtime": str, "simulator": str,
        "cycles_per_mac": float, "cycles_per_instruction": float, "kernels": str, "build": dict, "flash": dict,
        "connection": dict, "emulator": dict, "usb": dict, "cycles": dict, "ssh": dict}
_REQUIRED = ("name", "description", "kind", "core", "clock_hz", "flash_bytes", "ram_bytes", "runtime")
_BUILD = {"port": str, "cc": str, "cflags": list, "ldflags": list, "sources": list, "includes": list,
          "linker_script": str, "defines": dict, "size_tool": str}
_CONNECTION = {"url": str, "baud": int, "dtr": str, "rts": str, "settle_s": float, "timeout_s": float,
               "retries": int}
_CYCLES = {"flash_wait_states": int, "art": bool, "fetch_stall_per_line": float, "calibration": str}
_SSH = {"host": str, "user": str, "port": int, "key": str, "known_hosts": str, "python": str,
        "connect_timeout_s": int, "run_timeout_s": float, "workdir": str}
_EMULATOR = {"command": list, "ns_per_tick": float, "ns_per_instruction": float, "timing_label": str,
             "insn_plugin": bool}


def _fail(path: Path, key: str, msg: str, fix: str) -> EdgetkError:
    return EdgetkError(f"{path}: field {key!r}: {msg}", fix=fix)


def _check_table(path: Path, prefix: str, table: dict[str, Any], schema: dict[str, type]) -> dict[str, Any]:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if key not in schema:
            close = difflib.get_close_matches(key, schema, n=1)
            hint = f"did you mean {prefix + close[0]!r}?" if close else f"known fields: {', '.join(schema)}"
            raise _fail(path, name, "unknown field", hint)
        want = schema[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if want is float else \
            isinstance(value, want) and not (want is int and isinstance(value, bool))
        if not ok:
            raise _fail(path, name, f"expected {want.__name__}, got {type(value).__name__} {value!r}",
                        f"write {name} as a TOML {want.__name__}")
    return table


def _choice(path: Path, key: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _fail(path, key, f"{value!r} is not one of {', '.join(allowed)}", f"set {key} to one of them")
    return value


def _strs(path: Path, key: str, value: list[Any]) -> tuple[str, ...]:
    if not all(isinstance(v, str) for v in value):
        raise _fail(path, key, "expected a list of strings", f"quote every item of {key}")
    return tuple(value)


def _build(path: Path, t: dict[str, Any]) -> BuildSpec:
    _check_table(path, "build.", t, _BUILD)
    for key in ("port", "cc"):
        if key not in t:
            raise _fail(path, f"build.{key}", "missing", f"add build.{key}")
    lists = {k: _strs(path, f"build.{k}", t.get(k, [])) for k in ("cflags", "ldflags", "sources", "includes")}
    defines = tuple((str(k), str(v)) for k, v in t.get("defines", {}).items())
    return BuildSpec(port=t["port"], cc=t["cc"], linker_script=t.get("linker_script", ""),
                     defines=defines, size_tool=t.get("size_tool", ""), **lists)


def _connection(path: Path, t: dict[str, Any]) -> ConnectionSpec:
    _check_table(path, "connection.", t, _CONNECTION)
    for key in ("dtr", "rts"):
        _choice(path, f"connection.{key}", t.get(key, "low"), LINE_POLICIES)
    if t.get("baud", 115200) <= 0:
        raise _fail(path, "connection.baud", "must be positive", "use e.g. 115200")
    return ConnectionSpec(**{k: (float(v) if _CONNECTION[k] is float else v) for k, v in t.items()})


def _emulator(path: Path, t: dict[str, Any]) -> EmulatorSpec:
    _check_table(path, "emulator.", t, _EMULATOR)
    if not t.get("command"):
        raise _fail(path, "emulator.command", "missing or empty", "give the emulator command as a list")
    rest = {k: (float(v) if _EMULATOR[k] is float else v) for k, v in t.items() if k != "command"}
    return EmulatorSpec(command=_strs(path, "emulator.command", t["command"]), **rest)


def _ssh(path: Path, t: dict[str, Any]) -> SshSpec:
    _check_table(path, "ssh.", t, _SSH)
    if not t.get("host"):
        raise _fail(path, "ssh.host", "missing or empty", "add ssh.host: a name, an address or a ~/.ssh/config Host")
    if t["host"].startswith("-") or t.get("user", "").startswith("-"):
        raise _fail(path, "ssh.host", "may not start with '-'", "write the machine's name or address")
    if not 0 <= t.get("port", 0) <= 65535:
        raise _fail(path, "ssh.port", f"{t['port']} is not a TCP port", "use 1..65535 (0: ssh's default)")
    for key in ("connect_timeout_s", "run_timeout_s"):
        if t.get(key, 1) <= 0:
            raise _fail(path, f"ssh.{key}", "must be positive", f"set ssh.{key} to a number of seconds")
    return SshSpec(**{k: (float(v) if _SSH[k] is float else v) for k, v in t.items()})


def _cycles(path: Path, t: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    _check_table(path, "cycles.", t, _CYCLES)
    for key in ("flash_wait_states", "fetch_stall_per_line"):
        if t.get(key, 0) < 0:
            raise _fail(path, f"cycles.{key}", "must not be negative", f"set cycles.{key} to 0 or more")
    return tuple(sorted((k, float(v) if _CYCLES[k] is float else v) for k, v in t.items()))


def _kernels(path: Path, name: str) -> str:
    from toolkit.codegen.kernel_sets import KERNEL_SETS

    return _choice(path, "kernels", name, tuple(KERNEL_SETS)) if name else ""


#: the fields each template may use (what toolkit/hil/adapters.py fills in)
EMULATOR_FIELDS, FLASH_FIELDS = ("elf", "port", "monitor"), ("elf", "bin", "port")
URL_FIELDS = {"qemu": ("port",), "host": ("pty",), "board": (), "linux": (), "linux-ssh": ()}


def _template(path: Path, key: str, text: str, allowed: tuple[str, ...]) -> set[str]:
    """The {fields} of a template, refused when it cannot be formatted or uses a field outside `allowed`."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as e:
        raise _fail(path, key, f"{text!r} is not a valid template ({e})",
                    "write a literal brace as {{ or }}, a field as {name}") from e
    fields = set()
    for _, name, spec, conv in parts:
        if name is None:
            continue
        if name not in allowed or spec or conv:
            said = ", ".join("{" + f + "}" for f in allowed) or "no {fields}"
            raise _fail(path, key, f"{text!r} uses {{{name}{'!' + conv if conv else ''}{':' + spec if spec else ''}}}",
                        f"this template may use {said}")
        fields.add(name)
    return fields


def _check_templates(path: Path, spec: TargetSpec) -> None:
    need, url = URL_FIELDS[spec.kind], spec.connection.url
    if not _template(path, "connection.url", url, need) and need and url:
        raise _fail(path, "connection.url", f"{url!r} lacks {{{need[0]}}}",
                    f"a {spec.kind} target's link is filled in at start: e.g. "
                    + ("'socket://127.0.0.1:{port}'" if spec.kind == "qemu" else "'{pty}'"))
    for i, arg in enumerate(spec.emulator.command if spec.emulator is not None else ()):
        _template(path, f"emulator.command[{i}]", arg, EMULATOR_FIELDS)
    for i, arg in enumerate(spec.flash_command):
        _template(path, f"flash.command[{i}]", arg, FLASH_FIELDS)


def check_port(spec: TargetSpec, port: str | None) -> None:
    """Refuse a --port for a target that cannot use one (everything but a board), naming why."""
    if not port or spec.kind == "board":
        return
    why = {"qemu": "QEMU serves its UART on a TCP port it picks itself",
           "host": "the host simulator serves a pseudo-terminal it opens itself",
           "linux": "it runs on this machine, without a serial link",
           "linux-ssh": "it is reached over SSH as its [ssh] table says, without a serial link"}[spec.kind]
    raise EdgetkError(f"--port {port} given for {spec.name}, which cannot use it: {why}",
                      fix="drop --port, or choose the board target the port belongs to (edgetk targets, edgetk ports)")


def parse_target(path: Path, data: dict[str, Any]) -> TargetSpec:
    """Validate one target's TOML data; errors name the file and the field."""
    _check_table(path, "", data, _TOP)
    for key in _REQUIRED:
        if key not in data:
            raise _fail(path, key, "missing", f"add {key} = ... to {path.name}")
    if data["name"] != path.stem:
        raise _fail(path, "name", f"{data['name']!r} differs from the file name", f"set name = {path.stem!r}")
    kind = _choice(path, "kind", data["kind"], KINDS)
    _choice(path, "runtime", data["runtime"], RUNTIMES)
    if kind in ("board", "qemu", "host") and "build" not in data:
        raise _fail(path, "build", f"a {kind} target needs a [build] table", "add [build] with port and cc")
    if (kind == "linux-ssh") != ("ssh" in data):
        raise _fail(path, "ssh", "a linux-ssh target needs an [ssh] table, and only it may have one",
                    "add [ssh] host = ... (user, port, key optional)" if kind == "linux-ssh"
                    else "drop [ssh], or set kind = \"linux-ssh\"")
    if kind == "linux-ssh" and data["runtime"] == "generated-c":
        raise _fail(path, "runtime", "a linux-ssh target runs onnxruntime or litert", "set runtime = \"onnxruntime\"")
    if kind == "qemu" and "emulator" not in data:
        raise _fail(path, "emulator", "a qemu target needs an [emulator] table", "add [emulator] command")
    usb = data.get("usb", {})
    spec = TargetSpec(
        name=data["name"], path=path, description=data["description"], kind=kind, core=data["core"],
        clock_hz=data["clock_hz"], flash_bytes=data["flash_bytes"], ram_bytes=data["ram_bytes"],
        runtime=data["runtime"], simulator=data.get("simulator", ""),
        cycles_per_mac=float(data.get("cycles_per_mac", 0.0)),
        cycles_per_instruction=float(data.get("cycles_per_instruction", 0.0)),
        kernels=_kernels(path, data.get("kernels", "")),
        build=_build(path, data["build"]) if "build" in data else None,
        flash_command=_strs(path, "flash.command", data.get("flash", {}).get("command", [])),
        connection=_connection(path, data.get("connection", {})),
        emulator=_emulator(path, data["emulator"]) if "emulator" in data else None,
        usb_ids=tuple(v.lower() for v in _strs(path, "usb.ids", usb.get("ids", []))),
        cycles=_cycles(path, data.get("cycles", {})),
        ssh=_ssh(path, data["ssh"]) if "ssh" in data else None,
    )
    _check_templates(path, spec)
    return spec


def load_target_file(path: str | Path) -> TargetSpec:
    """Load and validate one target file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise EdgetkError(f"{path}: not valid TOML: {e}", fix="fix the syntax at the position shown") from e
    return parse_target(path, data)


#: environment variables naming user target folders (os.pathsep-separated); the CLI's --targets sets the first
OPTION_ENV, USER_ENV = "EDGETK_TARGETS_OPTION", "EDGETK_TARGETS"
_warned: set[tuple[str, str]] = set()


def _user_folders(env: dict[str, str], what: str, origin: str) -> list[tuple[Path, str]]:
    folders = []
    for item in env.get(what, "").split(os.pathsep):
        if not item:
            continue
        folder = Path(item).expanduser()
        if not folder.is_dir():
            raise EdgetkError(f"{origin}: target folder {folder} does not exist",
                              fix=f"create it with your <name>.toml target files, or drop it from {origin}")
        folders.append((folder, origin))
    return folders


def target_folders(env: dict[str, str] | None = None, cwd: Path | None = None) -> list[tuple[Path, str]]:
    """(folder, origin) from the highest precedence down: --targets, $EDGETK_TARGETS (in order), ./targets of
    the current folder, the shipped targets."""
    env = dict(os.environ) if env is None else env
    shipped = repo_dir("targets")
    local = (cwd or Path.cwd()) / "targets"
    folders = _user_folders(env, OPTION_ENV, "--targets") + _user_folders(env, USER_ENV, "EDGETK_TARGETS")
    if local.is_dir():
        folders.append((local, "./targets"))
    seen, unique = {shipped.resolve()}, []
    for folder, origin in folders:  # a folder named twice keeps its first origin; the shipped one stays "shipped"
        if folder.resolve() not in seen:
            seen.add(folder.resolve())
            unique.append((folder, origin))
    return [*unique, (shipped, "shipped")]


def _merged() -> dict[str, TargetSpec]:
    """Every target file of every folder; a higher-precedence file replaces a lower one of the same name (warned once)."""
    found: dict[str, TargetSpec] = {}
    for folder, origin in target_folders():
        for p in sorted(folder.glob("*.toml")):
            if p.stem in found:
                _warn_override(found[p.stem], p, origin)
                continue
            found[p.stem] = dataclasses.replace(load_target_file(p), origin=origin)
    return dict(sorted(found.items()))


def _warn_override(winner: TargetSpec, loser: Path, origin: str) -> None:
    key = (str(winner.path), str(loser))
    if key not in _warned:
        _warned.add(key)
        log.warning("target %s: %s (%s) overrides %s (%s)", winner.name, winner.path, winner.origin, loser, origin)


def load_targets(folder: str | Path | None = None) -> dict[str, TargetSpec]:
    """Every target by name: the shipped ones and the user's (target_folders), or only those of `folder`."""
    if folder:
        return {p.stem: load_target_file(p) for p in sorted(Path(folder).glob("*.toml"))}
    return _merged()


def get_target(name: str, folder: str | Path | None = None) -> TargetSpec:
    """One target by name, with a "did you mean" when it does not exist."""
    targets = load_targets(folder)
    if name not in targets:
        close = difflib.get_close_matches(name, targets, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise EdgetkError(f"no target named {name!r}", fix=f"{hint}known targets: {', '.join(targets)} "
                          "(see `edgetk targets`)")
    return targets[name]


def fallback_chain(name: str, folder: str | Path | None = None) -> list[TargetSpec]:
    """The target, then what stands in for it, in order (board → emulator → host simulator)."""
    targets, chain, seen = load_targets(folder), [], set()
    while name and name not in seen:
        seen.add(name)
        chain.append(targets[name] if name in targets else get_target(name, folder))
        name = chain[-1].simulator
    return chain
