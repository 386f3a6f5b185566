"""Observation values round-trip through their trace-line mapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire.model import Direction, Kind, Leg, Observation

observations = st.builds(
    Observation,
    t=st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda x: round(x, 6)),
    conn=st.text(min_size=1, max_size=8),
    leg=st.sampled_from(Leg),
    dir=st.sampled_from(Direction),
    kind=st.sampled_from(Kind),
    data=st.none() | st.text(max_size=50),
    data_b64=st.none() | st.binary(max_size=50),
    method=st.none() | st.sampled_from(["GET", "POST"]),
    path=st.none() | st.text(max_size=20),
    status=st.none() | st.integers(100, 599),
    headers=st.lists(st.tuples(st.text(min_size=1, max_size=10), st.text(max_size=10)), max_size=3).map(tuple),
    code=st.none() | st.integers(1000, 4999),
    reason=st.none() | st.text(max_size=20),
    step=st.none() | st.text(max_size=10),
)


@given(observations)
def test_round_trip(obs: Observation) -> None:
    assert Observation.from_json(obs.to_json()) == obs


def test_header_lookup_is_case_insensitive_and_body_prefers_binary() -> None:
    obs = Observation(t=0, conn="h", dir=Direction.S2C, kind=Kind.HTTP_RESPONSE, status=200,
                      headers=(("Content-Type", "text/plain"),), data="x", data_b64=b"\x00")
    assert obs.header("content-type") == "text/plain"
    assert obs.header("missing") is None
    assert obs.body == b"\x00"


@pytest.mark.parametrize(
    "bad",
    [
        {"conn": "c", "dir": "c2s", "kind": "ws-text"},  # no t
        {"t": 0, "conn": "c", "dir": "sideways", "kind": "ws-text"},
        {"t": 0, "conn": "c", "dir": "c2s", "kind": "ws-text", "status": "200"},
        {"t": 0, "conn": "c", "dir": "c2s", "kind": "ws-text", "status": True},
        {"t": 0, "conn": "c", "dir": "c2s", "kind": "ws-binary", "b64": "!!notbase64"},
    ],
)
def test_bad_mappings_raise_builtin_errors(bad: dict[str, object]) -> None:
    with pytest.raises((KeyError, ValueError, TypeError)):
        Observation.from_json(bad)


def test_from_json_rejects_wrong_field_types() -> None:
    import pytest as _pytest

    from wire.model import Observation as _Obs

    with _pytest.raises(TypeError, match="expected a string"):
        _Obs.from_json({"t": 0, "conn": "c", "dir": "c2s", "kind": "ws-text", "data": 5})
    with _pytest.raises(TypeError, match="expected an integer"):
        _Obs.from_json({"t": 0, "conn": "c", "dir": "s2c", "kind": "http-response", "status": True})


def test_observation_pickles_every_field() -> None:
    """``Observation.__reduce__`` lists the fields by hand (speed): a new field must be added there too."""
    import dataclasses
    import pickle

    values = {"t": 1.5, "conn": "h7", "leg": Leg.CANDIDATE, "dir": Direction.S2C, "kind": Kind.HTTP_RESPONSE,
              "data": "d", "data_b64": b"\x00", "method": "GET", "path": "/p", "status": 204,
              "headers": (("A", "b"),), "code": 1000, "reason": "r", "step": "s1"}
    assert {f.name for f in dataclasses.fields(Observation)} == set(values)
    obs = Observation(**values)
    assert pickle.loads(pickle.dumps(obs, protocol=pickle.HIGHEST_PROTOCOL)) == obs
