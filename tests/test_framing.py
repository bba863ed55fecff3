"""Framing: pure decoders (table-driven and a chunking property) and the socket functions."""

from __future__ import annotations

import random
import socket
import struct
import threading

import pytest

from socketlessons.framing import (
    HEADER,
    DelimitedDecoder,
    FramingError,
    LengthPrefixDecoder,
    ProtocolError,
    answer,
    encode_frame,
    encode_line,
    encode_request,
    parse_request,
    parse_response,
    recv_exactly,
    recv_message,
    recv_up_to,
    request,
    send_message,
    split_delimited,
    split_frames,
)

# ---- table-driven: delimiters ------------------------------------------------------------------

DELIMITED_CASES = [
    # (buffer, delimiter, messages, rest)
    (b"", b"\n", [], b""),
    (b"abc", b"\n", [], b"abc"),
    (b"abc\n", b"\n", [b"abc"], b""),
    (b"a\nb\nc", b"\n", [b"a", b"b"], b"c"),
    (b"\n\n", b"\n", [b"", b""], b""),
    (b"a\r\nb\r\n", b"\r\n", [b"a", b"b"], b""),
    (b"a\r\nb\r", b"\r\n", [b"a"], b"b\r"),
]


@pytest.mark.parametrize(("buffer", "delimiter", "messages", "rest"), DELIMITED_CASES)
def test_split_delimited(buffer, delimiter, messages, rest):
    assert split_delimited(buffer, delimiter) == (messages, rest)
    decoder = DelimitedDecoder(delimiter)
    assert decoder.feed(buffer) == messages and decoder.pending == len(rest)


def test_encode_line_refuses_the_delimiter_inside_a_message():
    assert encode_line(b"hi") == b"hi\n"
    with pytest.raises(FramingError, match="length prefix"):
        encode_line(b"two\nlines")


def test_delimited_decoder_bounds_memory():
    decoder = DelimitedDecoder(max_size=10)
    decoder.feed(b"x" * 10)
    with pytest.raises(FramingError, match="no delimiter"):
        decoder.feed(b"y")


def test_a_delimiter_cut_between_chunks_is_found():
    decoder = DelimitedDecoder(b"\r\n")
    assert decoder.feed(b"abc\r") == [] and decoder.feed(b"\ndef") == [b"abc"]


# ---- table-driven: length prefixes -------------------------------------------------------------

FRAME_CASES = [
    # (message, frame)
    (b"", b"\x00\x00\x00\x00"),
    (b"hello", b"\x00\x00\x00\x05hello"),
    (b"\n", b"\x00\x00\x00\x01\n"),
    (b"x" * 256, b"\x00\x00\x01\x00" + b"x" * 256),
]


@pytest.mark.parametrize(("message", "frame"), FRAME_CASES)
def test_encode_frame_is_network_byte_order(message, frame):
    assert encode_frame(message) == frame
    assert split_frames(frame) == ([message], b"")


def test_incomplete_frames_stay_pending():
    frame = encode_frame(b"hello")
    for cut in range(len(frame)):
        assert split_frames(frame[:cut]) == ([], frame[:cut])


def test_other_headers_work():
    short = struct.Struct("!H")
    assert encode_frame(b"ab", short) == b"\x00\x02ab"
    with pytest.raises(FramingError, match="does not fit"):
        encode_frame(b"x" * 70_000, short)


def test_a_header_too_large_says_byte_order():
    little = struct.pack("<I", 5) + b"hello"  # what a native-order writer sends on x86
    with pytest.raises(FramingError, match="byte order"):
        LengthPrefixDecoder(max_size=1000).feed(little)


@pytest.mark.parametrize("bad", ["text", 42])
def test_bytes_only_with_the_fix_named(bad):
    with pytest.raises(TypeError, match="bytes"):
        encode_frame(bad)


# ---- the property: however the stream is cut, the messages are the same ------------------------


def random_messages(rng: random.Random, count: int) -> list[bytes]:
    sizes = [rng.choice([0, 1, 2, 5, 100, 3000]) for _ in range(count)]
    return [bytes(rng.randrange(256) for _ in range(n)) for n in sizes]


def cuttings(stream: bytes, rng: random.Random) -> dict[str, list[bytes]]:
    """The same stream sent all at once, byte by byte, and in random chunks."""
    chunks, i = [], 0
    while i < len(stream):
        step = rng.randint(1, 64)
        chunks.append(stream[i : i + step])
        i += step
    return {"whole": [stream], "bytes": [stream[i : i + 1] for i in range(len(stream))], "random": chunks}


def decode_all(decoder, chunks):
    out = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_length_prefix_decoding_does_not_depend_on_the_cutting(seed):
    rng = random.Random(seed)
    messages = random_messages(rng, rng.randint(0, 8))
    stream = b"".join(encode_frame(m) for m in messages)
    for how, chunks in cuttings(stream, rng).items():
        decoder = LengthPrefixDecoder()
        assert decode_all(decoder, chunks) == messages, how
        assert decoder.pending == 0


@pytest.mark.parametrize("seed", range(20))
def test_delimited_decoding_does_not_depend_on_the_cutting(seed):
    rng = random.Random(seed)
    delimiter = rng.choice([b"\n", b"\r\n", b"\x00END\x00"])
    messages = [m.replace(delimiter[:1], b"") for m in random_messages(rng, rng.randint(0, 8))]
    stream = b"".join(encode_line(m, delimiter) for m in messages)
    for how, chunks in cuttings(stream, rng).items():
        assert decode_all(DelimitedDecoder(delimiter), chunks) == messages, how


# ---- on real sockets (a socket pair: no server needed) ------------------------------------------


def dribble(sock: socket.socket, data: bytes, piece: int) -> threading.Thread:
    def run():
        for i in range(0, len(data), piece):
            sock.sendall(data[i : i + piece])
        sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("piece", [1, 3, 1000])
def test_recv_exactly_and_recv_message_over_a_dribbling_stream(piece):
    messages = [b"hello", b"", b"x" * 5000]
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        writer = dribble(a, b"".join(encode_frame(m) for m in messages) + b"tail", piece)
        assert [recv_message(b) for _ in messages] == messages
        assert recv_exactly(b, 4) == b"tail"
        assert recv_message(b) is None  # a clean end between messages
        writer.join(5)


def test_recv_exactly_raises_on_an_early_end():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        a.sendall(b"abc")
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(EOFError, match="3 of 10"):
            recv_exactly(b, 10)


@pytest.mark.parametrize("piece", [1, 1000])
def test_recv_up_to_returns_what_came_before_the_end(piece):
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        writer = dribble(a, b"abcdefgh", piece)
        assert recv_up_to(b, 5) == b"abcde"  # stops at n, leaves the rest
        writer.join(5)  # the writer has sent everything and shut down its side
        assert recv_up_to(b, 10) == b"fgh"  # the peer closed: fewer, no error
        assert recv_up_to(b, 10) == b""


def test_recv_message_cut_in_the_middle_raises():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        a.sendall(encode_frame(b"hello")[:6])
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(EOFError):
            recv_message(b)


def test_recv_exactly_checks_n():
    a, b = socket.socketpair()
    with a, b, pytest.raises(ValueError, match="non-negative"):
        recv_exactly(b, -1)


# ---- the protocol ------------------------------------------------------------------------------

PROTOCOL_CASES = [
    (b"PING", b"OK PONG"),
    (b"ECHO hi there", b"OK hi there"),
    (b"upper abc", b"OK ABC"),
    (b"REVERSE abc", b"OK cba"),
    (b"LEN hello", b"OK 5"),
    (b"LEN", b"OK 0"),
]


@pytest.mark.parametrize(("body", "response"), PROTOCOL_CASES)
def test_answer(body, response):
    assert answer(body) == response


def test_unknown_command_is_an_error_naming_the_known_ones():
    assert answer(b"FLY away").startswith(b"ERR unknown command FLY; known: PING")
    with pytest.raises(ProtocolError, match="unknown command"):
        parse_response(answer(b"FLY"))


def test_encode_and_parse_request():
    assert encode_request("upper", b"x") == b"UPPER x" and parse_request(b"UPPER x") == (b"UPPER", b"x")
    with pytest.raises(ValueError, match="one non-empty word"):
        encode_request("two words")


def test_request_round_trip_over_a_socket_pair():
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(5)
        b.settimeout(5)

        def serve():
            while (body := recv_message(b)) is not None:
                send_message(b, answer(body))

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        assert request(a, "UPPER", b"glued") == b"GLUED"
        assert request(a, "LEN", b"four") == b"4"
        a.shutdown(socket.SHUT_WR)
        server.join(5)
        assert not server.is_alive()


def test_header_is_four_bytes_everywhere():
    assert HEADER.size == 4 and HEADER.format == "!I"
