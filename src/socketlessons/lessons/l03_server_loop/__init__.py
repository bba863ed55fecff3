"""Lesson 03 · The server loop (``notebooks/03_server_loop.ipynb``): everything specific to that lesson.

- ``runner``: ``LearnerServer`` runs a server loop written in a cell (sequential, a thread per
  client, ``selectors``, ``asyncio.start_server``) so the harness can load and time it;
  ``process``/``aprocess`` spend the request's cost that ``work.set()`` or the panel chooses;
- ``demos``: the harness its cells use (the built-in loop servers' timelines, the load panel,
  many idle connections, the verdicts);
- ``network``: the seed's "network I/O dominates" measured (a delaying relay, the verdict);
- ``checks``: the checkers of its exercises; ``solutions``: their reference solutions;
- ``claims``: the verdicts it prints, for the verdict-reliability benchmark.

The notebook imports from this package: ``from socketlessons.lessons.l03_server_loop import …``.
Its tests are ``tests/lessons/test_l03_server_loop*.py``.
"""

from .checks import *  # noqa: F403
from .checks import __all__ as _checks
from .demos import *  # noqa: F403
from .demos import __all__ as _demos
from .network import *  # noqa: F403
from .network import __all__ as _network
from .runner import *  # noqa: F403
from .runner import __all__ as _runner

__all__ = [*_demos, *_checks, *_network, *_runner]
