"""The functions the task suite (``tasks.py``) runs on every system.

They live in a module of their own, importable by every worker (the suite puts
this folder on ``PYTHONPATH`` for the processes it starts), so each system can
send them by reference, as it would a function from an installed package.
"""

from __future__ import annotations

from typing import Any


def noop(x: Any) -> Any:
    """Return the argument: the no-op task (its result checks the order)."""
    return x


def array_sum(a: Any) -> float:
    """The 80 MB task: the sum of a float64 array, as a Python float."""
    return float(a.sum())
