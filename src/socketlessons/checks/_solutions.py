"""Reference solutions: shown only on request, and run by the tests against every checker.

The references live in each lesson's package (``socketlessons.lessons.l01_client.solutions``
…) as plain functions named after their exercise. ``show_solution(name)`` displays one's source; ``solution(name)`` returns it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["show_solution", "solution"]


def _modules() -> list[Any]:
    from .. import lessons

    return [importlib.import_module(f"{lessons.__name__}.{name}.solutions") for name in lessons.LESSONS]


def solution(name: str) -> Callable[..., Any]:
    """The reference solution of exercise ``name``."""
    for module in _modules():
        fn = getattr(module, name, None)
        if callable(fn):
            return fn
    known = sorted(n for m in _modules() for n, f in vars(m).items()
                   if inspect.isfunction(f) and f.__module__ == m.__name__ and not n.startswith("_"))
    raise KeyError(f"no solution named {name!r}; known: {', '.join(known)}")


def show_solution(name: str) -> Any:
    """Display the reference solution of exercise ``name`` (try the exercise first!)."""
    source = inspect.getsource(solution(name))
    try:
        from IPython.display import Code

        return Code(source, language="python")
    except ImportError:  # plain Python
        print(source)
        return None
