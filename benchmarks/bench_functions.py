"""The callables the suite serializes, in a module of their own so they import.

A module-level function pickles by reference (module and name) in every pickle-family
serializer, so decoding needs this module importable on the far side; ``run.py`` puts
this folder on ``sys.path``.  ``make_closure`` returns a function no module can import,
which the pickle family has to carry by value (code, globals it reads, closure cells).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def weighted_mean(
    values: Sequence[float], weights: Sequence[float] | None = None
) -> float:
    """A small, ordinary user function: what a compute task typically submits."""
    if weights is None:
        weights = [1.0] * len(values)
    total = sum(w for w in weights)
    if total == 0:
        raise ValueError("weights sum to zero")
    return sum(v * w for v, w in zip(values, weights, strict=True)) / total


def make_closure(
    scale: float, offset: float = 0.0
) -> Callable[[Sequence[float]], float]:
    """A closure over two captured values, as a notebook or factory would build."""

    def scaled_total(values: Sequence[float]) -> float:
        return sum(v * scale for v in values) + offset

    return scaled_total
