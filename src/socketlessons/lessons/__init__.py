"""One package per lesson, named after its notebook (``l03_server_loop`` for ``03_server_loop.ipynb``).

Each holds that lesson's ``demos``, ``checks`` and ``solutions``; its tests are
``tests/lessons/test_<name>*.py``. The modules starting with ``_`` are shared by several lessons
(panels, figures, addresses nobody may use); the rest of the harness (servers, measuring,
plotting, checking) lives at the top of the package.
"""

from __future__ import annotations

import pkgutil

__all__ = ["LESSONS"]

#: The lesson packages, in course order (``["l01_client", "l02_server", …]``).
LESSONS: list[str] = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg and m.name[:1] == "l")
