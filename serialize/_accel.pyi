"""Type stub of the C accelerator: its ``FastPath`` has the interface (and the
behaviour) of ``freight.serialize.fastpath.PyFastPath``."""

from freight.serialize.fastpath import PyFastPath as FastPath

__all__ = ["FastPath"]
