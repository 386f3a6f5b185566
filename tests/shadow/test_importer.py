"""``parity import`` of HAR files (no mitmproxy needed): observations, redaction, and errors naming the JSON path."""

from __future__ import annotations

import base64
import json

import pytest

from parity.cli import main
from recorder.format import read_trace
from shadow.importer import import_file, read_har
from wire.errors import TraceFormatError
from wire.model import Direction, Kind
from wire.redact import Redactor

HAR = {"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": [
    {"startedDateTime": "2026-11-23T10:00:00.000Z", "time": 12.5,
     "request": {"method": "POST", "url": "http://127.0.0.1:18789/tools/invoke?x=1", "httpVersion": "HTTP/1.1",
                 "headers": [{"name": "Authorization", "value": "Bearer SECRET-TOKEN"},
                             {"name": "Content-Type", "value": "application/json"}],
                 "postData": {"mimeType": "application/json", "text": '{"tool":"sessions_list"}'}},
     "response": {"status": 200, "statusText": "OK", "headers": [{"name": "Content-Type", "value": "application/json"}],
                  "content": {"size": 11, "mimeType": "application/json", "text": '{"ok":true}'}}},
    {"startedDateTime": "2026-11-23T10:00:01.000Z", "time": 3,
     "request": {"method": "GET", "url": "http://127.0.0.1:18789/binary", "headers": []},
     "response": {"status": 200, "headers": [], "content": {"size": 3, "encoding": "base64",
                                                             "text": base64.b64encode(b"\xff\x00\xfe").decode()}}},
    {"startedDateTime": "2026-11-23T10:00:02.000Z", "time": 0,
     "request": {"method": "GET", "url": "ws://127.0.0.1:18789/", "headers": []},
     "response": {"status": 101, "headers": [], "content": {"size": 0}},
     "_webSocketMessages": [
         {"type": "receive", "time": 1795471202.1, "opcode": 1,
          "data": '{"type":"event","event":"connect.challenge","payload":{"nonce":"n","ts":1}}'},
         {"type": "send", "time": 1795471202.2, "opcode": 1,
          "data": '{"type":"req","id":"1","method":"connect","params":{"auth":{"token":"SECRET-TOKEN"}}}'}]},
]}}



def test_har_import_writes_a_redacted_trace(tmp_path) -> None:
    src = tmp_path / "session.har"
    src.write_text(json.dumps(HAR))
    out = tmp_path / "out" / "session.jsonl"
    n = import_file(src, out, redactor=Redactor({"GW_TOKEN": "SECRET-TOKEN"}))
    assert n == 7
    text = out.read_text()
    assert "SECRET-TOKEN" not in text and "<GW_TOKEN>" in text
    trace = read_trace(open(out), strict=True)
    assert trace.complete and trace.header.meta["format"] == "har"
    obs = trace.observations
    req = next(o for o in obs if o.kind is Kind.HTTP_REQUEST and o.method == "POST")
    assert req.path == "/tools/invoke?x=1" and req.data == '{"tool":"sessions_list"}'
    res = next(o for o in obs if o.kind is Kind.HTTP_RESPONSE and o.conn == req.conn)
    assert res.status == 200 and res.t == pytest.approx(0.0125)
    binary = next(o for o in obs if o.kind is Kind.HTTP_RESPONSE and o.data_b64)
    assert binary.data_b64 == b"\xff\x00\xfe"
    get = next(o for o in obs if o.kind is Kind.HTTP_REQUEST and o.conn == binary.conn)
    assert get.data == "" and get.data_b64 is None  # an empty body reads as "", like the live paths record it
    ws = [o for o in obs if o.conn.startswith("c")]
    assert [o.kind for o in ws] == [Kind.WS_OPEN, Kind.WS_TEXT, Kind.WS_TEXT]
    assert [o.dir for o in ws[1:]] == [Direction.S2C, Direction.C2S]


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda h: h["log"].pop("entries"), "log.entries: missing"),
    (lambda h: h["log"]["entries"][1]["request"].pop("url"), r"log.entries\[1\].request.url: missing"),
    (lambda h: h["log"]["entries"][0].update(startedDateTime="yesterday"), r"log.entries\[0\].startedDateTime"),
    (lambda h: h["log"]["entries"][1]["response"]["content"].update(text="%%%"),
     r"log.entries\[1\].response.content.text: invalid base64"),
    (lambda h: h["log"]["entries"][2]["_webSocketMessages"].append({"type": "sideways"}),
     r"log.entries\[2\]._webSocketMessages\[2\]"),
])
def test_bad_har_names_file_and_path(tmp_path, mutate, where) -> None:
    har = json.loads(json.dumps(HAR))
    mutate(har)
    src = tmp_path / "bad.har"
    src.write_text(json.dumps(har))
    with pytest.raises(TraceFormatError, match=f"bad.har: {where}"):
        list(read_har(src))
    out = tmp_path / "bad.jsonl"
    with pytest.raises(TraceFormatError):
        import_file(src, out)
    assert not out.exists(), "a failed import must not leave a trace under the final name"


def test_parity_import_command(tmp_path, capsys, monkeypatch) -> None:
    src = tmp_path / "a.har"
    src.write_text(json.dumps(HAR))
    bad = tmp_path / "b.har"
    bad.write_text("{nope")
    monkeypatch.setenv("PARITY_LEGACY_TOKEN", "SECRET-TOKEN")
    assert main(["import", str(src), "--out", str(tmp_path / "t")]) == 0
    assert "SECRET-TOKEN" not in (tmp_path / "t" / "a.jsonl").read_text()
    assert main(["import", str(src), str(bad), "--out", str(tmp_path / "t")]) == 1
    out = capsys.readouterr().out
    assert "b.har: not a HAR file" in out and "a.jsonl (7 observations)" in out
