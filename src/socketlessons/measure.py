"""Timing, sweeps and growth fits: turn a claim ("send is O(k)") into numbers and a verdict.

Rules of this module:

* Time with ``time.perf_counter_ns``, after a warm-up, in **batches**: an operation as small as
  a 1-byte loopback ``send`` (0.4 µs when the receiver is awake, about 4 µs when each send has to
  wake it) is called ``batch`` times between two timer reads, so the harness (the loop step and
  one Python call, ~20 ns here) is a few per cent of even the fast case.
  ``harness_overhead()`` measures that cost (it times an empty operation the same way); compare
  it with a result's ``median_ns``. ``python -m socketlessons.measure`` prints it.
* Report the **median** and the inter-quartile range (q1..q3) of the per-call times: one slow
  outlier (a page fault, a scheduler hiccup) moves neither.
* **Pick the estimator per claim** (``estimator=`` in ``estimate``, ``estimates``,
  ``judge_growth``): ``"min"`` or ``"low"`` (the 10th percentile of the batch times) for "what
  the operation itself costs", ``"median"`` for "what a user waits". Noise on a busy machine
  only ever *adds* time to a batch (another process ran, a cache was cold), so the fastest
  batches are the closest to the operation's own cost: the ``timeit`` docs say "the min is the
  most useful value" and that higher values are "typically not caused by variability in
  Python's speed, but by other processes interfering with your timing accuracy"
  (docs.python.org/3/library/timeit.html, ``Timer.repeat``). ``"low"`` keeps that property
  but one lucky batch (a timer quirk) cannot set it alone. What a user waits *includes* the
  interference, so a latency claim keeps the median (and shows the spread). pyperf takes the
  other road for the same noise: many runs in fresh processes, reporting mean ± standard
  deviation and warning when the spread is large (pyperf.readthedocs.io, "Analyze benchmark
  results", "system tune"); Google Benchmark repeats a benchmark
  (``--benchmark_repetitions``) and reports aggregates (mean, median, stddev, cv) so the
  spread is visible (github.com/google/benchmark, docs/user_guide.md, "Reporting statistics").
  We cannot run many processes inside a lesson cell, so we keep many short batches, the
  spread, and a low quantile.
* **Interleave** (``sweep(..., interleave=True)``): rounds over all sizes (forward, then
  backward) instead of one size after another, so a burst of load from elsewhere lands on every
  size alike instead of bending the line at the sizes it happened to hit; and an **adaptive,
  bounded budget**: more rounds while a point's spread is large, never past ``total_budget_s``.
* **Fits refuse** to name a growth from too few points or too narrow a range and say so
  (``fit_growth``; a headline claim should use ``HEADLINE_MIN_POINTS``); a verdict that cannot
  decide says why (spread, points, range, the machine's load seen during the run: ``LoadWatch``)
  and suggests "run again" only when running again can change the outcome.
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
import numbers
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

__all__ = [
    "ESTIMATORS",
    "HEADLINE_MIN_POINTS",
    "Affine",
    "Growth",
    "Load",
    "LoadWatch",
    "Point",
    "Ratio",
    "Step",
    "Timing",
    "Verdict",
    "busy_kernel_note",
    "fmt_slope",
    "slope_band",
    "estimates",
    "find_step",
    "gil_handover",
    "judge_growth",
    "machine_load",
    "time_pair",
    "compare",
    "fit_affine",
    "fit_growth",
    "harness_overhead",
    "quantile_interval",
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

Estimator = Literal["median", "min", "low"]
#: ``"median"``: what a user waits (includes interference); ``"min"``: the fastest batch, the
#: operation's own cost (timeit: "the min is the most useful value"); ``"low"``: the 10th
#: percentile of the batches, the same idea but one lucky batch cannot set it alone.
ESTIMATORS: tuple[str, ...] = ("median", "min", "low")
#: The quantile ``"low"`` takes.
LOW_QUANTILE = 0.10


def _check_estimator(estimator: object) -> str:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(map(repr, ESTIMATORS))}, got {estimator!r}: "
                         "'min' or 'low' for what the operation itself costs, 'median' for what a user waits")
    return str(estimator)


def _quantile(data: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of sorted ``data`` (``q`` in 0..1)."""
    if not data:
        return math.nan
    pos = q * (len(data) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)

@functools.lru_cache(maxsize=512)
def _interval_ranks(n: int, q: float, confidence: float) -> tuple[int, int] | None:
    """The ranks (1-based) of ``quantile_interval``'s two samples, for n samples."""
    if not 0 < q < 1 or not 0 < confidence < 1 or n < 2:
        return None
    tail = (1 - confidence) / 2
    cdf, cum = [], 0.0  # cdf[k] = P(B ≤ k), B ~ Binomial(n, q)
    log_q, log_1q, log_n = math.log(q), math.log1p(-q), math.lgamma(n + 1)
    for k in range(n + 1):  # in logs: comb(n, k) overflows a float past n ≈ 1,000
        cum += math.exp(log_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_q + (n - k) * log_1q)
        cdf.append(cum)
    if cdf[0] > tail:
        return None  # even the smallest sample lies above the quantile too often
    r = max(rank for rank in range(1, n + 1) if cdf[rank - 1] <= tail)
    s = next((rank for rank in range(r, n + 1) if cdf[rank - 1] >= 1 - tail), None)
    return None if s is None else (r, s)


def quantile_interval(samples: Sequence[float], q: float, confidence: float = 0.90) -> tuple[float, float] | None:
    """A distribution-free ``confidence`` interval for the ``q`` quantile of what ``samples`` were
    drawn from: two of the samples themselves, ``(x_(r), x_(s))`` in sorted order, or ``None``
    when there are too few samples for one.

    The number B of samples below the true quantile is Binomial(n, q), so the interval
    ``[x_(r), x_(s)]`` holds the quantile with probability P(r ≤ B < s); ``r`` and ``s`` are the
    ranks that leave at most (1 − confidence)/2 on each side (the textbook order-statistics
    interval: David & Nagaraja, *Order Statistics*, 3rd ed., §7.1). No assumption about the
    shape of the noise, which on a busy machine is anything but normal. For the 10th
    percentile at 90 % it needs n ≥ 29 samples (the chance that none falls below the quantile,
    0.9ⁿ, must be under 5 %).
    """
    for name, value in (("q", q), ("confidence", confidence)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ValueError(f"{name} must be a fraction strictly between 0 and 1 (e.g. 0.1 for the 10th "
                             f"percentile, 0.9 for 90 %), got {value!r}")
    ranks = _interval_ranks(len(samples), float(q), float(confidence))
    if ranks is None:
        return None
    r, s = ranks
    ordered = sorted(samples)
    return ordered[r - 1], ordered[s - 1]


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

    @property
    def min_ns(self) -> float:
        """The fastest batch's per-call time: the operation's own cost (noise only adds time)."""
        return min(self.samples_ns) if self.samples_ns else self.q1_ns

    @property
    def low_ns(self) -> float:
        """The 10th percentile of the per-call times (``LOW_QUANTILE``)."""
        return _quantile(sorted(self.samples_ns), LOW_QUANTILE) if self.samples_ns else self.q1_ns

    @property
    def spread(self) -> float:
        """Relative spread: IQR / median (0.05 = the middle half of the batches within 5 %)."""
        return self.iqr_ns / self.median_ns if self.median_ns > 0 else math.inf

    def estimate(self, estimator: str = "median") -> float:
        """The per-call time by ``estimator`` (``"median"``, ``"min"`` or ``"low"``; see ``ESTIMATORS``)."""
        kind = _check_estimator(estimator)
        return {"median": self.median_ns, "min": self.min_ns, "low": self.low_ns}[kind]

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
    #: Fastest batch and 10th percentile (``nan`` for a point built by hand without samples).
    min_ns: float = math.nan
    low_ns: float = math.nan

    @property
    def median_us(self) -> float:
        return self.median_ns / 1000

    @property
    def spread(self) -> float:
        """Relative spread: (q3 - q1) / median."""
        return (self.q3_ns - self.q1_ns) / self.median_ns if self.median_ns > 0 else math.inf

    def estimate(self, estimator: str = "median") -> float:
        """This point's time by ``estimator`` (``"median"``, ``"min"``, ``"low"``)."""
        kind = _check_estimator(estimator)
        value = {"median": self.median_ns, "min": self.min_ns, "low": self.low_ns}[kind]
        if math.isnan(value):
            raise ValueError(f"the point at x={self.x:g} has no batch samples for estimator={kind!r} (it was built by "
                             "hand, not from a Timing): use estimator='median', or Point.from_timing")
        return value

    @classmethod
    def from_timing(cls, x: float, timing: Timing, series: str = "", extra: dict[str, Any] | None = None) -> Point:
        return cls(x, timing.median_ns, timing.q1_ns, timing.q3_ns, timing.n, series,
                   {"batch": timing.batch, **(extra or {})}, timing.note, timing.min_ns, timing.low_ns)


def estimates(points: Sequence[Point], estimator: str = "median") -> list[float]:
    """``[p.estimate(estimator) for p in points]``: the y values to fit (see ``ESTIMATORS``)."""
    _check_estimator(estimator)
    return [p.estimate(estimator) for p in points]


def _fmt_ns(ns: float) -> str:
    if ns < 0:  # a fitted fixed cost can come out below zero: "−24.4 ms", not "-2.44e+07 ns"
        return "−" + _fmt_ns(-ns)
    if ns >= 1e9:
        return f"{ns / 1e9:.3g} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.3g} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.3g} µs"
    return f"{ns:.3g} ns"


def _check_positive(name: str, value: object, hint: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0{' (' + hint + ')' if hint else ''}, got {value!r}")
    return float(value)


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
    spread_target: float | None = None,
    max_repeats: int | None = None,
    stop: threading.Event | None = None,
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
        spread_target: adaptive budget: after ``repeats`` batches, while the relative spread
            (IQR / median) is above this (e.g. 0.1), keep adding batches, up to ``max_repeats``
            (default 3 × ``repeats``) and never past ``budget_s``. ``None``: a fixed count.
        stop: a ``threading.Event``; once set, no further batch starts (a panel's Stop).

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
    _check_positive("budget_s", budget_s)
    if spread_target is not None:
        _check_positive("spread_target", spread_target, "e.g. 0.1 for a 10 % spread")
    if max_repeats is not None and (isinstance(max_repeats, bool) or not isinstance(max_repeats, int) or max_repeats < 1):
        raise ValueError(f"max_repeats must be a positive int or None, got {max_repeats!r}")
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
        if stop is not None and stop.is_set():
            break
    if spread_target is not None and not (stop is not None and stop.is_set()):
        # More batches only while the spread is wide, within the same budget: a quiet machine
        # pays nothing extra, a busy one buys a steadier median and a real low quantile.
        most = max_repeats if max_repeats is not None else 3 * repeats
        while len(samples) < most and time.perf_counter_ns() <= deadline:
            if summarize(samples).spread <= spread_target or (stop is not None and stop.is_set()):
                break
            for _ in range(max(1, len(samples) // 4)):
                samples.append(_time_batch(op, batch) / batch)
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


def _handovers(rounds: int) -> list[tuple[int, int]]:
    """``rounds`` times: release and re-take the GIL; (wall ns, other threads' CPU ns) each."""
    out = []
    for _ in range(rounds):
        w0, p0, t0 = time.perf_counter_ns(), time.process_time_ns(), time.thread_time_ns()
        time.sleep(0)
        t1, p1, w1 = time.thread_time_ns(), time.process_time_ns(), time.perf_counter_ns()
        out.append((w1 - w0, max(0, (p1 - p0) - (t1 - t0))))
    return out


def gil_handover(rounds: int = 5) -> Handover:
    """Release and re-take the GIL (``time.sleep(0)``) and see who ran meanwhile.

    Alone in the process a round takes a few µs (tens on a loaded machine, when the OS runs
    another process: that costs no CPU time of *this* process). If another Python thread is
    busy (a plot redraw, a CPU-bound loop), it runs until its switch interval
    (``sys.getswitchinterval()``, 5 ms) ends, and its CPU time shows in ``others_cpu_ns``.
    """
    samples = _handovers(rounds)
    return Handover(statistics.median(w for w, _ in samples), statistics.median(o for _, o in samples))


#: Handovers a busy-thread check tries, and how many must catch another thread running. On a
#: crowded host the busy thread is often not on a CPU when this one lets go of the GIL, and this
#: one takes it straight back: a median of 5 missed a spinning thread in 1 of 20 tries at load 2
#: and more often busier. Two catches of ≥ 0.5 ms of another thread's CPU time are never an idle
#: kernel's own threads (0 false alarms in 20 quiet tries); a quiet check still costs microseconds.
BUSY_ROUNDS, BUSY_CATCHES = 9, 2


def busy_kernel_note() -> str:
    """A sentence if another Python thread of this process is busy (timings would measure the
    GIL, not the socket); ``""`` when the kernel is quiet. Costs well under a millisecond when
    quiet, up to ``BUSY_ROUNDS`` switch intervals when another thread is busy."""
    switch_ns = sys.getswitchinterval() * 1e9
    samples = _handovers(BUSY_ROUNDS)
    caught = sorted((s for s in samples if s[1] >= _BUSY_SHARE * switch_ns), key=lambda s: s[1])
    if len(caught) < BUSY_CATCHES:
        return ""
    wall_ns, others_ns = caught[len(caught) // 2]
    n = threading.active_count() - 1
    return (
        f"distorted: another Python thread held the GIL (in {len(caught)} of {BUSY_ROUNDS} hand-overs; it ran "
        f"{others_ns / 1e6:.1f} ms while this one waited {wall_ns / 1e6:.1f} ms; switch interval "
        f"{switch_ns / 1e6:.0f} ms; {n} other thread(s) alive in this kernel: Jupyter's own, the helper servers' "
        "and yours, most of them asleep). Stop busy threads (or move the server out "
        "with mode='process') and measure again."
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
    interleave: bool = False,
    rounds: int = 3,
    max_rounds: int | None = None,
    spread_target: float | None = None,
    total_budget_s: float | None = None,
    on_round: Callable[[list[Point]], object] | None = None,
    until: Callable[[list[Point]], bool] | None = None,
) -> list[Point]:
    """Measure ``make_op(x)`` for each ``x``, in the calling thread.

    ``make_op(x)`` may return:

    * a zero-argument op, timed with ``time_op``;
    * a context manager yielding such an op (set-up for ``x``, e.g. a connected socket with
      that buffer size, is closed when the point is done);
    * a ``Timing`` it measured itself (e.g. ``summarize(latencies)`` for N clients).

    If the op (or the context's value) has an ``extra`` attribute (a dict, or a callable
    returning one), it is read after timing and kept in ``Point.extra`` (e.g. recv calls).

    ``on_point(point)`` runs after each point, between timed batches, never during one: this
    is where a live plot redraws. Setting ``stop`` (a ``threading.Event``) ends the sweep
    after the current batch.

    ``interleave=True`` measures in **rounds over all sizes** (forward, then backward, ...)
    instead of one size after another: a burst of load from elsewhere then lands on every size
    alike, instead of bending the line where it happened to hit. Every size's set-up (context
    manager) stays open for the whole sweep; a ``make_op`` that returns a ``Timing`` is called
    once per round and its samples are pooled. Each round takes ``ceil(repeats / rounds)``
    batches per size. After ``rounds`` rounds it adds rounds (up to ``max_rounds``, default
    ``2 × rounds``) while some point's spread (IQR / median) is above ``spread_target`` and
    ``until(points)`` (the verdict is settled) is not true, never past ``total_budget_s``
    seconds in all (default: ``budget_s``, so a panel run stays within a few seconds).
    ``on_round(points)`` gets the points so far after each round (to redraw a whole series);
    ``on_point`` is called for each final point at the end.
    """
    if not callable(make_op):
        raise TypeError(f"make_op must be a function of x returning an op, a context manager or a Timing, "
                        f"not {type(make_op).__name__}")
    if isinstance(xs, (str, bytes)):
        raise TypeError(f"xs must be a list of numbers (e.g. [1, 2, 4, 8]), not {type(xs).__name__}")
    xs = list(xs)
    for x in xs:
        if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x):
            raise ValueError(f"xs must hold finite numbers (e.g. [1, 2, 4, 8]); got {x!r}")
    if not isinstance(series, str):
        raise TypeError(f"series must be a str (the label of these points), not {type(series).__name__}")
    from .validate import count

    count("rounds", rounds, low=1, high=10_000, unit="rounds")
    if max_rounds is not None:
        count("max_rounds", max_rounds, low=1, high=10_000, unit="rounds")
    if not interleave:
        return _sweep_in_order(make_op, xs, series, repeats, warmup, batch, budget_s, on_point, stop)
    return _sweep_interleaved(make_op, list(xs), series=series, repeats=repeats, warmup=warmup, batch=batch,
                              budget_s=budget_s, on_point=on_point, stop=stop, rounds=rounds, max_rounds=max_rounds,
                              spread_target=spread_target, total_budget_s=total_budget_s, on_round=on_round,
                              until=until)


def _sweep_in_order(make_op: OpMaker, xs: Iterable[float], series: str, repeats: int, warmup: int,
                    batch: int | None, budget_s: float, on_point: Callable[[Point], object] | None,
                    stop: threading.Event | None) -> list[Point]:
    points: list[Point] = []
    for x in xs:
        if stop is not None and stop.is_set():
            break
        made = make_op(x)
        if isinstance(made, Timing):
            point = Point.from_timing(x, made, series)
        elif callable(made) and not hasattr(made, "__enter__"):
            point = _measure_point(x, made, series, repeats, warmup, batch, budget_s, stop)
        elif hasattr(made, "__enter__"):
            with made as op:
                if isinstance(op, Timing):
                    point = Point.from_timing(x, op, series)
                else:
                    point = _measure_point(x, op, series, repeats, warmup, batch, budget_s, stop)
        else:
            raise _bad_made(x, made)
        points.append(point)
        if on_point is not None:
            on_point(point)
    return points


def _bad_made(x: float, made: object) -> TypeError:
    return TypeError(f"make_op({x!r}) returned {type(made).__name__}; return a zero-argument callable, "
                     "a context manager yielding one, or a Timing")


def _sweep_interleaved(make_op: OpMaker, xs: list[float], *, series: str, repeats: int, warmup: int,
                       batch: int | None, budget_s: float, on_point: Callable[[Point], object] | None,
                       stop: threading.Event | None, rounds: int, max_rounds: int | None,
                       spread_target: float | None, total_budget_s: float | None,
                       on_round: Callable[[list[Point]], object] | None,
                       until: Callable[[list[Point]], bool] | None) -> list[Point]:
    import contextlib

    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive int (e.g. 3), got {rounds!r}")
    most = 2 * rounds if max_rounds is None else max_rounds
    if isinstance(most, bool) or not isinstance(most, int) or most < rounds:
        raise ValueError(f"max_rounds must be an int ≥ rounds ({rounds}), got {max_rounds!r}")
    if spread_target is not None:
        _check_positive("spread_target", spread_target, "e.g. 0.1 for a 10 % spread")
    total = _check_positive("total_budget_s", budget_s if total_budget_s is None else total_budget_s)
    per_round = max(1, math.ceil(repeats / rounds))
    t_end = time.monotonic() + total
    samples: dict[int, list[float]] = {i: [] for i in range(len(xs))}
    batches: dict[int, int] = {}
    notes: dict[int, str] = {}
    extras: dict[int, dict[str, Any]] = {}
    ops: dict[int, Any] = {}  # i -> op, or None: call make_op(x) again each round (it returns a Timing)
    done_rounds = 0

    def points_so_far() -> list[Point]:
        out = []
        for i, x in enumerate(xs):
            if samples[i]:
                t = summarize(samples[i], batch=batches.get(i, 1), note=notes.get(i, ""))
                out.append(Point.from_timing(x, t, series, {**extras.get(i, {}), "rounds": done_rounds}))
        return out

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    with contextlib.ExitStack() as stack:
        for r in range(most):
            order = list(range(len(xs))) if r % 2 == 0 else list(reversed(range(len(xs))))
            for i in order:
                if stopped():
                    break
                x = xs[i]
                if r == 0 or ops.get(i) is None:
                    made = make_op(x)
                    if hasattr(made, "__enter__") and not isinstance(made, Timing):
                        if r == 0:
                            made = stack.enter_context(made)
                        else:  # this size's set-up yielded a Timing in round 0: one more, closed now
                            with made as value:
                                made = value
                    if isinstance(made, Timing):
                        ops[i] = None
                        samples[i].extend(made.samples_ns or (made.median_ns,))
                        batches[i] = made.batch
                        notes[i] = notes.get(i) or made.note
                        continue
                    if not callable(made):
                        raise _bad_made(x, made)
                    ops[i] = made
                op = ops[i]
                t = time_op(op, repeats=per_round, warmup=warmup if r == 0 else 1, batch=batches.get(i, batch),
                            budget_s=budget_s, check_busy=(r == 0), stop=stop)
                samples[i].extend(t.samples_ns)
                batches[i] = t.batch
                notes[i] = notes.get(i) or t.note
                extra = getattr(op, "extra", None)
                if callable(extra):
                    extra = extra()
                if extra:
                    extras[i] = dict(extra)
            done_rounds = r + 1
            points = points_so_far()
            if on_round is not None and points:
                on_round(points)
            if stopped() or time.monotonic() >= t_end:
                break
            if done_rounds >= rounds:
                if until is not None and until(points):
                    break
                if spread_target is None or all(p.spread <= spread_target for p in points):
                    break
    points = points_so_far()
    if on_point is not None:
        for point in points:
            on_point(point)
    return points


def _measure_point(x: float, op: Callable[[], object], series: str, repeats: int, warmup: int,
                   batch: int | None, budget_s: float, stop: threading.Event | None = None) -> Point:
    timing = time_op(op, repeats=repeats, warmup=warmup, batch=batch, budget_s=budget_s, stop=stop)
    extra = getattr(op, "extra", None)
    if callable(extra):
        extra = extra()
    return Point.from_timing(x, timing, series, dict(extra) if extra else None)


# ---- fits ---------------------------------------------------------------------------------

GrowthLabel = Literal["constant", "sub-linear", "linear", "super-linear", "quadratic", "step", "too noisy to say"]

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
#: A noisier slope may still confirm a claim when its whole 95 % range stays within the claimed
#: growth and its neighbours (it rules out every other name), up to this half-width.
MAX_CLAIM_UNCERTAINTY = 0.6
#: "constant" only if the time at the largest x is within this factor of the time at the
#: smallest, both as fitted and as measured (a slope of 0.1 over 1 B..1 MiB is a 4× rise).
MAX_FLAT_RISE = 1.3
#: A "constant" claim is refined (not contradicted) by a slowly growing time only up to this rise.
MAX_REFINED_RISE = 2.0
#: A headline claim's fit should rest on at least this many sizes (pass it as ``min_points``).
HEADLINE_MIN_POINTS = 6

_REASONS = ("points", "range", "scatter", "shrinking", "rise", "step")


@dataclasses.dataclass(frozen=True)
class Step:
    """A cliff: the time jumps ``ratio``× between two neighbouring sizes ``before`` and ``after``."""

    before: float
    after: float
    ratio: float


@dataclasses.dataclass(frozen=True)
class Growth:
    """A log-log fit ``y ≈ e^intercept · x^slope`` and its name in plain words.

    ``reason`` says why a fit is "too noisy to say" (``"points"``, ``"range"``, ``"scatter"``,
    ``"shrinking"``, ``"rise"``) or ``"step"`` for a cliff; ``rise`` is the measured time at the
    largest sizes over the time at the smallest (medians of the first and last quarter).
    """

    slope: float
    intercept: float
    r2: float
    label: GrowthLabel
    note: str = ""
    slope_error: float = 0.0  # ≈ 2 standard errors (95 %)
    n: int = 0
    x_min: float = math.nan
    x_max: float = math.nan
    rise: float = math.nan
    reason: str = ""
    step: Step | None = None

    def predict(self, x: float) -> float:
        return math.exp(self.intercept) * x**self.slope

    @property
    def x_ratio(self) -> float:
        return self.x_max / self.x_min if self.x_min > 0 else math.nan

    @property
    def fitted_rise(self) -> float:
        """The fitted line's value at the largest x over its value at the smallest."""
        return self.x_ratio**self.slope if not math.isnan(self.slope) else math.nan

    def __str__(self) -> str:
        return f"{self.label}, slope {fmt_slope(self.slope)}"


@dataclasses.dataclass(frozen=True)
class Affine:
    """``y ≈ fixed_ns + per_unit_ns × x``: a fixed cost plus a cost per byte (or per client)."""

    fixed_ns: float
    per_unit_ns: float
    r2: float

    def predict(self, x: float) -> float:
        return self.fixed_ns + self.per_unit_ns * x

    def formula(self, var: str = "x") -> str:
        """"1.2 µs + 0.25 ns × k" for ``var="k"``: the fit in the variable its axis names."""
        sign = "−" if self.per_unit_ns < 0 else "+"
        return f"{_fmt_ns(self.fixed_ns)} {sign} {_fmt_ns(abs(self.per_unit_ns))} × {var}"

    def __str__(self) -> str:
        return self.formula()


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
    if not all(math.isfinite(v) for v in (*xs, *ys)):
        raise ValueError("xs and ys must be finite numbers (no NaN or infinity): re-measure the point that gave it")
    return xs, ys


def fmt_slope(slope: float, error: float | None = None) -> str:
    """A log-log slope to two decimals (``"0.00"``, never ``"-0.00"``), with its ``± error``."""
    text = f"{slope:.2f}"
    text = "0.00" if text == "-0.00" else text
    return text if error is None else f"{text} ± {error:.2f}"


def _fmt_x(x: float) -> str:
    return f"{x:,.0f}" if x >= 1 and float(x).is_integer() else f"{x:.3g}"


def find_step(xs: Sequence[float], ys: Sequence[float], *, min_jump: float = 2.0,
              min_local_slope: float = 0.0, share: float = 0.6) -> Step | None:
    """The cliff in a curve, if there is one: a jump between two neighbouring sizes that is at
    least ``min_jump``×, carries at least ``share`` of the curve's whole rise (on a log scale),
    leaves every point after it above every point before it (a level that changes and stays,
    not a spike), with 2 or more points on each side, and (optionally) is steeper than
    ``min_local_slope`` on a log-log scale. ``None`` when there is no such jump: a straight line
    of any slope over 4 or more points has none (each step carries at most a third of the rise)."""
    xs, ys = _check_xy(xs, ys)
    if any(x <= 0 for x in xs) or any(y <= 0 for y in ys):
        raise ValueError("find_step needs positive x and y (it works on a log-log scale)")
    pairs = sorted(zip(xs, ys))
    if len(pairs) < 4:
        return None
    lx = [math.log(x) for x, _ in pairs]
    ly = [math.log(y) for _, y in pairs]
    total = max(ly) - min(ly)
    best = max(range(len(pairs) - 1), key=lambda i: abs(ly[i + 1] - ly[i]))
    jump = ly[best + 1] - ly[best]
    dx = lx[best + 1] - lx[best]
    if dx <= 0 or best < 1 or best + 1 > len(pairs) - 2:
        return None
    if abs(jump) < math.log(min_jump) or abs(jump / dx) < min_local_slope or abs(jump) < share * total:
        return None
    before, after = ly[: best + 1], ly[best + 1:]
    if (jump > 0 and min(after) <= max(before)) or (jump < 0 and max(after) >= min(before)):
        return None  # a spike or a dip, not a level that changes and stays
    return Step(pairs[best][0], pairs[best + 1][0], math.exp(jump))


def fit_growth(xs: Sequence[float], ys: Sequence[float], *, min_points: int = 3, min_x_ratio: float = MIN_X_RATIO,
               detect_step: bool = False, max_rise: float = MAX_FLAT_RISE) -> Growth:
    """Fit ``log y = slope · log x + c`` and name the growth ("constant", "linear", ...).

    Says "too noisy to say" (with a ``note`` explaining why and ``reason`` naming it) when there
    are fewer than ``min_points`` points (a headline claim: ``HEADLINE_MIN_POINTS``), x spans
    less than ``min_x_ratio`` (8×), the slope's uncertainty is too wide to pick one name, or the
    fit is flat while the measured ends differ by more than ``max_rise``. "constant" also needs
    the fitted line to rise less than ``max_rise`` over the range (else it is "sub-linear").
    ``detect_step=True`` names a cliff "step" (see ``find_step``) before fitting a slope.
    """
    xs, ys = _check_xy(xs, ys)
    if any(x <= 0 for x in xs) or any(y <= 0 for y in ys):
        raise ValueError("fit_growth needs positive x and y (it fits on a log-log scale)")
    if isinstance(min_points, bool) or not isinstance(min_points, int) or min_points < 3:
        raise ValueError(f"min_points must be an int ≥ 3 (a slope and its error need 3), got {min_points!r}")
    _check_positive("min_x_ratio", min_x_ratio)
    _check_positive("max_rise", max_rise)
    n = len(xs)
    x_min, x_max = (min(xs), max(xs)) if xs else (math.nan, math.nan)
    ordered = [y for _, y in sorted(zip(xs, ys))]
    k = max(1, n // 4)
    rise = statistics.median(ordered[-k:]) / statistics.median(ordered[:k]) if n else math.nan
    common = {"n": n, "x_min": x_min, "x_max": x_max, "rise": rise}
    if n < min_points:
        return Growth(math.nan, math.nan, math.nan, "too noisy to say",
                      f"only {n} point(s): need at least {min_points}", reason="points", **common)
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    slope, intercept, r2, se = _least_squares(lx, ly)
    err = 2 * se
    fit = {"slope": slope, "intercept": intercept, "r2": r2, "slope_error": err, **common}
    ratio = x_max / x_min
    if ratio < min_x_ratio:
        return Growth(label="too noisy to say", reason="range",
                      note=f"x spans only {ratio:.3g}×: measure over at least {min_x_ratio:g}× to tell growths apart",
                      **fit)
    if detect_step and n >= 5:
        step = find_step(xs, ys)
        if step is not None:
            return Growth(label="step", reason="step", step=step,
                          note=f"the time jumps {step.ratio:.3g}× between x = {_fmt_x(step.before)} and "
                               f"{_fmt_x(step.after)}: a cliff, which one slope cannot describe", **fit)
    label = next(name for lo, hi, name in _BANDS if lo <= slope < hi)
    if err > MAX_SLOPE_UNCERTAINTY:
        return Growth(label="too noisy to say", reason="scatter",
                      note=f"slope {fmt_slope(slope, err)}: the points scatter too much to name the growth (R² {r2:.2f})",
                      **fit)
    if slope < -0.15:
        return Growth(label="too noisy to say", reason="shrinking",
                      note=f"slope {fmt_slope(slope)}: the time shrinks as x grows, which no claim predicts; check the measurement",
                      **fit)
    if label == "constant":
        fitted = ratio**slope
        if fitted > max_rise:
            return Growth(label="sub-linear", note=f"slope {fmt_slope(slope)} looks flat, but over x's {ratio:,.0f}× range "
                          f"the fitted line rises {fitted:.3g}×: the time grows", **fit)
        if fitted < 1 / max_rise:
            return Growth(label="too noisy to say", reason="shrinking",
                          note=f"the fitted line falls to {fitted:.3g}× over x's {ratio:,.0f}× range: the time shrinks "
                               "as x grows, which no claim predicts; check the measurement", **fit)
        if not 1 / max_rise <= rise <= max_rise:
            return Growth(label="too noisy to say", reason="rise",
                          note=f"the fit is flat (slope {fmt_slope(slope)}) but the largest sizes took {rise:.3g}× the time "
                               "of the smallest: neither constant nor one growth", **fit)
    return Growth(label=label, **fit)


def fit_affine(xs: Sequence[float], ys: Sequence[float]) -> Affine:
    """Least squares ``y = fixed + per_unit × x`` on linear scales (send time = fixed + k × per-byte)."""
    xs, ys = _check_xy(xs, ys)
    if len(xs) < 2:
        raise ValueError("fit_affine needs at least 2 points")
    slope, intercept, r2, _ = _least_squares(xs, ys)
    return Affine(intercept, slope, r2)


# ---- the machine's load during a run ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Load:
    """What the machine was doing during a run: the 1-minute load average (runnable processes,
    averaged), the cores, and (over the run) the share of CPU time busy and "stolen" (a virtual
    machine's CPU time the hypervisor gave to other machines). ``nan`` where unknown."""

    load1: float
    cores: int
    busy_pct: float = math.nan
    steal_pct: float = math.nan
    seconds: float = math.nan

    @property
    def busy(self) -> bool:
        """More runnable processes than cores, the CPUs ≥ 90 % busy, or ≥ 5 % stolen."""
        return (self.load1 > self.cores) or self.busy_pct >= 90 or self.steal_pct >= 5

    def __str__(self) -> str:
        parts = [f"load average {self.load1:.1f} on {self.cores} cores"]
        if not math.isnan(self.busy_pct):
            parts.append(f"CPUs {self.busy_pct:.0f} % busy, this measurement included")
        if not math.isnan(self.steal_pct) and self.steal_pct >= 0.5:
            parts.append(f"{self.steal_pct:.0f} % of CPU time stolen by the hypervisor")
        return ", ".join(parts)


def machine_load() -> Load:
    """The load now: 1-minute load average and core count (psutil); no busy/steal shares."""
    import os

    try:
        import psutil

        load1 = psutil.getloadavg()[0]
        cores = psutil.cpu_count() or os.cpu_count() or 1
    except (ImportError, OSError, AttributeError):  # pragma: no cover - psutil is a dependency
        return Load(math.nan, os.cpu_count() or 1)
    return Load(float(load1), int(cores))


class LoadWatch:
    """Watch the machine over a run: ``with LoadWatch() as w: ...`` then ``w.load`` (a ``Load``
    with the CPU busy and steal shares between start and end, read with ``psutil.cpu_times``)."""

    def __init__(self) -> None:
        self.load: Load | None = None
        self._t0 = time.monotonic()
        self._cpu0 = self._cpu_times()

    @staticmethod
    def _cpu_times() -> Any:
        try:
            import psutil

            return psutil.cpu_times()
        except (ImportError, OSError):  # pragma: no cover
            return None

    def __enter__(self) -> LoadWatch:
        self._t0, self._cpu0 = time.monotonic(), self._cpu_times()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Load:
        """The load from start (or ``__enter__``) until now; also kept in ``self.load``."""
        base = machine_load()
        cpu1 = self._cpu_times()
        busy = steal = math.nan
        if self._cpu0 is not None and cpu1 is not None:
            d = {f: getattr(cpu1, f) - getattr(self._cpu0, f) for f in cpu1._fields}
            total = sum(d.values()) - d.get("guest", 0) - d.get("guest_nice", 0)  # guest is inside user
            if total > 0:
                idle = d.get("idle", 0) + d.get("iowait", 0)
                busy = 100 * (1 - idle / total)
                steal = 100 * d.get("steal", 0) / total
        self.load = Load(base.load1, base.cores, busy, steal, time.monotonic() - self._t0)
        return self.load


# ---- verdicts -----------------------------------------------------------------------------

Status = Literal["confirmed", "refined", "contradicted", "inconclusive"]

#: Names close enough that the measurement refines the claim rather than contradicting it.
_NEIGHBOURS = {
    frozenset({"constant", "sub-linear"}),
    frozenset({"sub-linear", "linear"}),
    frozenset({"linear", "super-linear"}),
    frozenset({"super-linear", "quadratic"}),
}

#: Why a measured growth sits below / above the claimed one: only mechanisms that can move the
#: slope that way. A fixed cost adds the same time at every size, which flattens a log-log line
#: (lower slope); it can never make a slope steeper than the claim.
_EXPLAIN: dict[tuple[str, str], str] = {
    ("linear", "sub-linear"): "a fixed cost per call weighs most at the small sizes and bends the low end of the "
                              "line flatter",
    ("constant", "sub-linear"): "the time still grows a little with x: a small cost per unit shows beside the "
                                "fixed cost",
    ("linear", "super-linear"): "the cost per unit rises at the large sizes (data outgrowing a CPU cache, or a "
                                "buffer filling so the caller waits); a fixed cost cannot do this, it bends the "
                                "line the other way",
    ("sub-linear", "linear"): "the cost per unit dominates over these sizes; the fixed part is small next to it",
    ("sub-linear", "constant"): "the cost per unit is too small to show over these sizes",
    ("super-linear", "linear"): "the cost per unit does not grow with x over these sizes",
    ("super-linear", "quadratic"): "the cost per unit grows in proportion to x over these sizes",
    ("quadratic", "super-linear"): "a linear or fixed part still weighs at these sizes and flattens the curve",
}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A claim held against a measurement: ``status`` and the sentence(s) ``text``.

    ``reason`` says why an inconclusive verdict gave up (``Growth.reason``); ``rerun_helps``
    whether measuring again with the same settings can change the outcome; ``growth`` and
    ``load`` are the numbers it was built from (when known).
    """

    status: Status
    text: str
    reason: str = ""
    rerun_helps: bool = False
    growth: Growth | None = None
    load: Load | None = None

    def __str__(self) -> str:
        return self.text


def slope_band(name: str) -> tuple[float, float]:
    """The log-log slopes that ``fit_growth`` names ``name``: ``(0.8, 1.2)`` for "linear"."""
    bands = _bands_of(name)
    return min(lo for lo, _ in bands), max(hi for _, hi in bands)


def _bands_of(name: str) -> list[tuple[float, float]]:
    return [(lo, hi) for lo, hi, n in _BANDS if n == name]


def _consistent_despite_scatter(expected: str, g: Growth, max_rise: float) -> tuple[bool, list[str]]:
    """Does a noisy slope still single out ``expected``? Its estimate lies in the claimed band and
    its whole 95 % range within the claimed band and its neighbours, so every other name is ruled
    out (returned, for the sentence)."""
    if math.isnan(g.slope) or g.slope_error > MAX_CLAIM_UNCERTAINTY:
        return False, []
    own = _bands_of(expected)
    if not any(lo <= g.slope < hi for lo, hi in own):
        return False, []
    near = {expected} | {n for pair in _NEIGHBOURS if expected in pair for n in pair}
    spans = [(lo, hi) for lo, hi, n in _BANDS if n in near]
    lo_all, hi_all = min(lo for lo, _ in spans), max(hi for _, hi in spans)
    low, high = g.slope - g.slope_error, g.slope + g.slope_error
    if not (lo_all <= low and high < hi_all):
        return False, []
    if expected == "constant" and not (1 / max_rise <= g.rise <= max_rise and 1 / max_rise <= g.fitted_rise <= max_rise):
        return False, []
    excluded = [n for lo, hi, n in _BANDS if n not in near and n != "too noisy to say" and (hi <= low or lo > high)]
    return True, list(dict.fromkeys(excluded))


def _refined_despite_scatter(expected: str, g: Growth) -> tuple[str, list[str]]:
    """A noisy slope whose estimate lies in a neighbour of the claim, and whose whole 95 % range
    lies within the claim and that neighbour: the neighbour's name (else ``""``) and the names
    its range rules out."""
    if math.isnan(g.slope) or g.slope_error > MAX_CLAIM_UNCERTAINTY:
        return "", []
    band = next((name for lo, hi, name in _BANDS if lo <= g.slope < hi), "")
    if band == expected or frozenset({band, expected}) not in _NEIGHBOURS:
        return "", []
    pair = {band, expected}
    spans = [(lo, hi) for lo, hi, n in _BANDS if n in pair]
    low, high = g.slope - g.slope_error, g.slope + g.slope_error
    if not (min(lo for lo, _ in spans) <= low and high < max(hi for _, hi in spans)):
        return "", []
    if expected == "constant" and not g.fitted_rise <= MAX_REFINED_RISE:
        return "", []
    excluded = [n for lo, hi, n in _BANDS if n not in pair and n != "too noisy to say" and (hi <= low or lo > high)]
    return band, list(dict.fromkeys(excluded))


def _load_sentence(load: Load | None, rerun_helps: bool) -> str:
    if load is None:
        return ""
    if math.isnan(load.load1):
        return ""
    if load.busy:
        tail = " Running again, ideally when it is quieter, can settle it." if rerun_helps else ""
        return f" The machine was busy during the run ({load}).{tail}"
    tail = " Running again can settle it." if rerun_helps else ""
    return f" The machine was not especially busy ({load}).{tail}"


def compare(claim: str, expected_label: str, growth: Growth, *, load: Load | None = None,
            explain: dict[str, str] | None = None) -> Verdict:
    """Hold a measured ``growth`` against a claim ("send is O(k)", expected "linear").

    "confirmed" when the names match (or the slope, though noisy, rules out every name but the
    claim and its neighbours), "refined" when they are neighbours, with an explanation that can
    move the slope *that* way (a fixed cost only flattens; caches and full buffers steepen;
    ``explain={"lower": ..., "higher": ...}`` gives the lesson's own mechanism), "contradicted"
    otherwise (a cliff included, unless the claim is ``"step"``), "inconclusive" when the fit
    could not name the growth: it says why (points, range, spread) and the machine's ``load``
    (``LoadWatch``; by default the load average now), and suggests running again only when
    that can change the outcome (not for too few points or too narrow a range).
    """
    expected = expected_label.strip().lower()
    valid = ({name for _, _, name in _BANDS} - {"too noisy to say"}) | {"step"}
    if expected not in valid:
        raise ValueError(f"expected_label must be one of {sorted(valid)}, got {expected_label!r}")
    if growth.label == "too noisy to say":
        if growth.reason == "scatter" or (not growth.reason and not math.isnan(growth.slope)
                                          and growth.slope_error > MAX_SLOPE_UNCERTAINTY):
            ok, excluded = _consistent_despite_scatter(expected, growth, MAX_FLAT_RISE)
            if ok:
                rules_out = f"; its 95 % range rules out {' and '.join(excluded)}" if excluded else ""
                return Verdict("confirmed", f"{claim}: confirmed, measured slope "
                                            f"{fmt_slope(growth.slope, growth.slope_error)} on a log-log scale ({expected}), though the points "
                                            f"scatter (R² {growth.r2:.2f}){rules_out}.", growth=growth, load=load)
            near, excluded = _refined_despite_scatter(expected, growth)
            if near:
                lower = min(lo for lo, _ in _bands_of(near)) < min(lo for lo, _ in _bands_of(expected))
                why = (explain or {}).get("lower" if lower else "higher") or _EXPLAIN.get((expected, near), "")
                rules_out = f"; its 95 % range rules out {' and '.join(excluded)}" if excluded else ""
                tail = f"; {why}" if why else ""
                return Verdict("refined", f"{claim}: refined, measured slope "
                                          f"{fmt_slope(growth.slope, growth.slope_error)} on a log-log scale ({near}), though the points "
                                          f"scatter (R² {growth.r2:.2f}){rules_out}{tail}.", growth=growth, load=load)
            far, names = _outside_despite_scatter(expected, growth)
            if far:
                return Verdict("contradicted", f"{claim}: contradicted, measured slope "
                                               f"{fmt_slope(growth.slope, growth.slope_error)} on a log-log scale, though the points scatter "
                                               f"(R² {growth.r2:.2f}): its whole 95 % range lies outside "
                                               f"{' and '.join(names)}.", growth=growth, load=load)
        why = growth.note or "the fit is too poor"
        if growth.reason in ("points", "range"):
            what = "more sizes" if growth.reason == "points" else "a wider range of sizes"
            advice = (f" Measure {what}: running again with the same sizes cannot change this.")
            return Verdict("inconclusive", f"{claim}: inconclusive, {why}.{advice}", growth.reason, False, growth, load)
        load = load if load is not None else machine_load()
        if growth.reason == "shrinking":
            return Verdict("inconclusive", f"{claim}: inconclusive, {why}.{_load_sentence(load, True)}",
                           "shrinking", True, growth, load)
        text = f"{claim}: inconclusive, {why}." + (_load_sentence(load, True) or " Running again can settle it.")
        return Verdict("inconclusive", text, growth.reason or "scatter", True, growth, load)
    if growth.label == "step" and growth.step is not None:
        st = growth.step
        cliff = f"the time jumps {st.ratio:.3g}× between x = {_fmt_x(st.before)} and {_fmt_x(st.after)}"
        if expected == "step":
            return Verdict("confirmed", f"{claim}: confirmed, {cliff}, as the claim says.", growth=growth, load=load)
        return Verdict("contradicted", f"{claim}: contradicted, {cliff}: a cliff, not {expected}.",
                       growth=growth, load=load)
    measured = f"measured slope {fmt_slope(growth.slope, growth.slope_error)} on a log-log scale ({growth.label})"
    if growth.label == expected:
        extra = ""
        if expected == "constant" and not math.isnan(growth.rise):
            extra = f"; the largest sizes took {growth.rise:.2f}× the time of the smallest"
        lo, hi = slope_band(expected)
        band = f" (a slope from {lo:g} to {hi:g} counts as {expected})" if math.isfinite(lo) and math.isfinite(hi) else ""
        return Verdict("confirmed", f"{claim}: confirmed, {measured}, as the claim says{band}{extra}.",
                       growth=growth, load=load)
    band = next((name for lo, hi, name in _BANDS if lo <= growth.slope < hi), growth.label)
    # Neighbours refine, but only when the slope itself lies in one of the two bands (a slope of
    # 0.02 named "sub-linear" for its 40 % rise is no refinement of "linear"), and a "constant"
    # claim is not refined by a time that grew more than MAX_REFINED_RISE over the sizes.
    grew = growth.fitted_rise if not math.isnan(growth.fitted_rise) else 1.0
    too_much = expected == "constant" and grew > MAX_REFINED_RISE
    if frozenset({growth.label, expected}) in _NEIGHBOURS and band in (growth.label, expected) and not too_much:
        lower = min(lo for lo, _ in _bands_of(growth.label)) < min(lo for lo, _ in _bands_of(expected))
        own = (explain or {}).get("lower" if lower else "higher")
        why = own or _EXPLAIN.get((expected, growth.label), "")
        if expected == "constant" and not math.isnan(growth.fitted_rise):
            why += f" (the fitted line rises {growth.fitted_rise:.3g}× over the sizes measured)"
        tail = f"; {why}" if why else ""
        return Verdict("refined", f"{claim}: refined, {measured}, close to but not quite {expected}{tail}.",
                       growth=growth, load=load)
    grown = f"; the fitted line rises {grew:.3g}× over the sizes measured" if too_much else ""
    return Verdict("contradicted", f"{claim}: contradicted, {measured}, not {expected}{grown}.", growth=growth,
                   load=load)


def _outside_despite_scatter(expected: str, g: Growth) -> tuple[bool, list[str]]:
    """Does a noisy slope's whole 95 % range miss the claimed band and its neighbours?"""
    if math.isnan(g.slope) or math.isinf(g.slope_error):
        return False, []
    near = [expected] + [n for pair in _NEIGHBOURS if expected in pair for n in pair if n != expected]
    spans = [(lo, hi) for lo, hi, n in _BANDS if n in near]
    low, high = g.slope - g.slope_error, g.slope + g.slope_error
    if any(lo < high and low < hi for lo, hi in spans):
        return False, []
    return True, list(dict.fromkeys(near))


def judge_growth(claim: str, expected_label: str, points: Sequence[Point], *, estimator: str = "median",
                 fit_from: float | None = None, load: Load | None = None, explain: dict[str, str] | None = None,
                 min_points: int = 3, min_x_ratio: float = MIN_X_RATIO, detect_step: bool = True) -> Verdict:
    """Fit ``points`` (their ``estimator`` value: ``"min"``/``"low"`` for an operation's own cost,
    ``"median"`` for what a user waits; only ``x ≥ fit_from``) and ``compare`` with the claim.
    The verdict carries its ``growth``; pass the run's ``LoadWatch().load`` as ``load``."""
    used = [p for p in points if fit_from is None or p.x >= fit_from]
    growth = fit_growth([p.x for p in used], estimates(used, estimator), min_points=min_points,
                        min_x_ratio=min_x_ratio, detect_step=detect_step)
    return compare(claim, expected_label, growth, load=load, explain=explain)


# ---- paired comparisons ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ratio:
    """``a / b`` per round of alternating measurements: median and IQR of the per-round ratios."""

    median: float
    q1: float
    q3: float
    n: int
    a: Timing
    b: Timing

    def to_point(self, x: float, series: str = "") -> Point:
        """A ``Point`` whose "time" is the ratio (plot it with ``scale=1``; ``plots.plot_ratio``)."""
        return Point(x, self.median, self.q1, self.q3, self.n, series, {"ratio": True})

    def __str__(self) -> str:
        return f"{self.median:.3g}× (IQR {self.q1:.3g}–{self.q3:.3g}×, {self.n} paired rounds)"


def time_pair(op_a: Callable[[], object], op_b: Callable[[], object], *, rounds: int = DEFAULT_REPEATS,
              warmup: int = 3, budget_s: float = DEFAULT_BUDGET_S, stop: threading.Event | None = None) -> Ratio:
    """Time ``op_a`` and ``op_b`` in alternating rounds (A B, B A, A B, ...), one batch each per
    round, and return the ratio a / b per round. Load from elsewhere that comes and goes hits both
    halves of a round alike and cancels out of its ratio; the order alternates so neither op
    always runs second (warmer caches). Use it for "X costs the same as / k× Y" claims."""
    for name, op in (("op_a", op_a), ("op_b", op_b)):
        if not callable(op):
            raise TypeError(f"{name} must be a zero-argument callable, not {type(op).__name__}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive int, got {rounds!r}")
    for op in (op_a, op_b):
        for _ in range(warmup):
            op()
    batch_a, batch_b = _calibrate(op_a), _calibrate(op_b)
    deadline = time.perf_counter_ns() + int(_check_positive("budget_s", budget_s) * 1e9)
    sa: list[float] = []
    sb: list[float] = []
    for r in range(rounds):
        if r % 2 == 0:
            sa.append(_time_batch(op_a, batch_a) / batch_a)
            sb.append(_time_batch(op_b, batch_b) / batch_b)
        else:
            sb.append(_time_batch(op_b, batch_b) / batch_b)
            sa.append(_time_batch(op_a, batch_a) / batch_a)
        if (r + 1 >= MIN_REPEATS and time.perf_counter_ns() > deadline) or (stop is not None and stop.is_set()):
            break
    ratios = sorted(a / b for a, b in zip(sa, sb) if b > 0)
    t = summarize(ratios or [math.nan])
    return Ratio(t.median_ns, t.q1_ns, t.q3_ns, len(ratios), summarize(sa, batch=batch_a), summarize(sb, batch=batch_b))


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
