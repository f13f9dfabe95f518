"""Type stub of the C accelerator: its ``FastPath`` has the interface (and the
behaviour) of ``freight.serialize.fastpath.PyFastPath``; ``utf8_buffer`` that of
``freight.serialize.binary.py_utf8_buffer`` (a memoryview for ASCII text)."""

from freight.serialize.binary import py_utf8_buffer as utf8_buffer
from freight.serialize.fastpath import PyFastPath as FastPath

__all__ = ["FastPath", "utf8_buffer"]

#: The C twin's copy of ``binary.SMALL_BODY`` (a test checks they agree).
SMALL_BODY: int
