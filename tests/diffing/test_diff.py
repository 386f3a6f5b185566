"""diffing.diff: the stages, every finding kind, the numeric policy, truncation, and a 25 MiB payload in bounded
memory."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

from diffing.diff import (
    DEEPDIFF_MAX_BYTES,
    MAX_DIFFS_PER_PAIR,
    MAX_VALUE_CHARS,
    Diff,
    DiffKind,
    PairResult,
    compare_exchanges,
    compare_pair,
    compare_pairs,
    show,
)
from wire.frames import parse_frame
from wire.model import (
    Close,
    Exchange,
    ExchangeKind,
    HttpRequest,
    HttpResponse,
    Leg,
    Pair,
    Response,
    SseEvent,
)
from wire.normalize import Tolerance
from wire.profiles.openclaw import OPENCLAW

L, C = Leg.LEGACY, Leg.CANDIDATE


def res(payload: Any, *, ok: bool = True, t: float = 0.01, i: str = "1") -> Response:
    return parse_frame(json.dumps({"type": "res", "id": i, "ok": ok, "payload": payload}), t=t)


def wsx(leg: Leg, *responses: Response, method: str = "health") -> Exchange:
    req = parse_frame(json.dumps({"type": "req", "id": "1", "method": method}), t=0.0)
    return Exchange(leg=leg, conn="c1", key="1", kind=ExchangeKind.WS, group=method, request=req,
                    responses=responses, t_start=0.0)


def cmp(a: Exchange | None, b: Exchange | None) -> PairResult:
    ex = a or b
    assert ex is not None
    return compare_pair(Pair(conn="c1", key=ex.key, kind=ex.kind, group=ex.group, legacy=a, candidate=b), OPENCLAW)


def kinds(r: PairResult) -> list[tuple[str, DiffKind]]:
    return [(d.path, d.kind) for d in r.diffs]


def test_raw_equal_stage() -> None:
    r = cmp(wsx(L, res({"a": 1})), wsx(C, res({"a": 1})))
    assert r.equal and r.stage == "raw" and r.fields_total == r.fields_equal == 4  # 1, "1", true, "res"


def test_canonical_stage_after_profile() -> None:
    r = cmp(wsx(L, res({"ts": 1, "b": 2})), wsx(C, res({"b": 2, "ts": 99})))
    assert r.equal and r.stage == "canonical" and r.diffs == ()
    assert (r.legacy_latency, r.candidate_latency) == (0.01, 0.01)


def test_value_type_missing_extra_order() -> None:
    a = wsx(L, res({"v": 1, "t": 1, "gone": 1, "lst": [1, 2, 3], "nested": {"x": [{"k": 1}]}}))
    b = wsx(C, res({"v": 2, "t": "1", "new": 1, "lst": [3, 2, 1], "nested": {"x": [{"k": 2}]}}))
    r = cmp(a, b)
    assert not r.equal and r.stage == "explain"
    assert sorted(kinds(r)) == sorted([
        ("payload.v", DiffKind.VALUE), ("payload.t", DiffKind.TYPE), ("payload.gone", DiffKind.MISSING),
        ("payload.new", DiffKind.EXTRA), ("payload.lst", DiffKind.ORDER), ("payload.nested.x.0.k", DiffKind.VALUE),
    ])
    v = next(d for d in r.diffs if d.path == "payload.v")
    assert (v.legacy, v.candidate) == ("1", "2")
    assert r.fields_total > r.fields_equal > 0


def test_numeric_policy_one_equals_one_point_zero_but_true_is_not_one() -> None:
    assert cmp(wsx(L, res({"n": 1})), wsx(C, res({"n": 1.0}))).equal
    r = cmp(wsx(L, res({"n": 1})), wsx(C, res({"n": True})))
    assert kinds(r) == [("payload.n", DiffKind.TYPE)]
    big = 2**70
    assert cmp(wsx(L, res({"n": big})), wsx(C, res({"n": big}))).equal
    r = cmp(wsx(L, res({"n": big})), wsx(C, res({"n": big + 1, "m": 1})))
    assert ("payload.n", DiffKind.VALUE) in kinds(r)


def test_frame_count_and_protocol_error() -> None:
    r = cmp(wsx(L, res({"a": 1})), wsx(C, res({"a": 1}), res({"a": 1}, t=0.02)))
    assert kinds(r) == [("responses", DiffKind.FRAME_COUNT)]
    assert (r.diffs[0].legacy, r.diffs[0].candidate) == ("1", "2")
    bad = wsx(C, parse_frame('{"type":"res","id":"1"', t=0.01))
    r = cmp(wsx(L, res({"a": 1})), bad)
    assert kinds(r) == [("frame", DiffKind.PROTOCOL_ERROR)] and r.candidate_error and not r.legacy_error
    assert "not JSON" in (r.diffs[0].candidate or "")
    r = cmp(wsx(L, res({"a": 1})), wsx(C, parse_frame('{"type":"event","event":"x"}', t=0.01)))
    assert kinds(r) == [("frame", DiffKind.TYPE)]
    second = cmp(wsx(L, res({"a": 1}), res({"b": 1})), wsx(C, res({"a": 1}), res({"b": 2})))
    assert kinds(second) == [("#1.payload.b", DiffKind.VALUE)]


def test_error_flags() -> None:
    r = cmp(wsx(L, res({"a": 1})), wsx(C, res(None, ok=False)))
    assert r.candidate_error and not r.legacy_error
    timed = Exchange(leg=C, conn="c1", key="1", kind=ExchangeKind.WS, group="health", timed_out=True)
    r = cmp(wsx(L, res({"a": 1})), timed)
    assert r.candidate_error and kinds(r) == [("responses", DiffKind.FRAME_COUNT)]


def close_ex(leg: Leg, code: int | None, reason: str = "") -> Exchange:
    return Exchange(leg=leg, conn="c1", key="close", kind=ExchangeKind.CLOSE, group="<close>",
                    responses=(Close(code=code, reason=reason, t=1.0),), t_start=1.0)


def test_close_code_and_reason() -> None:
    assert cmp(close_ex(L, 1008, "x"), close_ex(C, 1008, "x")).equal
    r = cmp(close_ex(L, 1008, "device identity required"), close_ex(C, 1011, "device identity required"))
    assert kinds(r) == [("close.code", DiffKind.CLOSE_CODE)]
    r = cmp(close_ex(L, 1008, "a"), close_ex(C, 1008, "b"))
    assert kinds(r) == [("close.reason", DiffKind.VALUE)]


def http_ex(leg: Leg, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = (),
            sse: tuple[SseEvent, ...] | None = None, route: str = "GET /healthz") -> Exchange:
    return Exchange(leg=leg, conn="h1", key="http#1", kind=ExchangeKind.HTTP, group=route,
                    request=HttpRequest(method="GET", path="/healthz"),
                    responses=(HttpResponse(status=status, headers=headers, body=body, sse=sse, t=0.5),))


def test_http_status_header_body() -> None:
    base = (("Content-Type", "application/json"), ("Date", "Mon"))
    same = cmp(http_ex(L, 200, b'{"ok":true}', base), http_ex(C, 200, b'{"ok": true}', (("content-type",
                                                                                         "application/json"),)))
    assert same.equal
    r = cmp(http_ex(L, 200, b'{"ok":true}', base), http_ex(C, 503, b'{"ok":true}', base))
    assert kinds(r) == [("status", DiffKind.STATUS)] and r.candidate_error
    r = cmp(http_ex(L, 200, b"hi", (("X-A", "1"), ("X-A", "2"))), http_ex(C, 200, b"hi", (("X-A", "1"),)))
    assert kinds(r) == [("headers.x-a", DiffKind.HEADER)]
    assert r.diffs[0].legacy == '"1, 2"'
    r = cmp(http_ex(L, 200, b"text one"), http_ex(C, 200, b"text two"))
    assert kinds(r) == [("body", DiffKind.VALUE)]
    assert cmp(http_ex(L, 200, b"{broken"), http_ex(C, 200, b"{broken")).equal
    r = cmp(http_ex(L, 200, b"\xff\xfe"), http_ex(C, 200, b"\xff\xfd"))
    assert r.equal  # binary bodies compare by size only... both 2 bytes
    sse_a = (SseEvent(event="message", data='{"choices":[{"delta":{"content":"ab"}}]}'),)
    sse_b = (SseEvent(event="message", data='{"choices":[{"delta":{"content":"a"}}]}'),
             SseEvent(event="message", data='{"choices":[{"delta":{"content":"b"}}]}'))
    assert cmp(http_ex(L, 200, b"x", sse=sse_a), http_ex(C, 200, b"y", sse=sse_b)).equal


def test_unmatched_pairs() -> None:
    def ev(leg: Leg, raw: str) -> Exchange:
        return Exchange(leg=leg, conn="c1", key="event:chat#3", kind=ExchangeKind.EVENT, group="chat",
                        responses=(parse_frame(raw, t=1),), t_start=1)

    r = cmp(ev(L, '{"type":"event","event":"chat"}'), None)
    assert kinds(r) == [("event:chat", DiffKind.EVENT_MISSING)] and r.unmatched == "legacy"
    r = cmp(None, ev(C, '{"type":"event","event":"chat"}'))
    assert kinds(r) == [("event:chat", DiffKind.EVENT_EXTRA)] and r.unmatched == "candidate"
    r = cmp(None, ev(C, "garbage"))
    assert kinds(r) == [("event:chat#3", DiffKind.PROTOCOL_ERROR)]
    r = cmp(close_ex(L, 1008), None)
    assert kinds(r) == [("close.code", DiffKind.CLOSE_CODE)] and r.diffs[0].candidate is None
    r = cmp(None, wsx(C, res({})))
    assert kinds(r) == [("1", DiffKind.FRAME_COUNT)] and (r.diffs[0].legacy, r.diffs[0].candidate) == ("0", "1")
    r = cmp(wsx(L, res({})), None)
    assert (r.diffs[0].legacy, r.diffs[0].candidate) == ("1", "0")
    assert cmp(http_ex(L, 200, b""), None).diffs[0].kind is DiffKind.FRAME_COUNT


def _leaf_count(v: Any) -> int:
    if isinstance(v, dict | list):
        return sum(_leaf_count(x) for x in (v.values() if isinstance(v, dict) else v)) or 1
    return 1


def test_frames_and_exchanges_one_leg_lacks_count_their_legacy_fields_as_unequal() -> None:
    one, two = res({"a": 1}), res({"b": [1, 2], "c": "x"}, t=0.02)
    n1, n2 = (_leaf_count(json.loads(f.raw)) for f in (one, two))  # type: ignore[union-attr]
    r = cmp(wsx(L, one, two), wsx(C, one))  # the candidate never sent the second frame
    assert (r.fields_total, r.fields_equal) == (n1 + n2, n1)
    r = cmp(wsx(L, one), wsx(C, one, two))  # an extra candidate frame counts one, as an extra value does
    assert (r.fields_total, r.fields_equal) == (n1, n1 - 1)
    r = cmp(wsx(L, one, two), None)  # no answer at all
    assert r.unmatched == "legacy" and (r.fields_total, r.fields_equal) == (n1 + n2, 0)
    r = cmp(None, wsx(C, one))  # nothing on the legacy side to compare
    assert r.unmatched == "candidate" and (r.fields_total, r.fields_equal) == (0, 0)


def test_compare_exchanges_returns_plain_records() -> None:
    diffs = compare_exchanges(wsx(L, res({"a": 1})), wsx(C, res({"a": 2})), OPENCLAW)
    assert diffs == [Diff("payload.a", DiffKind.VALUE, "1", "2")]


def test_tolerance_rules_compare_numbers_within_bounds() -> None:
    prof = OPENCLAW.with_rules((Tolerance("payload.load", abs=0.5, reason="test"),))
    a, b = wsx(L, res({"load": 1.0})), wsx(C, res({"load": 1.3}))
    p = Pair(conn="c1", key="1", kind=ExchangeKind.WS, group="health", legacy=a, candidate=b)
    assert compare_pair(p, prof).equal
    far = Pair(conn="c1", key="1", kind=ExchangeKind.WS, group="health", legacy=a, candidate=wsx(C, res({"load": 3})))
    assert [(d.path, d.kind) for d in compare_pair(far, prof).diffs] == [("payload.load", DiffKind.VALUE)]
    gone = Pair(conn="c1", key="1", kind=ExchangeKind.WS, group="health", legacy=a, candidate=wsx(C, res({})))
    assert [(d.path, d.kind) for d in compare_pair(gone, prof).diffs] == [("payload.load", DiffKind.MISSING)]
    # a tolerant field is one compared field (type, id, ok, payload.load): equal, out of bounds, or missing
    for pair, equal in ((p, 4), (far, 3), (gone, 3)):
        r = compare_pair(pair, prof)
        assert (r.fields_total, r.fields_equal) == (4, equal)
    extra = Pair(conn="c1", key="1", kind=ExchangeKind.WS, group="health", legacy=wsx(L, res({})), candidate=b)
    assert [(d.path, d.kind) for d in compare_pair(extra, prof).diffs] == [("payload.load", DiffKind.EXTRA)]


def test_monotonic_counters_checked_per_connection() -> None:
    def ev(leg: Leg, k: int, seq: int, t: float) -> Exchange:
        raw = json.dumps({"type": "event", "event": "chat", "seq": seq, "payload": {"state": "delta"}})
        return Exchange(leg=leg, conn="c1", key=f"event:chat#{k}", kind=ExchangeKind.EVENT, group="chat",
                        responses=(parse_frame(raw, t=t),), t_start=t)

    def pairs(cand_seqs: list[int]) -> list[Pair]:
        return [Pair(conn="c1", key=f"event:chat#{k}", kind=ExchangeKind.EVENT, group="chat",
                     legacy=ev(L, k, k, k), candidate=ev(C, k, s, k)) for k, s in enumerate(cand_seqs, 1)]

    good = list(compare_pairs(pairs([5, 9, 12]), OPENCLAW))
    assert len(good) == 3 and all(r.equal for r in good)  # absolute values and gaps do not matter
    bad = list(compare_pairs(pairs([5, 4, 12]), OPENCLAW))
    assert len(bad) == 4
    assert kinds(bad[-1]) == [("seq", DiffKind.ORDER)] and bad[-1].group == "<envelope>"


def test_show_truncates_with_a_visible_marker() -> None:
    assert show({"a": 1}) == '{"a":1}'
    long = show("x" * 5000)
    assert len(long) < MAX_VALUE_CHARS + 40 and long.endswith("…<truncated 4490 chars>")
    assert show(object()).startswith('"<object object')


def test_25_mib_payload_is_diffed_in_bounded_memory_with_truncated_exemplars() -> None:
    size = 25 * 1024 * 1024
    blob = "a" * size
    a = wsx(L, res({"text": blob, "n": 1}))
    b = wsx(C, res({"text": blob[:-1] + "b", "n": 1}))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        r = cmp(a, b)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kinds(r) == [("payload.text", DiffKind.VALUE)]
    d = r.diffs[0]
    assert d.legacy is not None and "…<truncated" in d.legacy and len(d.legacy) < 1024
    # The inputs themselves are 2 x 25 MiB of text; the differ may hold a few copies, never an explosion.
    assert peak < 8 * size, f"peak {peak / 2**20:.0f} MiB"


def test_big_structured_payload_uses_the_bounded_walker() -> None:
    a = wsx(L, res({"items": [{"i": i, "v": "x" * 100} for i in range(5000)]}))
    items = [{"i": i, "v": "x" * 100} for i in range(5000)]
    items[10]["v"] = "y"
    del items[-1]
    b = wsx(C, res({"items": items, "more": 1}))
    r = cmp(a, b)
    assert sorted(kinds(r)) == sorted([("payload.items.10.v", DiffKind.VALUE), ("payload.items.4999",
                                                                                  DiffKind.MISSING),
                                       ("payload.more", DiffKind.EXTRA)])
    # unequal legacy fields: one changed value, the missing item's two fields, one for the extra field
    assert r.fields_total - r.fields_equal == 4


def test_field_parity_counts_every_finding_not_only_the_recorded_ones() -> None:
    # 500 methods advertised by legacy, 50 by the candidate: 450 findings, only MAX_DIFFS_PER_PAIR recorded
    names = [f"m{i:03}" for i in range(500)]
    r = cmp(wsx(L, res({"methods": names, "ok": 1})), wsx(C, res({"methods": names[:50], "ok": 1})))
    assert len(r.diffs) == MAX_DIFFS_PER_PAIR
    assert r.fields_total - r.fields_equal == 450
    # the findings past the cap are kept as counts by signature
    assert r.unrecorded == (("payload.methods.*", DiffKind.MISSING, 250),)
    assert r.signature_counts() == {("payload.methods.*", DiffKind.MISSING): 450}
    # the same past the DeepDiff size limit (the bounded walker keeps counting after its last record)
    long = [f"{n}-{'x' * 40}" for n in names]
    r = cmp(wsx(L, res({"methods": long})), wsx(C, res({"methods": long[:50]})))
    assert len(r.diffs) == MAX_DIFFS_PER_PAIR and r.fields_total - r.fields_equal == 450
    assert r.signature_counts() == {("payload.methods.*", DiffKind.MISSING): 450}


def test_a_big_document_explains_a_small_list_as_deepdiff_does() -> None:
    # hello-ok is past DEEPDIFF_MAX_BYTES; its features lists are not: a shorter candidate list is the removed
    # names (kind "missing"), whatever the size of the document around it, never a positional walk
    names = [f"m{i:03}" for i in range(466)]
    kept = names[::11]
    pad = "x" * (DEEPDIFF_MAX_BYTES + 100)
    small = cmp(wsx(L, res({"methods": names})), wsx(C, res({"methods": kept})))
    big = cmp(wsx(L, res({"methods": names, "pad": pad})), wsx(C, res({"methods": kept, "pad": pad})))
    for r in (small, big):
        assert r.signature_counts() == {("payload.methods.*", DiffKind.MISSING): len(names) - len(kept)}
        assert r.fields_total - r.fields_equal == len(names) - len(kept)


def test_a_big_document_tells_true_from_one_deep_inside() -> None:
    # == says [1] == [True]; the canonical texts differ, so the explanation must find it at any document size
    pad = "x" * (DEEPDIFF_MAX_BYTES + 100)
    r = cmp(wsx(L, res({"x": {"y": [1]}, "pad": pad})), wsx(C, res({"x": {"y": [True]}, "pad": pad})))
    assert not r.equal and kinds(r) == [("payload.x.y.0", DiffKind.TYPE)]


def test_a_signature_found_only_past_the_cap_is_still_reported() -> None:
    # 300 changed values sort before "zz": the missing "zz" is the 301st finding, never recorded, still counted
    a = {f"k{i:03}": i for i in range(300)} | {"zz": 1}
    b = {f"k{i:03}": -i - 1 for i in range(300)}
    r = cmp(wsx(L, res(a)), wsx(C, res(b)))
    assert all(d.path != "payload.zz" for d in r.diffs)
    counts = r.signature_counts()
    assert counts[("payload.zz", DiffKind.MISSING)] == 1 and sum(counts.values()) == 301


def test_a_missing_object_counts_each_of_its_fields() -> None:
    obj = {"a": 1, "b": {"c": [1, 2, 3], "d": {}}, "e": "x"}  # 6 leaves: a, c.0-2, d (empty), e
    r = cmp(wsx(L, res({"obj": obj, "k": 1})), wsx(C, res({"k": 1})))
    assert kinds(r) == [("payload.obj", DiffKind.MISSING)]
    assert r.fields_total - r.fields_equal == 6
    r = cmp(wsx(L, res({"obj": obj, "k": 1})), wsx(C, res({"obj": "flat", "k": 1})))  # a type change: the same
    assert kinds(r) == [("payload.obj", DiffKind.TYPE)] and r.fields_total - r.fields_equal == 6


def test_method_rules_apply_when_only_the_group_names_the_method() -> None:
    # The shadow proxy builds exchanges without the request frame; the group (method label) must still select
    # the method's rules (here: hello-ok's per-connection connId).
    def hello(conn_id: str) -> Exchange:
        frame = parse_frame(json.dumps({"type": "res", "id": "1", "ok": True,
                                        "payload": {"server": {"connId": conn_id}}}), t=0.1)
        return Exchange(leg=L, conn="c1", key="1", kind=ExchangeKind.WS, group="connect", responses=(frame,))

    assert cmp(hello("a"), hello("b")).equal
