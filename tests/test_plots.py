"""plots: every drawing function runs headless (Agg) and draws what it was given."""

from __future__ import annotations

import ipywidgets as widgets
import pytest
from matplotlib.figure import Figure

from socketlessons.measure import Point, fit_affine, fit_growth, summarize
from socketlessons.plots import (
    axis_variable,
    PALETTE,
    LivePlot,
    fit_label,
    plot_points,
    sequence_diagram,
    style_for,
    to_png,
)
from socketlessons.trace import TraceEvent

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def pts(series="", k=3.0, xs=(1, 4, 16, 64, 256)):
    return [Point.from_timing(x, summarize([k * x * 0.9, k * x, k * x * 1.1]), series) for x in xs]


def test_plot_points_draws_one_errorbar_series_per_label_and_the_fit():
    points = pts("send") + pts("sendall", k=5.0)
    fits = {"send": fit_growth([p.x for p in points[:5]], [p.median_ns for p in points[:5]])}
    fig = plot_points(points, title="send is O(k)", xlabel="payload (bytes)", logx=True, logy=True, fits=fits)
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert sorted(labels) == ["linear, slope 1.00", "send", "sendall"]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_title() == "send is O(k)" and "µs" in ax.get_ylabel()


def test_plot_points_uses_given_axes_and_distinct_styles():
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_points(pts(), ax=ax) is fig
    styles = {(style_for(i)["color"], style_for(i)["marker"]) for i in range(len(PALETTE))}
    assert len(styles) == len(PALETTE)


def test_ymin_starts_a_linear_time_axis_at_zero_live_too():
    flat = [Point.from_timing(x, summarize([30_000, 31_000, 32_000]), "s") for x in (1, 2, 4)]
    assert plot_points(flat).axes[0].get_ylim()[0] > 25  # hugging the data: a 3 % spread fills the plot
    assert plot_points(flat, ymin=0).axes[0].get_ylim()[0] == 0
    plot = LivePlot("t", "x", "µs", ymin=0, min_interval_s=0)
    for p in flat:
        plot.add(p)
    assert plot.ax.get_ylim()[0] == 0 and plot.ax.get_ylim()[1] > max(p.q3_ns for p in flat) / 1000


def test_a_log_time_axis_spanning_less_than_a_decade_still_has_numbers():
    narrow = [Point.from_timing(x, summarize([30_000 + 1_000 * i, 32_000 + 1_000 * i, 34_000 + 1_000 * i]), "s")
              for i, x in enumerate((1, 2, 4, 8, 16))]  # 30 to 38 µs: no 1, 2 or 5 in reach
    ax = plot_points(narrow, logy=True).axes[0]
    low, high = ax.get_ylim()
    shown = [t for t in ax.get_yticks() if low <= t <= high]
    assert shown, f"no labelled tick between {low:.1f} and {high:.1f}"
    assert all(ax.yaxis.get_major_formatter()(t, 0) for t in shown)
    wide = plot_points(pts(), logy=True).axes[0]  # four decades: only 1, 2, 5 of each
    assert {round(t / 10 ** int(f"{t:e}".split("e")[1])) for t in wide.get_yticks() if t > 0} <= {1, 2, 5}


def test_fit_labels():
    assert fit_label(fit_growth([1, 2, 4, 8], [2, 4, 8, 16])) == "linear, slope 1.00"
    assert fit_label(fit_growth([1, 2], [1, 2])) == "fit: too few points"
    assert fit_label(fit_affine([0, 10], [1000, 1010])).startswith("fit: 1 µs + 1 ns")
    assert fit_label(fit_affine([0, 10], [1000, 1010]), "k").endswith("1 ns × k")  # the axis's own variable


@pytest.mark.parametrize("xlabel,var", [("payload k (bytes)", "k"), ("clients (N)", "N"), ("clients N", "N"),
                                        ("message size (bytes)", "bytes"), ("connections already open", "connections"),
                                        ("", "x")])
def test_an_affine_fit_in_a_plot_is_written_in_its_axis_variable(xlabel, var):
    assert axis_variable(xlabel) == var
    xs = (1, 2, 4, 8)
    points = [Point.from_timing(x, summarize([1000.0 + 10 * x] * 3), "s") for x in xs]
    fig = plot_points(points, xlabel=xlabel, fits={"s": fit_affine(xs, [1000 + 10 * x for x in xs])})
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert f"fit: 1 µs + 10 ns × {var}" in labels, labels


def test_live_plot_grows_throttles_and_renders_png():
    plot = LivePlot("claim", "x (bytes)", "t (µs)", logx=True, min_interval_s=3600)
    first = plot.redraws
    for p in pts():
        plot.add(p)
    assert plot.redraws == first  # throttled: no redraw within the interval
    plot.finish()
    assert plot.redraws == first + 1
    assert len(plot.ax.lines) >= 1
    assert plot.png().startswith(PNG_MAGIC) and plot._repr_png_().startswith(PNG_MAGIC)
    plot.add_fit("", fit_growth([p.x for p in plot.points], [p.median_ns for p in plot.points]))
    assert plot.redraws == first + 1  # within the interval: put off until the next redraw
    plot.finish()
    assert "linear, slope 1.00" in plot.ax.get_legend_handles_labels()[1]
    plot.clear()
    assert plot.points == [] and plot.fits == {}


def test_live_plot_redraws_every_point_without_throttle():
    plot = LivePlot("claim", "x", "t", min_interval_s=0)
    before = plot.redraws
    for p in pts():
        plot.add(p)
    assert plot.redraws == before + 5


def test_live_plot_waits_four_times_its_own_redraw_cost_between_redraws():
    """A sweep waits for each redraw: drawing must not take over the sweep on a slow host."""
    plot = LivePlot("claim", "x", "t", min_interval_s=0.001)
    plot.redraw()  # measures what a redraw costs here (at least tens of ms)
    before = plot.redraws
    for i in range(50):  # microseconds each, far less than four redraws
        plot.add(Point.from_timing(i, summarize([1000.0])))
    assert plot.redraws - before <= 2, plot.redraws - before


def test_live_plot_into_an_output_widget_replaces_its_png():
    out = widgets.Output()
    plot = LivePlot("claim", "x", "t", output=out, min_interval_s=0)
    plot.add(pts()[0])
    first = out.outputs[0]["data"]["image/png"]
    plot.add(pts()[1])
    assert len(out.outputs) == 1 and out.outputs[0]["data"]["image/png"] != first


def test_live_plot_show_outside_ipython_does_not_fail(capsys):
    LivePlot("claim", "x", "t").show()  # plain Python: display() prints a text repr


def test_sequence_diagram_draws_one_arrow_per_event_with_bytes():
    events = [
        TraceEvent(0, "client", "connect", None, None, "ok"),
        TraceEvent(1000, "server", "accept", None, None, "ok"),
        TraceEvent(2000, "client", "sendall", 5, 5, "ok"),
        TraceEvent(3000, "server", "recv", 1024, 5, "ok"),
    ]
    fig = sequence_diagram(events)
    ax = fig.axes[0]
    assert len(ax.patches) + len([c for c in ax.get_children() if type(c).__name__ == "Annotation"]) >= 4
    texts = [t.get_text() for t in ax.texts]
    assert "sendall(5 B)" in texts and "recv(1024) → 5 B" in texts
    assert "client" in texts and "server" in texts


def test_sequence_diagram_labels_every_receive_with_its_size_and_says_what_it_draws():
    events = [TraceEvent(0, "client", "recv", 5, 5, "ok"), TraceEvent(12_345_000, "client", "send", 8192, 3072, "ok"),
              TraceEvent(1_500_000_000, "server", "close", None, None, "ok")]
    ax = sequence_diagram(events).axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "recv(5) → 5 B" in texts  # asked for 5 and got 5: still recv(5), as a recv(1024) that got 5 reads
    assert "send(8 KiB) → 3 KiB" in texts  # took fewer than it was given
    assert "0 µs" in texts and "12.3 ms" in texts and "1.5 s" in texts  # never "12345 µs"
    key = [t.get_text() for t in ax.get_legend().get_texts()]
    assert key[:2] == ["client's call", "server's call"] and any("arrow" in k for k in key)


@pytest.mark.parametrize("n,shown", [(0, 0), (100, 60)])
def test_sequence_diagram_bounds_the_number_of_arrows(n, shown):
    events = [TraceEvent(i, "client", "send", 1, 1, "ok") for i in range(n)]
    fig = sequence_diagram(events)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("send(1 B)") == shown
    if n > shown:
        assert f"first {shown} of {n}" in fig.axes[0].get_title()


def test_sequence_diagram_marks_local_calls_instead_of_arrows():
    events = [TraceEvent(0, "client", "settimeout", None, None), TraceEvent(1, "server", "recv", 8, 0, "EOF")]
    fig = sequence_diagram(events)
    ax = fig.axes[0]
    arrows = [c for c in ax.get_children() if type(c).__name__ == "Annotation" and c.arrow_patch is not None]
    assert len(arrows) == 1  # the recv; settimeout is a dot on the client lane
    texts = [t.get_text() for t in ax.texts]
    assert "settimeout" in texts and "recv(8) → EOF (0 B)" in texts


def _points(xs, ys, series="", extra=None):
    return [Point(x, y, y, y, 5, series, dict(extra(x)) if extra else {}) for x, y in zip(xs, ys)]


def test_from_zero_starts_the_time_axis_at_zero():
    from socketlessons.lessons._figures import from_zero

    shown = from_zero(_points([1, 8, 64], [8_000, 8_100, 7_900], series="s"), title="t", xlabel="n",
                      ylabel="µs", fits={"s": fit_growth([1, 8, 64], [8_000, 8_100, 7_900])})
    assert shown.figure.axes[0].get_ylim()[0] == 0
    assert shown._repr_png_().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="run the sweep"):
        from_zero([], title="t", xlabel="n", ylabel="µs")


# ---- colours by name, legends that cover nothing, ticks that fit, reference lines, ratios --------

def _colour_of(fig, label):
    """The colour of the markers drawn for series ``label``."""
    from matplotlib.colors import to_hex

    ax = fig.axes[0]
    container = next(c for c in ax.containers if c.get_label() == label)
    return to_hex(container.lines[0].get_color())


def test_a_series_keeps_its_colour_whatever_the_order():
    first = plot_points(pts("colour A") + pts("colour B", k=5.0))
    swapped = plot_points(pts("colour B", k=5.0) + pts("colour A"))
    assert _colour_of(first, "colour A") == _colour_of(swapped, "colour A")
    assert _colour_of(first, "colour B") == _colour_of(swapped, "colour B")
    assert _colour_of(first, "colour A") != _colour_of(first, "colour B")
    from socketlessons.plots import style_for_series
    assert style_for_series("colour A") == style_for_series("colour A")


def test_each_fit_entry_follows_its_series_in_the_legend():
    points = pts("send") + pts("sendall", k=5.0)
    fits = {name: fit_growth([p.x for p in points if p.series == name], [p.median_ns for p in points if p.series == name])
            for name in ("send", "sendall")}
    fig = plot_points(points, logx=True, logy=True, fits=fits)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["send", "linear, slope 1.00", "sendall", "linear, slope 1.00"]


def _legend_box_and_data(fig):
    from socketlessons.plots import _data_in_axes

    ax = fig.axes[0]
    to_png(fig)  # the PNG a learner sees: positions as that draw left them
    box = ax.get_legend().get_window_extent().transformed(ax.transAxes.inverted())
    return box, _data_in_axes(ax)


@pytest.mark.parametrize("case", ["rising line", "data everywhere"])
def test_the_legend_never_covers_data(case):
    import math
    if case == "rising line":
        points = pts("a") + pts("b", k=9.0)
    else:
        xs = [2**i for i in range(20)]
        points = [Point.from_timing(x, summarize([1000 * (1.5 + math.sin(i * 1.7 + j))]), s)
                  for j, s in enumerate(("a", "b")) for i, x in enumerate(xs)]
    fig = plot_points(points, logx=True)
    box, data = _legend_box_and_data(fig)
    inside = [(x, y) for x, y in data if box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1]
    assert not inside, (box, inside[:3])
    _assert_drawn_as_a_fresh_layout_would(fig)


@pytest.mark.parametrize("xlabel,xs", [
    ("payload size (bytes)", [2**i for i in range(23)]),
    ("clients N", [2**i for i in range(21)]),
    ("ping number", list(range(0, 600))),
    # Wide outermost labels ("0.000976562"), which constrained layout makes room for.
    ("clients N", [2.0**e for e in range(-10, 21)]),
    ("clients N", [256 * 2.0**(e / 3) for e in range(0, 49)]),
])
def test_x_tick_labels_never_overlap_and_log_axes_have_numbers(xlabel, xs):
    points = [Point.from_timing(x, summarize([1000.0 + x, 1100.0 + x])) for x in xs]
    logx = xlabel != "ping number"
    fig = plot_points(points, xlabel=xlabel, logx=logx, logy=True)
    ax = fig.axes[0]
    to_png(fig)
    low, high = ax.get_xlim()
    shown = [t for t in ax.xaxis.get_major_ticks() if low <= t.get_loc() <= high and t.label1.get_text()]
    assert len(shown) >= 3
    boxes = sorted((t.label1.get_window_extent() for t in shown), key=lambda b: b.x0)
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), [t.label1.get_text() for t in shown]
    assert boxes[0].x0 >= 0 and boxes[-1].x1 <= fig.bbox.width  # the layout made room for the labels drawn
    assert ax.xaxis.label.get_window_extent().y0 >= 0
    _assert_drawn_as_a_fresh_layout_would(fig)
    if xlabel.endswith("(bytes)"):
        assert all(t.label1.get_text().endswith("B") for t in shown)
    ylow, yhigh = ax.get_ylim()
    assert [t for t in ax.get_yticks() if ylow <= t <= yhigh], "a log y axis without a number"


def _assert_drawn_as_a_fresh_layout_would(fig):
    """The PNG ``to_png`` made (without a layout of its own, when ``plot_points`` left the figure
    laid out) shows the figure where laying it out anew would put everything."""
    def boxes():
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        return [v for artist in [*fig.axes, *legends] for v in artist.get_window_extent().bounds]
    to_png(fig)
    drawn = boxes()
    fig.canvas.draw()  # savefig's path: the layout engine runs, then the figure is drawn
    assert boxes() == pytest.approx(drawn, abs=0.5)


def _work_of(fig, monkeypatch):
    """(draws, layouts) that ``to_png(fig)`` made."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    draws, layouts = [], []
    draw, execute = Figure.draw, ConstrainedLayoutEngine.execute
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: (draws.append(self), draw(self, renderer))[1])
    monkeypatch.setattr(ConstrainedLayoutEngine, "execute", lambda self, f: (layouts.append(f), execute(self, f))[1])
    assert to_png(fig).startswith(PNG_MAGIC)
    monkeypatch.undo()
    return len(draws), len(layouts)


@pytest.mark.parametrize("logx", [True, False])
def test_a_plotted_figure_is_drawn_once_as_laid_out_and_laid_out_again_once_changed(monkeypatch, logx):
    fig = plot_points(pts("a") + pts("b", k=9.0), xlabel="payload (bytes)", logx=logx, logy=True)
    assert _work_of(fig, monkeypatch) == (1, 0)  # the layout plot_points made still holds
    ax = fig.axes[0]
    ax.set_ylabel("time per sendall, 10th percentile\n(µs, on two lines: wider than before)")
    assert _work_of(fig, monkeypatch) == (1, 1)  # changed: laid out again, then drawn
    label = ax.yaxis.label.get_window_extent()
    assert label.x0 >= 0 and label.y0 >= 0 and label.y1 <= fig.bbox.height  # room was made for it
    _assert_drawn_as_a_fresh_layout_would(fig)

    fig = plot_points(pts("a") + pts("b", k=9.0), logx=True, logy=True)
    fig.axes[0].legend(["a", "b"], loc="upper left", bbox_to_anchor=(1.02, 1.0))
    assert _work_of(fig, monkeypatch) == (1, 1)
    assert fig.axes[0].get_legend().get_window_extent().x1 <= fig.bbox.width


def test_any_figure_with_constrained_layout_is_drawn_as_a_fresh_layout_would():
    from socketlessons.plots import plot_ratio

    fig = Figure(figsize=(6.4, 4.0), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot([1, 2, 3], [3, 1, 2], label="a line")
    left.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    right.set_title("a title as long as the axes are wide, or longer")
    right.set_xlabel("x")
    _assert_drawn_as_a_fresh_layout_would(fig)
    _assert_drawn_as_a_fresh_layout_would(sequence_diagram([
        TraceEvent(0, "client", "connect", None, None, "ok"),
        TraceEvent(2000, "client", "sendall", 5, 5, "ok"),
        TraceEvent(3000, "server", "recv", 1024, 5, "ok"),
    ], title="one send, one recv"))
    ratio = Point.from_timing(1, summarize([1.0, 1.1, 0.9]))
    _assert_drawn_as_a_fresh_layout_would(plot_ratio([ratio], title="a ratio"))


@pytest.mark.parametrize("logx", [True, False])
def test_a_legend_outside_the_axes_is_drawn_where_the_layout_made_room_for_it(logx):
    import math
    xs = [2**(i / 2) if logx else i for i in range(40)]  # three series that fill every corner of the axes
    points = [Point.from_timing(x, summarize([1000 * (2 + math.sin(i * 2.1 + 3 * j))]), s)
              for j, s in enumerate(("a", "b", "c")) for i, x in enumerate(xs)]
    fig = plot_points(points, logx=logx, xlabel="clients N")
    ax, legend = fig.axes[0], fig.axes[0].get_legend()
    to_png(fig)
    box = legend.get_window_extent()
    assert box.x0 >= ax.get_window_extent().x1  # outside: data everywhere inside
    assert box.x1 <= fig.bbox.width  # and within the figure
    _assert_drawn_as_a_fresh_layout_would(fig)


def test_reference_lines_are_drawn_named_and_kept_by_live_plots():
    from socketlessons.plots import Reference, reference_line

    fig = plot_points(pts(), references=[Reference("timeout 50 ms", y=50.0)])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[-1] == "timeout 50 ms"
    line = reference_line(fig.axes[0], "y = x", diagonal=True)
    assert line.get_label() == "y = x" and len(line.get_xdata()) > 2
    with pytest.raises(ValueError, match="exactly one of"):
        Reference("two", y=1.0, x=2.0)
    with pytest.raises(ValueError, match="finite"):
        Reference("nan", y=float("nan"))
    plot = LivePlot("ping", "ping number", "ms", min_interval_s=0, scale=1e-6)
    plot.add_reference("timeout 20 ms", y=20)
    plot.add(Point(1, 1e6, 1e6, 1e6, 1, "answered"))
    plot.clear()
    assert "timeout 20 ms" in plot.ax.get_legend_handles_labels()[1]
    plot.replace_series("answered", [Point(2, 2e6, 2e6, 2e6, 1, "answered")])
    assert [p.x for p in plot.points] == [2]


def test_a_ratio_is_plotted_with_its_spread_against_one():
    from socketlessons.measure import Ratio
    from socketlessons.plots import plot_ratio

    r = Ratio(1.02, 0.95, 1.1, 21, summarize([1.0]), summarize([1.0]))
    fig = plot_ratio([r.to_point(x, "helper / raw") for x in (1, 8, 64, 512)], logx=True, xlabel="payload size (bytes)")
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "helper / raw" in labels and "ratio 1: the same cost" in labels
    low, high = ax.get_ylim()
    assert low < 0.95 and high > 1.1  # the spread is on the plot
    assert len([t for t in ax.get_yticks() if low <= t <= high]) >= 3  # a narrow log axis still has numbers


@pytest.mark.parametrize("kwargs,match", [({"scale": 0}, "scale"), ({"scale": float("nan")}, "scale"),
                                          ({"ymin": float("inf")}, "ymin")])
def test_plot_points_rejects_bad_values_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_points(pts(), **kwargs)
    if "scale" in kwargs:
        with pytest.raises(ValueError, match="scale"):
            LivePlot("t", "x", "y", scale=kwargs["scale"])
    with pytest.raises(ValueError, match="min_interval_s"):
        LivePlot("t", "x", "y", min_interval_s=-1)


def test_a_put_off_redraw_happens_when_the_cell_ends_in_a_real_kernel():
    """In a kernel, a change the throttle put off (points, a fit) is drawn when its cell ends
    (IPython's post_run_cell event), once, even without finish(); the saved output is that plot."""
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "from socketlessons.plots import LivePlot\n"
        "from socketlessons.measure import Point, fit_growth\n"
        "plot = LivePlot('t', 'x', 'µs', min_interval_s=3600).show()\n"
        "before = plot.redraws\n"
        "for x in (1, 2, 4, 8):\n"
        "    plot.add(Point(x, 1000.0 * x, 900.0 * x, 1100.0 * x, 3, 'a'))\n"
        "plot.add_fit('a', fit_growth([1, 2, 4, 8], [1000, 2000, 4000, 8000]))\n"
        "print(plot.redraws - before)",
        "print(plot.redraws - before, 'linear, slope 1.00' in plot.ax.get_legend_handles_labels()[1])",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    texts = ["".join(o.get("text", "") for o in c.outputs if o.output_type == "stream") for c in nb.cells]
    assert texts[0].strip() == "0"  # throttled while the cell ran
    assert texts[1].strip() == "1 True"  # drawn once, when the cell ended
    images = [o for o in nb.cells[0].outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the display, updated in place


def test_an_affine_fit_with_a_negative_fixed_cost_stays_on_a_log_axis():
    """Lesson 06's panel: recv(1) fitted as −212 µs + 6 µs × size. On a log y axis the part of
    the line far below every point (and below zero) is left out instead of diving off the plot."""
    from socketlessons.measure import Affine
    from socketlessons.plots import plot_points

    xs = [16, 64, 256, 1024, 4096]
    pts = [Point(x, 6e3 * x, 6e3 * x, 6e3 * x, 5, "recv(1)") for x in xs]
    fig = plot_points(pts, logx=True, logy=True, fits={"recv(1)": Affine(-212e3, 6e3, 0.99)})
    line = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("fit:")][0]
    assert min(line.get_ydata()) >= 0.5 * 6 * 16  # half the smallest point, in µs
    assert max(line.get_xdata()) == pytest.approx(4096)


def test_points_without_spread_are_drawn_without_error_bars():
    """One measurement per point (lesson 02's accept() waits): no IQR bar to draw, so none in the
    legend either; a series with spread keeps its bars."""
    single = [Point.from_timing(x, summarize([1e6 * x]), "one each") for x in (1, 2, 4)]
    fig = plot_points(single + pts("spread"))
    ax = fig.axes[0]
    assert [c.get_label() for c in ax.containers] == ["spread"]
    assert "one each" in ax.get_legend_handles_labels()[1]
    assert "measured" in plot_points([Point.from_timing(1, summarize([5.0]))]).axes[0].get_legend_handles_labels()[1]


def test_a_snapshot_draws_the_change_the_throttle_held_back():
    """A panel's plot (drawn into an Output) redraws at most every min_interval_s: a reference
    line added right after its last redraw must still be in the snapshot (lesson 08's stall line
    was missing from the saved figure)."""
    plot = LivePlot("claim", "x (bytes)", "t (µs)", output=widgets.Output(), min_interval_s=3600)
    for p in pts():
        plot.add(p)
    plot.finish()
    before = plot.png()
    drawn = plot.redraws
    plot.add_reference("stall threshold", y=10.0)
    assert plot.redraws == drawn  # throttled: not drawn yet
    after = plot.snapshot().data
    assert plot.redraws == drawn + 1 and after != before
    assert "stall threshold" in plot.ax.get_legend_handles_labels()[1] or any(
        "stall threshold" in t.get_text() for leg in plot.figure.legends for t in leg.get_texts())
    assert plot.snapshot().data == after and plot.redraws == drawn + 1  # nothing new: no second draw
