"""Lesson 04 (UDP): the harness behind its cells and verdicts, on real loopback sockets, and each
verdict function on synthetic numbers that should give each outcome."""
from __future__ import annotations

import math
import re
import socket
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketlessons import UDPEchoServer
from socketlessons.lessons.l04_udp import claims
from socketlessons.lessons.l04_udp import demos as udp
from socketlessons.measure import Load, Point

from ._cells import cell_with, code_cells, run_cells


@pytest.mark.skipif(sys.platform != "linux", reason="other systems may cap datagrams lower (macOS: 9216)")
def test_largest_ipv4_datagram_is_65507_and_one_more_raises(no_leaks):
    limit, error = udp.largest_datagram("127.0.0.1")
    assert limit == 65_507
    assert "Message too long" in error
    with udp.udp_pair() as (tx, rx):
        with pytest.raises(OSError, match="too long"):
            tx.sendto(b"x" * 65_508, rx.getsockname())


def test_the_lessons_socket_cells_print_what_the_text_says():
    """The truncation, MSG_TRUNC, size-limit and connected-socket cells, run in a kernel."""
    cells = code_cells("04_udp.ipynb")
    wanted = ["import errno", "srv = socket.socket", "srv.recvfrom(10)", "recvmsg(10)", "65_508",
              "connected.connect(nobody)"]
    out = run_cells([cell_with(cells, text) for text in wanted[:2]] + [cell_with(cells, "nobody = port_nobody_uses")]
                    + [cell_with(cells, text) for text in wanted[2:]])
    trunc, trunc_msg, limit, connected = out[3], out[4], out[5], out[6]
    if sys.platform.startswith("linux"):
        assert "returned 10 bytes" in trunc and "the other 90 bytes are gone" in trunc
        assert "MSG_TRUNC set: True" in trunc_msg and "returned 100" in trunc_msg
        assert "65,507 bytes: sent" in limit and "EMSGSIZE" in limit
        assert "ConnectionRefusedError" in connected


def test_exchange_counts_match_what_the_server_did(no_leaks):
    with UDPEchoServer(loss=0.2, duplicate=0.2, jitter=0.005, seed=11) as server:
        ex = udp.numbered_exchange(server.address, 60, wait=0.2)
    assert ex.lost == server.dropped > 0
    assert ex.duplicates == server.duplicated > 0


def test_arrival_plot_draws():  # no no_leaks: matplotlib keeps its font files open once loaded
    assert udp.arrival_plot(udp.Exchange(4, (0, 2, 1, 1)))._repr_png_().startswith(b"\x89PNG")


@pytest.mark.parametrize("arrivals, lost, dups, late", [
    ((0, 1, 2), 0, 0, 0), ((1, 0, 2), 0, 0, 1), ((0, 0, 2), 1, 1, 0), ((2, 1, 0, 0), 0, 1, 2),
])
def test_exchange_arithmetic(arrivals, lost, dups, late):
    ex = udp.Exchange(3, arrivals)
    assert (ex.lost, ex.duplicates, ex.reordered) == (lost, dups, late)


def test_rtt_summary():
    assert "loss 50%" in udp.rtt_summary([0.001, None])
    assert "all lost" in udp.rtt_summary([None, None])
    three_of_40 = [None] * 3 + [0.001] * 37  # the loss verdict says "3 of 40 lost (8%)": the summary must agree
    assert "3 lost (loss 8%)" in udp.rtt_summary(three_of_40), udp.rtt_summary(three_of_40)


def test_ping_series_counts_losses_and_names_late_replies(no_leaks):
    with UDPEchoServer(loss=1.0) as server:
        run = udp.ping_series(server.address, 3, timeout=0.02, retries=1)
    assert run.rtts == [None] * 3 and set(run.waited) == {0, 1, 2} and not run.late
    assert all(w >= 0.04 for w in run.waited.values())  # two attempts of 20 ms each, measured
    with UDPEchoServer(delay=0.03) as server:  # every reply after the 20 ms timeout
        run = udp.ping_series(server.address, 4, timeout=0.02)
    assert run.lost == 4 and run.late  # replies to earlier pings turned up while later ones waited
    with pytest.raises(ValueError, match="count"):
        udp.ping_series(("127.0.0.1", 9), 0)


def test_ping_panel_plots_lost_pings_at_the_time_waited():  # the panel worker keeps fonts open
    panel = udp.PingPanel(loss=0.0, count=20, timeout=0.05)
    assert panel.run()
    assert panel.rtts.count(None) == 0 and panel.verdict.status == "confirmed"
    panel.loss.value, panel.retries.value = 0.9, 1
    assert panel.run()
    lost = [p for p in panel.plot.points if p.series == udp.LOST]
    assert len(lost) == panel.rtts.count(None) > 5  # 90 % loss, one retry: most pings lost
    waited = [panel.result.waited[int(p.x)] * 1e9 for p in lost]
    assert [p.median_ns for p in lost] == waited  # at the time waited, not at a fixed height
    assert all(w >= 2 * 0.05e9 for w in waited)
    assert panel.snapshot().data.startswith(b"\x89PNG")
    # the saved snapshot names its run's settings, and the height where a lost ping lands
    assert "90% loss, 1 retry, 50 ms timeout" in panel.plot.title, panel.plot.title
    assert [r.y for r in panel.plot.references if r.label.startswith("given up")] == [pytest.approx(100)]
    panel.retries.value = 0
    assert panel.run()
    assert "0 retries" in panel.plot.title and not [r for r in panel.plot.references if r.label.startswith("given")]


# ---- datagram_verdict on synthetic points ---------------------------------------------------------

XS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65507]


def _points(ys, xs=XS):
    return [Point(x, y * 1.1, y, y * 1.2, 12, "udp", {}, "", y * 0.95, y) for x, y in zip(xs, ys)]


def test_datagram_verdict_clean_affine_is_refined_with_the_fitted_numbers():
    v = udp.datagram_verdict(_points([2_000 + 0.05 * x for x in XS]))
    assert v.status == "refined"
    assert "fixed 2.00 µs per datagram + 0.050 ns per byte" in v.text and "R² 1.00" in v.text
    assert "65,507 bytes cost 5.28 µs, 16 bytes 2.00 µs (2.6×)" in v.text


def test_datagram_verdict_flat_is_contradicted():
    v = udp.datagram_verdict(_points([2_000 + (x % 3) for x in XS]))
    assert v.status == "contradicted" and "does not grow with k" in v.text


def test_datagram_verdict_noisy_is_inconclusive_and_says_why():
    ys = [2_000 + 0.05 * x + (3_000 if i % 2 else 0) for i, x in enumerate(XS)]
    v = udp.datagram_verdict(_points(ys), load=Load(6.0, 2))
    assert v.status == "inconclusive" and v.rerun_helps
    assert "R² 0." in v.text and "load average 6.0 on 2 cores" in v.text and "running again" in v.text


def test_datagram_verdict_cliff_is_not_called_affine():
    ys = [2_000 if x < 8192 else 9_000 for x in XS]  # a step, not a cost per byte
    assert udp.datagram_verdict(_points(ys)).status == "inconclusive"


def test_datagram_verdict_too_few_sizes():
    v = udp.datagram_verdict(_points([2_000, 2_100, 2_500], [16, 1024, 65507]))
    assert v.status == "inconclusive" and "only 3 sizes" in v.text and not v.rerun_helps
    with pytest.raises(ValueError, match="at least 3"):
        udp.datagram_verdict(_points([1, 2], [16, 32]))


def test_datagram_verdict_fits_the_10th_percentile_not_the_median():
    pts = [Point(x, 9_000 + x, 2_000, 9_500 + x, 12, "udp", {}, "", 1_900 + 0.05 * x, 2_000 + 0.05 * x)
           for x in XS]
    assert "fixed 2.00 µs per datagram + 0.050 ns per byte" in udp.datagram_verdict(pts).text
    assert udp.datagram_plot(pts)._repr_png_().startswith(b"\x89PNG")


def test_datagram_verdict_reads_the_low_quantile_of_a_sweep_in_rounds():
    # sweep_rounds (the lesson's sweep) keeps the 10th percentile and the fastest batch in extra
    pts = [Point(x, 9_000 + x, 8_000, 9_500 + x, 40, "udp", {"low": 2_000 + 0.05 * x, "min": 1_900 + 0.05 * x})
           for x in XS]
    assert "fixed 2.00 µs per datagram + 0.050 ns per byte" in udp.datagram_verdict(pts).text
    assert udp.datagram_plot(pts)._repr_png_().startswith(b"\x89PNG")


def test_datagram_sweep_in_rounds_measures_every_size_and_is_judged(no_leaks):
    pts = udp.sweep_rounds(udp.datagram_timer(), [16, 256, 4096, 65507], budget_s=0.2)
    assert [p.x for p in pts] == [16, 256, 4096, 65507] and all(p.extra["low"] > 0 for p in pts)
    assert udp.datagram_verdict(pts).status == "inconclusive"  # 4 sizes: too few for a fit, whatever the times


@settings(max_examples=40, deadline=None)
@given(st.floats(100, 50_000), st.floats(0.001, 1.0))
def test_datagram_verdict_states_only_the_numbers_it_was_given(fixed, per_byte):
    v = udp.datagram_verdict(_points([fixed + per_byte * x for x in XS]))
    top, low = fixed + per_byte * XS[-1], fixed + per_byte * XS[0]
    assert f"cost {top / 1000:.2f} µs" in v.text and f"16 bytes {low / 1000:.2f} µs" in v.text
    if v.status == "refined":
        assert f"+ {per_byte:.3f} ns per byte" in v.text


# ---- loss_verdict on synthetic runs -----------------------------------------------------------------

def _run(n, lost, late=0):
    run = udp.PingRun([None] * lost + [0.001] * (n - lost), {i: 0.05 for i in range(lost)}, set(range(late)))
    return run


def test_binomial_range_is_exact():
    assert udp.binomial_range(60, 0.0) == (0, 0)
    assert udp.binomial_range(60, 1.0) == (60, 60)
    low, high = udp.binomial_range(60, 0.2)
    assert (low, high) == (5, 20)
    assert sum(math.comb(60, k) * 0.2 ** k * 0.8 ** (60 - k) for k in range(low, high + 1)) >= 0.99


@pytest.mark.parametrize("lost, late, status", [
    (12, 0, "confirmed"),  # 20 % of 60: the middle of the range
    (30, 12, "refined"),  # too many, but 12 were answered late: 18 left, inside
    (22, 0, "inconclusive"),  # just outside 99 %, inside 99.9 %
    (45, 0, "contradicted"),  # chance cannot do this
    (3, 0, "inconclusive"),  # too few: outside 99 % at the low end, inside 99.9 %
    (0, 0, "contradicted"),  # none lost at 20 %: less than once in a million runs
])
def test_loss_verdict_outcomes(lost, late, status):
    v = udp.loss_verdict(_run(60, lost, late), 0.2, 0)
    assert v.status == status, v.text
    assert f"{lost} of 60 lost" in v.text
    assert ("Run again" in v.text) == (status == "inconclusive") == v.rerun_helps
    if late and status == "refined":
        assert f"{late} of the lost pings were answered after their timeout" in v.text


def test_loss_verdict_with_retries_uses_p_to_the_1_plus_r():
    v = udp.loss_verdict(_run(60, 7), 0.5, 2)
    assert "about 12.5% of pings lost" in v.text and v.status == "confirmed"


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 200), st.floats(0.0, 0.9), st.integers(0, 3), st.data())
def test_loss_verdict_states_only_the_numbers_it_was_given(n, loss, retries, data):
    lost = data.draw(st.integers(0, n))
    v = udp.loss_verdict(_run(n, lost), loss, retries)
    low, high = udp.binomial_range(n, loss ** (1 + retries), 0.99)
    assert f"{lost} of {n} lost" in v.text and f"gives {low} to {high} lost" in v.text
    assert v.status in ("confirmed", "refined", "inconclusive", "contradicted")
    assert all(int(m.replace(",", "")) in {0, lost, n, low, high, retries, 99, 100, 999, 1000, 1}
               | set(udp.binomial_range(n, loss ** (1 + retries), 0.999))
               for m in re.findall(r"(?<![\d.])\d[\d,]*(?![\d.%])", v.text))


# ---- claims --------------------------------------------------------------------------------------

@pytest.mark.parametrize("claim", claims.CLAIMS, ids=lambda c: c.name)
def test_claims_return_a_status_and_leak_nothing(claim, no_leaks):
    assert claim.run() in ("confirmed", "refined", "contradicted", "inconclusive")


def test_datagram_timer_sends_and_receives_k_bytes(no_leaks):
    with udp.datagram_timer()(4096) as op:
        op()  # a datagram that did not come back would raise TimeoutError here
    with pytest.raises(ValueError, match="65,507"):
        with udp.datagram_timer()(70_000):
            pass


def test_udp_pair_on_ipv6_when_available(no_leaks):
    from socketlessons.doctor import ipv6_available

    if not ipv6_available():
        pytest.skip("no IPv6 loopback here")
    with udp.udp_pair("::1") as (tx, rx):
        tx.sendto(b"six", rx.getsockname())
        assert rx.recvfrom(16)[0] == b"six"
        assert rx.family == socket.AF_INET6


def test_ping_panel_stop_ends_a_long_run_and_says_so():
    """60 pings at 90 % loss with 3 retries wait about 10 s: Stop ends the run after the ping in
    progress, the status says how many ran, and Run is usable again."""
    import time

    panel = udp.PingPanel(loss=0.9, count=60, timeout=0.05)
    panel.retries.value = 3
    assert panel.start_run()
    time.sleep(0.6)
    assert panel._run.running and panel.stop_button.layout.display == ""
    t0 = time.monotonic()
    panel.stop()
    assert panel._run.wait(10), panel.status.value
    assert time.monotonic() - t0 < 5  # one ping's 4 attempts take 0.2 s; a busy machine gets more
    assert "Stopped" in panel.summary and len(panel.rtts) < 60, panel.summary
    assert not panel.button.disabled and panel.stop_button.layout.display == "none"
    assert any(r.label.startswith("timeout 50 ms") for r in panel.plot.references)
