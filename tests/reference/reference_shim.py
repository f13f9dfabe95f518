"""A pytest plugin that makes ``globus_compute_sdk``'s serialization modules freight.

Loaded with ``-p reference_shim`` in a *subprocess* (``test_reference_suite.py``),
before the reference's test module is imported, it puts these modules into
``sys.modules``:

==========================================  =======================================
reference module                            what it is here
==========================================  =======================================
``globus_compute_sdk``                      an empty package
``globus_compute_sdk.errors``               freight's error classes
``globus_compute_sdk.serialize``            ``freight.serialize``'s names
``globus_compute_sdk.serialize.base``       ``freight.serialize.strategy``
``globus_compute_sdk.serialize.concretes``  freight's strategy classes, the
                                            ``SELECTABLE_*`` lists and the defaults
``globus_compute_sdk.serialize.facade``     ``freight.serialize.facade``
``globus_compute_sdk.serialize.utils``      ``freight.serialize.text``
==========================================  =======================================

Every attribute comes from a public name of freight (a module without a leading
underscore, a name without one).  Modules are aliased, not copied, where a
reference test patches a module attribute that freight's code must see (say,
``facade.validate_strategylike``).

One exception, stated here and in the README: the reference's test module reads two
of the reference's private names while it is being collected (to parametrize
tests): its registry dict ``SerializationStrategy._CACHE`` and
``CombinedCode._chunk_strategies``.  freight has neither -- defining a strategy class
does not register it -- so the shim sets both, as plain values built from public
names (``{rec.identifier: rec.strategy for rec in default_registry()}``, and the
reference's five ``CombinedCode`` member classes), so that the module can be
collected at all.  Tests that depend on what those private values do in the
reference (registration by class definition; patching the member list) are in the
expected-outcome list, as failing or as deselected.

The real ``globus_compute_sdk`` must not be imported in the same process; the
subprocess that loads this plugin never imports it.

The plugin also writes each test's outcome per phase to the JSON file named by
``FREIGHT_REFERENCE_REPORT`` (``{nodeid: {"setup"|"call"|"teardown": outcome}}``
plus the first line of each failure), which the calling test compares with the
expected list.
"""

from __future__ import annotations

import json
import os
import sys
import types
from collections import OrderedDict
from typing import Any

import pytest

import freight.serialize as fs
from freight.serialize import errors, facade, strategy, text


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def _concretes() -> types.ModuleType:
    registry = fs.default_registry()
    attrs: dict[str, Any] = {rec.cls.__name__: rec.cls for rec in registry}
    attrs.update(
        SELECTABLE_STRATEGIES=fs.SELECTABLE_STRATEGIES,
        SELECTABLE_CODE_STRATEGIES=fs.SELECTABLE_CODE_STRATEGIES,
        SELECTABLE_DATA_STRATEGIES=fs.SELECTABLE_DATA_STRATEGIES,
        DEFAULT_STRATEGY_CODE=fs.DEFAULT_STRATEGY_CODE,
        DEFAULT_STRATEGY_DATA=fs.DEFAULT_STRATEGY_DATA,
        SerializationStrategy=fs.SerializationStrategy,
        ComboSerializationStrategy=fs.ComboSerializationStrategy,
    )
    return _module("globus_compute_sdk.serialize.concretes", **attrs)


def install() -> None:
    """Put the reference's module names into ``sys.modules`` (see the docstring)."""
    if "globus_compute_sdk" in sys.modules and not getattr(
        sys.modules["globus_compute_sdk"], "__freight_shim__", False
    ):
        raise RuntimeError("the real globus_compute_sdk is already imported")
    package = _module("globus_compute_sdk", __path__=[], __freight_shim__=True)
    err = _module(
        "globus_compute_sdk.errors",
        SerdeError=errors.SerdeError,
        SerializationError=errors.SerializationError,
        DeserializationError=errors.DeserializationError,
    )
    concretes = _concretes()
    # freight.serialize under the reference's name, with the reference's submodules
    # as attributes (``import globus_compute_sdk.serialize.facade as facade``); any
    # other attribute is freight.serialize's (PEP 562 ``__getattr__``).
    serialize = _module(
        "globus_compute_sdk.serialize",
        __path__=[],
        __getattr__=lambda name: getattr(fs, name),
        base=strategy,
        concretes=concretes,
        facade=facade,
        utils=text,
    )
    package.errors = err  # type: ignore[attr-defined]
    package.serialize = serialize  # type: ignore[attr-defined]
    sys.modules.update(
        {
            "globus_compute_sdk": package,
            "globus_compute_sdk.errors": err,
            "globus_compute_sdk.serialize": serialize,
            "globus_compute_sdk.serialize.base": strategy,
            "globus_compute_sdk.serialize.concretes": concretes,
            "globus_compute_sdk.serialize.facade": facade,
            "globus_compute_sdk.serialize.utils": text,
        }
    )
    # The reference-private names the test module reads while it is collected,
    # emulated from public ones (see above).  Tests that patch them are deselected.
    fs.SerializationStrategy._CACHE = {  # type: ignore[attr-defined]
        rec.identifier: rec.strategy for rec in fs.default_registry()
    }
    c = concretes
    c.CombinedCode._chunk_strategies = OrderedDict(
        (cls.identifier, cls)
        for cls in (
            c.DillCodeSource,
            c.DillCode,
            c.DillCodeTextInspect,
            c.PureSourceDill,
            c.PureSourceTextInspect,
        )
    )


install()

_outcomes: dict[str, dict[str, str]] = {}


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Deselect the tests ``expected.py`` marks ``deselected`` (they patch a value
    the shim only emulates) and record them as such."""
    from expected import lookup

    keep, drop = [], []
    for item in items:
        entry = lookup(item.nodeid.split("::", 1)[-1])
        deselect = entry is not None and entry.outcome == "deselected"
        (drop if deselect else keep).append(item)
    for item in drop:
        _outcomes[item.nodeid] = {"deselected": "deselected"}
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _outcomes.setdefault(report.nodeid, {})
    entry[report.when] = report.outcome
    if report.failed:
        lines = str(report.longrepr).strip().splitlines()
        errs = [line for line in lines if line.startswith("E ")]
        entry.setdefault("message", (errs or lines or [""])[0][:300])


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _outcomes.setdefault(report.nodeid or "<collection>", {})["collect"] = "failed"


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("FREIGHT_REFERENCE_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(_outcomes, f, indent=1, sort_keys=True)
