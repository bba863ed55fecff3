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

What every figure here guarantees (issue 10, item 3):

* a series keeps its colour, marker and line style across runs and figures: the style is
  chosen by the series' **name** (``style_for_series``: the first style no other name holds,
  remembered for the life of the kernel), not by the order series appear in;
* the legend never covers data: it goes into the first corner (or edge) of the axes where no
  point, error bar or fit line lies, and outside the axes, to the right, when there is none;
* log axes always carry readable numbers (plain ``1, 2, 5, 10`` or ``30, 40``; bytes as
  ``1 KiB``), and x tick labels never run into each other (every 2nd, 3rd, ... power of two
  is labelled until they fit, measured with the renderer);
* a fit's legend entry sits right after its series' entry;
* ``reference_line`` draws a named line the text talks about (a diagonal, a timeout), and
  ``plot_ratio`` plots a ratio with its spread against the line "ratio 1".
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import re
import threading
import time
import weakref
import zlib
from collections.abc import Sequence
from typing import Any

from ._interrupts import held_interrupts
from .measure import Affine, Growth, Point, fmt_slope

with held_interrupts():  # matplotlib's first import, stopped half way by ■, breaks it until a restart
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine
    from matplotlib.text import Text
    from matplotlib.ticker import (FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter,
                                   NullLocator)

__all__ = ["PALETTE", "LivePlot", "Reference", "fit_label", "format_bytes", "plot_points", "plot_ratio",
           "reference_line", "sequence_diagram", "style_for", "style_for_series", "to_png"]

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


_SERIES_STYLE: dict[str, int] = {}
_STYLE_LOCK = threading.Lock()


def style_index(name: str) -> int:
    """The style number of series ``name``: the same in every figure and run of this kernel.

    A new name takes the lowest style no other name holds yet; after ``len(PALETTE)`` names,
    styles repeat (by a stable hash of the name, never by order of appearance).
    """
    with _STYLE_LOCK:
        if name not in _SERIES_STYLE:
            taken = set(_SERIES_STYLE.values())
            free = [i for i in range(len(PALETTE)) if i not in taken]
            _SERIES_STYLE[name] = free[0] if free else zlib.crc32(name.encode("utf-8")) % len(PALETTE)
        return _SERIES_STYLE[name]


def style_for_series(name: str) -> dict[str, Any]:
    """Colour, marker and line style of the series called ``name`` (see ``style_index``)."""
    return style_for(style_index(name))


def _styles_of(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each name's own style; if two names in one figure share one (more names than colours),
    the later gets the next style free in this figure, for this figure only."""
    used: set[int] = set()
    out = {}
    for name in names:
        i = style_index(name)
        if i in used:
            i = next((j for j in range(len(PALETTE)) if j not in used), i)
        used.add(i)
        out[name] = style_for(i)
    return out


@dataclasses.dataclass(frozen=True)
class Reference:
    """A named reference line: ``y=`` (horizontal: a timeout), ``x=`` (vertical), ``diagonal=True``
    (y = x, in the plot's units), or ``through=[(x, y), ...]`` (any polyline). Values are in
    the plot's units (after ``scale``)."""

    label: str
    y: float | None = None
    x: float | None = None
    diagonal: bool = False
    through: tuple[tuple[float, float], ...] = ()
    color: str = "0.35"
    linestyle: Any = ":"

    def __post_init__(self) -> None:
        given = sum([self.y is not None, self.x is not None, self.diagonal, bool(self.through)])
        if given != 1:
            raise ValueError(f"a Reference needs exactly one of y=, x=, diagonal=True or through=; got {given} "
                             f"(label {self.label!r})")
        for name in ("y", "x"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"Reference {name} must be a finite number, got {v!r}")


def reference_line(ax: Axes, label: str, *, y: float | None = None, x: float | None = None,
                   diagonal: bool = False, through: Sequence[tuple[float, float]] = (),
                   color: str = "0.35", linestyle: Any = ":") -> Any:
    """Draw a named reference line on ``ax`` (labelled in the legend) and return its artist:
    ``y=50`` a timeout line, ``diagonal=True`` the line y = x over the current view, ``x=``
    a vertical line, ``through=[(x0, y0), (x1, y1)]`` any other line."""
    return _draw_reference(ax, Reference(label, y, x, diagonal, tuple(tuple(p) for p in through), color, linestyle))


def _draw_reference(ax: Axes, ref: Reference) -> Any:
    kw = {"color": ref.color, "linestyle": ref.linestyle, "linewidth": 1.2, "label": ref.label, "zorder": 1}
    if ref.y is not None:
        return ax.axhline(ref.y, **kw)
    if ref.x is not None:
        return ax.axvline(ref.x, **kw)
    if ref.diagonal:
        lo = max(min(ax.get_xlim()[0], ax.get_ylim()[0]), 1e-12 if ax.get_xscale() == "log" else -math.inf)
        hi = max(ax.get_xlim()[1], ax.get_ylim()[1])
        if ax.get_xscale() == "log" or ax.get_yscale() == "log":
            grid = [lo * (hi / lo) ** (i / 49) for i in range(50)] if lo > 0 else [hi]
        else:
            grid = [lo + (hi - lo) * i / 49 for i in range(50)]
        xlim, ylim = ax.get_xlim(), ax.get_ylim()
        line = ax.plot(grid, grid, **kw)[0]
        ax.set_xlim(xlim)
        ax.set_ylim(ylim)
        return line
    xs, ys = zip(*ref.through)
    return ax.plot(xs, ys, **kw)[0]


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


def close_cached_fonts() -> None:
    """Close the font files matplotlib keeps open for threads that rendered a figure.

    matplotlib caches one ``FT2Font`` per font and *per thread* (``font_manager._get_font`` is an
    ``lru_cache(64)`` keyed on ``threading.get_ident()``, "to prevent segfaults with
    multi-threading"), and each keeps its font files open: DejaVu Sans and its Last Resort
    fallback, two descriptors. A panel worker thread that retires leaves its entry behind, and a
    new worker often gets a new thread id, so without this a long session collects up to 128
    open font files (a lot under ``ulimit -n 256``). Emptying the cache closes them; a thread
    that is drawing keeps the fonts it holds, and the next draw opens what it needs again
    (about a millisecond). A private function of matplotlib's: if it is gone, nothing happens.
    """
    import sys

    font_manager = sys.modules.get("matplotlib.font_manager")
    clear = getattr(getattr(font_manager, "_get_font", None), "cache_clear", None)
    if callable(clear):
        clear()


#: Figures that ``_finish_axes`` left laid out as they are. Whether one has changed since is
#: ``Figure.stale``: a new legend, tick locator, limit, label or artist all mark it stale.
_LAID_OUT: weakref.WeakSet[Figure] = weakref.WeakSet()


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (Agg).

    ``savefig`` on a figure with a layout engine draws it twice: once without rendering, in
    which the engine lays it out, then for real (``FigureCanvasBase.print_figure``). Only the
    layout is needed, so here the engine runs alone and the figure is drawn once. Checked over
    every figure of the course: the positions agree with a fresh ``savefig`` layout to 0.05 px,
    and laying out and drawing them took 7.1 s instead of 10.6 s. A figure that
    ``plot_points`` has just laid out, and that has not changed since, is not laid out again:
    any change marks it stale (matplotlib passes ``stale`` from every artist up to its
    figure). A figure of another kind (no constrained layout, another dpi or canvas) goes
    through ``savefig``.
    """
    buf = io.BytesIO()
    engine = fig.get_layout_engine()
    if not (isinstance(engine, ConstrainedLayoutEngine) and fig.dpi == DPI and isinstance(fig.canvas, FigureCanvasAgg)):
        fig.savefig(buf, format="png", dpi=DPI)
        return buf.getvalue()
    if fig.stale or fig not in _LAID_OUT:
        engine.execute(fig)
    fig.set_layout_engine("none")  # draw at the positions of that layout
    try:
        fig.canvas.print_png(buf)
    finally:
        fig.set_layout_engine(engine)
    return buf.getvalue()


def axis_variable(xlabel: str) -> str:
    """The variable an x label names, for a fit's formula: "k" in "payload k (bytes)", "N" in
    "clients (N)", "bytes" for any other label in bytes, else its first word ("x" if none). A
    legend then reads "12 µs + 0.3 µs × N" under an axis called N, not "… × x"."""
    letter = re.findall(r"(?<![\w.])([A-Za-z])(?![\w.])", xlabel)
    if letter:
        return letter[0]
    if "byte" in xlabel:
        return "bytes"
    words = re.findall(r"[A-Za-z]+", xlabel)
    return words[0] if words else "x"


def fit_label(fit: Growth | Affine, var: str = "x") -> str:
    """Legend text of a fit: "linear, slope 0.98" or "1.2 µs + 0.25 ns × x" (``var``: the x
    axis's variable, e.g. "k")."""
    if isinstance(fit, Growth):
        if fit.label == "too noisy to say":
            return f"fit: too noisy to say (slope {fmt_slope(fit.slope)})" if not math.isnan(fit.slope) else "fit: too few points"
        return f"{fit.label}, slope {fmt_slope(fit.slope)}"
    return f"fit: {fit.formula(var)}"


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
    references: Sequence[Reference] = (),
    fit_var: str | None = None,
) -> Figure:
    """Draw sweep points (median with an IQR error bar), one style per series; return the figure.

    ``scale`` converts ns to the y unit (default µs). ``fits`` maps a series to its fit, drawn
    as a line over the series' x range (or ``fit_ranges[series]``, the x range that was
    fitted) with its label in the legend. An x axis in bytes on a log scale is labelled
    ``1 B``, ``1 KiB``, ``1 MiB``. ``ymin=0`` starts a linear time axis at zero, so a
    difference of a few percent does not fill the whole height of the plot. ``references`` are
    named lines (``Reference``) drawn over the data and listed last in the legend. ``fit_var``:
    the variable an affine fit's formula uses (default: ``axis_variable(xlabel)``).

    A series' style follows its name (``style_for_series``); each fit's legend entry follows its
    series'; the legend goes where it covers no data (or outside); see the module docstring.
    """
    _check_scale(scale)
    if ymin is not None and (isinstance(ymin, bool) or not isinstance(ymin, (int, float)) or not math.isfinite(ymin)):
        raise ValueError(f"ymin must be a finite number or None, got {ymin!r}")
    fig, ax = _new_figure(ax)
    ax.clear()
    series: dict[str, list[Point]] = {}
    for p in points:
        series.setdefault(p.series, []).append(p)
    fits = fits or {}
    styles = _styles_of(list(series))
    entries: list[tuple[Any, str]] = []
    for name, pts in series.items():
        st = styles[name]
        pts = sorted(pts, key=lambda p: p.x)
        xs = [p.x for p in pts]
        ys = [p.median_ns * scale for p in pts]
        lo = [max(0.0, (p.median_ns - p.q1_ns) * scale) for p in pts]
        hi = [max(0.0, (p.q3_ns - p.median_ns) * scale) for p in pts]
        if any(lo) or any(hi):
            label = name or "measured (median, IQR)"
            handle = ax.errorbar(xs, ys, yerr=[lo, hi], color=st["color"], marker=st["marker"], linestyle="none",
                                 capsize=3, markersize=5, label=label)
        else:  # one measurement per point (or no spread at all): no bars, and none in the legend
            label = name or "measured"
            handle, = ax.plot(xs, ys, color=st["color"], marker=st["marker"], linestyle="none", markersize=5,
                              label=label)
        entries.append((handle, label))
        fit = fits.get(name)
        if fit is not None and len(xs) >= 2:
            floor = 0.5 * min(y for y in ys if y > 0) if logy and any(y > 0 for y in ys) else None
            line = _draw_fit(ax, fit, (fit_ranges or {}).get(name, (min(xs), max(xs))), scale, st, logx, floor,
                             fit_var or axis_variable(xlabel))
            if line is not None:
                entries.append((line, line.get_label()))
    _decorate(ax, title, xlabel, ylabel, logx, logy, legend=False)
    if ymin is not None and not logy and points:
        ax.set_ylim(bottom=ymin)
    for ref in references:
        line = _draw_reference(ax, ref)
        entries.append((line, ref.label))
    _finish_axes(ax, entries, logx=logx, bytes_x="byte" in xlabel, laid_out=bool(points))
    return fig


def _check_scale(scale: object) -> None:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a finite number > 0 (ns to the y unit: 1e-3 for µs, 1e-6 for ms), got {scale!r}")


def plot_ratio(points: Sequence[Point], *, ax: Axes | None = None, title: str = "", xlabel: str = "",
               ylabel: str = "ratio (median, IQR of the paired rounds)", logx: bool = False, logy: bool = True,
               reference: float | None = 1.0, reference_label: str = "ratio 1: the same cost",
               fits: dict[str, Growth | Affine] | None = None) -> Figure:
    """Plot a ratio with its spread (``measure.Ratio.to_point``: the "time" of each point is the
    ratio, its q1..q3 the IQR of the per-round ratios) and the reference line at ``reference``.
    When a claim is "A costs the same as B", this is the plot that shows it: two noisy series
    that jump together hide it, their ratio does not."""
    fig = plot_points(points, ax=ax, title=title, xlabel=xlabel, ylabel=ylabel, logx=logx, logy=logy, fits=fits,
                      scale=1.0, references=[Reference(reference_label, y=reference)] if reference is not None else ())
    return fig


def _draw_fit(ax: Axes, fit: Growth | Affine, x_range: tuple[float, float], scale: float, st: dict[str, Any],
              logx: bool, floor: float | None = None, var: str = "x") -> Any:
    """The fit as a line over ``x_range``. ``floor`` (log y axes): leave out the part below it (half
    the series' smallest point). An affine fit with a negative fixed cost (its line, drawn back
    towards size 0, crosses zero) would otherwise dive off a log axis; where its line lies that
    far below every point it describes nothing that was measured."""
    x0, x1 = x_range
    if logx and x0 > 0:
        grid = [x0 * (x1 / x0) ** (i / 49) for i in range(50)]
    else:
        grid = [x0 + (x1 - x0) * i / 49 for i in range(50)]
    if isinstance(fit, Growth) and (math.isnan(fit.slope) or fit.label == "step"):
        return None
    ys = [fit.predict(x) * scale for x in grid]
    if floor is not None:
        kept = [(x, y) for x, y in zip(grid, ys) if y >= floor]
        if len(kept) < 2:
            return None
        grid, ys = [x for x, _ in kept], [y for _, y in kept]
    return ax.plot(grid, ys, color=st["color"], linestyle=st["linestyle"], linewidth=1.5, label=fit_label(fit, var))[0]


def _decorate(ax: Axes, title: str, xlabel: str, ylabel: str, logx: bool, logy: bool, legend: bool = True) -> None:
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
        if low > 0 and high / low < 2:  # a ratio near 1 (0.9 to 1.2): evenly spaced plain numbers
            ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    if title:
        ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")


# ---- ticks that fit, a legend that covers nothing ----------------------------------------------

_INSIDE = ("upper left", "upper right", "lower right", "lower left", "center left", "center right",
           "upper center", "lower center")


class _Layout:
    """One figure's constrained layout, and whether it still holds: after ``run()`` it does,
    until a change that may move things (a legend outside the axes, other x tick labels)."""

    def __init__(self, fig: Figure) -> None:
        self.fig, self.current = fig, False

    def run(self) -> None:
        """Lay the figure out: the positions it will be drawn at. The layout engine alone, not a
        whole draw without rendering (``Figure.draw_without_rendering`` runs the engine, then
        draws every artist): the engine is what sets the positions, at a third of the cost."""
        engine = self.fig.get_layout_engine()
        if engine is None:
            self.fig.draw_without_rendering()
        else:
            engine.execute(self.fig)
        self.current = True


def _finish_axes(ax: Axes, entries: Sequence[tuple[Any, str]], *, logx: bool, bytes_x: bool,
                 laid_out: bool = True) -> None:
    """Settle the view, thin the x tick labels until they do not overlap, place the legend.

    ``laid_out=False`` (an empty plot: a live plot before its first point, or cleared for a new
    run) skips the layout that places things among the data: there is none to cover. Otherwise
    the figure ends laid out as it will be drawn, and ``to_png`` draws it without laying it out
    again."""
    ax.autoscale_view()
    fig = ax.figure
    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure(): give it the Agg canvas we draw with
        FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    layout = _Layout(fig)
    if laid_out:
        layout.run()
    if entries and _place_legend(ax, renderer, [h for h, _ in entries], [label for _, label in entries]):
        layout.current = False  # outside the axes: they get narrower
    _fit_x_ticks(ax, renderer, layout, logx=logx, bytes_x=bytes_x)
    _LAID_OUT.discard(fig)
    if laid_out:
        if not layout.current:
            layout.run()
        fig.stale = False  # laid out as it is now: nothing to draw that the layout did not see
        _LAID_OUT.add(fig)


#: Tick labels closer than this (pixels) run into each other.
_TICK_GAP_PX = 8
#: How far constrained layout can move a tick label once the labels change: it resizes the axes
#: to fit the outermost labels, a few per cent of their width (measured over every figure of
#: every lesson: an estimated gap and the gap after the layout never differed by more than a
#: few pixels). An estimated gap this much wider than ``_TICK_GAP_PX`` needs no layout to confirm.
_LAYOUT_SLACK_PX = 24


def _tick_labels_fit(ax: Axes, renderer: Any, layout: _Layout) -> bool:
    """Do the x tick labels of the current locator and formatter stand apart?

    First estimated cheaply (``_tick_label_gap``). A clear gap is accepted as it is; a narrow
    one is confirmed by one real layout, because constrained layout moves the axes when the
    outermost labels change width. Confirming every choice costs a layout each (measured when
    layouts were whole draws: 75 of the course's figures, all confirmed, none overturned with
    a gap above 32 px; drawing was a third slower for it).
    """
    gap = _tick_label_gap(ax, renderer)
    if gap is None or gap >= _TICK_GAP_PX + _LAYOUT_SLACK_PX:
        return True
    if gap < _TICK_GAP_PX:
        return False
    layout.run()
    gap = _tick_label_gap(ax, renderer, drawn=True)
    return gap is None or gap >= _TICK_GAP_PX


def _tick_label_gap(ax: Axes, renderer: Any, *, drawn: bool = False) -> float | None:
    """The narrowest space (pixels) between two neighbouring x tick labels; ``None`` with fewer
    than two labels.

    Estimated from the labels' text extents and the axes' current transform; with ``drawn``,
    read from the tick labels as the last layout placed them.
    """
    low, high = sorted(ax.get_xlim())
    if drawn:
        boxes = sorted((t.label1.get_window_extent(renderer) for t in ax.xaxis.get_major_ticks()
                        if t.label1.get_visible() and t.label1.get_text() and low <= t.get_loc() <= high),
                       key=lambda b: b.x0)
        return min((b.x0 - a.x1 for a, b in zip(boxes, boxes[1:])), default=None)
    locs = [v for v in ax.xaxis.get_major_locator()() if low <= v <= high]
    if len(locs) < 2:
        return None
    labels = ax.xaxis.get_major_formatter().format_ticks(locs)
    ticks = ax.xaxis.get_major_ticks(1)
    prop = ticks[0].label1.get_fontproperties() if ticks else None
    xs = ax.transData.transform([(v, 0.0) for v in locs])[:, 0]
    spans = []
    for x, label in zip(xs, labels):
        if not label:
            continue
        text = Text(0, 0, label, fontproperties=prop, figure=ax.figure)
        width = text.get_window_extent(renderer).width
        spans.append((x - width / 2, x + width / 2))  # x tick labels are centred on their tick
    spans.sort()
    return min((b[0] - a[1] for a, b in zip(spans, spans[1:])), default=None)


def _fit_x_ticks(ax: Axes, renderer: Any, layout: _Layout, *, logx: bool, bytes_x: bool) -> None:
    """Label fewer x ticks until their labels stand apart (``_TICK_GAP_PX``)."""
    if logx and ax.get_xscale() == "log":
        low, high = sorted(ax.get_xlim())
        if low <= 0 or high <= low:
            return
        e0, e1 = math.ceil(math.log2(low) - 1e-9), math.floor(math.log2(high) + 1e-9)
        fmt = (lambda v, _pos: format_bytes(v) if v >= 1 else f"{v:g}") if bytes_x else \
            (lambda v, _pos: f"{v:,.0f}" if v >= 1 else f"{v:g}")
        ax.xaxis.set_major_formatter(FuncFormatter(fmt))
        ax.xaxis.set_minor_locator(NullLocator())
        for stride in (1, 2, 3, 4, 5, 10, 20):
            exps = [e for e in range(e0, e1 + 1) if e % stride == 0] or [e0]
            ax.xaxis.set_major_locator(FixedLocator([2.0**e for e in exps]))
            layout.current = False  # other labels than the laid-out ones
            if _tick_labels_fit(ax, renderer, layout):
                return
        return
    for nbins in (9, 7, 5, 4, 3, 2):
        if _tick_labels_fit(ax, renderer, layout):
            return
        ax.xaxis.set_major_locator(MaxNLocator(nbins=nbins))
        layout.current = False


def _data_in_axes(ax: Axes) -> list[tuple[float, float]]:
    """Every drawn data vertex (points, error bars, fit lines) in axes coordinates (0..1)."""
    import numpy as np

    to_axes = ax.transData + ax.transAxes.inverted()
    found = []
    for line in ax.lines:
        if line.get_zorder() <= 1 and line.get_label() and not line.get_label().startswith("_"):
            continue  # a reference line: may pass behind the legend
        xy = np.asarray(line.get_xydata(), dtype=float)
        if xy.size:
            found.append(xy)
    for coll in ax.collections:
        for seg in getattr(coll, "get_segments", lambda: [])():
            seg = np.asarray(seg, dtype=float)
            if seg.size:  # an error bar: its ends and a few points between them
                t = np.linspace(0, 1, 6)[:, None]
                found.append(seg[0] + t * (seg[-1] - seg[0]))
    if not found:
        return []
    xy = np.concatenate(found)
    with np.errstate(all="ignore"):
        out = to_axes.transform(xy)
    return [(float(x), float(y)) for x, y in out if np.isfinite(x) and np.isfinite(y)]


def _place_legend(ax: Axes, renderer: Any, handles: list[Any], labels: list[str]) -> bool:
    """The legend in the first place inside the axes where it covers no data (``_INSIDE``), or
    outside them, to the right, when there is none; True when it went outside."""
    data = _data_in_axes(ax)
    to_axes = ax.transAxes.inverted()
    for loc in _INSIDE:
        legend = ax.legend(handles, labels, fontsize=8, loc=loc)
        box = legend.get_window_extent(renderer).transformed(to_axes)
        pad = 0.01
        if not any(box.x0 - pad <= x <= box.x1 + pad and box.y0 - pad <= y <= box.y1 + pad for x, y in data):
            return False
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return True


#: Live plots in a cell's display whose last change the throttle has not drawn yet.
_PENDING: weakref.WeakSet[LivePlot] = weakref.WeakSet()
_FLUSH_HOOKED = False


def _flush_pending(*_result: object) -> None:
    """IPython's ``post_run_cell`` event: draw every live plot whose last change is not on screen,
    so a cell that ends without ``finish()`` still leaves its plot complete."""
    for plot in list(_PENDING):
        plot.finish()


def _hook_flush() -> None:
    """Register ``_flush_pending`` once per kernel (nothing outside IPython: there ``finish()``
    is the only way a put-off redraw happens)."""
    global _FLUSH_HOOKED
    if _FLUSH_HOOKED:
        return
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        return
    shell = get_ipython()
    if shell is not None:
        shell.events.register("post_run_cell", _flush_pending)
        _FLUSH_HOOKED = True


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
                 min_interval_s: float = 0.5, output: Any = None, scale: float = 1e-3,
                 ymin: float | None = None) -> None:
        _check_scale(scale)
        if isinstance(min_interval_s, bool) or not isinstance(min_interval_s, (int, float)) \
                or not math.isfinite(min_interval_s) or min_interval_s < 0:
            raise ValueError(f"min_interval_s must be a number of seconds ≥ 0, got {min_interval_s!r}")
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.logx, self.logy = logx, logy
        self.ymin = ymin
        self.min_interval_s = min_interval_s
        self.scale = scale
        self.output = output
        self.points: list[Point] = []
        self.fits: dict[str, Growth | Affine] = {}
        self.fit_ranges: dict[str, tuple[float, float]] = {}
        self.references: list[Reference] = []
        self.figure, self.ax = _new_figure(None)
        self.redraws = 0
        self._handle: Any = None
        self._last_draw = -math.inf
        self._draw_cost = 0.0
        self._lock = threading.RLock()
        self._png: bytes | None = None  # the PNG of the last draw, made once (a snapshot after finish() reuses it)
        self._stale = False  # a change not drawn yet (throttled): png() and snapshot() draw it first
        self._draw()
        if output is not None:  # a panel's plot: its Output widget shows the empty axes at once
            self._publish()

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
            self.update()

    def add_fit(self, series: str, fit: Growth | Affine, x_range: tuple[float, float] | None = None, *,
                redraw: bool = True) -> None:
        """Draw ``fit`` over ``series``'s points (or over ``x_range``, the x range that was fitted),
        its label ("linear, slope 0.98") in the legend: now, or, within ``min_interval_s`` of the
        last redraw, at the next one (at the latest when the cell ends, or at ``finish()``).
        ``redraw=False``: only at the next redraw (a caller about to ``finish()``)."""
        with self._lock:
            self.fits[series] = fit
            if x_range is not None:
                self.fit_ranges[series] = x_range
            else:
                self.fit_ranges.pop(series, None)
            if redraw:
                self.update()

    def add_reference(self, label: str, *, y: float | None = None, x: float | None = None, diagonal: bool = False,
                      through: Sequence[tuple[float, float]] = (), color: str = "0.35", linestyle: Any = ":") -> None:
        """Draw a named reference line (in the plot's units) from now on: ``add_reference("timeout
        50 ms", y=50)``; one with the same label replaces it. ``clear()`` keeps references."""
        ref = Reference(label, y, x, diagonal, tuple(tuple(p) for p in through), color, linestyle)
        with self._lock:
            self.references = [r for r in self.references if r.label != label] + [ref]
            self.update()

    def remove_reference(self, label: str) -> None:
        with self._lock:
            self.references = [r for r in self.references if r.label != label]
            self.update()

    def replace_series(self, series: str, points: Sequence[Point]) -> None:
        """Replace every point of ``series`` with ``points`` and redraw (throttled): for a sweep
        measured in interleaved rounds, ``on_round=lambda ps: plot.replace_series(name, ps)``."""
        with self._lock:
            self.points[:] = [p for p in self.points if p.series != series] + list(points)
            self.update()

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
        """Draw now, whatever the throttle says."""
        with self._lock:
            _PENDING.discard(self)
            start = time.monotonic()
            self._draw()
            self._publish()
            self._draw_cost = time.monotonic() - start

    def png(self) -> bytes:
        """The figure as PNG bytes: rendered once per draw (a render costs 30-80 ms of CPU, and a
        cell often ends with ``snapshot()`` of a plot its ``finish()`` has just rendered)."""
        with self._lock:
            if self._stale:  # a change the throttle held back (a panel's plot): draw it first
                self.redraw()
            if self._png is None:
                self._png = to_png(self.figure)
            return self._png

    def _repr_png_(self) -> bytes:
        return self.png()

    def snapshot(self) -> Any:
        """The current figure as a static PNG (``IPython.display.Image``), kept in a saved notebook."""
        from IPython.display import Image

        return Image(data=self.png(), format="png")

    # ---- internals ----------------------------------------------------------------------------

    def update(self) -> None:
        """Show the latest change: now if the throttle allows it (``min_interval_s``), else at the
        next redraw. A plot shown in a cell's output gets that redraw when the cell ends at the
        latest (``_flush_pending``), so its last change is never lost; a panel's plot (``output``)
        gets it from its worker's ``finish()`` (a flush from the kernel's thread would draw while
        the worker measures)."""
        if self._redraw_due():
            self.redraw()
            return
        self._stale = True
        if self.output is None:
            _PENDING.add(self)
            _hook_flush()

    def _redraw_due(self) -> bool:
        """Has ``min_interval_s`` passed, and four times the last redraw's cost?

        A redraw (layout, then PNG) takes 0.1–0.3 s, more on a busy host; the sweep waits for
        it, and shares the CPU with it, so drawing never takes more than a fifth of a sweep's
        time (twice a second is live enough; at four a second the course spent about 4 s of
        its Run All time redrawing). ``min_interval_s=0`` redraws at every point, whatever it
        costs.
        """
        wait = self.min_interval_s and max(self.min_interval_s, 4 * self._draw_cost)
        return time.monotonic() - self._last_draw >= wait

    def _draw(self) -> None:
        plot_points(self.points, ax=self.ax, title=self.title, xlabel=self.xlabel, ylabel=self.ylabel,
                    logx=self.logx, logy=self.logy, fits=self.fits, scale=self.scale, fit_ranges=self.fit_ranges,
                    ymin=self.ymin, references=self.references)
        self._last_draw = time.monotonic()
        self._png = None
        self._stale = False
        self.redraws += 1


    def _publish(self) -> None:
        if self.output is not None:
            png = base64.b64encode(self.png()).decode("ascii")
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
    """"recv(65536) → 29,696 B" (the call as written, what it did), "sendall(1 MiB)", "connect".

    A receive always shows the size it asked for (the argument of ``recv(n)``), so two calls
    read alike whether they got ``n`` bytes or fewer; a send shows the bytes it was given, and
    what it took only when that was fewer (``send(8 KiB) → 3 KiB``)."""
    done = None if e.done is None else format_bytes(e.done)
    if e.asked is None:
        label = e.op
    elif e.op in _SENDING_OPS:
        label = f"{e.op}({format_bytes(e.asked)})"
        done = None if e.done == e.asked else done
    else:
        label = f"{e.op}({e.asked})"
    if e.result == "EOF":
        return f"{label} → EOF (0 B)"
    if done is not None:
        label += f" → {done}"
    if isinstance(e.result, str) and e.result and e.result != "ok":
        label += f" [{e.result}]"
    return label


def _elapsed(ns: float) -> str:
    """Time since the first call: "850 µs", "12.3 ms", "1.25 s" (never "12345 µs")."""
    if ns < 1e6:
        return f"{ns / 1e3:.0f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.3g} ms"
    return f"{ns / 1e9:.3g} s"


def sequence_diagram(events: Sequence[Any], *, ax: Axes | None = None,
                     title: str = "Who called what, when (bytes on each arrow)",
                     max_events: int = 60) -> Figure:
    """Client and server lanes, one arrow per call, bytes on each; time runs downwards.

    ``events`` are ``trace.TraceEvent`` (fields ``t_ns, side, op, asked, done, result``), e.g.
    ``tracer.merge(server)``. Sends point from the caller's lane towards the other; receives
    point into the caller's lane. At most ``max_events`` are drawn (the rest are counted in
    the title).
    """
    from .validate import count

    count("max_events", max_events, low=1, unit="events")
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
        ax.text(-0.34, row, _elapsed(e.t_ns - t0), ha="left", va="center", fontsize=6, color="0.35")
    # Each call is stamped when it returned (a send: when it was called), so two calls a wake-up
    # apart can swap rows: accept() returning before connect() does, a recv seeing EOF above the
    # close() whose FIN it read (close() returns after sending it).
    ax.text(-0.34, -0.5, "time since the first call,\nwhen each call returned\n(a send: when called)", ha="left",
            va="bottom", fontsize=6, color="0.35")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    # The key: which lane's calls are which, and what an arrow and a dot mean.
    from matplotlib.lines import Line2D

    key = [Line2D([], [], color=colours["client"], linestyle="-", label="client's call"),
           Line2D([], [], color=colours["server"], linestyle="--", label="server's call"),
           Line2D([], [], color="0.3", marker=">", linestyle="none",
                  label="arrow: a send points to the peer, a receive to the caller"),
           ]
    if any(e.op in _LOCAL_OPS for e in shown):  # the dot's entry only where a dot is drawn
        key.append(Line2D([], [], color="0.3", marker="o", markersize=4, linestyle="none",
                          label="dot: a call that stays local"))
    ax.legend(handles=key, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=7, frameon=False)
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
