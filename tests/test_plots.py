"""plots: every drawing function runs headless (Agg) and draws what it was given."""

from __future__ import annotations

import ipywidgets as widgets
import pytest
from matplotlib.figure import Figure

from socketlessons.measure import Point, fit_affine, fit_growth, summarize
from socketlessons.plots import (
    PALETTE,
    LivePlot,
    fit_label,
    plot_points,
    sequence_diagram,
    style_for,
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
    assert "linear, slope 1.00" in plot.ax.get_legend_handles_labels()[1]
    plot.clear()
    assert plot.points == [] and plot.fits == {}


def test_live_plot_redraws_every_point_without_throttle():
    plot = LivePlot("claim", "x", "t", min_interval_s=0)
    before = plot.redraws
    for p in pts():
        plot.add(p)
    assert plot.redraws == before + 5


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
    assert "sendall → 5 B" in texts and "recv(1024) → 5 B" in texts
    assert "client" in texts and "server" in texts


@pytest.mark.parametrize("n,shown", [(0, 0), (100, 60)])
def test_sequence_diagram_bounds_the_number_of_arrows(n, shown):
    events = [TraceEvent(i, "client", "send", 1, 1, "ok") for i in range(n)]
    fig = sequence_diagram(events)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("send → 1 B") == shown
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
