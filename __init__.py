"""freight: a plugin-architecture serialization framework, and a small client.

``freight.serialize`` is the framework; ``freight.plugins`` holds the built-in
strategy families; ``freight.client`` consumes the registry.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    # Resolved lazily: importlib.metadata costs more than the rest of the import.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("freight")
        except PackageNotFoundError:  # an uninstalled source tree
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
