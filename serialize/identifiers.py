"""Who may claim which identifier: the allocation policy, enforced at plugin load.

An identifier is two characters and a newline.  Its first character says who owns it:

* two digits (``00`` ... ``99``): the reference SDK's wire identifiers.  freight's
  built-ins register exactly the ones the reference defines; nobody else may claim one.
* a lowercase letter, then a lowercase letter or digit (``st``, ``p5``, ``cp``,
  ``mp`` ...): freight's own built-in strategies.
* an uppercase letter, then a letter or digit (``Z1``, ``Ab`` ...): third-party
  plugins; pick any free one.
* anything else (punctuation, spaces, non-ASCII): refused.

Retired identifiers (a strategy freight once shipped and removed) stay reserved
forever, so an old payload can never be decoded by a stranger's strategy.  A
strategy that is merely decode-only (``02``, ``PickleCode``) is still registered and
needs no entry here.

The policy applies to plugins loaded through entry points: "built-in" means provided
by the ``freight`` distribution itself.  Plugins registered at run time with
``StrategyRegistry.register_plugin`` are the embedding program's own decision and
are only checked for well-formedness and collisions.
"""

from __future__ import annotations

import string
from typing import Literal

from freight.serialize.errors import SerdeError

#: The distribution whose entry points count as built-in.
BUILTIN_DISTRIBUTION = "freight"

#: Identifiers of strategies freight shipped and then removed: never reassigned.
RETIRED_IDENTIFIERS: frozenset[str] = frozenset()

Range = Literal["reference", "builtin", "third-party", "invalid"]

_LOWER = frozenset(string.ascii_lowercase)
_UPPER = frozenset(string.ascii_uppercase)
_DIGITS = frozenset(string.digits)
_ALNUM = _LOWER | _UPPER | _DIGITS


def identifier_range(identifier: str) -> Range:
    """Which part of the identifier space ``identifier`` (with its newline) is in."""
    if len(identifier) != 3 or identifier[2] != "\n":
        return "invalid"
    first, second = identifier[0], identifier[1]
    if first in _DIGITS and second in _DIGITS:
        return "reference"
    if first in _LOWER and (second in _LOWER or second in _DIGITS):
        return "builtin"
    if first in _UPPER and second in _ALNUM:
        return "third-party"
    return "invalid"


def check_allocation(identifier: str, *, builtin: bool, owner: str) -> None:
    """Raise ``IdentifierPolicyError`` if ``owner`` may not claim ``identifier``.

    ``builtin`` says whether the claim comes from freight's own distribution.
    """
    if identifier in RETIRED_IDENTIFIERS:
        raise IdentifierPolicyError(
            f"{owner}: identifier {identifier!r} is retired and stays reserved so"
            " old payloads are never decoded by another strategy"
        )
    where = identifier_range(identifier)
    if where == "invalid":
        raise IdentifierPolicyError(
            f"{owner}: identifier {identifier!r} is outside the allocation policy:"
            " use two ASCII letters or digits, the first an uppercase letter (A-Z)"
            " for third-party strategies"
        )
    if builtin and where == "third-party":
        raise IdentifierPolicyError(
            f"{owner}: built-in strategies use digits or a lowercase first letter;"
            f" {identifier!r} is in the third-party range"
        )
    if not builtin and where != "third-party":
        owned_by = (
            "the reference SDK's wire identifiers"
            if where == "reference"
            else "freight's built-in strategies"
        )
        raise IdentifierPolicyError(
            f"{owner}: identifier {identifier!r} is reserved for {owned_by};"
            " third-party strategies use an uppercase first letter (A-Z)"
        )


class IdentifierPolicyError(SerdeError):
    """A plugin claimed an identifier the allocation policy does not give it."""
