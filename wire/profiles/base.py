"""The protocol profile: everything protocol-specific the pipeline needs, as data plus small pure hooks.

Owns :class:`Profile`, :class:`WritePolicy` and :class:`RouteSpec`. A profile plays the role of Diffy's lifters:
it says how to classify frames, which rules normalize documents, which events are timer noise, which methods may
answer twice, which requests may be mirrored to the candidate, and which bounded labels to use in metrics.

Stdlib and ``wire`` only; pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase

from wire.model import Event, Frame, Json, Observation, Other, Req, Res, SseEvent
from wire.normalize import Normalizer, Rule
from wire.redact import Redactor

__all__ = ["OTHER", "Profile", "RouteSpec", "WritePolicy"]

#: The label used for anything outside the known method/route/event sets (keeps metric labels bounded).
OTHER = "other"


class WritePolicy(StrEnum):
    """What the shadow proxy may do with a request on the candidate leg."""

    MIRROR = "mirror"  # read-only: send to the candidate and compare
    SKIP = "skip"  # side-effecting: never sent to the candidate
    RECORD_ONLY = "record-only"  # recorded in the trace, not mirrored, not compared
    COMPARE_ACK_ONLY = "compare-ack-only"  # mirrored to a sandboxed candidate; only the first ack is compared


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A known HTTP route: method glob, path glob and the bounded template label (``POST /hooks/*``)."""

    method: str
    path: str
    template: str


def _default_lift_sse(events: tuple[SseEvent, ...]) -> Json:
    out: dict[str, list[str]] = {}
    for ev in events:
        out.setdefault(ev.event, []).append(ev.data)
    return {k: "".join(v) for k, v in out.items()}


def _never(_event: Event) -> bool:
    return False


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """A protocol profile (selected by name, e.g. ``openclaw``).

    Attributes:
        name: profile name.
        rules: normalization rules (see :mod:`wire.normalize`), each with a reason.
        multi_response: methods that may answer one request id with one or two ``res`` frames.
        timer_events: event names sent on timers or by background work: excluded from pairing and diffing.
        progress: says which events are intermediate progress updates (their number depends on timing, e.g. a
            task's ``running`` upserts): keyed apart (``progress:<name>#<k>``) and excluded from pairing like
            timer events, so the final-state events of that name keep stable ordinals and are still compared.
        event_window: seconds an unsolicited event waits for its counterpart on the other leg.
        response_timeout: seconds a request waits for a response before it is reported as timed out.
        methods: known WS method names (bounded labels); others are labelled ``other``.
        events: known event names (bounded labels).
        routes: known HTTP routes, first match wins.
        write_policies: (method-or-route glob, policy), first match wins; ``default_write_policy`` otherwise.
        lift_sse: turns split SSE events into one comparable JSON value (chunk boundaries removed).
        redactor: masks secrets before anything is stored.
    """

    name: str
    rules: tuple[Rule, ...] = ()
    multi_response: frozenset[str] = frozenset()
    timer_events: frozenset[str] = frozenset()
    event_window: float = 5.0
    response_timeout: float = 30.0
    methods: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()
    routes: tuple[RouteSpec, ...] = ()
    write_policies: tuple[tuple[str, WritePolicy], ...] = ()
    default_write_policy: WritePolicy = WritePolicy.MIRROR
    lift_sse: Callable[[tuple[SseEvent, ...]], Json] = _default_lift_sse
    progress: Callable[[Event], bool] = _never
    redactor: Redactor = field(default_factory=Redactor)
    _normalizer: list[Normalizer] = field(default_factory=list, compare=False, repr=False)

    # --- classification and labels ----------------------------------------------------------------------------

    def classify(self, frame: Frame) -> tuple[str, str]:
        """``(kind, key)``: ``("req", id)``, ``("res", id)``, ``("event", name)`` or ``("other", "")``."""
        if isinstance(frame, Req):
            return "req", frame.id
        if isinstance(frame, Res):
            return "res", frame.id
        if isinstance(frame, Event):
            return "event", frame.event
        assert isinstance(frame, Other)
        return "other", ""

    def method_label(self, method: str) -> str:
        """The method itself when known, else ``other``."""
        return method if method in self.methods else OTHER

    def event_label(self, event: str) -> str:
        return event if event in self.events else OTHER

    def route_template(self, method: str, path: str | None = None) -> str:
        """A BOUNDED label: with ``path``, the HTTP route template (``GET /healthz``); without, the WS method.

        Unknown methods and routes give ``other``; the query string is ignored.
        """
        if path is None:
            return self.method_label(method)
        bare = path.split("?", 1)[0]
        for spec in self.routes:
            if fnmatchcase(method.upper(), spec.method) and fnmatchcase(bare, spec.path):
                return spec.template
        return OTHER

    def write_policy(self, name: str) -> WritePolicy:
        """Policy for a WS method name or an HTTP route template (``POST /hooks/*``)."""
        for pattern, policy in self.write_policies:
            if fnmatchcase(name, pattern):
                return policy
        return self.default_write_policy

    # --- normalization and redaction --------------------------------------------------------------------------

    @property
    def normalizer(self) -> Normalizer:
        """The compiled rules (built once per profile instance)."""
        if not self._normalizer:
            self._normalizer.append(Normalizer(self.rules))
        return self._normalizer[0]

    def with_rules(self, extra: tuple[Rule, ...]) -> Profile:
        """A copy with user rules layered after the profile's own (user rules see the profile's output)."""
        return Profile(
            name=self.name,
            rules=self.rules + extra,
            multi_response=self.multi_response,
            timer_events=self.timer_events,
            event_window=self.event_window,
            response_timeout=self.response_timeout,
            methods=self.methods,
            events=self.events,
            routes=self.routes,
            write_policies=self.write_policies,
            default_write_policy=self.default_write_policy,
            lift_sse=self.lift_sse,
            progress=self.progress,
            redactor=self.redactor,
        )

    def redact(self, obs: Observation) -> Observation:
        """The observation with every secret masked (see :class:`wire.redact.Redactor`)."""
        return self.redactor.observation(obs)
