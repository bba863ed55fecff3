"""Checks for the numbers a learner passes: one clear error naming the parameter, the value and
what to use, instead of a ``TypeError`` from deep inside, a hang, or a silent nonsense result.

    >>> seconds("timeout", 2)
    2.0
    >>> seconds("timeout", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: timeout must be a number of seconds between 0 and 600, got nan
"""

from __future__ import annotations

import math
from numbers import Integral, Real

__all__ = ["count", "probability", "seconds"]


def _real(name: str, value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return number


def seconds(name: str, value: object, *, low: float = 0.0, high: float = 600.0, allow_low: bool = True) -> float:
    """``value`` as seconds in ``[low, high]`` (``(low, high]`` when ``allow_low`` is false)."""
    what = f"a number of seconds {'from' if allow_low else 'above'} {low:g} {'to' if allow_low else 'up to'} {high:g}" \
        if low else f"a number of seconds between 0 and {high:g}"
    number = _real(name, value, what)
    if not (low <= number if allow_low else low < number) or number > high:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return number


def count(name: str, value: object, *, low: int = 0, high: int | None = None, unit: str = "") -> int:
    """``value`` as a whole number in ``[low, high]``."""
    span = f"from {low:,}" + (f" to {high:,}" if high is not None else "")
    what = f"a whole number{' of ' + unit if unit else ''} {span}"
    if isinstance(value, bool) or not isinstance(value, Integral):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{name} must be {what}, got {value!r} (a fraction)")
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    number = int(value)
    if number < low or (high is not None and number > high):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return number


def probability(name: str, value: object) -> float:
    """``value`` as a probability in ``[0, 1]``."""
    what = "a probability between 0 and 1"
    number = _real(name, value, what)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return number
