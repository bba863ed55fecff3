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


@needs_ipv6
def test_dualstack_report_on_loopback(no_leaks):
    report = ipv6.dualstack_report()
    assert report.ipv6 and report.v6_client_on_v6_server.startswith("accepted")
    if report.has_dualstack:
        assert "::ffff:127.0.0.1" in report.mapped_peer or "refuses" in report.mapped_peer
    assert len(str(report).splitlines()) == 5
    assert report.v4_client_on_same_port.startswith("ConnectionRefusedError"), report.v4_client_on_same_port


def test_ipv6_skip_message_matches_probe():
    assert (ipv6.ipv6_skip_message() is None) == ipv6_available()


def test_version_table_is_probed_here():
    rows = {r[0]: r for r in ipv6.version_table()}
    assert rows["socket.timeout is TimeoutError"][3] == ("yes" if socket.timeout is TimeoutError else "no")
    assert rows["create_server(), has_dualstack_ipv6()"][1] == "3.8"
    assert rows["send_fds() / recv_fds()"][3] == ("yes" if hasattr(socket, "send_fds") else "no")


def test_python2_send_str_is_a_type_error():
    a, b = socket.socketpair()
    with a, b:
        assert ipv6.python2_send_str(a).startswith("TypeError")


def test_split_utf8_can_cut_a_character():
    head, tail = ipv6.split_utf8("é", 1)
    with pytest.raises(UnicodeDecodeError):
        head.decode("utf-8")
    assert (head + tail).decode("utf-8") == "é"


@pytest.mark.slow
def test_lesson07_runs_and_skips_cleanly_without_ipv6():
    """Pretend this host has no IPv6: every cell still runs and says it skipped."""
    pretend = ("import socketlessons.lessons.l07_ipv6_and_versions.demos as _m, socketlessons.lessons.l07_ipv6_and_versions.checks as _c\n"
               "_m.ipv6_available = _c.ipv6_available = lambda: False")
    cells = code_cells("07_ipv6_and_versions.ipynb")
    out = run_cells([pretend, *cells])
    text = "\n".join(out)
    assert "IPv6 is not available on this machine" in text
    assert "IPv6 skipped: nothing to compare." in text
    assert "skipped: no IPv6 here" in text
