"""The identifier allocation policy as the kit checks it.

freight enforces the policy when plugins load (``freight.serialize.identifiers``);
the kit asks the same function, so a strategy author learns about a bad identifier
from a test rather than from a plugin that is skipped at load.
"""

from __future__ import annotations

from freight.serialize import SerdeError, SerializationStrategy, default_registry
from freight.serialize.identifiers import IdentifierPolicyError, check_allocation


def is_builtin(cls: type[SerializationStrategy]) -> bool:
    """Whether ``cls`` is one of freight's own strategies (provided by the
    ``freight`` distribution, or defined in ``freight.plugins``)."""
    try:
        rec = default_registry().resolve(cls)
    except SerdeError:
        rec = None
    if rec is not None and rec.plugin.distribution:
        return rec.plugin.distribution.split()[0].lower() == "freight"
    return cls.__module__.startswith("freight.plugins.")


def allocation_problem(identifier: str, *, builtin: bool, owner: str) -> str | None:
    """Why ``owner`` may not claim ``identifier`` under the allocation policy, or
    ``None`` if it may (``freight.serialize.identifiers.check_allocation``)."""
    try:
        check_allocation(identifier, builtin=builtin, owner=owner)
    except IdentifierPolicyError as e:
        return str(e)
    return None
