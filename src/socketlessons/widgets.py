"""Control panels: pick sizes, press Run, watch the plot grow, read the verdict.

``SweepPanel`` sweeps one parameter (payload size, buffer size, client count, ...) over
powers of two up to the value chosen on its slider, with the other controls held fixed, and
plots the time per call live. A lesson plugs its own measurement in as a function of the
panel's settings::

    from contextlib import contextmanager

    @contextmanager
    def send_time(s):                       # s: RunSettings (s.payload, s.bufsize, s.x, ...)
        with socket.create_connection(server.address) as sock:
            yield lambda: sock.sendall(s.payload)        # the op that is timed

    panel = SweepPanel(send_time, sweep="payload", claim=("sendall() is O(k)", "linear"),
                       title="sendall() is O(k): time grows with the payload")
    panel                                   # shows the controls and the plot

``measure(s)`` returns what ``measure.sweep`` accepts from ``make_op``: a zero-argument op, a
context manager yielding one (set-up for this x, closed after the point), or a ``Timing`` it
measured itself (lesson 03: ``summarize(latencies_of_n_clients(s.x))``). Settings the panel
knows: ``x`` (the swept value), ``payload_size`` and ``payload`` (bytes: the payload text
repeated to that size), ``bufsize``, ``text``, and every custom control (``controls={"clients":
[1, 2, 4, ..., 64]}`` adds a slider and ``s.clients``). Lesson 08 sweeps ``"bufsize"`` with
``bufsize_sizes=`` SO_SNDBUF values and ``ylabel="throughput (GB/s)"`` via ``scale``.

Rules:

* Bad input never raises into the notebook: zero or negative sizes, sizes beyond what the
  operation allows (``max_size``), a value that is not on the slider, empty or non-ASCII
  payload text (said how it was encoded: UTF-8 gives N bytes) all end as a message in the
  status line, and the run does not start (or, for non-ASCII text, starts and says so).
* A click while a run is going does not start a second run (the status line says so).
* **Stop** (shown while a run goes) ends it promptly: no new batch starts (``measure.time_op``
  checks between batches), and the cleanups the measurement registered with
  ``settings.on_stop(fn)`` / ``settings.guard(sock)`` run at once, so a call blocked in the
  kernel (a ``sendall`` to a server that never reads) returns. A run is also bounded:
  after ``max_run_s`` seconds the panel presses Stop itself and says so. If a measurement
  ignores Stop and stays blocked for ``STOP_GRACE_S`` more, the status line says so, the panel
  is usable again and later runs get a fresh worker thread (the blocked one is left behind).
* A run happens in a worker thread, so the panel stays responsive in JupyterLab (widget
  messages are handled only between cells). One worker thread serves every panel, so two
  runs never overlap; points are measured one after another and redraws happen between
  points, never during a timed batch (``measure``).
  ``panel.run()`` from Python blocks until the run is done; ``button.click()`` returns at
  once and ``panel.wait(timeout)`` waits for it (what a notebook under nbmake does).
* Every control measures only on Run (and ``continuous_update=False``): moving a slider
  never starts a measurement by itself.
"""

from __future__ import annotations

import dataclasses
import html
import math
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from ._interrupts import held_interrupts
from .measure import (
    DEFAULT_REPEATS,
    Affine,
    Growth,
    Point,
    Verdict,
    compare,
    estimates,
    fit_affine,
    fit_growth,
    fmt_slope,
    sweep,
)
from .plots import LivePlot, close_cached_fonts, format_bytes

with held_interrupts():  # an import stopped half way by ■ breaks the library until a restart
    import ipywidgets as widgets
    from traitlets import TraitError, validate

__all__ = [
    "RunSettings",
    "SizeSlider",
    "StopSignal",
    "SweepPanel",
    "check_size",
    "encode_text",
    "format_size",
    "powers_of_two",
    "shutdown_on_stop",
]

MIB = 1 << 20
#: Largest UDP payload over IPv4 (65,535 - 8 UDP - 20 IP header bytes): lesson 04's limit.
MAX_UDP_PAYLOAD = 65_507
#: Pause after sending widget updates, before timing again (see ``_on_point``).
SETTLE_S = 0.01
#: Longest a panel waits for a run in ``run()`` (a run itself is bounded by per-point budgets).
RUN_TIMEOUT_S = 600.0
#: A run longer than this is stopped by the panel itself (``SweepPanel(max_run_s=...)``).
MAX_RUN_S = 120.0
#: After Stop, how long a measurement may take to notice before the panel says it is blocked.
STOP_GRACE_S = 3.0


class StopSignal:
    """A run's Stop: an event the measurement may poll, and cleanups that run when it is set
    (from whichever thread presses Stop). Shared by every point of one run."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._cleanups: list[Callable[[], object]] = []
        self._lock = threading.Lock()

    def is_set(self) -> bool:
        return self.event.is_set()

    def on_stop(self, fn: Callable[[], object]) -> None:
        """Call ``fn()`` when Stop is pressed (at once if it already was)."""
        with self._lock:
            if not self.event.is_set():
                self._cleanups.append(fn)
                return
        _quietly(fn)

    def forget(self, fn: Callable[[], object]) -> None:
        with self._lock:
            if fn in self._cleanups:
                self._cleanups.remove(fn)

    def set(self) -> None:
        with self._lock:
            if self.event.is_set():
                return
            self.event.set()
            cleanups, self._cleanups = self._cleanups, []
        for fn in cleanups:
            _quietly(fn)

    def clear(self) -> None:
        with self._lock:
            self.event.clear()
            self._cleanups = []


def _quietly(fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception:  # a cleanup that fails (socket already closed) must not stop the others
        pass


def shutdown_on_stop(stop: StopSignal, sock: Any) -> Any:
    """Register ``sock.shutdown(SHUT_RDWR)`` as a cleanup of ``stop`` and return ``sock``: a
    ``send``/``recv`` blocked on it in another thread returns (an error or EOF) when Stop is
    pressed. (``close()`` from another thread does not wake a blocked call on Linux; shutdown does.)"""
    import socket as _socket

    def cut() -> None:
        try:
            sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass

    stop.on_stop(cut)
    return sock


def powers_of_two(lo: int, hi: int) -> list[int]:
    """``[lo, 2·lo, 4·lo, ..., ≤ hi]`` (``lo`` ≥ 1)."""
    if lo < 1 or hi < lo:
        raise ValueError(f"need 1 ≤ lo ≤ hi, got lo={lo!r}, hi={hi!r}")
    out, v = [], lo
    while v <= hi:
        out.append(v)
        v *= 2
    return out


def format_size(n: int) -> str:
    """``1 B``, ``64 KiB``, ``1 MiB``, ``1,500 B``."""
    return format_bytes(n)


def check_size(name: str, value: Any, *, max_size: int | None = None, what: str = "this operation",
               unit: str = "byte") -> str:
    """``""`` if ``value`` is a usable size (in bytes, or a count if ``unit=""``), else a
    sentence saying what to pick instead."""
    fmt = format_size if unit == "byte" else (lambda n: f"{n:,}")
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be a whole number{' of bytes' if unit == 'byte' else ''}, got {value!r}"
    if value <= 0:
        if unit == "byte":
            return f"{name} must be at least 1 byte, got {value}: a socket call with {value} bytes moves nothing"
        return f"{name} must be at least 1, got {value}"
    if max_size is not None and value > max_size:
        return (f"{name} {fmt(value)} is beyond what {what} allows ({fmt(max_size)}): "
                f"pick {fmt(_largest_power(max_size))} or less")
    return ""


def _largest_power(n: int) -> int:
    return 1 << (n.bit_length() - 1)


def encode_text(text: Any, *, ascii_only: bool = False) -> tuple[bytes | None, str]:
    """Payload text → bytes, and a message: ``""`` for plain ASCII, an explanation otherwise.

    Non-ASCII text is sent as UTF-8 (the message says how many bytes that makes), unless
    ``ascii_only``: then it is refused (``None``) with a message saying why.
    """
    if isinstance(text, (bytes, bytearray)):
        return bytes(text) or None, "" if text else "payload text is empty: type at least one character"
    if not isinstance(text, str):
        return None, f"payload text must be a str, got {type(text).__name__}"
    if not text:
        return None, "payload text is empty: type at least one character"
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return None, f"payload text cannot be encoded as UTF-8 ({exc.reason}): type plain characters"
    if len(data) == len(text):
        return data, ""
    if ascii_only:
        bad = next(c for c in text if ord(c) > 127)
        return None, (f"payload text {text!r} is not ASCII ({bad!r} is not): this measurement needs one byte per "
                      f"character; type ASCII, or encode it yourself (UTF-8 would give {len(data)} bytes)")
    return data, f"payload text {text!r} is not ASCII: sent as UTF-8, {len(data)} bytes for {len(text)} characters"


def _fill(pattern: bytes, size: int) -> bytes:
    reps = -(-size // len(pattern))
    return (pattern * reps)[:size]


class SizeSlider(widgets.SelectionSlider):
    """A ``SelectionSlider`` of sizes that reports an invalid value instead of raising.

    Setting ``value`` from Python to something not on the slider (0, -5, 3000, 2**40) keeps
    the old value and calls ``on_invalid(message)`` (the panel's status line).
    """

    def __init__(self, sizes: Sequence[int], *, name: str = "size", unit: str = "byte",
                 on_invalid: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in sizes):
            raise ValueError(f"sizes must be positive ints, got {list(sizes)!r}")
        self.on_invalid = on_invalid
        self.size_name, self.unit = name, unit
        self.sizes = list(sizes)
        self.fmt = format_size if unit == "byte" else (lambda n: f"{n:,}")
        kwargs.setdefault("continuous_update", False)
        super().__init__(options=[(self.fmt(s), s) for s in sizes], **kwargs)

    @validate("value")
    def _validate_value(self, proposal: Any) -> Any:
        value = proposal.value
        if value in self.sizes and not isinstance(value, bool):
            return value
        name = self.size_name
        problem = check_size(name, value, unit=self.unit) or (
            f"{name} {value!r} is not on the slider: pick one of {', '.join(self.fmt(s) for s in self.sizes[:3])} … "
            f"{self.fmt(self.sizes[-1])}")
        if self.on_invalid is None or self._initializing_traits_ is True:
            raise TraitError(problem)
        self.on_invalid(problem)
        return self.value


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What a measurement function sees for one point of a run."""

    x: int
    payload_size: int
    payload: bytes
    bufsize: int
    text: str
    custom: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The run's Stop (shared by every point); ``None`` outside a panel.
    stop: StopSignal | None = None

    @property
    def stopped(self) -> bool:
        """True once Stop was pressed (or the run ran out of time): a long measurement may poll it."""
        return self.stop is not None and self.stop.is_set()

    def on_stop(self, fn: Callable[[], object]) -> None:
        """Call ``fn()`` when Stop is pressed, e.g. to unblock a wait this measurement is in."""
        if self.stop is not None:
            self.stop.on_stop(fn)

    def guard(self, sock: Any) -> Any:
        """Return ``sock``, shut down when Stop is pressed, so a call blocked on it returns::

            with s.guard(socket.create_connection(server.address)) as sock:
                yield lambda: sock.sendall(s.payload)
        """
        if self.stop is not None:
            shutdown_on_stop(self.stop, sock)
        return sock

    def __getattr__(self, name: str) -> Any:  # custom controls: s.clients
        custom = self.__dict__.get("custom", {})
        if name in custom:
            return custom[name]
        raise AttributeError(f"RunSettings has no {name!r}; known: x, payload_size, payload, bufsize, text, {', '.join(custom)}")


class SweepPanel(widgets.VBox):
    """Sliders, payload text, Run, a progress bar, a status line and a live plot.

    Args:
        measure: ``measure(settings) -> op | context manager | Timing`` (see module docstring).
        sweep: which control is swept: ``"payload"``, ``"bufsize"`` or a name in ``controls``.
            The sweep runs over powers of two from ``start`` up to that control's value.
        title: the claim, as the plot's title.
        claim: ``(claim text, expected growth)`` e.g. ``("send is O(k)", "linear")``: after each
            run the status line gives the computed verdict (``measure.compare``).
        judge: ``judge(points, settings) -> Verdict``, the lesson's own verdict for a run (the
            points fitted, the run's settings), when a growth label is not what the claim is
            about (e.g. "each added client adds far less than one server delay"); with
            ``fit="affine"``, whose line it judges.
        fit: ``"growth"`` (log-log slope), ``"affine"`` (fixed + per-unit) or ``None``.
        fit_from: fit only points with ``x ≥ fit_from`` (e.g. where a fixed cost stops dominating).
        max_size: the most the operation allows for the swept value (e.g. ``MAX_UDP_PAYLOAD``);
            ``max_payload`` the same for the payload when another control is swept. ``what``
            names the operation in the message ("sendto() over IPv4").
        hide: built-in controls the measurement ignores (``("bufsize",)`` for a send sweep);
            hidden controls are not shown and not named in the series label.
        payload_sizes / bufsize_sizes: the sliders' options (powers of two, 1 B .. 4 MiB and
            1 B .. 1 MiB).
        controls: extra sliders, ``{name: options}``; their values reach ``measure`` as attributes.
        series: label of a run's points, from the settings; default names the fixed controls.
        keep_runs: how many runs stay on the plot, so a run with other settings can be compared.
        scale, ylabel, xlabel, logx, logy: the plot's axes (``scale`` converts ns to the y unit).
        ymin: start a linear y axis there (0: a flat line looks flat, however the points scatter).
        repeats, budget_s: passed to ``measure.sweep`` for each point.
        max_run_s: a run lasting longer is stopped by the panel (and the status line says so).
        sweep_options: more keywords for ``measure.sweep`` (e.g. ``{"interleave": True,
            "rounds": 3, "total_budget_s": 3.0}``).
        estimator: what the fit uses from each point: ``"median"`` (what a user waits, the
            default), ``"min"`` or ``"low"`` (the operation's own cost; see ``measure.ESTIMATORS``).
    """

    def __init__(
        self,
        measure: Callable[[RunSettings], Any],
        *,
        sweep: str = "payload",
        title: str = "",
        claim: tuple[str, str] | None = None,
        judge: Callable[[Sequence[Point], RunSettings], Verdict] | None = None,
        fit: str | None = "growth",
        fit_from: int | None = None,
        max_size: int | None = None,
        max_payload: int | None = None,
        what: str = "this operation",
        hide: Sequence[str] = (),
        payload_sizes: Sequence[int] = tuple(powers_of_two(1, 4 * MIB)),
        bufsize_sizes: Sequence[int] = tuple(powers_of_two(1, MIB)),
        payload: int = 1024,
        bufsize: int = 4096,
        start: int | None = None,
        text: str = "x",
        ascii_only: bool = False,
        controls: dict[str, Sequence[int]] | None = None,
        series: Callable[[RunSettings], str] | None = None,
        keep_runs: int = 3,
        xlabel: str | None = None,
        ylabel: str = "time per call (µs)",
        scale: float = 1e-3,
        logx: bool = True,
        logy: bool = True,
        ymin: float | None = None,
        repeats: int = DEFAULT_REPEATS,
        budget_s: float = 1.0,
        min_interval_s: float = 0.5,
        max_run_s: float = MAX_RUN_S,
        sweep_options: dict[str, Any] | None = None,
        estimator: str = "median",
    ) -> None:
        if not callable(measure):
            raise TypeError(f"measure must be a function of the run settings, not {type(measure).__name__}")
        self.measure = measure
        self.claim = claim
        if judge is not None and not callable(judge):
            raise TypeError(f"judge must be a function (points, settings) -> Verdict, not {type(judge).__name__}")
        self.judge = judge
        if claim is not None:
            compare(claim[0], claim[1], fit_growth([1, 2], [1, 2]))  # checks the expected label now
        if fit not in ("growth", "affine", None):
            raise ValueError(f"fit must be 'growth', 'affine' or None, got {fit!r}")
        names = ["payload", "bufsize", *(controls or {})]
        if sweep not in names:
            raise ValueError(f"sweep must be one of {sorted(names)}, got {sweep!r}")
        if sweep in hide:
            raise ValueError(f"cannot hide the swept control {sweep!r}")
        self.fit_kind, self.fit_from = fit, fit_from
        self.max_size, self.max_payload, self.what = max_size, max_payload, what
        self.hide = tuple(hide)
        self.ascii_only = ascii_only
        self.series_of = series
        if isinstance(keep_runs, bool) or not isinstance(keep_runs, int) or keep_runs < 1:
            raise ValueError(f"keep_runs must be an int ≥ 1 (runs kept on the plot), got {keep_runs!r}")
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"repeats must be a positive int (batches per size, e.g. 21), got {repeats!r}")
        if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not budget_s > 0 \
                or budget_s == float("inf"):
            raise ValueError(f"budget_s must be a finite number of seconds > 0 (per size, e.g. 1.0), got {budget_s!r}")
        self.keep_runs = keep_runs
        self.repeats, self.budget_s = repeats, budget_s
        if isinstance(max_run_s, bool) or not isinstance(max_run_s, (int, float)) or not 0 < max_run_s < float("inf"):
            raise ValueError(f"max_run_s must be a number of seconds > 0, got {max_run_s!r}")
        self.max_run_s = float(max_run_s)
        self.sweep_options = dict(sweep_options or {})
        from .measure import ESTIMATORS
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.estimator = estimator

        self.status = widgets.HTML(value="", layout=widgets.Layout(min_height="1.6em"))
        say = self._say_problem
        for label, value in (("payload", payload), ("bufsize", bufsize)):  # a ValueError naming it, not a TraitError
            problem = check_size(label, value)
            if problem:
                raise ValueError(problem)
        self.payload_slider = SizeSlider(payload_sizes, name="payload size", on_invalid=say, value=payload, description="payload",
                                         style={"description_width": "7em"})
        self.bufsize_slider = SizeSlider(bufsize_sizes, name="buffer size", on_invalid=say, value=bufsize, description="bufsize",
                                         style={"description_width": "7em"})
        self.sliders: dict[str, SizeSlider] = {"payload": self.payload_slider, "bufsize": self.bufsize_slider}
        for name, options in (controls or {}).items():
            opts = list(options)
            self.sliders[name] = SizeSlider(opts, name=name, unit="", on_invalid=say, value=opts[0], description=name,
                                            style={"description_width": "7em"})
        self.sweep_name = sweep
        swept = self.sliders[sweep]
        swept.description = f"{sweep} up to"
        self.start = start if start is not None else swept.sizes[0]
        self.text_box = widgets.Text(value=text, description="text", continuous_update=False,
                                     style={"description_width": "7em"})
        self.button = widgets.Button(description="Run", button_style="primary", icon="play",
                                     tooltip="measure every size up to the slider's value")
        # Shown only during a run (hidden, not disabled: a disabled button reads as "busy").
        self.stop_button = widgets.Button(description="Stop", icon="stop", layout=widgets.Layout(display="none"),
                                          tooltip="end the run now (no new batch starts)")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="", layout=widgets.Layout(width="12em"))
        self.output = widgets.Output(layout=widgets.Layout(min_height="300px"))
        self.plot = LivePlot(title, xlabel or _default_xlabel(sweep), ylabel, logx=logx, logy=logy,
                             min_interval_s=min_interval_s, output=self.output, scale=scale, ymin=ymin)

        self.runs: list[list[Point]] = []
        self.points: list[Point] = []
        self.growth: Growth | None = None
        self.affine: Affine | None = None
        self.verdict: Verdict | None = None
        self.error: str = ""  # traceback of a failed run, for whoever wants it
        self._running = False
        self._state_lock = threading.Lock()
        self._done = threading.Event()
        self._done.set()
        self._signal = StopSignal()
        self._stop = self._signal.event  # what sweep() polls
        self._timers: list[threading.Timer] = []
        # Timers watch one run; once the run has ended (_disarm), a late _arm (a Stop pressed
        # as the run finished on its own) must not start a timer that nobody cancels.
        self._timers_lock = threading.Lock()
        self._watching = False
        self._stop_reason = ""
        self._run_id = 0
        self._rounds_seen = 0
        self.button.on_click(lambda _b: self.start_run())
        self.stop_button.on_click(lambda _b: self.stop())

        shown = [self.sliders[sweep]] + [s for n, s in self.sliders.items() if n != sweep and n not in self.hide]
        if "text" in self.hide:
            shown_text: list[widgets.Widget] = []
        else:
            shown_text = [self.text_box]
        super().__init__([*shown, *shown_text, widgets.HBox([self.button, self.stop_button, self.progress]), self.status, self.output])
        self._say(f"Pick sizes and press Run: {sweep} from {swept.fmt(self.start)} up to the slider's value.")

    # ---- public -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    @property
    def status_text(self) -> str:
        """The status line as plain text."""
        return html.unescape(self.status.value.replace("<b>", "").replace("</b>", ""))

    def xs(self) -> list[int]:
        """The values the next run sweeps."""
        top = self.sliders[self.sweep_name].value
        return [x for x in self.sliders[self.sweep_name].sizes if self.start <= x <= top]

    def run(self, timeout: float = RUN_TIMEOUT_S) -> bool:
        """Run a sweep and wait for it (from Python / a notebook cell). True if it ran to the end."""
        started = self.start_run()
        if not started:
            return False
        return self.wait(timeout) and not self.error

    def start_run(self) -> bool:
        """What the Run button does: check the input, then measure in a worker thread.

        Returns False (with a message in the status line) if a run is already going or the
        input is bad.
        """
        with self._state_lock:
            if self._running:
                self._say("A run is already in progress: wait for it to finish (this click was ignored).")
                return False
            problem, note, settings = self._read_settings()
            if problem:
                self._say_problem(problem)
                return False
            self._running = True
            self._done.clear()
            self._signal.clear()
            self._stop_reason = ""
            self._run_id += 1
            run_id = self._run_id
        self.error = ""
        self.button.disabled = True
        self.stop_button.layout.display = ""
        xs = self.xs()
        self.progress.max, self.progress.value = max(1, len(xs)), 0
        busy = _WORKER.busy
        self._say((f"Waiting for another panel's run to finish, then measuring {len(xs)} sizes … {note}" if busy
                   else f"Measuring {len(xs)} sizes … {note}").strip())
        with self._timers_lock:
            self._watching = True
        self._arm(lambda: self._out_of_time(run_id), self.max_run_s)
        _WORKER.submit(lambda: self._worker(settings, xs, note))
        return True

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> bool:
        """Wait until the current run (if any) is done; True if it finished within ``timeout``."""
        return self._done.wait(timeout)

    def stop(self) -> None:
        """End the run promptly: no new batch starts, the measurement's ``on_stop`` cleanups run
        (unblocking a call stuck on a guarded socket). A second press while stopping says so."""
        if not self._running:
            self._say("Nothing to stop: no run is going.")
            return
        if self._signal.is_set():
            self._say("Already stopping: waiting for the measurement in progress to return.")
            return
        self._stop_reason = self._stop_reason or "stopped"
        self._say("Stopping: ending the measurement in progress …")
        self._signal.set()
        run_id = self._run_id
        self._arm(lambda: self._still_blocked(run_id), STOP_GRACE_S)

    def _arm(self, fn: Callable[[], None], after_s: float) -> None:
        timer = threading.Timer(after_s, fn)
        timer.daemon = True
        timer.name = "socketlessons-panel-timer"
        with self._timers_lock:
            if not self._watching:  # the run already ended: nothing to watch
                return
            self._timers.append(timer)
            timer.start()

    def _disarm(self) -> None:
        with self._timers_lock:
            self._watching = False
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join(1.0)

    def _out_of_time(self, run_id: int) -> None:
        if self._running and run_id == self._run_id and not self._signal.is_set():
            self._stop_reason = f"the run took longer than {self.max_run_s:g} s"
            self.stop()

    def _still_blocked(self, run_id: int) -> None:
        """Stop was pressed STOP_GRACE_S ago and the measurement has not returned: say so, free the
        panel, and give later runs a fresh worker thread."""
        with self._state_lock:
            if not self._running or run_id != self._run_id:
                return
            self._running = False
            self._run_id += 1  # the blocked worker, if it ever returns, changes nothing
        self._disarm()
        _WORKER.abandon()
        self.error = "blocked"
        self.button.disabled = False
        self.stop_button.layout.display = "none"
        self._say_problem(f"Stop was pressed {STOP_GRACE_S:g} s ago, but the measurement is still blocked inside a "
                          "call that does not return (for example a send to a server that never reads, on a socket "
                          "the measurement did not guard with s.guard(sock)). The panel is free again; that call is "
                          "left waiting until its peer goes away.")
        self._done.set()

    def snapshot(self) -> Any:
        """The current figure as a static PNG (``IPython.display.Image``)."""
        return self.plot.snapshot()

    # ---- internals ----------------------------------------------------------------------------

    def _read_settings(self) -> tuple[str, str, dict[str, Any]]:
        """Problem ("" if none), a note for the status line, and the fixed settings of a run."""
        payload_bytes, note = encode_text(self.text_box.value, ascii_only=self.ascii_only)
        if payload_bytes is None:
            return note, "", {}
        values = {name: s.value for name, s in self.sliders.items()}
        limits = {"payload": self.max_payload, self.sweep_name: self.max_size}
        for name, value in values.items():
            problem = check_size(self.sliders[name].size_name, value,
                                 max_size=limits.get(name), what=self.what, unit=self.sliders[name].unit)
            if problem:
                return problem, "", {}
        if not self.xs():
            return f"nothing to sweep: the {self.sweep_name} slider is below the start ({self.start})", "", {}
        return "", note, {"values": values, "pattern": payload_bytes, "text": self.text_box.value}

    def _settings_for(self, x: int, fixed: dict[str, Any]) -> RunSettings:
        values = dict(fixed["values"])
        values[self.sweep_name] = x
        size = values["payload"]
        custom = {k: v for k, v in values.items() if k not in ("payload", "bufsize")}
        return RunSettings(x, size, _fill(fixed["pattern"], size), values["bufsize"], fixed["text"], custom,
                           self._signal)

    def _series_label(self, fixed: dict[str, Any]) -> str:
        if self.series_of is not None:
            return self.series_of(self._settings_for(self.xs()[0], fixed))
        parts = [f"{n} {format_size(v) if n in ('payload', 'bufsize') else v}"
                 for n, v in fixed["values"].items() if n != self.sweep_name and n not in self.hide]
        return ", ".join(parts)

    def _worker(self, fixed: dict[str, Any], xs: list[int], note: str) -> None:
        label = self._series_label(fixed)
        run_id = self._run_id
        try:
            time.sleep(SETTLE_S)  # let the kernel's IOPub thread send the status updates first
            options = dict(self.sweep_options)
            on_point: Callable[[Point], object] | None = self._on_point
            if options.get("interleave"):
                # Rounds over all sizes: the plot redraws the whole series after each round, and
                # the progress bar counts rounds (at most max_rounds, default 2 × rounds).
                on_point = None
                self._rounds_seen = 0
                self.progress.max = options.get("max_rounds") or 2 * options.get("rounds", 3)
                user_on_round = options.pop("on_round", None)

                def on_round(pts: list[Point]) -> None:
                    self._on_round(label, pts)
                    if user_on_round is not None:
                        user_on_round(pts)

                options["on_round"] = on_round
            points = sweep(lambda x: self.measure(self._settings_for(x, fixed)), xs, series=label,
                           repeats=self.repeats, budget_s=self.budget_s, on_point=on_point, stop=self._stop,
                           **options)
            if run_id != self._run_id:
                return  # given up on as blocked: the panel has moved on
            if not points:  # stopped before the first point: the plot keeps the last run
                self._say(f"Stopped before the first size ({self._stop_reason or 'stopped'}): nothing new measured.")
                return
            self.points = points
            self.runs.append(points)
            del self.runs[: -self.keep_runs]
            self._conclude(points, label, note, self._settings_for(points[-1].x, fixed))
        except Exception as exc:  # a failed measurement is a message, never a traceback in a cell
            if run_id != self._run_id:
                return
            self.error = traceback.format_exc()
            if self._signal.is_set():
                self._say(f"Stopped ({self._stop_reason}): the measurement in progress was interrupted "
                          f"({type(exc).__name__}: {exc}). The plot shows earlier runs only.")
            else:
                self._say(f"The measurement failed: {type(exc).__name__}: {exc}. The plot shows earlier runs only; "
                          "check the server it measures is running (re-run its cell) and press Run again.")
        finally:
            if run_id == self._run_id:
                try:
                    self._disarm()
                    self.plot.finish()
                except Exception as exc:  # the run is over all the same: never leave wait() hanging
                    self._say_problem(f"The run ended, but its plot could not be redrawn: {type(exc).__name__}: {exc}")
                finally:
                    self.button.disabled = False
                    self.stop_button.layout.display = "none"
                    self._running = False
                    self._done.set()

    def _forget_series(self, label: str) -> None:
        """A new run replaces the plotted run with the same settings; only ``keep_runs`` stay."""
        runs = [r for r in self.runs if r and r[0].series != label]
        del runs[: max(0, len(runs) - (self.keep_runs - 1))]
        self.runs = runs
        self.plot.keep_series({r[0].series for r in runs})

    def _on_point(self, point: Point) -> None:
        if self.progress.value == 0:  # the run's first point: now its series replaces the old one
            self._forget_series(point.series)
        self.progress.value += 1
        self.plot.add(point)
        # The widget updates just sent are serialised by the kernel's IOPub thread, which needs
        # the GIL: give it a moment, so it does not run during the next point's timed batches.
        time.sleep(SETTLE_S)

    def _on_round(self, label: str, points: list[Point]) -> None:
        if self._rounds_seen == 0:
            self._forget_series(label)
        self._rounds_seen += 1
        self.progress.value = min(self.progress.max, self._rounds_seen)
        self.plot.replace_series(label, points)
        time.sleep(SETTLE_S)

    def _conclude(self, points: list[Point], label: str, note: str, settings: RunSettings | None = None) -> None:
        self.growth = self.affine = self.verdict = None
        used = [p for p in points if self.fit_from is None or p.x >= self.fit_from]
        lines = [f"Measured {len(points)} {_plural_of(self.sweep_name)}."]
        if self._stop.is_set() and len(points) < len(self.xs()):
            why = f" ({self._stop_reason})" if self._stop_reason and self._stop_reason != "stopped" else ""
            lines = [f"Stopped after {len(points)} of {len(self.xs())} {_plural_of(self.sweep_name)}{why}."]
        if self.fit_kind == "growth" and len(used) >= 2:
            self.growth = fit_growth([p.x for p in used], estimates(used, self.estimator))
            self.plot.add_fit(label, self.growth, (min(p.x for p in used), max(p.x for p in used)),
                              redraw=False)  # finish() draws it
            if self.claim is not None:
                self.verdict = compare(self.claim[0], self.claim[1], self.growth)
                lines.append(self.verdict.text)
            else:
                g = self.growth
                # the same numbers whatever the label, so a quiet run's "linear" and a busy run's
                # "too noisy to say" of the same slope read side by side (the note repeated the slope)
                spread = (f"slope {fmt_slope(g.slope, g.slope_error)} on a log-log scale, R² {g.r2:.2f}"
                          if not math.isnan(g.slope) else "")
                why = ""
                if g.label == "too noisy to say":
                    why = (": the points scatter too much to name the growth" if g.reason == "scatter"
                           else f": {g.note}" if g.note else "")
                lines.append(f"Growth: {g.label}" + (f", {spread}" if spread else "") + f"{why}.")
        elif self.fit_kind == "affine" and len(used) >= 2:
            self.affine = fit_affine([p.x for p in used], [p.median_ns for p in used])
            self.plot.add_fit(label, self.affine, (min(p.x for p in used), max(p.x for p in used)),
                              redraw=False)  # finish() draws it
            if self.judge is not None and settings is not None:
                self.verdict = self.judge(used, settings)
                lines.append(self.verdict.text)
            else:
                lines.append(f"Fit: {self.affine} (R² {self.affine.r2:.2f}).")
        if self.fit_kind is not None and len(used) < 2 and points:
            where = f" from {self.sliders[self.sweep_name].fmt(self.fit_from)} up" if self.fit_from else ""
            lines.append(f"Too few sizes{where} to fit a line: move the {self.sweep_name} slider higher and run again.")
        notes = sorted({p.note for p in points if p.note})
        lines += notes
        if note:
            lines.append(note)
        self._say(" ".join(lines))

    def _say(self, text: str) -> None:
        self.status.value = html.escape(text)

    def _say_problem(self, text: str) -> None:
        self.status.value = "<b>" + html.escape(text) + "</b>"


class _Worker:
    """The one thread that runs every panel's measurements, one run after another.

    One thread for all panels: two runs never overlap (each would distort the other's timings
    through the GIL). matplotlib opens its font files once per rendering thread: a retiring
    worker closes them (``close_cached_fonts``). A daemon thread: it never delays the kernel's exit. It waits for work
    with a timeout and loops, so no wait is unbounded.
    """

    IDLE_WAIT_S = 1.0  # retire 1 s after the last run: thread counts settle well within the leak checks

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._active = 0
        self._generation = 0

    @property
    def busy(self) -> bool:
        return self._active > 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._active += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, args=(self._queue, self._generation),
                                                name="socketlessons-panel-worker", daemon=True)
                self._thread.start()
            self._queue.put(job)

    def abandon(self) -> None:
        """The current job is blocked for good: leave its thread behind (it ends when its job
        returns) and serve later jobs, and those queued behind it, from a fresh thread."""
        with self._lock:
            old = self._queue
            self._generation += 1
            self._queue = queue.Queue()
            self._thread = None
            waiting = []
            while True:
                try:
                    waiting.append(old.get_nowait())
                except queue.Empty:
                    break
            self._active = 0
        for job in waiting:
            self.submit(job)

    def _loop(self, jobs: queue.Queue[Callable[[], None]], generation: int) -> None:
        while True:
            try:
                job = jobs.get(timeout=self.IDLE_WAIT_S)
            except queue.Empty:
                with self._lock:  # idle: end, so thread counts return to where they were
                    if generation != self._generation:
                        close_cached_fonts()
                        return
                    if self._active == 0 and jobs.empty():
                        self._thread = None
                        close_cached_fonts()  # this thread's font files (descriptors) with it
                        return
                continue
            try:
                job()  # a panel's _worker: catches everything itself
            except BaseException:  # pragma: no cover - never let this thread print or die
                pass
            finally:
                with self._lock:
                    if generation == self._generation:
                        self._active -= 1
            if generation != self._generation:
                close_cached_fonts()
                return  # abandoned while its job was blocked: a fresh thread serves the rest


_WORKER = _Worker()


def submit_to_panel_worker(job: Callable[[], None]) -> bool:
    """Queue ``job`` on the one thread that runs every panel's measurements; return whether
    another run was already queued or running (then ``job`` waits its turn).

    For lesson panels that are not a ``SweepPanel``: their runs must not overlap a sweep's
    timed batches either. ``job`` must catch its own exceptions (threads never print).
    """
    busy = _WORKER.busy
    _WORKER.submit(job)
    return busy


def _plural_of(sweep: str) -> str:
    """What a sweep's points are, in the plural: "sizes" of a payload or buffer, else "client counts"."""
    return {"clients": "client counts"}.get(sweep, "sizes")


def _default_xlabel(sweep: str) -> str:
    return {"payload": "payload size (bytes)", "bufsize": "buffer size (bytes)"}.get(sweep, sweep)
