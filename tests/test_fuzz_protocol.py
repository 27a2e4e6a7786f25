"""Short seeded fuzz campaign over the host's protocol parser (issue #14); long run: bench/fuzz_protocol.py.
Property: a result or the protocol's own error (LinkError, DeviceError, DeviceResetError), never another exception;
a reply corrupted on the wire is never accepted with another result under the device's checksum."""
from __future__ import annotations

import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.fuzz import Finding
from toolkit.hil import fuzz_protocol as F
from toolkit.hil import protocol as P
from toolkit.hil.fuzz_firmware import standin_features, _STANDIN_RAW

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def test_recorded_replies_parse_as_recorded():
    outcomes = [F.original(i)[0] for i in range(len(F.SEEDS))]
    refused = [s.raw[:40] for s, o in zip(F.SEEDS, outcomes) if o == "refused"]
    assert outcomes.count("accepted") == len(F.SEEDS) - 4, refused  # 4 recorded errors: no input, size, unknown, reboot
    kinds = {s.kind for s in F.SEEDS}
    assert kinds == set(F.PARSERS), "every parser has recorded replies"
    rrun = F.original(next(i for i, s in enumerate(F.SEEDS) if s.kind == "rrun"))[1]
    assert rrun.features == standin_features(_STANDIN_RAW)  # the recorded features are the stand-in frontend's


def test_protocol_campaign_no_traceback_no_corrupted_result_accepted():
    rep = F.campaign(n=25_000, seed=0)
    assert not rep.failures, rep.summary()
    assert rep.accepted > 2_000 and rep.refused > 15_000, rep.summary()


def test_the_campaign_reports_a_parser_that_raises_or_trusts_corrupted_bytes(monkeypatch, tmp_path):
    """The harness can fail: a parser that raises ValueError, and a client that skips the checksum, are found."""
    monkeypatch.setitem(F.PARSERS, "mem", lambda r, s: int(r.values().get("mem-arena", "")))
    rep = F.campaign(n=3_000, seed=1)
    assert any(f.kind == "traceback" and "ValueError" in f.message for f in rep.failures), rep.summary()
    saved = F.save_failures(rep, tmp_path)
    assert len(saved) == len(rep.failures)
    assert F.replay(next(p for p in saved if p.name.endswith("-traceback.bin"))).startswith("traceback: ValueError")
    monkeypatch.undo()
    monkeypatch.setattr(P, "parse_reply", lambda raw, checked: P.Reply(
        lines=tuple(ln for ln in raw.decode("ascii", "replace").split("\r\n") if ln and not ln.startswith("m-sum")
                    and ln != "m-ready"), raw=raw, checked=checked))
    rep = F.campaign(n=3_000, seed=2)
    assert any(f.kind == "corrupted-accepted" for f in rep.failures), rep.summary()


KEYS = ["info-protocol", "info-board", "info-sha256", "info-in", "info-out", "info-arena", "info-macs", "info-timer",
        "info-tick-hz", "info-cycles", "info-frontend", "info-raw", "mem-arena", "mem-stack-size", "mem-stack-hwm",
        "run-n", "rrun-n", "ticks", "cycles", "stack", "status", "in-crc", "out", "out-crc", "feat", "feat-crc",
        "fe-ticks", "fe-cycles", "net-ticks", "net-cycles", "raw-crc", "bload-crc", "rload-crc", "cmd", "lap-us",
        "infer-start", "results", "name-dut", "buffer"]
VALUE = st.one_of(st.integers(-2**40, 2**70).map(str), st.text(alphabet="0123456789abcdefx-+[]. ,", max_size=12),
                  st.text(max_size=6), st.sampled_from(["f507050f", "787bc6d8", "[1.000,nan]", "[edgetk x]"]))
LINE = st.one_of(st.tuples(st.sampled_from(KEYS), VALUE).map(lambda kv: f"m-{kv[0]}-{kv[1]}"),
                 st.sampled_from(["m-infer-done", "m-load-done", "e-[no input loaded]", "m-init-done", "e-[",
                                  "m-results-[", "m-ready"]))


@SETTINGS
@given(lines=st.lists(LINE, max_size=14), kind=st.sampled_from(sorted(F.PARSERS)), sizes=st.tuples(
    st.integers(0, 40), st.integers(0, 40)))
def test_any_checksummed_lines_parse_or_give_a_protocol_error(lines, kind, sizes):
    body = "".join(ln + "\r\n" for ln in lines).encode("utf-8", "replace")
    raw = body + b"m-sum-%08x\r\nm-ready\r\n" % zlib.crc32(body)
    seed = F.Seed(kind, "run 1 0%", raw, checked=kind not in ("infer", "name", "db_print"), sizes=sizes)
    try:
        F._sane(F.client_parse(seed, raw), seed)
    except F.PROTOCOL_ERRORS:
        pass
    except Finding as e:
        raise AssertionError(f"accepted a value the protocol does not allow: {e}") from e
