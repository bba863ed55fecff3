"""Lesson 05 · Best practices (``notebooks/05_best_practices.ipynb``): everything specific to that lesson.

- ``demos``: the helpers its cells use (servers that play the other side, timers, verdicts);
- ``checks``: the checkers of its exercises;
- ``solutions``: their reference solutions (``show_solution(name)`` shows one).

The notebook imports from this package: ``from socketlessons.lessons.l05_best_practices import …``.
Its tests are ``tests/lessons/test_l05_best_practices*.py``.
"""

from .checks import *  # noqa: F403
from .checks import __all__ as _checks
from .demos import *  # noqa: F403
from .demos import __all__ as _demos

__all__ = [*_demos, *_checks]
