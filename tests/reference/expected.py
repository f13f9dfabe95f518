"""What the reference's serialization unit tests do against freight, and why.

Every test of the reference file that is not matched here must pass through the
shim.  Each entry matches node ids (the part after ``test_serialization.py::``;
``*`` matches anything, every other character itself) and says what every test it
matches does:

``failed``
    the test's body fails;
``teardown``
    the body passes, the fixture's teardown fails (it edits a private dict of the
    reference);
``deselected``
    not run: the test patches one of the reference's private values that the shim
    only emulates, so its outcome would say nothing about freight.

The reasons are the README's list ("Compatibility with the reference SDK").
Plugins outside freight are not loaded for the run
(``FREIGHT_DISABLE_PLUGIN_AUTOLOAD=1``), so the parametrizations over the
selectable strategies are the same on every machine.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

Outcome = Literal["failed", "teardown", "deselected"]


class Expected(NamedTuple):
    pattern: str
    outcome: Outcome
    #: ``internals``, ``wording`` or ``difference`` (deliberate), then why.
    kind: Literal["internals", "wording", "difference"]
    reason: str


EXPECTED: list[Expected] = [
    # -- the reference's internals ----------------------------------------------------
    Expected(
        "test_combo_strategy_serialize_log_failures[*]",
        "failed",
        "internals",
        "asserts the text of a logger.debug format string; freight logs the member"
        " and the error with lazy %-formatting",
    ),
    Expected(
        "test_combo_strategy_deserialize_log_failures[*]",
        "failed",
        "internals",
        "asserts the text of a logger.debug format string (as above)",
    ),
    Expected(
        "test_selectable_serialization_validates_strategies",
        "failed",
        "internals",
        "asserts the exact arguments of an internal call: ComputeSerializer also"
        " passes its registry to validate_strategylike",
    ),
    Expected(
        "test_combined_strategies[*]",
        "deselected",
        "internals",
        "patches CombinedCode._chunk_strategies, a private dict freight's"
        " CombinedCode does not have (the shim only emulates it for collection)",
    ),
    Expected(
        "test_validate_strategylike_errors_on_unknown_strategy",
        "teardown",
        "internals",
        "the fixture's teardown pops the strategy from the reference's private"
        " SerializationStrategy._CACHE; freight never registered it (the test body"
        " passes)",
    ),
    Expected(
        "test_allowed_deserializers_errors_on_unknown_strategy",
        "teardown",
        "internals",
        "same fixture teardown (the test body passes)",
    ),
    Expected(
        "test_serialize_from_list_rejects_unknown_strategy",
        "teardown",
        "internals",
        "same fixture teardown (the test body passes)",
    ),
    # -- deliberate differences -------------------------------------------------------
    Expected(
        "test_validate_strategylike[*]",
        "failed",
        "difference",
        "import_path names the module that defines the class in freight"
        " (freight.plugins.dill_strategies.DillCode), not"
        " globus_compute_sdk.serialize.concretes.DillCode; type_ and instance match",
    ),
    Expected(
        "test_init_subclass_requires_unique_identifier[*]",
        "failed",
        "difference",
        "defining a strategy class registers nothing in freight, so a duplicate"
        " identifier is refused when a plugin registers it (naming both"
        " distributions), not when the class is defined",
    ),
    Expected(
        "test_serialize_deserialize_combined",
        "failed",
        "difference",
        "source strategies refuse closures (the decorated function captures func)"
        " with a clear error instead of producing source that fails with NameError"
        " when called",
    ),
    Expected(
        "test_pickle_deserialize",
        "failed",
        "difference",
        "PickleCode is decode-only; encoding with it raises SerializationError (a"
        " SerdeError) rather than NotImplementedError",
    ),
    Expected(
        "test_selectable_serialization[ExceptionData]",
        "failed",
        "difference",
        "freight's ExceptionData ('ex') is a selectable data strategy that encodes"
        " exceptions only; the test encodes the string 'foo' with it",
    ),
    Expected(
        "test_allowed_deserializers[ExceptionData]",
        "failed",
        "difference",
        "encodes 'foo' with ExceptionData (as above)",
    ),
    Expected(
        "test_check_strategies[*ExceptionData*]",
        "failed",
        "difference",
        "encodes the arguments tuple with ExceptionData (as above)",
    ),
]


def matches(name: str, pattern: str) -> bool:
    """Whether the node id ``name`` matches ``pattern`` (``*`` is the only
    wildcard; brackets are literal, as in parametrized ids)."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name, re.DOTALL) is not None


def lookup(name: str) -> Expected | None:
    """The first entry whose pattern matches ``name``, if any."""
    return next((e for e in EXPECTED if matches(name, e.pattern)), None)
