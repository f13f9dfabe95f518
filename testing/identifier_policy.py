"""The identifier allocation policy as the kit checks it.

freight enforces the policy when plugins load (``freight.serialize.identifiers``);
the kit asks the same function, so a strategy author learns about a bad identifier
from a test rather than from a plugin that is skipped at load.  If that module is
missing (an older freight), the documented rule is applied here.
"""

from __future__ import annotations

import importlib
import string
from typing import Any

from freight.serialize import SerdeError, SerializationStrategy, default_registry

_POLICY_MODULE = "freight.serialize.identifiers"
_ALNUM = frozenset(string.ascii_letters + string.digits)
_BUILTIN_FIRST = frozenset(string.ascii_lowercase + string.digits)


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


def _policy() -> Any:
    try:
        return importlib.import_module(_POLICY_MODULE)
    except ImportError:
        return None


def allocation_problem(identifier: str, *, builtin: bool, owner: str) -> str | None:
    """Why ``owner`` may not claim ``identifier`` under the allocation policy, or
    ``None`` if it may."""
    check = getattr(_policy(), "check_allocation", None)
    if callable(check):
        try:
            check(identifier, builtin=builtin, owner=owner)
        except TypeError:
            pass  # a different signature: fall back to the documented rule
        except Exception as e:
            return str(e)
        else:
            return None
    return _documented_rule(identifier, builtin=builtin, owner=owner)


def _documented_rule(identifier: str, *, builtin: bool, owner: str) -> str | None:
    retired: frozenset[str] = getattr(_policy(), "RETIRED_IDENTIFIERS", frozenset())
    if identifier in retired:
        return f"{owner}: identifier {identifier!r} is retired and stays reserved"
    first, second = identifier[:1], identifier[1:2]
    if builtin:
        if first in _BUILTIN_FIRST and second in _BUILTIN_FIRST:
            return None
        return (
            f"{owner}: built-in identifiers use digits and lowercase letters, got"
            f" {identifier!r}"
        )
    if first in string.ascii_uppercase and second in _ALNUM:
        return None
    return (
        f"{owner}: third-party identifiers are an uppercase letter (A-Z) then a"
        f" letter or digit; {identifier!r} is outside that range (digits and"
        " lowercase belong to freight's built-ins)"
    )
