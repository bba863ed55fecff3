"""Lesson 04 · UDP (``notebooks/04_udp.ipynb``): everything specific to that lesson.

- ``demos``: the helpers its cells use (servers that play the other side, timers, verdicts);
- ``checks``: the checkers of its exercises;
- ``solutions``: their reference solutions (``show_solution(name)`` shows one).

The notebook imports from this package: ``from socketlessons.lessons.l04_udp import …``.
Its tests are ``tests/lessons/test_l04_udp*.py``.
"""

from .checks import *  # noqa: F403
from .checks import __all__ as _checks
from .demos import *  # noqa: F403
from .demos import __all__ as _demos

__all__ = [*_demos, *_checks]
