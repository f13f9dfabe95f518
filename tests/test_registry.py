"""The strategy registry: entry-point discovery, lookup, and third-party plugins."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
from fake_plugin import PLUGIN_MODULE_TEMPLATE

import freight.plugins.combo_strategies as combo_plugin
import freight.plugins.dill_strategies as dill_plugin
import freight.plugins.json_strategies as json_plugin
import freight.plugins.source_strategies as source_plugin
from freight.serialize import (
    ENTRY_POINT_GROUP,
    PluginError,
    PluginInfo,
    PluginSettings,
    SerdeError,
    SerializationStrategy,
    StrategyRegistry,
    TextStrategy,
    default_registry,
    hookimpl,
)

#: Every identifier issue 2 requires, with the class that owns it.
ISSUE_2_IDENTIFIERS = {
    "00\n": "DillDataBase64",
    "01\n": "DillCode",
    "02\n": "PickleCode",
    "03\n": "DillCodeTextInspect",
    "04\n": "DillCodeSource",
    "10\n": "CombinedCode",
    "11\n": "JSONData",
    "12\n": "AllCodeStrategies",
    "13\n": "AllDataStrategies",
    "st\n": "PureSourceTextInspect",
    "sd\n": "PureSourceDill",
}


# -- helpers ---------------------------------------------------------------------------


def make_strategy(
    identifier: str, class_name: str, *, name: str | None = None, for_code=False
) -> type[TextStrategy]:
    namespace: dict[str, Any] = {
        "identifier": identifier,
        "for_code": for_code,
        "encode_text": lambda self, obj: str(obj),
        "decode_text": lambda self, text: text,
    }
    if name is not None:
        namespace["name"] = name
    return type(class_name, (TextStrategy,), namespace)  # type: ignore[return-value]


def plugin_providing(*classes: Any) -> object:
    @hookimpl
    def freight_strategies() -> list[Any]:
        return list(classes)

    return types.SimpleNamespace(freight_strategies=freight_strategies)


@pytest.fixture
def empty_registry() -> StrategyRegistry:
    return StrategyRegistry(entry_point_group=None)


@pytest.fixture
def fresh_registry() -> StrategyRegistry:
    """A registry reading freight's real entry-point group, not yet loaded."""
    return StrategyRegistry()


# -- built-ins come through entry points -----------------------------------------------


def test_builtin_plugins_are_declared_in_the_entry_point_group():
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    by_name = {ep.name: ep for ep in eps}
    assert {"dill", "json", "source", "combo"} <= set(by_name)
    assert by_name["dill"].value == "freight.plugins.dill_strategies"
    assert by_name["dill"].dist is not None
    assert by_name["dill"].dist.name == "freight"


def test_builtins_are_discovered_through_entry_points(fresh_registry):
    records = list(fresh_registry)
    by_plugin = {rec.plugin.name for rec in records}
    assert {"dill", "json", "source", "combo"} <= by_plugin
    for rec in records:
        assert rec.plugin.distribution is not None
        assert rec.plugin.distribution.startswith("freight"), rec.describe()


def test_builtin_plugin_records_name_the_freight_distribution_and_version(
    fresh_registry,
):
    version = importlib.metadata.version("freight")
    rec = fresh_registry.resolve("01")
    assert rec.plugin == PluginInfo("dill", f"freight {version}")


@pytest.mark.parametrize(
    ("identifier", "class_name"), sorted(ISSUE_2_IDENTIFIERS.items())
)
def test_every_issue_2_identifier_is_registered_with_the_right_class(
    identifier, class_name
):
    rec = default_registry().by_identifier(identifier)
    assert rec is not None, f"{identifier!r} is not registered"
    assert rec.cls.__name__ == class_name
    assert rec.identifier == identifier
    assert rec.strategy.identifier == identifier


def test_builtin_identifiers_come_from_the_builtin_plugins(fresh_registry):
    plugins = {"00\n": "dill", "01\n": "dill", "02\n": "dill", "03\n": "dill",
               "04\n": "dill", "10\n": "combo", "11\n": "json", "12\n": "combo",
               "13\n": "combo", "st\n": "source", "sd\n": "source"}  # fmt: skip
    for identifier, plugin in plugins.items():
        assert fresh_registry.by_identifier(identifier).plugin.name == plugin
    assert len(fresh_registry) >= len(ISSUE_2_IDENTIFIERS)


@pytest.mark.parametrize(
    ("identifier", "for_code"),
    [("00\n", False), ("01\n", True), ("02\n", True), ("03\n", True),
     ("04\n", True), ("10\n", True), ("11\n", False), ("12\n", True),
     ("13\n", False), ("st\n", True), ("sd\n", True)],
)  # fmt: skip
def test_builtin_strategy_kind_matches_reference(identifier, for_code):
    assert default_registry().by_identifier(identifier).for_code is for_code


def test_registry_iterates_in_identifier_order(fresh_registry):
    identifiers = [rec.identifier for rec in fresh_registry]
    assert identifiers == sorted(identifiers)


# -- lookup ----------------------------------------------------------------------------


def test_by_identifier_returns_none_for_unknown_identifier():
    assert default_registry().by_identifier("zz\n") is None


@pytest.mark.parametrize("text", ["01\n", "01"])
def test_resolve_by_identifier_with_and_without_newline(text):
    assert default_registry().resolve(text).cls is dill_plugin.DillCode


def test_resolve_by_class():
    assert default_registry().resolve(json_plugin.JSONData).cls is json_plugin.JSONData


def test_resolve_by_instance():
    rec = default_registry().resolve(json_plugin.JSONData())
    assert rec.cls is json_plugin.JSONData


@pytest.mark.parametrize(
    ("short_name", "cls"),
    [
        ("dill-code", dill_plugin.DillCode),
        ("dill-data", dill_plugin.DillDataBase64),
        ("json", json_plugin.JSONData),
        ("source-dill", source_plugin.PureSourceDill),
        ("all-code", combo_plugin.AllCodeStrategies),
    ],
)
def test_resolve_by_short_name(short_name, cls):
    assert default_registry().resolve(short_name).cls is cls


@pytest.mark.parametrize("class_name", sorted(ISSUE_2_IDENTIFIERS.values()))
def test_resolve_by_class_name(class_name):
    assert default_registry().resolve(class_name).cls.__name__ == class_name


@pytest.mark.parametrize(
    "path",
    [
        "freight.plugins.dill_strategies.DillCode",
        "freight.serialize.DillCode",
    ],
)
def test_resolve_by_import_path(path):
    assert default_registry().resolve(path).cls is dill_plugin.DillCode


def test_record_import_path_resolves_back_to_the_same_record():
    registry = default_registry()
    for rec in registry:
        assert registry.resolve(rec.import_path) is rec


def test_resolve_returns_the_single_registered_instance():
    registry = default_registry()
    rec = registry.resolve("json")
    assert registry.resolve(json_plugin.JSONData) is rec
    assert registry.by_identifier("11\n") is rec
    assert rec.strategy is registry.resolve("JSONData").strategy


@pytest.mark.parametrize("unknown", ["no-such-strategy", "zz", "NotAStrategy"])
def test_unknown_name_raises_serde_error_listing_known_names(unknown):
    with pytest.raises(SerdeError) as excinfo:
        default_registry().resolve(unknown)
    message = str(excinfo.value)
    assert repr(unknown) in message
    for known in ("dill-code", "dill-data", "json", "all-code"):
        assert known in message


def test_unimportable_path_raises_serde_error():
    with pytest.raises(SerdeError, match="cannot import"):
        default_registry().resolve("freight.nowhere.Nothing")


def test_import_path_to_a_non_strategy_raises_serde_error():
    with pytest.raises(SerdeError, match="invalid strategy-like"):
        default_registry().resolve("freight.serialize.registry.PluginInfo")


def test_non_strategy_object_raises_serde_error():
    with pytest.raises(SerdeError, match="invalid strategy-like"):
        default_registry().resolve(42)  # type: ignore[arg-type]


def test_unregistered_subclass_raises_serde_error_saying_not_registered():
    class MyJSON(json_plugin.JSONData):
        identifier = "mj\n"
        name = "my-json"

    with pytest.raises(SerdeError, match="MyJSON is not a registered"):
        default_registry().resolve(MyJSON)
    with pytest.raises(SerdeError, match="MyJSON is not a registered"):
        default_registry().resolve(MyJSON())


def test_find_class_returns_none_for_unknown_class_name():
    assert default_registry().find_class("NoSuchStrategy") is None


# -- public names ----------------------------------------------------------------------


def test_strategy_classes_are_importable_from_freight_serialize():
    from freight.serialize import (
        AllCodeStrategies,
        DillCode,
        JSONData,
        PureSourceDill,
    )

    assert DillCode is dill_plugin.DillCode
    assert JSONData is json_plugin.JSONData
    assert PureSourceDill is source_plugin.PureSourceDill
    assert AllCodeStrategies is combo_plugin.AllCodeStrategies


@pytest.mark.parametrize("class_name", sorted(ISSUE_2_IDENTIFIERS.values()))
def test_every_builtin_class_is_an_attribute_of_freight_serialize(class_name):
    import freight.serialize

    cls = getattr(freight.serialize, class_name)
    assert issubclass(cls, SerializationStrategy)
    assert cls.__name__ == class_name


def test_hookimpl_is_importable_from_freight_serialize():
    from freight.serialize import hookimpl as imported
    from freight.serialize.hookspecs import hookimpl as original

    assert imported is original


def test_unknown_attribute_of_freight_serialize_raises_attribute_error():
    import freight.serialize

    with pytest.raises(AttributeError):
        freight.serialize.NoSuchThing  # noqa: B018
    with pytest.raises(ImportError):
        from freight.serialize import NoSuchThing  # noqa: F401


# -- lazy, once-only discovery ---------------------------------------------------------


def _run(code: str, tmp_path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_importing_freight_serialize_loads_no_plugin_and_no_heavy_module(tmp_path):
    out = _run(
        """
        import sys
        import freight.serialize
        import freight.serialize as s
        from freight.serialize import ComputeSerializer, hookimpl, StrategyRegistry
        heavy = ("dill", "cloudpickle", "msgpack", "numpy")
        loaded = sorted(
            m for m in sys.modules
            if m.split(".")[0] in heavy or m.startswith("freight.plugins")
        )
        print(loaded)
        """,
        tmp_path,
    )
    assert out.strip() == "[]"


def test_first_lookup_imports_the_plugins(tmp_path):
    out = _run(
        """
        import sys
        import freight.serialize
        before = "freight.plugins.dill_strategies" in sys.modules
        rec = freight.serialize.default_registry().by_identifier("01\\n")
        after = "freight.plugins.dill_strategies" in sys.modules
        print(before, after, "dill" in sys.modules, type(rec.strategy).__name__)
        """,
        tmp_path,
    )
    assert out.split() == ["False", "True", "True", "DillCode"]


def test_attribute_access_on_freight_serialize_triggers_discovery(tmp_path):
    out = _run(
        """
        import sys
        from freight.serialize import JSONData
        print(JSONData.__module__, "freight.plugins.json_strategies" in sys.modules)
        """,
        tmp_path,
    )
    assert out.split() == ["freight.plugins.json_strategies", "True"]


@pytest.fixture
def counted_entry_points(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    real = importlib.metadata.entry_points

    def counting(**params: Any) -> Any:
        calls.append(params)
        return real(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    return calls


def test_constructing_a_registry_reads_no_entry_points(counted_entry_points):
    StrategyRegistry()
    assert counted_entry_points == []


def test_repeated_lookups_read_the_entry_point_group_once(counted_entry_points):
    registry = StrategyRegistry()
    registry.by_identifier("01\n")
    registry.by_identifier("11\n")
    registry.resolve("json")
    registry.resolve(dill_plugin.DillCode)
    registry.find_class("DillCode")
    list(registry)
    len(registry)
    registry.register_plugin(
        plugin_providing(make_strategy("r1\n", "Extra", name="extra")), "extra"
    )
    registry.resolve("extra")
    assert counted_entry_points == [{"group": ENTRY_POINT_GROUP}]


def test_registry_without_group_never_reads_entry_points(
    counted_entry_points, empty_registry
):
    empty_registry.by_identifier("01\n")
    list(empty_registry)
    assert counted_entry_points == []
    assert len(empty_registry) == 0


# -- third-party plugins at run time ---------------------------------------------------


def test_runtime_plugin_object_registers_its_strategies(empty_registry):
    Custom = make_strategy("x1\n", "Custom", name="custom")
    records = empty_registry.register_plugin(plugin_providing(Custom), "myplugin")

    assert [rec.cls for rec in records] == [Custom]
    rec = empty_registry.by_identifier("x1\n")
    assert rec is records[0]
    assert rec.plugin == PluginInfo("myplugin", None)
    assert empty_registry.resolve("custom") is rec
    assert empty_registry.resolve("Custom") is rec
    assert empty_registry.resolve(Custom) is rec
    assert isinstance(rec.strategy, Custom)


def test_runtime_plugin_module_registers_its_strategies(empty_registry):
    module = types.ModuleType("my_runtime_plugin")
    exec(
        PLUGIN_MODULE_TEMPLATE.format(
            class_name="ModStrategy", identifier="x2\n", name="mod-strategy"
        ),
        module.__dict__,
    )
    records = empty_registry.register_plugin(module)

    assert [rec.cls.__name__ for rec in records] == ["ModStrategy"]
    assert records[0].plugin.name == "my_runtime_plugin"
    assert empty_registry.resolve("mod-strategy").strategy.deserialize("x2\nhi") == (
        "decoded by ModStrategy: hi"
    )


def test_runtime_plugin_can_be_added_to_the_entry_point_registry(fresh_registry):
    Custom = make_strategy("x3\n", "Custom3", name="custom3")
    fresh_registry.register_plugin(plugin_providing(Custom), "third-party")
    assert fresh_registry.resolve("custom3").cls is Custom
    assert fresh_registry.resolve("DillCode").cls is dill_plugin.DillCode


def test_plugin_name_registered_twice_is_refused(empty_registry):
    empty_registry.register_plugin(
        plugin_providing(make_strategy("x1\n", "A", name="a")), "dup"
    )
    with pytest.raises(PluginError, match="'dup' is already registered"):
        empty_registry.register_plugin(
            plugin_providing(make_strategy("x2\n", "B", name="b")), "dup"
        )
    assert empty_registry.by_identifier("x2\n") is None


def test_unregister_plugin_removes_its_strategies(empty_registry):
    Custom = make_strategy("x1\n", "Custom", name="custom")
    Other = make_strategy("x2\n", "Other", name="other")
    empty_registry.register_plugin(plugin_providing(Custom), "mine")
    empty_registry.register_plugin(plugin_providing(Other), "theirs")

    empty_registry.unregister_plugin("mine")

    assert empty_registry.by_identifier("x1\n") is None
    for key in ("custom", "Custom", "x1", Custom):
        with pytest.raises(SerdeError):
            empty_registry.resolve(key)
    assert empty_registry.resolve("other").cls is Other
    assert [rec.cls for rec in empty_registry] == [Other]
    # The identifier, name and plugin name are free again.
    empty_registry.register_plugin(plugin_providing(Custom), "mine")
    assert empty_registry.resolve("custom").cls is Custom


# -- third-party plugins by real entry point -------------------------------------------


def test_strategy_from_installed_distribution_is_discovered(fake_dists):
    fake_dists(
        "freight_testplugin",
        "1.0",
        "freight_testplugin_mod",
        ep_name="testplug",
        class_name="TestPluginStrategy",
        identifier="T1\n",
        name="test-plugin",
    )
    registry = StrategyRegistry(entry_point_group="freight_test.strategies")

    rec = registry.by_identifier("T1\n")

    assert rec is not None
    assert rec.cls.__name__ == "TestPluginStrategy"
    assert rec.cls.__module__ == "freight_testplugin_mod"
    assert rec.plugin == PluginInfo("testplug", "freight_testplugin 1.0")
    assert registry.resolve("test-plugin") is rec
    assert registry.resolve("freight_testplugin_mod.TestPluginStrategy") is rec
    assert rec.strategy.deserialize("T1\nabc") == "decoded by TestPluginStrategy: abc"
    assert [r.identifier for r in registry] == ["T1\n"]


def test_installed_distribution_joins_builtins_in_freights_own_group(fake_dists):
    fake_dists(
        "freight_testplugin",
        "1.0",
        "freight_testplugin_mod",
        ep_name="testplug",
        class_name="TestPluginStrategy",
        identifier="T1\n",
        name="test-plugin",
        group=ENTRY_POINT_GROUP,
    )
    registry = StrategyRegistry()

    assert registry.resolve("test-plugin").plugin.distribution == (
        "freight_testplugin 1.0"
    )
    assert registry.resolve("01").cls is dill_plugin.DillCode
    identifiers = {rec.identifier for rec in registry}
    assert {*ISSUE_2_IDENTIFIERS, "T1\n"} <= identifiers


def test_identifier_collision_between_distributions_names_both_sides(fake_dists):
    fake_dists(
        "freight_testplugin",
        "1.0",
        "freight_testplugin_mod",
        ep_name="alpha",
        class_name="AlphaStrategy",
        identifier="T1\n",
        name="alpha-strategy",
    )
    fake_dists(
        "freight_otherplugin",
        "2.5",
        "freight_otherplugin_mod",
        ep_name="beta",
        class_name="BetaStrategy",
        identifier="T1\n",
        name="beta-strategy",
    )
    registry = StrategyRegistry(
        entry_point_group="freight_test.strategies",
        settings=PluginSettings(strict=True),
    )

    with pytest.raises(PluginError) as excinfo:
        registry.by_identifier("T1\n")

    message = str(excinfo.value)
    assert "'T1\\n'" in message
    for part in (
        "AlphaStrategy",
        "BetaStrategy",
        "'alpha'",
        "'beta'",
        "freight_testplugin 1.0",
        "freight_otherplugin 2.5",
    ):
        assert part in message, f"{part!r} missing from: {message}"


def test_identifier_collision_with_a_builtin_names_both_distributions(fake_dists):
    fake_dists(
        "freight_testplugin",
        "1.0",
        "freight_testplugin_mod",
        ep_name="zz-collider",
        class_name="Hijacker",
        identifier="01\n",
        name="hijacker",
        group=ENTRY_POINT_GROUP,
    )
    registry = StrategyRegistry(settings=PluginSettings(strict=True))

    with pytest.raises(PluginError) as excinfo:
        registry.by_identifier("01\n")

    message = str(excinfo.value)
    version = importlib.metadata.version("freight")
    for part in (
        "DillCode",
        "Hijacker",
        "'dill'",
        "'zz-collider'",
        f"freight {version}",
        "freight_testplugin 1.0",
    ):
        assert part in message, f"{part!r} missing from: {message}"


def test_name_collision_between_distributions_names_both_sides(fake_dists):
    fake_dists(
        "freight_testplugin",
        "1.0",
        "freight_testplugin_mod",
        ep_name="alpha",
        class_name="AlphaStrategy",
        identifier="T1\n",
        name="shared-name",
    )
    fake_dists(
        "freight_otherplugin",
        "2.5",
        "freight_otherplugin_mod",
        ep_name="beta",
        class_name="BetaStrategy",
        identifier="T2\n",
        name="shared-name",
    )
    registry = StrategyRegistry(
        entry_point_group="freight_test.strategies",
        settings=PluginSettings(strict=True),
    )

    with pytest.raises(PluginError) as excinfo:
        registry.load()

    message = str(excinfo.value)
    assert "'shared-name'" in message
    for part in (
        "AlphaStrategy",
        "BetaStrategy",
        "'alpha'",
        "'beta'",
        "freight_testplugin 1.0",
        "freight_otherplugin 2.5",
    ):
        assert part in message, f"{part!r} missing from: {message}"


def test_runtime_identifier_collision_names_both_classes_and_plugins(fresh_registry):
    Clash = make_strategy("00\n", "Clash", name="clash")
    with pytest.raises(PluginError) as excinfo:
        fresh_registry.register_plugin(plugin_providing(Clash), "clasher")
    message = str(excinfo.value)
    for part in ("DillDataBase64", "Clash", "'dill'", "'clasher'", "freight "):
        assert part in message, f"{part!r} missing from: {message}"


def test_runtime_name_collision_is_refused(fresh_registry):
    Clash = make_strategy("x9\n", "Clash", name="json")
    with pytest.raises(PluginError, match="'json' is claimed twice") as excinfo:
        fresh_registry.register_plugin(plugin_providing(Clash), "clasher")
    assert "JSONData" in str(excinfo.value)


def test_two_strategies_in_one_plugin_with_one_identifier_are_refused(
    empty_registry,
):
    A = make_strategy("x1\n", "A", name="a")
    B = make_strategy("x1\n", "B", name="b")
    with pytest.raises(PluginError, match="claimed twice"):
        empty_registry.register_plugin(plugin_providing(A, B), "double")
    assert len(empty_registry) == 0


# -- all or nothing --------------------------------------------------------------------


def _assert_nothing_registered(registry: StrategyRegistry, *classes: Any) -> None:
    for cls in classes:
        assert registry.by_identifier(cls.identifier) is None
        with pytest.raises(SerdeError):
            registry.resolve(cls)
        with pytest.raises(SerdeError):
            registry.resolve(cls.name)


def test_failed_plugin_registers_nothing(fresh_registry):
    Good = make_strategy("x1\n", "Good", name="good")
    Clash = make_strategy("01\n", "Clash", name="clash")
    before = [rec.identifier for rec in fresh_registry]

    with pytest.raises(PluginError):
        fresh_registry.register_plugin(plugin_providing(Good, Clash), "half-good")

    _assert_nothing_registered(fresh_registry, Good)
    assert [rec.identifier for rec in fresh_registry] == before
    assert fresh_registry.resolve("01").cls is dill_plugin.DillCode
    # The plugin name is free again, and pluggy holds no trace of the failed plugin.
    records = fresh_registry.register_plugin(plugin_providing(Good), "half-good")
    assert [rec.cls for rec in records] == [Good]


class _NotAStrategy:
    identifier = "x5\n"
    for_code = False


class _AbstractStrategy(TextStrategy):
    identifier = "x6\n"
    for_code = False
    # encode_text / decode_text deliberately missing


class _MissingIdentifier(TextStrategy):
    for_code = False

    def encode_text(self, obj: Any) -> str:  # pragma: no cover
        return ""

    def decode_text(self, text: str) -> Any:  # pragma: no cover
        return text


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (_NotAStrategy, "not a SerializationStrategy subclass"),
        (json_plugin.JSONData(), "not a SerializationStrategy subclass"),
        ("JSONData", "not a SerializationStrategy subclass"),
        (_AbstractStrategy, "abstract"),
        (_MissingIdentifier, "does not define identifier"),
    ],
    ids=["plain-class", "instance", "string", "abstract", "no-identifier"],
)
def test_plugin_returning_an_invalid_strategy_is_refused_entirely(
    empty_registry, bad, match
):
    Good = make_strategy("x1\n", "Good", name="good")
    with pytest.raises(PluginError, match=match):
        empty_registry.register_plugin(plugin_providing(Good, bad), "bad-plugin")
    _assert_nothing_registered(empty_registry, Good)
    assert len(empty_registry) == 0


def test_strategy_whose_constructor_fails_is_refused_with_cause(empty_registry):
    def __init__(self):
        raise RuntimeError("needs configuration")

    Broken = make_strategy("x1\n", "Broken", name="broken")
    Broken.__init__ = __init__
    with pytest.raises(PluginError, match="needs configuration") as excinfo:
        empty_registry.register_plugin(plugin_providing(Broken), "broken")
    assert isinstance(excinfo.value.__cause__, RuntimeError)
    assert len(empty_registry) == 0


def test_plugin_without_hookimpl_registers_nothing(empty_registry):
    assert empty_registry.register_plugin(types.SimpleNamespace(), "nothing") == []
    assert len(empty_registry) == 0
