"""Lesson 00 (welcome): its one verdict names the call it measured, and its claim runs as its cell does."""

from __future__ import annotations

from socketlessons.lessons import l00_welcome
from socketlessons.lessons.l00_welcome.claims import CLAIMS
from socketlessons.measure import Point


def _points(xs, ys):
    return [Point(x, y, y, y, 21, "", {"low": y}) for x, y in zip(xs, ys)]


def test_the_verdict_names_sendall_and_its_numbers():
    xs = list(l00_welcome.SEND_SIZES)
    verdict, measured, growth = l00_welcome.send_verdict(_points(xs, [800 + 0.25 * x for x in xs]), what="sendall()")
    assert verdict.text.startswith("sendall() is O(k)") and verdict.status == "refined"
    assert growth.label == "linear" and "0.25 ns/byte" in measured


def test_the_claim_returns_a_status_and_leaks_nothing(no_leaks):
    assert [c.name for c in CLAIMS] == ["sendall() is O(k)"]
    assert CLAIMS[0].is_right("refined") and CLAIMS[0].is_right("confirmed") and not CLAIMS[0].is_right("contradicted")
    assert CLAIMS[0].run() in ("confirmed", "refined", "contradicted", "inconclusive")
