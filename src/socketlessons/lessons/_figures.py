"""A static figure of sweep points with the time axis starting at zero (lessons 01, 02, 04).

When a claim says "O(1)" and the measurement agrees, the points sit in a narrow band: a linear
axis that autoscales to that band (7.9 to 8.2 µs) makes noise look like growth, and a log axis
over less than a decade shows one tick label or none. Starting the axis at zero shows a flat
line as flat, and a growing one as growing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..measure import Affine, Growth, Point
from ..plots import Reference, plot_points, to_png

__all__ = ["Shown", "from_zero"]


class Shown:
    """A figure that displays itself as a PNG in a notebook (no pyplot needed); ``.figure`` is it.
    The PNG is rendered once, at the first display (a render costs 30-80 ms)."""

    def __init__(self, figure: Any) -> None:
        self.figure = figure
        self._png: bytes | None = None

    def png(self) -> bytes:
        if self._png is None:
            self._png = to_png(self.figure)
        return self._png

    def _repr_png_(self) -> bytes:
        return self.png()


def from_zero(points: Sequence[Point], *, title: str, xlabel: str, ylabel: str,
              fits: dict[str, Growth | Affine] | None = None, logx: bool = True, scale: float = 1e-3,
              references: Sequence[Reference] = (),
              fit_ranges: dict[str, tuple[float, float]] | None = None) -> Shown:
    """Plot ``points`` (median, IQR bars, one style per series by name, ``fits`` drawn over their
    series or over ``fit_ranges[series]``) on a linear time axis from 0 (``scale`` converts ns to
    its unit, default µs), with named ``references`` (``plots.Reference``) if the text names one."""
    if not points:
        raise ValueError("no points to plot: run the sweep first")
    figure = plot_points(points, title=title, xlabel=xlabel, ylabel=ylabel, logx=logx, logy=False,
                         fits=fits, scale=scale, ymin=0, references=references, fit_ranges=fit_ranges)
    return Shown(figure)
