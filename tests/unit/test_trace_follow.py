"""--follow's pieces without a network: time ordering of lines, reading a stream."""

from __future__ import annotations

from tasks.trace.follow import Entry, Merger, Stream, format_entry
from tasks.trace.logs import MARK, Tail

RID = "a" * 32


def test_lines_come_out_in_log_time_order_after_the_hold() -> None:
    merger = Merger(hold=1.0)
    merger.push("rp1", f'100.400 {RID} 10.5.1.1 "GET / HTTP/1.1" 200 - - - 0.001', arrived=100.5)
    merger.push("web1", f'100.300 {RID} 10.5.1.1 "GET / HTTP/1.0" 200 1 web1.tp5.b2',
                arrived=100.6)
    merger.push("web2", f'101.000 {RID} 10.5.1.1 "GET / HTTP/1.0" 200 1 web2.tp5.b2',
                arrived=101.1)
    assert merger.ready(now=101.0) == []  # web1's 100.3 could still be beaten: hold
    assert [e.node for e in merger.ready(now=101.45)] == ["web1", "rp1"]
    assert [e.node for e in merger.rest()] == ["web2"]
    assert merger.rest() == []


def test_a_line_without_a_time_is_placed_at_its_arrival() -> None:
    merger = Merger(hold=0.0)
    merger.push("rp1", "not a log line", arrived=50.0)
    merger.push("web1", f'49.0 {RID} 10.5.1.1 "GET / HTTP/1.0" 200 1 web1.tp5.b2', arrived=51.0)
    assert [e.time for e in merger.ready(now=60.0)] == [49.0, 50.0]


def test_format_entry_puts_the_node_name_on_the_line() -> None:
    text = format_entry(Entry(0.5, 0, "rp1", "the line"), width=4)
    assert text.endswith(".500  rp1   the line") and len(text.split()[0]) == 12


class FakeChannel:
    """Chunks as paramiko's Channel delivers them (recv_ready/recv, eof_received once the
    remote end closed its output)."""

    def __init__(self, chunks: list[bytes], exits: bool = False) -> None:
        self.chunks, self.exits = list(chunks), exits

    def recv_ready(self) -> bool:
        return bool(self.chunks)

    def recv(self, _size: int) -> bytes:
        return self.chunks.pop(0)

    @property
    def eof_received(self) -> bool:
        return self.exits and not self.chunks


def test_a_stream_reads_the_pid_then_whole_lines_only() -> None:
    channel = FakeChannel([f"{MARK}pid 4242\nfirst li".encode(), b"ne\nsecond"])
    stream = Stream(Tail("web1", "web", "/var/log/x", channel))
    assert stream.read() == ["first line"]
    assert stream.tail.pid == 4242 and not stream.ended
    channel.chunks.append(b" line\r\n")
    assert stream.read() == ["second line"]


def test_a_stream_that_ends_says_so() -> None:
    stream = Stream(Tail("rp1", "proxy", "/x", FakeChannel([f"{MARK}pid 7\n".encode()], True)))
    assert stream.read() == [] and stream.ended and stream.tail.pid == 7
