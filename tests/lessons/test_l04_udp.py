"""Lesson helpers of 03 (server loop) and 04 (UDP): the claims the lessons print hold on this machine."""
from __future__ import annotations

import socket
import sys

import pytest

from socketlessons import UDPEchoServer
from socketlessons.lessons.l04_udp import demos as udp
from socketlessons.measure import Point


def test_small_buffer_truncates_and_the_rest_is_lost():
    t = udp.truncation_probe(size=100, bufsize=10)
    if sys.platform == "win32":
        assert t.got is None and "OSError" in t.error
    else:
        assert t.got == 10 and not t.rest_arrived
        assert "90 bytes are lost" in str(t)


@pytest.mark.skipif(not hasattr(socket.socket, "recvmsg"), reason="no recvmsg on this platform")
def test_recvmsg_reports_msg_trunc():
    text = udp.msg_trunc_probe(size=100, bufsize=10)
    assert "MSG_TRUNC is set" in text
    if sys.platform.startswith("linux"):
        assert "returned 100" in text


@pytest.mark.skipif(sys.platform != "linux", reason="other systems may cap datagrams lower (macOS: 9216)")
def test_largest_ipv4_datagram_is_65507_and_one_more_raises():
    limit, error = udp.largest_datagram("127.0.0.1")
    assert limit == 65_507
    assert "Message too long" in error
    with udp.udp_pair() as (tx, rx):
        with pytest.raises(OSError, match="too long"):
            tx.sendto(b"x" * 65_508, rx.getsockname())


def test_datagram_boundaries_are_kept():
    with udp.udp_pair() as (tx, rx):
        for m in (b"one", b"two", b"three"):
            tx.sendto(m, rx.getsockname())
        assert [rx.recvfrom(1024)[0] for _ in range(3)] == [b"one", b"two", b"three"]


def test_exchange_counts_match_what_the_server_did():
    with UDPEchoServer(loss=0.2, duplicate=0.2, jitter=0.005, seed=11) as server:
        ex = udp.numbered_exchange(server.address, 60, wait=0.2)
    assert ex.lost == server.dropped > 0
    assert ex.duplicates == server.duplicated > 0
    assert udp.arrival_plot(ex)._repr_png_().startswith(b"\x89PNG")


@pytest.mark.parametrize("arrivals, lost, dups, late", [
    ((0, 1, 2), 0, 0, 0), ((1, 0, 2), 0, 0, 1), ((0, 0, 2), 1, 1, 0), ((2, 1, 0, 0), 0, 1, 2),
])
def test_exchange_arithmetic(arrivals, lost, dups, late):
    ex = udp.Exchange(3, arrivals)
    assert (ex.lost, ex.duplicates, ex.reordered) == (lost, dups, late)


def test_rtt_summary():
    assert "loss 50%" in udp.rtt_summary([0.001, None])
    assert "all lost" in udp.rtt_summary([None, None])


def test_ping_panel_measures_the_loss_it_was_given():
    panel = udp.PingPanel(loss=0.0, count=20, timeout=0.05)
    assert panel.run()
    assert panel.rtts.count(None) == 0
    panel.loss.value = 0.9
    assert panel.run()
    assert panel.rtts.count(None) > 5  # 90 % loss, no retries: most pings lost
    assert "you measured" in panel.summary
    assert panel.snapshot().data.startswith(b"\x89PNG")


def test_datagram_timer_sends_and_receives_k_bytes():
    with udp.datagram_timer()(4096) as op:
        op()  # a datagram that did not come back would raise TimeoutError here
    with pytest.raises(ValueError, match="65,507"):
        with udp.datagram_timer()(70_000):
            pass


def _line(xs, fixed, per_byte, series="udp"):
    return [Point(x, fixed + per_byte * x, fixed + per_byte * x, fixed + per_byte * x, 5, series, {}) for x in xs]


def test_datagram_verdict_names_the_fixed_and_per_byte_costs():
    xs = [16, 128, 1024, 8192, 65507]
    v = udp.datagram_verdict(_line(xs, 5_000, 0.03))
    assert v.status == "refined" and "5.00 µs" in v.text and "0.030 ns per byte" in v.text
    assert udp.datagram_verdict(_line(xs, 5_000, 0.0)).status == "contradicted"
    noisy = [Point(x, y, y, y, 5, "udp", {}) for x, y in zip(xs, [9_000, 2_000, 8_000, 1_000, 9_500])]
    assert udp.datagram_verdict(noisy).status == "inconclusive"
    with pytest.raises(ValueError):
        udp.datagram_verdict(_line(xs[:2], 5_000, 0.03))


def test_chance_range_narrows_with_more_pings():
    assert udp.chance_range(0.2, 60) == "With 60 pings, chance alone gives about 10% to 30% (in 95 % of runs)."
    assert udp.chance_range(0.2, 6000) == "With 6000 pings, chance alone gives about 19% to 21% (in 95 % of runs)."
    assert "about 0% to 0%" in udp.chance_range(0.0, 60)

