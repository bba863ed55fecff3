"""Lesson helpers of 07 (ipv6) and 08 (internals): real loopback sockets, pure verdicts both ways."""
from __future__ import annotations

import socket

import pytest

from socketlessons.doctor import ipv6_available
from socketlessons.lessons.l07_ipv6_and_versions import demos as ipv6

from ._cells import code_cells, run_cells

needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback on this host")


def test_candidates_keep_order_and_families():
    infos = ipv6.candidates(("127.0.0.1", 1234), ("::1", 1234))
    assert [i[0] for i in infos] == [socket.AF_INET, socket.AF_INET6]
    assert infos[0][4] == ("127.0.0.1", 1234) and infos[1][4][:2] == ("::1", 1234)
    assert "AF_INET6" in ipv6.describe_addrinfo(infos)[1]


def test_candidates_never_resolve_names():
    with pytest.raises(socket.gaierror):
        ipv6.candidates(("localhost", 80))


def test_closed_port_refuses_while_held(no_leaks):
    with ipv6.closed_port() as address, pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2).close()


def test_ipv6_skip_message_matches_probe():
    assert (ipv6.ipv6_skip_message() is None) == ipv6_available()


def test_version_table_is_probed_here():
    rows = {r[0]: r for r in ipv6.version_table()}
    assert rows["socket.timeout is TimeoutError"][3] == ("yes" if socket.timeout is TimeoutError else "no")
    assert rows["create_server(), has_dualstack_ipv6()"][1] == "3.8"
    assert rows["send_fds() / recv_fds()"][3] == ("yes" if hasattr(socket, "send_fds") else "no")


@pytest.mark.slow
def test_lesson07_runs_and_skips_cleanly_without_ipv6():
    """Pretend this host has no IPv6: every cell still runs and says it skipped."""
    pretend = ("import socketlessons.lessons.l07_ipv6_and_versions.demos as _m, "
               "socketlessons.lessons.l07_ipv6_and_versions.checks as _c\n"
               "_m.ipv6_available = _c.ipv6_available = lambda: False")
    cells = code_cells("07_ipv6_and_versions.ipynb")
    out = run_cells([pretend, *cells])
    text = "\n".join(out)
    assert "IPv6 is not available on this machine" in text
    assert "IPv6 skipped: nothing to compare." in text
    assert "accepted, peer" not in text and "IPv4-mapped" not in text  # the dual-stack cells skipped
    assert "refined: 10 of the reference's 10 calls" in text


# ---- verdicts on synthetic inputs ----------------------------------------------------------------

def _points(*ratios_per_size):
    return [ipv6.RatioPoint(n, tuple(r)) for n, r in zip(ipv6.FAMILY_SIZES, ratios_per_size)]


def test_family_verdict_same_cost():
    v = ipv6.family_verdict(_points(*[[0.98, 1.0, 1.02, 1.03, 1.01]] * 4))
    assert v.status == "confirmed" and "within 25%" in v.text and "16 KiB ×1.01" in v.text, v


def test_family_verdict_names_a_real_difference():
    v = ipv6.family_verdict(_points([1.0] * 5, [1.0] * 5, [1.6, 1.7, 1.8, 1.7, 1.65], [1.0] * 5))
    assert v.status == "contradicted" and "at 4 KiB IPv6 took ×1.70" in v.text, v


def test_family_verdict_spread_is_inconclusive_and_says_what_helps():
    """Two noisy series that jump 100x: their ratio spreads, and the verdict says so."""
    v = ipv6.family_verdict(_points(*[[0.01, 1.0, 100.0, 0.5, 2.0]] * 4))
    assert v.status == "inconclusive" and "middle half" in v.text and "rounds=61" in v.text, v
    assert ipv6.family_verdict([]).status == "inconclusive"


def test_family_figure_plots_the_ratio_with_its_reference():
    fig = ipv6.family_figure(_points(*[[0.98, 1.0, 1.02]] * 4))
    ax = fig.axes[0]
    assert ax.get_ylabel() == "IPv6 time / IPv4 time" and fig.legends
    assert any(list(line.get_ydata()) == [1.0, 1.0] for line in ax.get_lines())  # the ×1 line


def test_family_rounds_rejects_bad_input():
    with pytest.raises(ValueError, match="sizes"):
        ipv6.family_rounds(sizes=[0])
    with pytest.raises(ValueError, match="sizes.*64 KiB"):  # both ends in one thread: must fit the buffers
        ipv6.family_rounds(sizes=[1 << 20])
    with pytest.raises(ValueError, match="rounds"):
        ipv6.family_rounds(rounds=2)
    with pytest.raises(ValueError, match="budget_s"):
        ipv6.family_rounds(budget_s=-1)


@needs_ipv6
def test_family_rounds_pairs_every_size(no_leaks):
    # 64 KiB, the largest size allowed: both ends are in this thread, so a sendall that did not
    # fit the socket buffers would wait forever for a reader (the 5 s timeout would raise).
    points = ipv6.family_rounds(sizes=[16, 4096, 64 * 1024], rounds=3)
    assert [p.size for p in points] == [16, 4096, 64 * 1024] and all(len(p.ratios) == 3 for p in points)
    assert all(r > 0 for p in points for r in p.ratios)


def test_the_one_thread_echo_carries_every_byte_both_ways(no_leaks):
    payload = bytes(range(256)) * 64
    view = memoryview(bytearray(len(payload)))
    with ipv6._pair("127.0.0.1") as (client, server):
        ipv6._echo(client, server, payload, view)
        assert bytes(view) == payload
        server.sendall(b"!")  # nothing was left over in either direction
        assert client.recv(10) == b"!"


def test_seed_claim_verdict_follows_what_the_python2_call_did():
    refined = ipv6.seed_claim_verdict("TypeError: a bytes-like object is required, not 'str'")
    assert refined.status == "refined" and "10 of the reference's 10 calls" in refined.text, refined
    assert "create_server(), has_dualstack_ipv6() (3.8)" in refined.text
    assert ipv6.seed_claim_verdict("sent").status == "confirmed"


def test_family_verdict_states_only_the_numbers_it_was_given():
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    ratios = st.lists(st.floats(min_value=0.05, max_value=20, allow_nan=False), min_size=3, max_size=12)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(ratios, min_size=4, max_size=4))
    def check(per_size):
        points = _points(*per_size)
        text = ipv6.family_verdict(points).text
        allowed = set()
        for p in points:
            allowed |= {f"{p.median:.2f}", f"{p.quartiles[0]:.2f}", f"{p.quartiles[1]:.2f}",
                        f"{max(p.median, 1 / p.median):.2f}"}
        stated = set(re.findall(r"\d+\.\d\d", text))
        assert stated <= allowed, (stated - allowed, text)

    check()


def test_family_verdict_says_when_ipv6_was_steadily_a_little_slower():
    """Measured: every quartile 1.01-1.05: 'the same cost' within 25 %, and the steady 2 % said too."""
    from socketlessons.lessons.l07_ipv6_and_versions.demos import RatioPoint, family_verdict

    steady = [RatioPoint(size, (1.01, 1.02, 1.03, 1.04, 1.05)) for size in (16, 4096)]
    v = family_verdict(steady)
    assert v.status == "confirmed" and "IPv6 was a little slower in every round's middle half" in v.text, v
    mixed = [RatioPoint(size, (0.97, 0.99, 1.0, 1.01, 1.03)) for size in (16, 4096)]
    assert "a little" not in family_verdict(mixed).text
