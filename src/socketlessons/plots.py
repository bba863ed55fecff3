"""Plots of measurements: a live plot that grows while a sweep runs, and a sequence diagram.

How the live plot updates, and why
----------------------------------
The figure is a plain ``matplotlib.figure.Figure`` drawn by the Agg backend into PNG bytes;
each redraw replaces one displayed PNG:

* in a running cell, ``show()`` calls ``IPython.display.display(..., display_id=True)`` and
  each redraw calls ``handle.update(...)``. The kernel sends ``update_display_data`` on IOPub
  as it goes, so JupyterLab repaints while the cell is still running (IOPub messages are
  processed during execution; only incoming widget messages wait for the cell to end:
  ipywidgets ``Widget Asynchronous.ipynb``);
* from a button callback or a worker thread (``SweepPanel``), the PNG goes into an
  ``ipywidgets.Output`` widget by assigning its ``outputs`` trait: that is a widget state
  update (a comm message), safe from any thread, and it does not depend on which cell the
  kernel thinks is running (output printed from threads lands in the wrong cell:
  jupyterlab/jupyterlab#14925, ipywidgets#2358; the Output docs say to use its methods, not
  ``with out:``, from threads);
* headless (nbmake / nbclient), ``update_display_data`` is applied to the output with the
  matching ``display_id`` (nbclient ``_update_display_id``), so the executed notebook keeps
  the final PNG; a ``LivePlot`` is also a rich object (``_repr_png_``), so ending a cell with
  it shows the final figure.

This needs only matplotlib, IPython and ipywidgets (declared dependencies): no ``ipympl``,
which Binder's base environment lacks, and whose canvas stays blank while the cell that
created it is still running (matplotlib/ipympl#258, #290). ECOSYSTEM.md section 3 compares
the three approaches. Checked here: JupyterLab 4.6 in headless Chromium showed 24 successive
images during one 8-second panel run (worker thread, Output widget), and nbclient keeps the
final PNG of a display handle in the executed notebook.

Redraws are throttled (``min_interval_s``) and happen only between sweep points, in the
thread that measures, never during a timed batch (see ``measure``). Rendering a small figure
costs ~30–80 ms of CPU, which would otherwise be measured as GIL waits.

Style: the title states the claim being tested, axes carry units, log scales where sizes span
decades, the Okabe–Ito colour-blind-safe palette with a distinct marker and line style per
series (so it reads in grayscale), and the fitted growth in the legend.
"""

from __future__ import annotations

import base64
import io
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .measure import Affine, Growth, Point

__all__ = ["PALETTE", "LivePlot", "fit_label", "format_bytes", "plot_points", "sequence_diagram", "style_for", "to_png"]

#: Okabe & Ito (2008) colour-blind-safe colours; markers and dashes separate them in grayscale.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1)))
FIGSIZE = (6.4, 4.0)
DPI = 100


def style_for(i: int) -> dict[str, Any]:
    """Colour, marker and line style of the ``i``-th series."""
    return {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def format_bytes(n: float) -> str:
    """``1 B``, ``64 KiB``, ``1 MiB``, ``1,500 B`` (tick labels and messages)."""
    n = int(round(n))
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n:,} B"


def _new_figure(ax: Axes | None, figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # no pyplot: no global state, no auto-display, safe in a thread
    return fig, fig.add_subplot()


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (Agg)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def fit_label(fit: Growth | Affine) -> str:
    """Legend text of a fit: "linear, slope 0.98" or "1.2 µs + 0.25 ns × x"."""
    if isinstance(fit, Growth):
        if fit.label == "too noisy to say":
            return f"fit: too noisy to say (slope {fit.slope:.2f})" if not math.isnan(fit.slope) else "fit: too few points"
        return f"{fit.label}, slope {fit.slope:.2f}"
    return f"fit: {fit}"


def plot_points(
    points: Sequence[Point],
    *,
    ax: Axes | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "time per call (µs)",
    logx: bool = False,
    logy: bool = False,
    fits: dict[str, Growth | Affine] | None = None,
    scale: float = 1e-3,
    fit_ranges: dict[str, tuple[float, float]] | None = None,
    ymin: float | None = None,
) -> Figure:
    """Draw sweep points (median with an IQR error bar), one style per series; return the figure.

    ``scale`` converts ns to the y unit (default µs). ``fits`` maps a series to its fit, drawn
    as a line over the series' x range (or ``fit_ranges[series]``, the x range that was
    fitted) with its label in the legend. An x axis in bytes on a log scale is labelled
    ``1 B``, ``1 KiB``, ``1 MiB``. ``ymin=0`` starts a linear time axis at zero, so a
    difference of a few percent does not fill the whole height of the plot.
    """
    fig, ax = _new_figure(ax)
    ax.clear()
    series: dict[str, list[Point]] = {}
    for p in points:
        series.setdefault(p.series, []).append(p)
    fits = fits or {}
    for i, (name, pts) in enumerate(series.items()):
        st = style_for(i)
        pts = sorted(pts, key=lambda p: p.x)
        xs = [p.x for p in pts]
        ys = [p.median_ns * scale for p in pts]
        lo = [max(0.0, (p.median_ns - p.q1_ns) * scale) for p in pts]
        hi = [max(0.0, (p.q3_ns - p.median_ns) * scale) for p in pts]
        ax.errorbar(xs, ys, yerr=[lo, hi], color=st["color"], marker=st["marker"], linestyle="none",
                    capsize=3, markersize=5, label=name or "measured (median, IQR)")
        fit = fits.get(name)
        if fit is not None and len(xs) >= 2:
            _draw_fit(ax, fit, (fit_ranges or {}).get(name, (min(xs), max(xs))), scale, st, logx)
    _decorate(ax, title, xlabel, ylabel, logx, logy)
    if ymin is not None and not logy and points:
        ax.set_ylim(bottom=ymin)
    return fig


def _draw_fit(ax: Axes, fit: Growth | Affine, x_range: tuple[float, float], scale: float, st: dict[str, Any],
              logx: bool) -> None:
    x0, x1 = x_range
    if logx and x0 > 0:
        grid = [x0 * (x1 / x0) ** (i / 49) for i in range(50)]
    else:
        grid = [x0 + (x1 - x0) * i / 49 for i in range(50)]
    if isinstance(fit, Growth) and math.isnan(fit.slope):
        return
    ys = [fit.predict(x) * scale for x in grid]
    ax.plot(grid, ys, color=st["color"], linestyle=st["linestyle"], linewidth=1.5, label=fit_label(fit))


def _decorate(ax: Axes, title: str, xlabel: str, ylabel: str, logx: bool, logy: bool) -> None:
    if logx:
        ax.set_xscale("log", base=2)
        if "byte" in xlabel:
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_bytes(v) if v >= 1 else ""))
    if logy:
        ax.set_yscale("log")
        # 1, 2, 5, 10, 20, 50 ... in plain numbers: readable even when the data span less
        # than a decade (the default then labels minor ticks as "2 × 10^0").
        # Data spanning less than a factor of 4 (say 30 to 45 µs) may hold none of those, and the
        # axis would show no number at all: then every integer multiple gets a label (30, 40).
        low, high = ax.get_ylim()
        short = low > 0 and high / low < 4
        subs = tuple(float(k) for k in range(1, 10)) if short else (1.0, 2.0, 5.0)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    if title:
        ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")


class LivePlot:
    """A figure that grows point by point while a sweep runs.

    Example::

        plot = LivePlot("send() is O(k): time grows with payload", "payload (bytes)",
                        "time per send (µs)", logx=True, logy=True)
        plot.show()
        points = sweep(make_op, sizes, on_point=plot.add)
        plot.add_fit("", fit_growth([p.x for p in points], [p.median_ns for p in points]))
        plot.finish()

    Args:
        output: an ``ipywidgets.Output`` to draw into instead of a display handle (use this
            when points arrive from a worker thread, as ``SweepPanel`` does).
        scale: ns → y unit (default 1e-3: µs).
        ymin: start a linear y axis here (0: the honest baseline for times), not at the data.
    """

    def __init__(self, title: str, xlabel: str, ylabel: str, *, logx: bool = False, logy: bool = False,
                 min_interval_s: float = 0.25, output: Any = None, scale: float = 1e-3,
                 ymin: float | None = None) -> None:
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.logx, self.logy = logx, logy
        self.ymin = ymin
        self.min_interval_s = min_interval_s
        self.scale = scale
        self.output = output
        self.points: list[Point] = []
        self.fits: dict[str, Growth | Affine] = {}
        self.fit_ranges: dict[str, tuple[float, float]] = {}
        self.figure, self.ax = _new_figure(None)
        self.redraws = 0
        self._handle: Any = None
        self._last_draw = -math.inf
        self._lock = threading.RLock()
        self._draw()

    # ---- public -------------------------------------------------------------------------------

    def show(self) -> LivePlot:
        """Display the figure in the current cell (once); later redraws replace it in place."""
        from IPython.display import display

        with self._lock:
            if self.output is not None:
                display(self.output)
                self._publish()
            else:
                self._handle = display(self.snapshot(), display_id=True)
        return self

    def add(self, point: Point) -> None:
        """Add one point (series by ``point.series``); redraw if ``min_interval_s`` has passed."""
        with self._lock:
            self.points.append(point)
            if time.monotonic() - self._last_draw >= self.min_interval_s:
                self.redraw()

    def add_fit(self, series: str, fit: Growth | Affine, x_range: tuple[float, float] | None = None) -> None:
        """Draw ``fit`` over ``series``'s points (or over ``x_range``, the x range that was fitted),
        its label ("linear, slope 0.98") in the legend."""
        with self._lock:
            self.fits[series] = fit
            if x_range is not None:
                self.fit_ranges[series] = x_range
            else:
                self.fit_ranges.pop(series, None)
            self.redraw()

    def clear(self) -> None:
        """Forget points and fits (a new run), keep the display."""
        with self._lock:
            self.points.clear()
            self.fits.clear()
            self.fit_ranges.clear()
            self.redraw()

    def keep_series(self, labels: set[str] | frozenset[str]) -> None:
        """Forget the points and fits of every series not in ``labels`` (redrawn at the next point)."""
        with self._lock:
            self.points[:] = [p for p in self.points if p.series in labels]
            for name in [n for n in self.fits if n not in labels]:
                del self.fits[name]
                self.fit_ranges.pop(name, None)

    def finish(self) -> LivePlot:
        """Final redraw, whatever the throttle says."""
        self.redraw()
        return self

    def redraw(self) -> None:
        with self._lock:
            self._draw()
            self._publish()

    def png(self) -> bytes:
        with self._lock:
            return to_png(self.figure)

    def _repr_png_(self) -> bytes:
        return self.png()

    def snapshot(self) -> Any:
        """The current figure as a static PNG (``IPython.display.Image``), kept in a saved notebook."""
        from IPython.display import Image

        return Image(data=self.png(), format="png")

    # ---- internals ----------------------------------------------------------------------------

    def _draw(self) -> None:
        plot_points(self.points, ax=self.ax, title=self.title, xlabel=self.xlabel, ylabel=self.ylabel,
                    logx=self.logx, logy=self.logy, fits=self.fits, scale=self.scale, fit_ranges=self.fit_ranges,
                    ymin=self.ymin)
        self._last_draw = time.monotonic()
        self.redraws += 1


    def _publish(self) -> None:
        if self.output is not None:
            png = base64.b64encode(to_png(self.figure)).decode("ascii")
            self.output.outputs = ({
                "output_type": "display_data",
                "data": {"image/png": png, "text/plain": f"<LivePlot: {self.title}>"},
                "metadata": {},
            },)
        elif self._handle is not None:
            self._handle.update(self.snapshot())


# ---- sequence diagram -------------------------------------------------------------------------

#: Calls that send something to the peer (data, a SYN, a FIN): an arrow towards the other lane.
_SENDING_OPS = frozenset({"send", "sendall", "sendto", "connect", "connect_ex", "shutdown", "close"})
#: Calls that change only the local socket: a mark on the caller's lane.
_LOCAL_OPS = frozenset({"settimeout", "setblocking", "setsockopt", "bind", "listen"})


def _call_label(e: Any) -> str:
    """"recv(65536) → 29,696 B" (the call as written, what it did), "sendall → 1 MiB", "connect"."""
    done = None if e.done is None else format_bytes(e.done)
    label = f"{e.op}({e.asked})" if e.asked is not None and e.asked != e.done else e.op
    if e.result == "EOF":
        return f"{label} → EOF (0 B)"
    if done is not None:
        label += f" → {done}"
    if isinstance(e.result, str) and e.result and e.result != "ok":
        label += f" [{e.result}]"
    return label


def sequence_diagram(events: Sequence[Any], *, ax: Axes | None = None,
                     title: str = "Who called what, when (bytes on each arrow)",
                     max_events: int = 60) -> Figure:
    """Client and server lanes, one arrow per call, bytes on each; time runs downwards.

    ``events`` are ``trace.TraceEvent`` (fields ``t_ns, side, op, asked, done, result``), e.g.
    ``tracer.merge(server)``. Sends point from the caller's lane towards the other; receives
    point into the caller's lane. At most ``max_events`` are drawn (the rest are counted in
    the title).
    """
    evs = sorted(events, key=lambda e: e.t_ns)
    shown = evs[:max_events]
    height = max(3.0, min(12.0, 0.3 * len(shown) + 1.5))
    fig, ax = _new_figure(ax, figsize=(6.4, height))
    ax.clear()
    lanes = {"client": 0.0, "server": 1.0}
    ax.set_xlim(-0.35, 1.35)
    n = max(len(shown), 1)
    ax.set_ylim(n + 0.5, -0.8)
    for name, x in lanes.items():
        ax.axvline(x, color="0.5", linewidth=1)
        ax.text(x, -0.5, name, ha="center", va="bottom", fontsize=10, weight="bold")
    t0 = shown[0].t_ns if shown else 0
    colours = {"client": PALETTE[0], "server": PALETTE[1]}
    for row, e in enumerate(shown, start=1):
        x = lanes.get(e.side, 0.0)
        other = 1.0 - x
        label = _call_label(e)
        colour = colours.get(e.side, PALETTE[2])
        style = "-" if e.side == "client" else "--"
        if e.op in _LOCAL_OPS:  # nothing crosses the wire: a mark on the caller's lane
            ax.plot([x], [row], marker="o", markersize=4, color=colour)
            ax.text(x + (0.04 if x == 0.0 else -0.04), row, label, ha="left" if x == 0.0 else "right",
                    va="center", fontsize=7, color=colour)
        else:
            if e.op in _SENDING_OPS:  # from the caller towards the peer
                start, end = x, x + (other - x) * 0.85
            else:  # recv, recv_into, recvfrom, accept: arrives at the caller
                start, end = x + (other - x) * 0.85, x
            ax.annotate("", xy=(end, row), xytext=(start, row),
                        arrowprops={"arrowstyle": "->", "color": colour, "linestyle": style, "linewidth": 1.2})
            ax.text((start + end) / 2, row - 0.12, label, ha="center", va="bottom", fontsize=7, color=colour)
        ax.text(-0.34, row, f"{(e.t_ns - t0) / 1000:.0f} µs", ha="left", va="center", fontsize=6, color="0.35")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    more = f" (first {len(shown)} of {len(evs)} calls)" if len(evs) > len(shown) else ""
    ax.set_title(title + more, fontsize=10)
    return fig


def _register_png_formatter() -> None:
    """Let a returned ``Figure`` display as PNG in a kernel without ``%matplotlib inline``.

    Our figures bypass pyplot, so IPython's matplotlib integration (which registers the
    Figure formatter when the inline backend loads) may never run; without this, a cell
    ending in ``sequence_diagram(...)`` would show only ``<Figure size ...>``.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is not None:
        ip.display_formatter.formatters["image/png"].for_type(Figure, to_png)


_register_png_formatter()
