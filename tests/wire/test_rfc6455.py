"""wire.rfc6455: the relay's frame reader, checked against frames serialized by an independent implementation
(python-websockets' sans-I/O ``Frame``), fed whole, byte by byte and in random slices."""

from __future__ import annotations

import random

import pytest
from websockets.frames import Close as WsClose
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from wire.rfc6455 import BINARY, TEXT, Close, FrameReader, Message, accept_key, close_frame


def _frames(*frames: Frame, mask: bool = True) -> bytes:
    return b"".join(f.serialize(mask=mask) for f in frames)


BIG = bytes(random.Random(7).randrange(256) for _ in range(70_000))  # a 64-bit length header
STREAM = [
    Frame(Opcode.TEXT, b'{"type":"req","id":"1","method":"health"}'),
    Frame(Opcode.BINARY, BIG),
    Frame(Opcode.TEXT, "h\u00e9l".encode(), fin=False),
    Frame(Opcode.PING, b"are you there"),  # a control frame between two fragments
    Frame(Opcode.CONT, b"", fin=False),
    Frame(Opcode.CONT, "lo \u2603".encode()),
    Frame(Opcode.PONG, b""),
    Frame(Opcode.TEXT, b""),
    Frame(Opcode.CLOSE, WsClose(4001, "bye \u2603").serialize()),
]
EXPECTED = [
    Message(TEXT, b'{"type":"req","id":"1","method":"health"}', 41),
    Message(BINARY, BIG, len(BIG)),
    Message(TEXT, "h\u00e9llo \u2603".encode(), len("h\u00e9llo \u2603".encode())),
    Message(TEXT, b"", 0),
    Close(4001, "bye \u2603"),
]


def _slices(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.choice((1, 2, 3, 7, 64, 1000, 40_000))
        out.append(data[i:i + n])
        i += n
    return out


@pytest.mark.parametrize("mask", [True, False], ids=["client-masked", "server-plain"])
@pytest.mark.parametrize("split", ["whole", "bytewise", "random"])
def test_messages_are_the_same_however_the_stream_is_sliced(mask: bool, split: str) -> None:
    data = _frames(*STREAM, mask=mask)
    parts = {"whole": [data], "bytewise": [data[i:i + 1] for i in range(len(data))],
             "random": _slices(data, random.Random(3))}[split]
    reader = FrameReader(keep=1 << 20)
    got = [m for p in parts for m in reader.feed(p)]
    assert got == EXPECTED
    assert reader.error is None and reader.at_boundary


def test_at_boundary_only_between_frames() -> None:
    data = _frames(Frame(Opcode.TEXT, b"x" * 300))
    reader = FrameReader(keep=1024)
    assert reader.at_boundary
    assert reader.feed(data[:3]) == [] and not reader.at_boundary  # a head not complete
    assert reader.feed(data[3:100]) == [] and not reader.at_boundary  # a payload not complete
    assert reader.feed(data[100:]) == [Message(TEXT, b"x" * 300, 300)] and reader.at_boundary


def test_a_message_over_keep_is_cut_and_the_next_is_whole() -> None:
    reader = FrameReader(keep=10)
    data = _frames(Frame(Opcode.TEXT, b"a" * 6, fin=False), Frame(Opcode.CONT, b"b" * 94),
                   Frame(Opcode.TEXT, b"0123456789"))
    cut, whole = reader.feed(data)
    assert cut == Message(TEXT, b"aaaaaabbbb", 100) and cut.truncated
    assert whole == Message(TEXT, b"0123456789", 10) and not whole.truncated


def test_close_without_a_code_reads_1005() -> None:
    assert FrameReader(keep=10).feed(_frames(Frame(Opcode.CLOSE, b""))) == [Close(1005, "")]


@pytest.mark.parametrize(("raw", "why"), [
    (bytes((0xC1, 0x80)) + b"\0\0\0\0", "RSV bit"),  # compressed frame, no extension negotiated
    (bytes((0x83, 0x00)), "reserved data opcode"),
    (bytes((0x8B, 0x00)), "reserved control opcode"),
    (bytes((0x80, 0x00)), "continuation without a message"),
    (bytes((0x09, 0x00)), "fragmented or oversized control"),  # a ping without FIN
    (bytes((0x89, 0x7E, 0x00, 0x7E)) + b"p" * 126, "fragmented or oversized control"),
    (bytes((0x01, 0x01)) + b"a" + bytes((0x81, 0x01)) + b"b", "new message inside a fragmented one"),
    (bytes((0x88, 0x01)) + b"x", "one-byte payload"),
    (bytes((0x82, 0x7F)) + (1 << 63).to_bytes(8, "big"), "high bit"),
])
def test_a_violation_stops_reading_that_direction(raw: bytes, why: str) -> None:
    reader = FrameReader(keep=1024)
    reader.feed(raw)
    assert reader.error is not None and why in reader.error
    assert reader.feed(_frames(Frame(Opcode.TEXT, b"later"))) == []  # nothing more is read, nothing raised
    assert not reader.at_boundary  # where the next frame would start is unknown


def test_accept_key_is_rfc6455s_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3


def test_close_frame_is_a_valid_server_close_with_the_reason_cut_to_fit() -> None:
    frame = close_frame(1011, "legacy gateway unavailable (connect)")
    assert frame[0] == 0x88 and not frame[1] & 0x80  # FIN + close, unmasked
    parsed = WsClose.parse(frame[2:])
    assert (parsed.code, parsed.reason) == (1011, "legacy gateway unavailable (connect)")
    long = close_frame(1001, "x" * 300)
    assert len(long) == 2 + 125 and FrameReader(keep=0).feed(long) == [Close(1001, "x" * 123)]


def test_close_frame_cuts_a_long_reason_at_a_character_boundary() -> None:
    (close,) = FrameReader(keep=0).feed(close_frame(1011, "\u00e9" * 70))
    assert close == Close(1011, "\u00e9" * 61)  # 122 bytes: the 62nd character would need bytes 123-124
    assert WsClose.parse(close_frame(1011, "\u00e9" * 70)[2:]).reason == "\u00e9" * 61  # valid UTF-8


def test_a_masked_close_frame_reads_back_and_is_masked() -> None:
    frame = close_frame(1001, "proxy shutting down", mask=b"\x01\x02\x03\x04")
    assert frame[1] & 0x80 and frame[2:6] == b"\x01\x02\x03\x04" and b"shutting" not in frame
    assert FrameReader(keep=0).feed(frame) == [Close(1001, "proxy shutting down")]
    stream = StreamReader()  # python-websockets, as a server reading a client's frame
    stream.feed_data(frame)
    with pytest.raises(StopIteration) as done:
        next(Frame.parse(stream.read_exact, mask=True))
    parsed = WsClose.parse(done.value.value.data)
    assert (parsed.code, parsed.reason) == (1001, "proxy shutting down")
