"""Memory measured around a block of test code: the conformance kit's helper."""

from freight.testing.assertions import Traced, traced

__all__ = ["Traced", "traced"]
