"""Comparing a joined pair: the comparators, and the diff worker processes that run the one differ off the
event loop.

Owns :data:`Comparator`, :func:`exact_compare`, :class:`ProfileComparator` (``diffing.diff.compare_pair`` with
the profile), the shared process pools (:func:`executor`, spawned, lowered priority, replaced when broken) and
:func:`compare_many`, the picklable batch entry point a worker runs. May import: stdlib, ``wire``, ``diffing``
(lazily), ``shadow.pairer``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from shadow.pairer import Joined
from wire.frames import http_response, parse_observation
from wire.model import Event, Exchange, ExchangeKind, Kind, Leg, Other, Pair, Req, Response
from wire.profiles.base import Profile

__all__ = ["DIFF_BATCH", "Comparator", "Failed", "ProfileComparator", "compare_joined", "compare_many",
           "discard_executor", "exact_compare", "executor", "guarded", "warm"]


#: ``joined -> (equal, detail)``; ``detail`` goes to the store (the differ's result).
Comparator = Callable[[Joined], tuple[bool, Any]]


def exact_compare(joined: Joined) -> tuple[bool, Any]:
    """Byte equality of status and payload: for tests of the pipeline itself, never for parity verdicts."""
    a, b = joined.legs[Leg.LEGACY], joined.legs[Leg.CANDIDATE]
    return a.status == b.status and a.code == b.code and a.body == b.body, None


class ProfileComparator:
    """Compares through ``diffing.diff.compare_pair`` with the profile's normalization (the one differ)."""

    def __init__(self, profile: Profile) -> None:
        from diffing import diff

        self.profile = profile
        self._diff = diff

    def exchange(self, joined: Joined, leg: Leg) -> Exchange:
        obs = joined.legs[leg]
        response: Response
        if obs.kind is Kind.HTTP_RESPONSE:
            kind, response = ExchangeKind.HTTP, http_response(obs)
        else:
            frame = parse_observation(obs)
            assert frame is not None
            kind = ExchangeKind.EVENT if isinstance(frame, Event) else ExchangeKind.WS
            response = frame if not isinstance(frame, Req) else Other(raw=frame.raw, value=frame.value,
                                                                      problem="a req frame from the server")
        return Exchange(leg=leg, conn=joined.conn, key=joined.key, kind=kind, group=joined.route,
                        responses=(response,), t_start=obs.t, t_end=obs.t)

    def pair(self, joined: Joined) -> Pair:
        lx, cx = self.exchange(joined, Leg.LEGACY), self.exchange(joined, Leg.CANDIDATE)
        return Pair(conn=joined.conn, key=joined.key, kind=lx.kind, group=joined.route, legacy=lx, candidate=cx)

    def __call__(self, joined: Joined) -> tuple[bool, Any]:
        result = self._diff.compare_pair(self.pair(joined), self.profile)
        return result.equal, result

    def settle(self, joined: Joined) -> tuple[bool, Any] | None:
        """The verdict when the differ's cheap stages settle the pair (``diffing.diff.settle_pair``), else None:
        the pair needs the explain stage. Raises as :meth:`__call__` does (callers guard it)."""
        result = self._diff.settle_pair(self.pair(joined), self.profile)
        return None if result is None else (result.equal, result)


_EXECUTORS: dict[int, Any] = {}
_WORKER_COMPARATORS: dict[str, ProfileComparator] = {}


def executor(workers: int) -> Any:
    """One shared process pool per size (spawned, not forked: the parent runs an event loop and threads)."""
    pool = _EXECUTORS.get(workers)
    if pool is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = _EXECUTORS[workers] = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                         initializer=_lower_priority)
        if len(_EXECUTORS) == 1:
            import atexit

            atexit.register(_shutdown_executors)
    return pool


def discard_executor(workers: int, broken: Any) -> None:
    """Forget ``broken``, unless a concurrent diff already replaced it (the fresh pool stays)."""
    current = _EXECUTORS.get(workers)
    if current is not None and current is broken:
        del _EXECUTORS[workers]
        current.shutdown(wait=False, cancel_futures=True)


def _shutdown_executors() -> None:
    """Stop the diff workers before interpreter teardown (an executor collected after it logs a spurious error)."""
    while _EXECUTORS:
        _, pool = _EXECUTORS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


def warm() -> None:
    from wire.profiles.openclaw import get_profile

    get_profile("openclaw")


def _lower_priority() -> None:
    """Diff workers yield the CPU to the client path (the proxy, and legacy/candidate on shared cores)."""
    import os

    try:
        os.nice(10)
    except OSError:
        pass


def compare_joined(profile_name: str, joined: Joined) -> tuple[bool, Any]:
    """Runs in a diff worker process: the profile comparator on one pair (picklable in and out)."""
    cmp = _WORKER_COMPARATORS.get(profile_name)
    if cmp is None:
        from wire.profiles.openclaw import get_profile

        cmp = _WORKER_COMPARATORS[profile_name] = ProfileComparator(get_profile(profile_name))
    return cmp(joined)


#: Pairs sent to a diff worker in one message at most (whatever is queued when the worker is free).
DIFF_BATCH = 64


@dataclass(frozen=True, slots=True)
class Failed:
    """A pair whose comparison raised: counted as a diff-stage error, not a mismatch."""

    error: str


_V = TypeVar("_V")


def guarded(cmp: Callable[[Joined], _V], joined: Joined) -> _V | tuple[bool, Failed]:
    """``cmp(joined)``, or a :class:`Failed` verdict when it raised."""
    try:
        return cmp(joined)
    except Exception as exc:  # one bad pair must not cost the rest of its batch
        return False, Failed(f"{type(exc).__name__}: {exc}"[:300])


def compare_many(profile_name: str, batch: list[Joined]) -> list[tuple[bool, Any]]:
    """Runs in a diff worker process: :func:`compare_joined` on each pair of a batch, each guarded."""
    return [guarded(lambda j: compare_joined(profile_name, j), joined) for joined in batch]
