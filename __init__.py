"""freight: a plugin-architecture serialization framework, and a small client.

``freight.serialize`` is the framework; ``freight.plugins`` holds the built-in
strategy families and ``freight.testing`` the conformance kit for strategy authors.
``freight.client`` is reserved for the client that will consume the registry; it is
empty today.
"""

import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

#: Folders of the repository that are not part of the package.  The repository
#: root *is* the package directory (``package-dir = {freight = "."}``), so in a
#: source checkout (an editable install) Python would import them as namespace
#: packages ``freight.tests`` ... ; a wheel does not contain them.
_NOT_PACKAGES = frozenset(
    f"{__name__}.{name}"
    for name in ("tests", "benchmarks", "examples", "build", "dist", "docs")
)


class _SourceTreeGuard:
    """A meta path finder, installed only in a source checkout, that refuses the
    repository's non-package folders so an editable install imports what a wheel
    holds and nothing more."""

    @staticmethod
    def find_spec(
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname in _NOT_PACKAGES:
            raise ModuleNotFoundError(
                f"{fullname!r} is a folder of freight's source tree, not part of "
                "the package",
                name=fullname,
            )
        return None


if os.path.exists(os.path.join(os.path.dirname(__file__), "pyproject.toml")):
    sys.meta_path.insert(0, _SourceTreeGuard())


def __getattr__(name: str) -> Any:
    # Resolved lazily: importlib.metadata costs more than the rest of the import.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("freight")
        except PackageNotFoundError:  # an uninstalled source tree
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
