"""Lesson 09 · Real protocols (``notebooks/09_real_protocols.ipynb``): everything specific to that lesson.

- ``demos``: the harness its cells use (``http.server`` and a TLS echo server playing the other
  side, where the browser finds a page, curl, timing in alternating rounds, verdicts);
- ``checks``: the checkers of its exercises;
- ``solutions``: their reference solutions (``show_solution(name)`` shows one);
- ``claims``: its measured claims, for the verdict-reliability benchmark.

The notebook imports from this package: ``from socketlessons.lessons.l09_real_protocols import …``.
Its tests are ``tests/lessons/test_l09_real_protocols*.py``.
"""

from .checks import *  # noqa: F403
from .checks import __all__ as _checks
from .demos import *  # noqa: F403
from .demos import __all__ as _demos

__all__ = [*_demos, *_checks]
