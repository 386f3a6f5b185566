"""The staged differ: a legacy exchange against a candidate exchange -> plain :class:`Diff` records.

Owns :class:`PairResult` and the compare functions; re-exports the records (``diffing.records``: :class:`Diff`,
:class:`DiffKind`, :func:`show`, the limits). The explain stage is ``diffing.explain``. Pure (no I/O, no
clocks); may import ``wire``, orjson and ``diffing.{records,explain}``.

Stages (architecture §11: DeepDiff costs ~5 ms per 2 KB pair, the canonical form 8-30 µs):

1. **raw**: the raw texts (frames, status + headers + body, close code + reason) are byte-equal -> equal.
2. **canonical**: each response is parsed (orjson; stdlib ``json`` when the text holds digit runs long enough
   to overflow 64 bits), normalized with the profile's rules, and dumped as sorted-key canonical JSON. Equal
   -> equal. On a mismatch the numeric policy (``1 == 1.0``, ``true != 1``; see ``wire.normalize``) is
   applied and the canonical forms compared again.
3. **explain** (``diffing.explain``): only now DeepDiff (on each differing child of bounded size; a positional
   walker on huge lists and texts) explains the difference; lists that are permutations of each other are
   reported once as ``order``. Every finding counts toward field parity, past the record cap too.

Values in records are JSON text truncated to :data:`MAX_VALUE_CHARS` with a visible ``…<truncated N chars>``
marker, so a 25 MiB payload never reaches the store whole.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from diffing.explain import explain
from diffing.records import (
    DEEPDIFF_MAX_BYTES,
    MAX_DIFFS_PER_PAIR,
    MAX_VALUE_CHARS,
    Diff,
    DiffKind,
    join_path,
    show,
    signature_path,
)
from wire.model import (
    Close,
    Event,
    Exchange,
    ExchangeKind,
    HttpResponse,
    Json,
    Other,
    Pair,
    Res,
    Response,
)
from wire.normalize import Context, Normalized, numeric_normal
from wire.profiles.base import Profile

__all__ = [
    "DEEPDIFF_MAX_BYTES",
    "MAX_DIFFS_PER_PAIR",
    "MAX_VALUE_CHARS",
    "Diff",
    "DiffKind",
    "PairResult",
    "compare_exchanges",
    "compare_pair",
    "settle_pair",
    "compare_pairs",
    "show",
    "signature_path",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PairResult:
    """The verdict on one pair.

    Attributes:
        equal: no finding after normalization.
        stage: ``raw`` / ``canonical`` / ``explain`` / ``unmatched`` -- where the verdict was reached.
        fields_total / fields_equal: compared leaf fields (legacy side) and how many were equal.
        legacy_latency / candidate_latency: seconds, ``None`` for unsolicited frames or no answer.
        legacy_error / candidate_error: the leg answered with an error (``ok:false``, HTTP >= 500, protocol error).
    """

    conn: str
    key: str
    kind: ExchangeKind
    group: str
    scenario: str | None
    equal: bool
    stage: str
    diffs: tuple[Diff, ...] = ()
    fields_total: int = 0
    fields_equal: int = 0
    legacy_latency: float | None = None
    candidate_latency: float | None = None
    legacy_error: bool = False
    candidate_error: bool = False
    unmatched: str | None = None  # "legacy" (candidate side missing) / "candidate" / None
    #: findings past MAX_DIFFS_PER_PAIR, not recorded: (signature path, kind, count)
    unrecorded: tuple[tuple[str, DiffKind, int], ...] = ()
    #: monotonic-counter samples seen in this pair: path -> ([(t, value)] legacy, [(t, value)] candidate)
    monotonic: dict[str, tuple[list[tuple[float, Json]], list[tuple[float, Json]]]] = field(
        default_factory=dict, compare=False
    )

    def signature_counts(self) -> dict[tuple[str, DiffKind], int]:
        """Every finding of the pair by signature (list indices generalized) and kind, recorded or not."""
        out = Counter((signature_path(d.path), d.kind) for d in self.diffs)
        out.update({(path, kind): n for path, kind, n in self.unrecorded})
        return dict(out)


_BIG_INT = re.compile(r"\d{19,}")
# Keys ("k":) match the first branch with an empty group; leaves match the group.
_STR = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'  # unrolled: no per-character backtracking state on 25 MiB strings
_LEAF = re.compile(_STR + r":|(" + _STR + r"|-?\d[\d.eE+\-]*|true|false|null|\{\}|\[\])")


#: Past this size the stdlib json is used: orjson's buffers peak at several times the document size, and
#: speed no longer matters for the rare huge frame (25 MiB is the legacy's maxPayload, ref §2.9).
_HUGE = 1024 * 1024


_DIGITS_TO_0 = bytes.maketrans(b"0123456789", b"0" * 10)
_RUN19 = b"0" * 19


def _big_int_run(raw: str) -> bool:
    """Whether ``raw`` holds a run of 19+ ASCII digits, checked with a byte translation and a substring search
    (C speed). JSON numbers are ASCII digits only, so this finds every integer orjson would turn into a float;
    runs of other Unicode digits can only sit inside strings, which both parsers read alike."""
    return _RUN19 in raw.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_0)


def _loads(raw: str) -> Json:
    if len(raw) > _HUGE or _big_int_run(raw):
        return json.loads(raw)
    return orjson.loads(raw)


def _canonical(a: Json, b: Json, huge: bool = False) -> tuple[bytes, bytes]:
    try:
        if huge:
            raise TypeError("huge document")
        return orjson.dumps(a, option=orjson.OPT_SORT_KEYS), orjson.dumps(b, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits (or a huge document)

        def dump(v: Json) -> bytes:
            return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

        return dump(a), dump(b)


def _num(v: Json) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _canonical_leaves(text: bytes) -> int:
    """``_leaves`` of compact canonical JSON, at C speed when no string holds an escape: in compact JSON every
    scalar or empty container is a leaf and ``leaves == commas outside strings + 1``."""
    if b"\\" in text:
        return _leaves(text)
    parts = text.split(b'"')
    return text.count(b",") - b"".join(parts[1::2]).count(b",") + 1


_FLOAT_TOKEN = re.compile(rb"\d[.eE]")


def _floats(text: bytes) -> bool:
    """Whether compact canonical JSON may hold a float: a digit followed by ``.``/``e`` outside strings (any
    escape in the text -> assume yes)."""
    if b"\\" in text:
        return True
    return _FLOAT_TOKEN.search(b"".join(text.split(b'"')[0::2])) is not None


def _leaves(text: bytes | str) -> int:
    s = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    found = _LEAF.findall(s)
    return len(found) - found.count("")


def _raw_leaves(resp: Response) -> int:
    """Leaf count of one response for a raw-equal pair. A ``res``/``event`` frame was parsed, so its text is valid
    JSON: without an escape, ``leaves == commas outside strings + 1`` at C speed. On compact text (what gateways
    send) this equals the token regex of :func:`_leaves`; on text with white space it is the exact count (the
    regex misses ``{ }`` and counts a key before `` :`` as a leaf), as :func:`_canonical_leaves` has it."""
    if isinstance(resp, Res | Event):
        raw = resp.raw
        if "\\" not in raw:
            return raw.count(",") - "".join(raw.split('"')[1::2]).count(",") + 1
        return _leaves(raw)
    return _leaves(resp.raw) if isinstance(resp, Other) else 1


# --- documents ----------------------------------------------------------------------------------------------------


def _raw_sig(resp: Response) -> Any:
    if isinstance(resp, Res | Event | Other):
        return resp.raw
    if isinstance(resp, Close):
        return (resp.code, resp.reason)
    return (resp.status, resp.headers, resp.body)


def _is_error(ex: Exchange | None) -> bool:
    if ex is None:
        return False
    for r in ex.responses:
        if isinstance(r, Res) and not r.ok:
            return True
        if isinstance(r, HttpResponse) and r.status >= 500:
            return True
        if isinstance(r, Other) and r.problem:
            return True
    return ex.timed_out


def _http_body(resp: HttpResponse, profile: Profile) -> Json:
    if resp.sse is not None:
        return profile.lift_sse(resp.sse)
    try:
        text = resp.body.decode("utf-8")
    except UnicodeDecodeError:
        return f"<binary {len(resp.body)} bytes>"
    ctype = (resp.header("content-type") or "").lower()
    if "json" in ctype or text[:1] in ("{", "["):
        try:
            return _loads(text)
        except ValueError:
            return text
    return text


def _document(resp: Response, ex: Exchange, profile: Profile) -> tuple[Context, Json, str | None]:
    """(context, fresh mutable document, raw text for rule triggers)."""
    if isinstance(resp, Res | Event):
        ctx = Context(event=resp.event) if isinstance(resp, Event) else Context(method=_method(ex) or ex.group)
        return ctx, _loads(resp.raw), resp.raw
    if isinstance(resp, Close):
        return Context(), {"close": {"code": resp.code, "reason": resp.reason}}, None
    if isinstance(resp, HttpResponse):
        headers: dict[str, str] = {}
        for k, v in resp.headers:
            low = k.lower()
            headers[low] = f"{headers[low]}, {v}" if low in headers else v
        return (
            Context(route=ex.group),
            {"status": resp.status, "headers": headers, "body": _http_body(resp, profile)},
            None,
        )
    return Context(), {"frame": resp.raw}, None


def _method(ex: Exchange) -> str | None:
    req = ex.request
    return getattr(req, "method", None) if req is not None else None


def _classify(path: str, default: DiffKind) -> DiffKind:
    if path == "status":
        return DiffKind.STATUS
    if path.startswith("headers."):
        return DiffKind.HEADER
    if path == "close.code":
        return DiffKind.CLOSE_CODE
    return default


# --- comparing ------------------------------------------------------------------------------------------------------


def _in_frame(prefix: str, path: str) -> str:
    """A document path placed in its frame (``#1.payload.x`` for the second response; ``$`` is the root)."""
    return join_path(prefix, path) if path != "$" else (prefix or "$")


class _Unsettled(Exception):
    """Raised by :func:`_compare_docs` when telling two documents apart needs the explain stage and the caller
    (:func:`settle_pair`) asked for the cheap stages only."""


def _compare_docs(
    la: Normalized, ca: Normalized, lc: bytes, cc: bytes, prefix: str, unrecorded: Counter[tuple[str, DiffKind]],
    explain_ok: bool = True,
) -> tuple[list[Diff], int, int]:
    """(diffs, legacy leaf count, equal leaf count) for one normalized document pair; findings past the record
    cap are added to ``unrecorded``. Raises :class:`_Unsettled` where the explain stage would run, unless
    ``explain_ok``."""
    leaves = _canonical_leaves(lc)  # a tolerant field is one leaf: its "<tolerance>" placeholder
    diffs: list[Diff] = []
    unequal = 0
    if lc != cc:
        if _floats(lc) or _floats(cc):
            a, b = numeric_normal(la.value), numeric_normal(ca.value)
            lc2, cc2 = _canonical(a, b, max(len(lc), len(cc)) > _HUGE)
        else:  # no float on either side: the numeric policy changes nothing
            a, b, lc2, cc2 = la.value, ca.value, lc, cc
        if lc2 != cc2:
            if not explain_ok:
                raise _Unsettled
            found = explain(a, b, max(len(lc2), len(cc2)))
            unequal += found.unequal
            for (path, kind), n in found.unrecorded.items():
                path = _in_frame(prefix, path)
                unrecorded[(path, _classify(path, kind))] += n
            for d in found.diffs:
                path = _in_frame(prefix, d.path)
                diffs.append(Diff(path, _classify(path, d.kind), d.legacy, d.candidate))
    # Presence of a tolerant field is compared through its "<tolerance>" placeholder; here only the numbers.
    for p in la.tolerant.keys() & ca.tolerant.keys():
        (lv, rule), (cv, _) = la.tolerant[p], ca.tolerant[p]
        if not rule.accepts(lv, cv):
            kind = DiffKind.TYPE if type(lv) is not type(cv) and not (_num(lv) and _num(cv)) else DiffKind.VALUE
            diffs.append(Diff(join_path(prefix, p), kind, show(lv), show(cv)))
            unequal += 1
    return diffs, leaves, max(0, leaves - unequal)


def compare_exchanges(legacy: Exchange, candidate: Exchange, profile: Profile) -> list[Diff]:
    """The findings between two exchanges for the same request (empty when equal after normalization)."""
    pair = Pair(
        conn=legacy.conn, key=legacy.key, kind=legacy.kind, group=legacy.group, legacy=legacy, candidate=candidate
    )
    return list(compare_pair(pair, profile).diffs)


def compare_pair(pair: Pair, profile: Profile) -> PairResult:
    """Compare one pair through the stages. Never raises on leg data: malformed frames are findings."""
    return _compare(pair, profile, explain_ok=True)


def settle_pair(pair: Pair, profile: Profile) -> PairResult | None:
    """:func:`compare_pair`'s result when the cheap stages settle the pair (raw or canonical equality, a missing
    leg, a framing or tolerance finding), or None when its documents differ after normalization and only the
    explain stage (DeepDiff) can say where: a caller compares the common, equal case where it is and sends the
    rest to a worker, which runs :func:`compare_pair` from the start."""
    try:
        return _compare(pair, profile, explain_ok=False)
    except _Unsettled:
        return None


def _compare(pair: Pair, profile: Profile, explain_ok: bool) -> PairResult:
    lx, cx = pair.legacy, pair.candidate
    base: dict[str, Any] = {
        "conn": pair.conn,
        "key": pair.key,
        "kind": pair.kind,
        "group": pair.group,
        "scenario": pair.scenario,
        "legacy_latency": lx.latency if lx else None,
        "candidate_latency": cx.latency if cx else None,
        "legacy_error": _is_error(lx),
        "candidate_error": _is_error(cx),
    }
    if lx is None or cx is None:
        # a legacy exchange the candidate never answered: all its leaves are unequal; a candidate-only exchange
        # has no legacy fields to compare (it shows in pair and scenario parity)
        return PairResult(
            **base,
            equal=False,
            stage="unmatched",
            diffs=(_unmatched(pair),),
            unmatched="legacy" if cx is None else "candidate",
            fields_total=sum(_raw_leaves(r) for r in lx.responses) if lx is not None else 0,
        )
    lraw = [_raw_sig(r) for r in lx.responses]
    craw = [_raw_sig(r) for r in cx.responses]
    if lraw == craw:
        leaves = sum(_raw_leaves(r) for r in lx.responses)
        return PairResult(**base, equal=True, stage="raw", fields_total=leaves, fields_equal=leaves)
    diffs: list[Diff] = []
    if len(lx.responses) != len(cx.responses):
        diffs.append(Diff("responses", DiffKind.FRAME_COUNT, str(len(lx.responses)), str(len(cx.responses))))
    total = equal = 0
    unrecorded: Counter[tuple[str, DiffKind]] = Counter()
    monotonic: dict[str, tuple[list[tuple[float, Json]], list[tuple[float, Json]]]] = {}
    for i, (lr, cr) in enumerate(zip(lx.responses, cx.responses, strict=False)):
        prefix = f"#{i}" if i else ""
        if isinstance(lr, Other) or isinstance(cr, Other):
            if _raw_sig(lr) != _raw_sig(cr):
                diffs.append(Diff(join_path(prefix, "frame"), DiffKind.PROTOCOL_ERROR, _problem(lr), _problem(cr)))
                total += 1
            continue
        if type(lr) is not type(cr):
            diffs.append(
                Diff(join_path(prefix, "frame"), DiffKind.TYPE, show(type(lr).__name__), show(type(cr).__name__))
            )
            total += 1
            continue
        lctx, ldoc, lrawtext = _document(lr, lx, profile)
        cctx, cdoc, crawtext = _document(cr, cx, profile)
        norm = profile.normalizer
        ln = norm.normalize(ldoc, lctx, raw=lrawtext)
        cn = norm.normalize(cdoc, cctx, raw=crawtext)
        for p in ln.monotonic.keys() | cn.monotonic.keys():
            monotonic[join_path(prefix, p)] = (
                [(lr.t, ln.monotonic[p])] if p in ln.monotonic else [],
                [(cr.t, cn.monotonic[p])] if p in cn.monotonic else [],
            )
        huge = max(len(lrawtext or ""), len(crawtext or "")) > _HUGE
        lc, cc = _canonical(ln.value, cn.value, huge)
        d, t, e = _compare_docs(ln, cn, lc, cc, prefix, unrecorded, explain_ok)
        diffs.extend(d)
        total += t
        equal += e
    # frames one leg lacks: every legacy leaf of a missing legacy frame is unequal; an extra candidate frame
    # counts one, as an extra value does
    for lr in lx.responses[len(cx.responses) :]:
        total += _raw_leaves(lr)
    equal = max(0, equal - max(0, len(cx.responses) - len(lx.responses)))
    unrecorded.update((signature_path(cut.path), cut.kind) for cut in diffs[MAX_DIFFS_PER_PAIR:])
    del diffs[MAX_DIFFS_PER_PAIR:]
    return PairResult(
        **base,
        equal=not diffs,
        stage="canonical" if not diffs else "explain",
        diffs=tuple(diffs),
        unrecorded=tuple((path, kind, n) for (path, kind), n in sorted(unrecorded.items())),
        fields_total=total,
        fields_equal=min(equal, total),
        monotonic=monotonic,
    )


def _problem(r: Response) -> str | None:
    if isinstance(r, Other):
        return show(f"{r.problem or 'unexpected frame'}: {r.raw}")
    return show(_raw_sig(r)) if not isinstance(r, HttpResponse) else show(r.status)


def _unmatched(pair: Pair) -> Diff:
    ex = pair.legacy or pair.candidate
    assert ex is not None
    missing = pair.candidate is None
    first = ex.responses[0] if ex.responses else None
    value = show(_raw_sig(first)) if first is not None and not isinstance(first, HttpResponse) else None
    if pair.kind is ExchangeKind.EVENT:
        if isinstance(first, Other):
            return Diff(pair.key, DiffKind.PROTOCOL_ERROR, value if missing else None, None if missing else value)
        kind = DiffKind.EVENT_MISSING if missing else DiffKind.EVENT_EXTRA
        name = pair.key.rsplit("#", 1)[0]  # event:<name>, without the ordinal: one signature per event name
        return Diff(name, kind, value if missing else None, None if missing else value)
    if pair.kind is ExchangeKind.CLOSE:
        return Diff("close.code", DiffKind.CLOSE_CODE, value if missing else None, None if missing else value)
    return Diff(
        pair.key,
        DiffKind.FRAME_COUNT,
        str(len(ex.responses)) if missing else "0",
        "0" if missing else str(len(ex.responses)),
    )


def compare_pairs(pairs: Iterable[Pair], profile: Profile) -> Iterator[PairResult]:
    """Compare many pairs, then add one ``order`` finding per connection whose candidate broke a monotonic
    counter (``seq``, ``stateVersion.*``) that the legacy kept monotonic on the same connection."""
    seqs: dict[tuple[str, str], tuple[list[tuple[float, Json]], list[tuple[float, Json]], str]] = {}
    for pair in pairs:
        result = compare_pair(pair, profile)
        for path, (lv, cv) in result.monotonic.items():
            slot = seqs.setdefault(
                (pair.conn, path.split(".", 1)[-1] if path.startswith("#") else path), ([], [], pair.scenario or "")
            )
            slot[0].extend(lv)
            slot[1].extend(cv)
        yield result
    for (conn, path), (lts, cts, scenario) in sorted(seqs.items(), key=lambda kv: kv[0]):
        lv = [v for _, v in sorted(lts, key=lambda tv: tv[0])]
        cv = [v for _, v in sorted(cts, key=lambda tv: tv[0])]
        if _monotonic(lv) and not _monotonic(cv):
            yield PairResult(
                conn=conn,
                key=f"monotonic:{path}",
                kind=ExchangeKind.EVENT,
                group="<envelope>",
                scenario=scenario or None,
                equal=False,
                stage="explain",
                diffs=(Diff(path, DiffKind.ORDER, show(lv), show(cv)),),
                fields_total=1,
            )


def _monotonic(values: list[Json]) -> bool:
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return all(a < b for a, b in zip(nums, nums[1:], strict=False)) and len(nums) == len(values)
