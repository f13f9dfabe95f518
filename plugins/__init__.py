"""freight's built-in strategy families.

Each module here is a plugin registered through the ``freight.strategies`` entry-point
group in ``pyproject.toml``, exactly as a third-party package's would be.
"""
