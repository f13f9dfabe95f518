"""Type stub of the C twin of ``freight.serialize.fastpath.PyFastPath``."""

from collections.abc import Callable
from typing import Any

class FastPath:
    def __init__(
        self,
        strategy: Any,
        encoders: dict[type, tuple[Any, ...]],
        heads: dict[int, bytes],
        make_header: Callable[[int], bytes],
        assemble: Callable[[Any, Any], bytes],
        dumps_code: Callable[[Any], bytes],
        encode_failed: Callable[[Any, Exception], BaseException],
        known: dict[int, Any],
        loads_slow: Callable[[Any], Any],
        decode_failed: Callable[[Any, Exception], BaseException],
    ) -> None: ...
    def dumps(self, obj: Any) -> bytes: ...
    def loads(self, data: Any) -> Any: ...
