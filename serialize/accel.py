"""Which implementation serves the hot paths: the C accelerator or its Python twins.

``freight.serialize._accel`` is built at install time when a C compiler is present
(declared in ``pyproject.toml``; optional, so an install without one still works).
It holds the C twins of ``fastpath.PyFastPath`` and ``binary.py_utf8_buffer``,
with the same behaviour.  ``ACCEL`` is that module, or ``None`` when it was not
built or the environment variable ``FREIGHT_PURE_PYTHON`` was set to a non-empty
value when this module was first imported; ``ACCELERATED`` says which.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["ACCEL", "ACCELERATED"]


def _load() -> ModuleType | None:
    if os.environ.get("FREIGHT_PURE_PYTHON"):
        return None
    try:
        from freight.serialize import _accel
    except ImportError:  # built without a compiler: the Python twins serve
        return None
    return _accel


ACCEL = _load()
ACCELERATED = ACCEL is not None
