"""widgets: a panel driven from Python (set values, click) measures, plots and refuses bad input."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
from traitlets import TraitError

from socketlessons import SinkServer
from socketlessons.measure import Point, Verdict, summarize
from socketlessons.widgets import (
    MAX_UDP_PAYLOAD,
    SizeSlider,
    SweepPanel,
    check_size,
    encode_text,
    format_size,
    powers_of_two,
)

MIB = 2**20


@pytest.fixture(scope="module", autouse=True)
def _fonts_loaded():
    """matplotlib keeps each font file it has used open, per rendering thread (its font
    cache): render once before the leak-checked tests, so those are not counted as leaks."""
    from socketlessons.plots import LivePlot, sequence_diagram, to_png
    from socketlessons.trace import TraceEvent

    plot = LivePlot("t", "payload size (bytes)", "µs", logx=True, logy=True)
    plot.add(Point.from_timing(1, summarize([1.0])))
    plot.add(Point.from_timing(1024, summarize([2.0])))
    plot.finish()
    to_png(sequence_diagram([TraceEvent(0, "client", "send", 1, 1)]))
    # The panels' worker thread lives as long as the process and renders the plots, with its
    # own font handles: start it before the leak-checked tests.
    SweepPanel(lambda s: summarize([1.0]), payload=2).run()


def fake_measure(calls=None):
    """A measurement that costs x ns (no sockets): for testing the panel's plumbing."""
    def measure(s):
        if calls is not None:
            calls.append(s)
        return summarize([s.x * 0.9, s.x, s.x * 1.1])
    return measure


def plotted_png(panel):
    return panel.output.outputs[0]["data"]["image/png"]


# ---- pure helpers ---------------------------------------------------------------------------

@pytest.mark.parametrize("n,text", [(1, "1 B"), (1500, "1,500 B"), (64 * 1024, "64 KiB"), (MIB, "1 MiB"), (2**30, "1 GiB")])
def test_format_size(n, text):
    assert format_size(n) == text


def test_powers_of_two_cover_one_byte_to_a_mebibyte():
    sizes = powers_of_two(1, MIB)
    assert sizes[0] == 1 and sizes[-1] == MIB and len(sizes) == 21
    with pytest.raises(ValueError):
        powers_of_two(0, 8)


@pytest.mark.parametrize("value,limit,unit,expected", [
    (1, None, "byte", ""),
    (0, None, "byte", "must be at least 1 byte, got 0"),
    (-4, None, "byte", "must be at least 1 byte, got -4"),
    (2.5, None, "byte", "whole number of bytes"),
    (True, None, "byte", "whole number"),
    (128 * 1024, MAX_UDP_PAYLOAD, "byte", "128 KiB is beyond what sendto() allows (65,507 B): pick 32 KiB or less"),
    (0, None, "", "must be at least 1, got 0"),
])
def test_check_size_messages(value, limit, unit, expected):
    msg = check_size("payload", value, max_size=limit, what="sendto()", unit=unit)
    assert (msg == "") if expected == "" else (expected in msg)


@pytest.mark.parametrize("text,ascii_only,data,message", [
    ("hello", False, b"hello", ""),
    ("héllo", False, "héllo".encode(), "not ASCII: sent as UTF-8, 6 bytes for 5 characters"),
    ("héllo", True, None, "is not ASCII ('é' is not)"),
    ("", False, None, "empty"),
    ("\udc80", False, None, "cannot be encoded as UTF-8"),
    (42, False, None, "must be a str"),
])
def test_encode_text(text, ascii_only, data, message):
    got, msg = encode_text(text, ascii_only=ascii_only)
    assert got == data
    assert (msg == "") if message == "" else (message in msg)


def test_size_slider_rejects_bad_values_with_a_message_not_a_traceback():
    said = []
    s = SizeSlider([1, 2, 4], name="payload size", on_invalid=said.append, value=2)
    s.value = 0
    s.value = 3
    assert s.value == 2
    assert "at least 1 byte" in said[0] and "not on the slider" in said[1]
    s.value = 4
    assert s.value == 4 and len(said) == 2
    assert s.continuous_update is False
    with pytest.raises(TraitError):  # a programming error at construction still raises
        SizeSlider([1, 2], value=3)
    with pytest.raises(ValueError, match="positive ints"):
        SizeSlider([0, 1])


# ---- the panel, driven from Python -----------------------------------------------------------

def test_changing_the_slider_and_clicking_changes_results_and_plot():
    panel = SweepPanel(fake_measure(), sweep="payload", claim=("cost is O(k)", "linear"), title="claim")
    assert panel.payload_slider.continuous_update is False
    blank = plotted_png(panel)
    panel.payload_slider.value = 64
    panel.button.click()
    assert panel.wait(30)
    first = [p.x for p in panel.points]
    assert first == [1, 2, 4, 8, 16, 32, 64]
    png1 = plotted_png(panel)
    assert png1 != blank
    assert panel.verdict is not None and panel.verdict.status == "confirmed"
    assert "cost is O(k): confirmed" in panel.status_text
    assert panel.progress.value == panel.progress.max == 7
    panel.payload_slider.value = 4096
    assert panel.run()
    assert panel.points[-1].x == 4096 and len(panel.points) == 13
    assert plotted_png(panel) != png1
    assert panel.button.disabled is False and not panel.running


def test_runs_with_other_fixed_settings_stay_on_the_plot_as_series():
    panel = SweepPanel(fake_measure(), sweep="payload", payload=16, keep_runs=2)
    panel.bufsize_slider.value = 1024
    panel.run()
    panel.bufsize_slider.value = 2048
    panel.run()
    panel.run()  # same settings again: replaces its own series
    assert {p.series for p in panel.plot.points} == {"bufsize 1 KiB", "bufsize 2 KiB"}
    assert len(panel.plot.points) == 2 * 5
    panel.bufsize_slider.value = 4096
    panel.run()
    assert {p.series for p in panel.plot.points} == {"bufsize 2 KiB", "bufsize 4 KiB"}


def test_measure_sees_settings_of_each_point():
    calls = []
    panel = SweepPanel(fake_measure(calls), sweep="bufsize", bufsize=8, payload=4, text="ab")
    panel.run()
    assert [s.bufsize for s in calls] == [1, 2, 4, 8]
    assert all(s.payload == b"abab" and s.payload_size == 4 and s.text == "ab" for s in calls)
    assert calls[-1].x == 8


def test_a_lesson_judge_gives_the_verdict_of_an_affine_run_from_its_points_and_settings():
    seen = []

    def judge(points, settings):
        seen.append(([p.x for p in points], settings.x))
        return Verdict("confirmed", f"judged {len(points)} points, up to {settings.x}")

    panel = SweepPanel(fake_measure(), sweep="payload", payload=8, fit="affine", judge=judge)
    panel.run()
    assert seen == [([1, 2, 4, 8], 8)]
    assert panel.verdict.status == "confirmed" and "judged 4 points, up to 8" in panel.status_text
    with pytest.raises(TypeError, match="judge"):
        SweepPanel(fake_measure(), judge="linear")


def test_custom_control_for_a_client_count():
    calls = []
    panel = SweepPanel(fake_measure(calls), sweep="clients", controls={"clients": [1, 2, 4, 8, 16]},
                       hide=("payload", "bufsize", "text"), claim=("waiting grows with N", "linear"))
    assert panel.sliders["clients"] in panel.children and panel.payload_slider not in panel.children
    panel.sliders["clients"].value = 16
    panel.run()
    assert [s.clients for s in calls] == [1, 2, 4, 8, 16]
    panel.sliders["clients"].value = 0
    assert panel.status_text == "clients must be at least 1, got 0"
    with pytest.raises(AttributeError, match="known: x, payload_size"):
        _ = calls[0].nonsense


@pytest.mark.parametrize("slider,value,message", [
    ("payload", 0, "payload size must be at least 1 byte, got 0"),
    ("payload", -8, "payload size must be at least 1 byte, got -8"),
    ("payload", 2**40, "payload size 1099511627776 is not on the slider: pick one of 1 B, 2 B, 4 B … 4 MiB"),
    ("bufsize", 100, "buffer size 100 is not on the slider"),
    ("bufsize", "4096", "buffer size must be a whole number of bytes, got '4096'"),
])
def test_a_bad_slider_value_is_refused_with_a_message(slider, value, message):
    panel = SweepPanel(fake_measure(), sweep="payload")
    before = panel.sliders[slider].value
    panel.sliders[slider].value = value  # no traceback
    assert panel.status_text == message or message in panel.status_text
    assert panel.sliders[slider].value == before


@pytest.mark.parametrize("action,message", [
    (lambda p: setattr(p.payload_slider, "value", 128 * 1024), "payload size 128 KiB is beyond what sendto() allows (65,507 B): pick 32 KiB or less"),
    (lambda p: setattr(p.text_box, "value", ""), "payload text is empty"),
])
def test_bad_input_at_run_time_is_a_message_and_no_run(action, message):
    calls = []
    panel = SweepPanel(fake_measure(calls), sweep="payload", max_size=MAX_UDP_PAYLOAD, what="sendto()")
    action(panel)
    panel.button.click()
    assert panel.wait(10)
    assert message in panel.status_text
    assert calls == [] and panel.points == []
    panel.payload_slider.value = 32 * 1024
    panel.text_box.value = "x"
    assert panel.run() and len(calls) == 16


def test_non_ascii_text_is_sent_as_utf8_and_said_so():
    calls = []
    panel = SweepPanel(fake_measure(calls), sweep="bufsize", bufsize=2, payload=8, text="é")
    panel.run()
    assert calls[0].payload == "éééé".encode()
    assert "sent as UTF-8, 2 bytes for 1 characters" in panel.status_text
    strict = SweepPanel(fake_measure(), sweep="payload", text="é", ascii_only=True)
    assert strict.run() is False
    assert "is not ASCII" in strict.status_text


def test_a_second_click_during_a_run_does_not_start_a_second_run():
    release = threading.Event()
    started = []

    def slow(s):
        started.append(s.x)
        release.wait(10)
        return summarize([1.0])

    panel = SweepPanel(slow, sweep="payload", payload=4)
    panel.button.click()
    panel.button.click()
    assert "already in progress" in panel.status_text and panel.running
    assert panel.button.disabled and panel.stop_button.layout.display != "none"
    assert panel.run() is False
    release.set()
    assert panel.wait(10)
    assert started == [1, 2, 4]
    assert threading.active_count() < 50


def test_a_failing_measurement_is_a_message_not_a_traceback():
    def broken(s):
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    panel = SweepPanel(broken, sweep="payload", payload=4)
    assert panel.run() is False
    assert "The measurement failed: ConnectionRefusedError" in panel.status_text
    assert "Traceback" in panel.error and not panel.running and not panel.button.disabled


def test_stop_ends_a_run_after_the_current_point():
    panel = SweepPanel(fake_measure(), sweep="payload", payload=MIB)
    def measure(s):
        if s.x == 4:
            panel.stop()
        return summarize([float(s.x)])

    panel.measure = measure
    panel.run()
    assert [p.x for p in panel.points] == [1, 2, 4]
    assert panel.stop_button.layout.display == "none" and not panel.button.disabled
    assert "Stopped after 3 of 21" in panel.status_text


def test_constructor_rejects_programming_errors():
    with pytest.raises(ValueError, match="sweep must be one of"):
        SweepPanel(fake_measure(), sweep="nothing")
    with pytest.raises(ValueError, match="expected_label"):
        SweepPanel(fake_measure(), claim=("x", "exponential"))
    with pytest.raises(TypeError, match="measure must be a function"):
        SweepPanel(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot hide the swept"):
        SweepPanel(fake_measure(), sweep="payload", hide=("payload",))
    for kwargs, match in [({"keep_runs": 0}, "keep_runs"), ({"repeats": 2.5}, "repeats"),
                          ({"budget_s": float("nan")}, "budget_s"), ({"budget_s": float("inf")}, "budget_s"),
                          ({"max_run_s": -1}, "max_run_s"), ({"min_interval_s": -1}, "min_interval_s")]:
        with pytest.raises(ValueError, match=match):
            SweepPanel(fake_measure(), **kwargs)


# ---- against a real helper server ------------------------------------------------------------

def test_real_send_sweep_through_the_panel(no_leaks):
    with SinkServer() as server:
        @contextlib.contextmanager
        def send_time(s):
            with socket.create_connection(server.address) as sock:
                yield lambda: sock.sendall(s.payload)
                sock.shutdown(socket.SHUT_WR)
                sock.recv(8)  # the sink's byte count: every byte arrived

        panel = SweepPanel(send_time, sweep="payload", payload=MIB, hide=("bufsize",), fit_from=64 * 1024,
                           claim=("sendall() is O(k)", "linear"), repeats=7)
        assert panel.run(timeout=60)
    assert [p.x for p in panel.points] == powers_of_two(1, MIB)
    assert panel.points[-1].median_ns > panel.points[0].median_ns
    assert panel.verdict is not None and "sendall() is O(k):" in panel.status_text


def test_too_few_points_to_fit_says_what_to_do():
    panel = SweepPanel(fake_measure(), sweep="payload", payload=1024, fit_from=64 * 1024)
    panel.run()
    assert "Too few sizes from 64 KiB up to fit a line: move the payload slider higher" in panel.status_text
    assert panel.growth is None


def test_two_panels_never_measure_at_the_same_time():
    release, order = threading.Event(), []

    def slow(s):
        order.append(("a", s.x))
        release.wait(10)
        return summarize([1.0])

    def quick(s):
        order.append(("b", s.x))
        return summarize([1.0])

    a, b = SweepPanel(slow, payload=2), SweepPanel(quick, payload=2)
    a.button.click()
    b.button.click()
    assert "Waiting for another panel's run to finish" in b.status_text
    release.set()
    assert a.wait(10) and b.wait(10)
    assert order == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]


def test_a_failed_run_keeps_the_plot_of_the_last_good_run():
    panel = SweepPanel(fake_measure(), payload=8)
    panel.run()
    before = (list(panel.plot.points), dict(panel.plot.fits))

    def refused(s):
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    panel.measure = refused
    assert panel.run() is False
    assert "The plot shows earlier runs only" in panel.status_text
    assert (panel.plot.points, panel.plot.fits) == before and len(before[0]) == 4


# ---- Stop: prompt, bounded, said ------------------------------------------------------------------

def test_a_stop_timer_armed_after_the_run_ended_is_not_started(no_leaks):
    """CI (two workers, a CPU hog per core) saw 'socketlessons-panel-timer' left behind: Stop's
    unblocking let the run end, and its disarm, before Stop armed its grace timer."""
    panel = SweepPanel(fake_measure(), sweep="payload", payload=4)
    panel.run()
    panel._arm(lambda: None, 30)  # what a Stop arriving that late does
    assert not [t for t in threading.enumerate() if t.name == "socketlessons-panel-timer"]


def test_stop_unblocks_a_send_to_a_server_that_never_reads(no_leaks):
    """A listener that never accepts: after a few MiB the socket buffers are full and sendall
    blocks in the kernel. Stop shuts the guarded socket down, so the blocked call returns."""
    blocked = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        address = listener.getsockname()

        @contextlib.contextmanager
        def flood(s):
            with s.guard(socket.create_connection(address)) as sock:
                def op():
                    blocked.set()
                    sock.sendall(s.payload)
                yield op

        panel = SweepPanel(flood, sweep="payload", payload=4 * MIB, start=4 * MIB, hide=("bufsize",))
        panel.button.click()
        assert blocked.wait(10)
        time.sleep(0.3)  # now inside sendall, waiting for room that never comes
        assert panel.running
        t0 = time.monotonic()
        panel.stop_button.click()
        # Without the guard, sendall would block until the 120 s run limit; a busy machine
        # (the whole suite, other kernels) can delay the worker's clean-up by seconds.
        assert panel.wait(20), panel.status_text
        assert time.monotonic() - t0 < 15
        assert panel.status_text.startswith("Stopped") and "interrupted" in panel.status_text
        assert not panel.running and not panel.button.disabled and panel.stop_button.layout.display == "none"


def test_a_second_stop_and_a_stop_with_nothing_running_say_so():
    release = threading.Event()
    panel = SweepPanel(lambda s: (release.wait(10), summarize([1.0]))[1], sweep="payload", payload=2)
    panel.stop()
    assert "Nothing to stop" in panel.status_text
    panel.button.click()
    panel.stop()
    assert "Stopping" in panel.status_text
    panel.stop()
    assert "Already stopping" in panel.status_text
    release.set()
    assert panel.wait(10) and "Stopped" in panel.status_text


def test_a_run_that_takes_too_long_is_stopped_by_the_panel_and_says_why():
    panel = SweepPanel(lambda s: (time.sleep(0.3), summarize([float(s.x)]))[1], sweep="payload", payload=MIB,
                       max_run_s=0.5)
    panel.run(timeout=10)
    assert 1 <= len(panel.points) < 21
    assert "took longer than 0.5 s" in panel.status_text


def test_a_measurement_that_ignores_stop_frees_the_panel_and_the_worker():
    import socketlessons.widgets as w

    release = threading.Event()
    stuck = SweepPanel(lambda s: (release.wait(30), summarize([1.0]))[1], sweep="payload", payload=1)
    stuck.button.click()
    time.sleep(0.2)
    stuck.stop()
    try:
        assert stuck.wait(w.STOP_GRACE_S + 5)
        assert "still blocked" in stuck.status_text and not stuck.running and not stuck.button.disabled
        other = SweepPanel(fake_measure(), sweep="payload", payload=4)
        assert other.run(timeout=10), other.status_text  # a fresh worker serves the next panel
    finally:
        release.set()


def test_lesson_panel_base_stop_busy_and_status():
    import ipywidgets as widgets

    from socketlessons.lessons._panel import LessonPanel, PanelRun

    class Demo(LessonPanel):
        MAX_RUN_S = 5.0

        def __init__(self):
            self.button = widgets.Button(description="Run")
            self.stop_button = self._make_stop_button()
            self.status = widgets.HTML()
            self.box = widgets.VBox([self.button, self.stop_button, self.status])
            self._run = PanelRun()
            self.steps = 0

        def start_run(self):
            return self._begin(self._worker, "Counting …")

        def _worker(self):
            while not self._run.stopped and self.steps < 1000:
                self.steps += 1
                time.sleep(0.01)
            self._say(self._stop_note() or f"Counted {self.steps}.")

    panel = Demo()
    assert panel.start_run() and "Counting" in panel.status.value
    assert panel.button.disabled and panel.stop_button.layout.display == ""
    assert panel.start_run() is False and "already in progress" in panel.status.value
    panel.stop_button.click()
    assert panel._run.wait(5)
    assert panel.status.value.startswith("Stopped") and panel.steps < 1000
    assert not panel.button.disabled and panel.stop_button.layout.display == "none"
    panel.stop()
    assert "Nothing to stop" in panel.status.value
    panel.MAX_RUN_S = 0.2
    assert panel.run(timeout=5)
    assert "took longer than 0.2 s" in panel.status.value


def test_an_interleaved_panel_run_redraws_per_round_and_fits_the_chosen_estimator():
    calls = []
    panel = SweepPanel(fake_measure(calls), sweep="payload", payload=16, estimator="min",
                       sweep_options={"interleave": True, "rounds": 2})
    assert panel.run(timeout=30), panel.status_text
    assert [s.x for s in calls] == [1, 2, 4, 8, 16, 16, 8, 4, 2, 1]  # forward, then back
    assert sorted(p.x for p in panel.plot.points) == [1, 2, 4, 8, 16]  # one point per size, no copies
    assert panel.progress.value == 2 and panel.growth.label == "linear"
    with pytest.raises(ValueError, match="estimator"):
        SweepPanel(fake_measure(), estimator="mean")


def _open_font_files() -> int:
    """Descriptors of this process open on a font file (Linux's /proc; None elsewhere)."""
    import os

    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return -1
    count = 0
    for name in names:
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{name}").lower().endswith((".ttf", ".otf"))
    return count


@pytest.mark.skipif(_open_font_files() < 0, reason="counts descriptors through Linux's /proc")
def test_a_retired_panel_worker_leaves_no_font_files_open(no_leaks):
    """matplotlib keeps each rendering thread's fonts open (two files per thread id). Found in a
    CI run on a busy host: two descriptors more after a panel test, because its worker thread
    got a new id. Here a thread holds on to each retired worker's id, so every run's worker has a
    new one; the font files open must not grow with the runs."""
    from socketlessons import widgets as panel_widgets
    from socketlessons.plots import close_cached_fonts

    close_cached_fonts()
    before = _open_font_files()
    holders: list[threading.Thread] = []
    release = threading.Event()
    try:
        for _ in range(3):
            panel = SweepPanel(lambda s: summarize([1.0, 2.0]), sweep="payload", payload=4, start=1, hide=("bufsize",))
            panel.button.click()
            assert panel.wait(20), panel.status_text
            end = time.monotonic() + 10
            while panel_widgets._WORKER._thread is not None and time.monotonic() < end:  # retires after 1 s idle
                time.sleep(0.05)
            assert panel_widgets._WORKER._thread is None, "the panel worker did not retire"
            holder = threading.Thread(target=release.wait, args=(20,))  # takes the retired thread's id
            holder.start()
            holders.append(holder)
        assert _open_font_files() <= before, f"{_open_font_files() - before} font files more than before the runs"
    finally:
        release.set()
        for holder in holders:
            holder.join(5)
