"""Timing, sweeps and growth fits: turn a claim ("send is O(k)") into numbers and a verdict.

Rules of this module:

* Time with ``time.perf_counter_ns``, after a warm-up, in **batches**: an operation as small as
  a 1-byte loopback ``send`` (about 4 µs) is called ``batch`` times between two timer reads, so
  the harness (timer reads, the loop, the call) costs a few per cent at most.
  ``harness_overhead()`` measures that cost (it times an empty operation the same way); compare
  it with a result's ``median_ns``. ``python -m socketlessons.measure`` prints it.
* Report the **median** and the inter-quartile range (q1..q3) of the per-call times: one slow
  outlier (a page fault, a scheduler hiccup) moves neither.
* Nothing else of ours runs during a timed batch. Helper servers in thread mode share the
  kernel's GIL: a plot redraw or a busy Python thread during a batch makes every ``recv`` wait
  for the GIL's switch interval (5 ms) and the timing measures the GIL, not the socket
  (DESIGN.md, "Known traps": measured ×400). So ``sweep`` measures points one after another in
  the calling thread and calls ``on_point`` (the redraw) only between points, and
  ``busy_kernel_note()`` probes for a busy thread and says so in the result's ``note``.
* The statistics and fits are pure functions (no I/O), so they are tested on synthetic data.

Example::

    from socketlessons.measure import time_op, sweep, fit_growth
    t = time_op(lambda: sock.send(b"x"))          # Timing(median_ns=..., q1_ns=..., ...)
    points = sweep(lambda k: (lambda: sock.send(b"x" * k)), [1, 16, 256, 4096])
    fit_growth([p.x for p in points], [p.median_ns for p in points]).label   # 'constant'
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

__all__ = [
    "Affine",
    "Growth",
    "Point",
    "Timing",
    "Verdict",
    "busy_kernel_note",
    "gil_handover",
    "compare",
    "fit_affine",
    "fit_growth",
    "harness_overhead",
    "summarize",
    "sweep",
    "time_op",
]

#: A timed batch lasts at least this long, so two timer reads (~0.1 µs) and the loop are a
#: small share of it; small enough that 21 repeats of a tiny operation take a few ms.
TARGET_BATCH_NS = 200_000
#: Never call an operation more than this many times in one batch (an empty op needs ~5,000).
MAX_BATCH = 100_000
#: Default repeats (batches) per measurement: an odd number, so the median is one sample.
DEFAULT_REPEATS = 21
#: A measurement stops adding repeats after this long (keeping at least MIN_REPEATS), so a
#: slow operation (a 100 ms round trip) never makes a cell run for minutes.
DEFAULT_BUDGET_S = 2.0
MIN_REPEATS = 5

# ---- records ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Timing:
    """Per-call time of an operation: median and inter-quartile range over ``n`` batches.

    ``samples_ns`` holds one per-call time per batch (batch time / ``batch``). ``note`` is
    empty unless the measurement looked distorted (see ``busy_kernel_note``).
    """

    median_ns: float
    q1_ns: float
    q3_ns: float
    n: int
    batch: int
    samples_ns: tuple[float, ...]
    note: str = ""

    @property
    def median_us(self) -> float:
        return self.median_ns / 1000

    @property
    def iqr_ns(self) -> float:
        """Spread: q3 - q1 (half the batches fall inside it)."""
        return self.q3_ns - self.q1_ns

    def __str__(self) -> str:
        s = f"{_fmt_ns(self.median_ns)} per call (IQR {_fmt_ns(self.q1_ns)}–{_fmt_ns(self.q3_ns)}, {self.n}×{self.batch} calls)"
        return f"{s}; {self.note}" if self.note else s


@dataclasses.dataclass(frozen=True)
class Point:
    """One point of a sweep: the parameter ``x`` and the timing measured there."""

    x: float
    median_ns: float
    q1_ns: float
    q3_ns: float
    n: int
    series: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    note: str = ""

    @property
    def median_us(self) -> float:
        return self.median_ns / 1000

    @classmethod
    def from_timing(cls, x: float, timing: Timing, series: str = "", extra: dict[str, Any] | None = None) -> Point:
        return cls(x, timing.median_ns, timing.q1_ns, timing.q3_ns, timing.n, series,
                   {"batch": timing.batch, **(extra or {})}, timing.note)


def _fmt_ns(ns: float) -> str:
    if ns >= 1e9:
        return f"{ns / 1e9:.3g} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.3g} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.3g} µs"
    return f"{ns:.3g} ns"


def summarize(samples_ns: Sequence[float], *, batch: int = 1, note: str = "") -> Timing:
    """A ``Timing`` from per-call samples you measured yourself (e.g. one latency per client)."""
    if not samples_ns:
        raise ValueError("summarize() needs at least one sample")
    data = sorted(float(s) for s in samples_ns)
    if len(data) == 1:
        q1 = med = q3 = data[0]
    else:
        q1, med, q3 = statistics.quantiles(data, n=4, method="inclusive")
    return Timing(med, q1, q3, len(data), batch, tuple(samples_ns), note)


# ---- timing -------------------------------------------------------------------------------


def _time_batch(op: Callable[[], object], batch: int, clock: Callable[[], int] = time.perf_counter_ns) -> int:
    calls = range(batch)
    t0 = clock()
    for _ in calls:
        op()
    return clock() - t0


def _calibrate(op: Callable[[], object]) -> int:
    """Smallest batch (roughly) whose run lasts TARGET_BATCH_NS; also warms the op up."""
    batch = 1
    while True:
        # The faster of two tries: one scheduler hiccup must not stop the search too early.
        elapsed = min(_time_batch(op, batch), _time_batch(op, batch))
        if elapsed >= TARGET_BATCH_NS or batch >= MAX_BATCH:
            return batch
        # Aim 20 % past the target, at least doubling, never beyond MAX_BATCH.
        guess = math.ceil(batch * TARGET_BATCH_NS * 1.2 / max(elapsed, 1))
        batch = min(MAX_BATCH, max(2 * batch, guess))


def time_op(
    op: Callable[[], object],
    *,
    repeats: int = DEFAULT_REPEATS,
    warmup: int = 3,
    batch: int | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    check_busy: bool = True,
) -> Timing:
    """Per-call time of ``op()`` (a zero-argument callable): median and IQR over batches.

    Args:
        op: called ``warmup + batch × repeats`` times (plus a few for calibration).
        repeats: batches to time (fewer if ``budget_s`` runs out; never fewer than 5).
        warmup: untimed calls first (caches, connection set-up, lazy imports).
        batch: calls per timed batch; ``None`` picks one so a batch lasts ≥ 200 µs, which keeps
            the harness overhead (``harness_overhead()``, ~0.05 µs per call here) under 5 % of
            even a 1-byte ``send``.
        budget_s: stop adding repeats after this long.
        check_busy: probe for a busy Python thread before timing and put a ``note`` on the
            result if one holds the GIL (see ``busy_kernel_note``).

    Returns:
        A ``Timing``; ``str(timing)`` reads "4.1 µs per call (IQR 4.0 µs–4.3 µs, 21×48 calls)".
    """
    if not callable(op):
        raise TypeError(f"op must be a zero-argument callable (e.g. lambda: sock.send(b'x')), not {type(op).__name__}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int ≥ 0, got {warmup!r}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be a positive int or None (automatic), got {batch!r}")
    note = busy_kernel_note() if check_busy else ""
    for _ in range(warmup):
        op()
    if batch is None:
        batch = _calibrate(op)
    deadline = time.perf_counter_ns() + int(budget_s * 1e9)
    samples: list[float] = []
    for i in range(repeats):
        samples.append(_time_batch(op, batch) / batch)
        if i + 1 >= MIN_REPEATS and time.perf_counter_ns() > deadline:
            break
    timing = summarize(samples, batch=batch)
    note = note or _gil_shaped_note(timing)
    return dataclasses.replace(timing, note=note) if note else timing


@functools.lru_cache(maxsize=1)
def _cached_overhead() -> Timing:
    return time_op(_empty, repeats=DEFAULT_REPEATS, check_busy=False)


def _empty() -> None:
    return None


def harness_overhead(*, fresh: bool = False) -> Timing:
    """What the harness itself costs per call: ``time_op`` of an empty operation.

    Per call this is the loop step plus one Python call (tens of ns here); the two timer reads
    are shared by the whole batch. Divide by a result's ``median_ns`` for the share. Cached
    after the first call (``fresh=True`` measures again).
    """
    if fresh:
        _cached_overhead.cache_clear()
    return _cached_overhead()


# ---- the busy-kernel guard ------------------------------------------------------------------

#: A GIL hand-over normally takes a few µs; with a CPU-bound Python thread it takes up to the
#: switch interval (5 ms), spent running that thread. If other threads of this process used
#: more than this share of the switch interval per hand-over, one of them is busy.
_BUSY_SHARE = 0.1


@dataclasses.dataclass(frozen=True)
class Handover:
    """What ``time.sleep(0)`` cost: wall time, and CPU time used meanwhile by *other* threads
    of this process (medians over a few rounds)."""

    wall_ns: float
    others_cpu_ns: float


def gil_handover(rounds: int = 5) -> Handover:
    """Release and re-take the GIL (``time.sleep(0)``) and see who ran meanwhile.

    Alone in the process a round takes a few µs (tens on a loaded machine, when the OS runs
    another process: that costs no CPU time of *this* process). If another Python thread is
    busy (a plot redraw, a CPU-bound loop), it runs until its switch interval
    (``sys.getswitchinterval()``, 5 ms) ends, and its CPU time shows in ``others_cpu_ns``.
    """
    walls, others = [], []
    for _ in range(rounds):
        w0, p0, t0 = time.perf_counter_ns(), time.process_time_ns(), time.thread_time_ns()
        time.sleep(0)
        t1, p1, w1 = time.thread_time_ns(), time.process_time_ns(), time.perf_counter_ns()
        walls.append(w1 - w0)
        others.append(max(0, (p1 - p0) - (t1 - t0)))
    return Handover(statistics.median(walls), statistics.median(others))


def busy_kernel_note() -> str:
    """A sentence if another Python thread of this process is busy (timings would measure the
    GIL, not the socket); ``""`` when the kernel is quiet. Costs well under a millisecond."""
    switch_ns = sys.getswitchinterval() * 1e9
    h = gil_handover()
    if h.others_cpu_ns < _BUSY_SHARE * switch_ns:
        return ""
    n = threading.active_count() - 1
    return (
        f"distorted: another Python thread held the GIL (it ran {h.others_cpu_ns / 1e6:.1f} ms while this "
        f"one waited {h.wall_ns / 1e6:.1f} ms; switch interval {switch_ns / 1e6:.0f} ms; {n} other thread(s) "
        "alive). Stop busy threads (or move the server out with mode='process') and measure again."
    )


def _gil_shaped_note(timing: Timing) -> str:
    """A note if the slow samples sit near the GIL switch interval while the fast ones do not."""
    switch_ns = sys.getswitchinterval() * 1e9
    if timing.batch == 1 and timing.q3_ns >= 0.5 * switch_ns > 10 * timing.q1_ns:
        return (
            f"suspicious: a quarter of the calls took ≥ {_fmt_ns(timing.q3_ns)}, near the GIL switch "
            f"interval ({_fmt_ns(switch_ns)}), while the fastest took {_fmt_ns(timing.q1_ns)}: "
            "another Python thread, or another program, was probably busy."
        )
    return ""


# ---- sweeps -------------------------------------------------------------------------------

OpMaker = Callable[[Any], Any]


def sweep(
    make_op: OpMaker,
    xs: Iterable[float],
    *,
    series: str = "",
    repeats: int = DEFAULT_REPEATS,
    warmup: int = 3,
    batch: int | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    on_point: Callable[[Point], object] | None = None,
    stop: threading.Event | None = None,
) -> list[Point]:
    """Measure ``make_op(x)`` for each ``x``, one point after another, in the calling thread.

    ``make_op(x)`` may return:

    * a zero-argument op, timed with ``time_op``;
    * a context manager yielding such an op (set-up for ``x``, e.g. a connected socket with
      that buffer size, is closed when the point is done);
    * a ``Timing`` it measured itself (e.g. ``summarize(latencies)`` for N clients).

    If the op (or the context's value) has an ``extra`` attribute (a dict, or a callable
    returning one), it is read after timing and kept in ``Point.extra`` (e.g. recv calls).

    ``on_point(point)`` runs after each point, between timed batches, never during one: this
    is where a live plot redraws. Setting ``stop`` (a ``threading.Event``) ends the sweep
    after the current point.
    """
    points: list[Point] = []
    for x in xs:
        if stop is not None and stop.is_set():
            break
        made = make_op(x)
        if isinstance(made, Timing):
            point = Point.from_timing(x, made, series)
        elif callable(made) and not hasattr(made, "__enter__"):
            point = _measure_point(x, made, series, repeats, warmup, batch, budget_s)
        elif hasattr(made, "__enter__"):
            with made as op:
                if isinstance(op, Timing):
                    point = Point.from_timing(x, op, series)
                else:
                    point = _measure_point(x, op, series, repeats, warmup, batch, budget_s)
        else:
            raise TypeError(
                f"make_op({x!r}) returned {type(made).__name__}; return a zero-argument callable, "
                "a context manager yielding one, or a Timing"
            )
        points.append(point)
        if on_point is not None:
            on_point(point)
    return points


def _measure_point(x: float, op: Callable[[], object], series: str, repeats: int, warmup: int,
                   batch: int | None, budget_s: float) -> Point:
    timing = time_op(op, repeats=repeats, warmup=warmup, batch=batch, budget_s=budget_s)
    extra = getattr(op, "extra", None)
    if callable(extra):
        extra = extra()
    return Point.from_timing(x, timing, series, dict(extra) if extra else None)


# ---- fits ---------------------------------------------------------------------------------

GrowthLabel = Literal["constant", "sub-linear", "linear", "super-linear", "quadratic", "too noisy to say"]

#: Slope bands of the log-log fit, and their names. Wide enough for loopback noise (a real
#: 128 KiB..8 MiB send sweep gives 0.85..0.95 here: a fixed cost bends the low end), narrow
#: enough that 0.5 (a fixed cost plus a slope, seen over a middle range) is not "linear".
_BANDS: tuple[tuple[float, float, GrowthLabel], ...] = (
    (-math.inf, -0.15, "too noisy to say"),  # shrinking with size: not a growth we name
    (-0.15, 0.15, "constant"),
    (0.15, 0.8, "sub-linear"),
    (0.8, 1.2, "linear"),
    (1.2, 1.8, "super-linear"),
    (1.8, 2.2, "quadratic"),
    (2.2, math.inf, "super-linear"),
)
#: Fits need x to span at least this ratio (three doublings) to name a growth.
MIN_X_RATIO = 8.0
#: Largest half-width (≈ 2 standard errors) of the slope we accept before saying "too noisy".
MAX_SLOPE_UNCERTAINTY = 0.2


@dataclasses.dataclass(frozen=True)
class Growth:
    """A log-log fit ``y ≈ e^intercept · x^slope`` and its name in plain words."""

    slope: float
    intercept: float
    r2: float
    label: GrowthLabel
    note: str = ""
    slope_error: float = 0.0  # ≈ 2 standard errors (95 %)

    def predict(self, x: float) -> float:
        return math.exp(self.intercept) * x**self.slope

    def __str__(self) -> str:
        return f"{self.label}, slope {self.slope:.2f}"


@dataclasses.dataclass(frozen=True)
class Affine:
    """``y ≈ fixed_ns + per_unit_ns × x``: a fixed cost plus a cost per byte (or per client)."""

    fixed_ns: float
    per_unit_ns: float
    r2: float

    def predict(self, x: float) -> float:
        return self.fixed_ns + self.per_unit_ns * x

    def __str__(self) -> str:
        return f"{_fmt_ns(self.fixed_ns)} + {self.per_unit_ns:.3g} ns × x"


def _least_squares(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float, float]:
    """Slope, intercept, R² and the standard error of the slope."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0:
        raise ValueError("all x values are equal: nothing to fit")
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys))
    r2 = 1.0 - ss_res / syy if syy > 0 else 1.0
    se = math.sqrt(ss_res / (n - 2) / sxx) if n > 2 else math.inf
    return slope, intercept, r2, se


def _check_xy(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    xs, ys = [float(x) for x in xs], [float(y) for y in ys]
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys differ in length ({len(xs)} vs {len(ys)})")
    return xs, ys


def fit_growth(xs: Sequence[float], ys: Sequence[float]) -> Growth:
    """Fit ``log y = slope · log x + c`` and name the growth ("constant", "linear", ...).

    Says "too noisy to say" (with a ``note`` explaining why) when there are fewer than 3
    points, x spans less than 8×, or the slope's uncertainty is too wide to pick one name.
    """
    xs, ys = _check_xy(xs, ys)
    if any(x <= 0 for x in xs) or any(y <= 0 for y in ys):
        raise ValueError("fit_growth needs positive x and y (it fits on a log-log scale)")
    if len(xs) < 3:
        return Growth(math.nan, math.nan, math.nan, "too noisy to say", f"only {len(xs)} point(s): need at least 3")
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    slope, intercept, r2, se = _least_squares(lx, ly)
    err = 2 * se
    label = next(name for lo, hi, name in _BANDS if lo <= slope < hi)
    note = ""
    ratio = max(xs) / min(xs)
    if ratio < MIN_X_RATIO:
        note = f"x spans only {ratio:.3g}×: measure over at least {MIN_X_RATIO:g}× to tell growths apart"
    elif err > MAX_SLOPE_UNCERTAINTY:
        note = f"slope {slope:.2f} ± {err:.2f}: the points scatter too much to name the growth (R² {r2:.2f})"
    elif slope < -0.15:
        note = f"slope {slope:.2f}: the time shrinks as x grows, which no claim predicts; check the measurement"
    if note:
        label = "too noisy to say"
    return Growth(slope, intercept, r2, label, note, err)


def fit_affine(xs: Sequence[float], ys: Sequence[float]) -> Affine:
    """Least squares ``y = fixed + per_unit × x`` on linear scales (send time = fixed + k × per-byte)."""
    xs, ys = _check_xy(xs, ys)
    if len(xs) < 2:
        raise ValueError("fit_affine needs at least 2 points")
    slope, intercept, r2, _ = _least_squares(xs, ys)
    return Affine(intercept, slope, r2)


# ---- verdicts -----------------------------------------------------------------------------

Status = Literal["confirmed", "refined", "contradicted", "inconclusive"]

#: Names close enough that the measurement refines the claim rather than contradicting it.
_NEIGHBOURS = {
    frozenset({"constant", "sub-linear"}),
    frozenset({"sub-linear", "linear"}),
    frozenset({"linear", "super-linear"}),
    frozenset({"super-linear", "quadratic"}),
}


@dataclasses.dataclass(frozen=True)
class Verdict:
    status: Status
    text: str

    def __str__(self) -> str:
        return self.text


def compare(claim: str, expected_label: str, growth: Growth) -> Verdict:
    """Hold a measured ``growth`` against a claim ("send is O(k)", expected "linear").

    "confirmed" when the names match, "refined" when they are neighbours (a fixed cost makes
    O(k) look sub-linear over small k), "contradicted" otherwise, "inconclusive" when the fit
    could not name the growth.
    """
    expected = expected_label.strip().lower()
    valid = {name for _, _, name in _BANDS} - {"too noisy to say"}
    if expected not in valid:
        raise ValueError(f"expected_label must be one of {sorted(valid)}, got {expected_label!r}")
    if growth.label == "too noisy to say":
        why = growth.note or "the fit is too poor"
        return Verdict("inconclusive", f"{claim}: inconclusive, {why}.")
    measured = f"measured slope {growth.slope:.2f} ± {growth.slope_error:.2f} on a log-log scale ({growth.label})"
    if growth.label == expected:
        return Verdict("confirmed", f"{claim}: confirmed, {measured}, as the claim says ({expected}).")
    if frozenset({growth.label, expected}) in _NEIGHBOURS:
        return Verdict("refined", f"{claim}: refined, {measured}, close to but not quite {expected}; "
                                  "a fixed cost or a cache effect bends the line.")
    return Verdict("contradicted", f"{claim}: contradicted, {measured}, not {expected}.")


def _main() -> None:  # python -m socketlessons.measure
    """Print the harness overhead and its share of a 1-byte loopback send (medians of 5 rounds)."""
    import socket

    from .servers import SinkServer

    rounds = []
    with SinkServer() as server, socket.create_connection(server.address) as sock:
        for _ in range(5):
            rounds.append((harness_overhead(fresh=True), time_op(lambda: sock.send(b"x"))))
        sock.shutdown(socket.SHUT_WR)
        sock.recv(8)
    overhead = statistics.median(o.median_ns for o, _ in rounds)
    send = statistics.median(t.median_ns for _, t in rounds)
    print(f"harness overhead (empty op, per call): {_fmt_ns(overhead)}; batch {rounds[-1][0].batch}")
    print(f"1-byte send to a loopback SinkServer:  {_fmt_ns(send)}; batch {rounds[-1][1].batch}")
    print(f"overhead share: {100 * overhead / send:.1f} % (medians of {len(rounds)} rounds)")
    unbatched = _unbatched_cost_ns()
    print(f"for comparison, timing each call alone (two timer reads + an append): {_fmt_ns(unbatched)} "
          f"per call, {100 * unbatched / send:.0f} % of the send")


def _unbatched_cost_ns(n: int = 10_000) -> float:
    clock, samples = time.perf_counter_ns, []
    append = samples.append
    t_start = clock()
    for _ in range(n):
        t0 = clock()
        _empty()
        append(clock() - t0)
    return (clock() - t_start) / n


if __name__ == "__main__":
    _main()
