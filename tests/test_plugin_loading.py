"""Plugin loading the user controls: isolation of broken plugins, env switches,
strict mode, load statuses, and the identifier allocation policy."""

from __future__ import annotations

import logging

import pytest

from freight.serialize import (
    ENTRY_POINT_GROUP,
    ComputeSerializer,
    IdentifierPolicyError,
    PluginError,
    PluginSettings,
    StrategyRegistry,
)
from freight.serialize import identifiers as identifiers_module
from freight.serialize.codecs import ENTRY_POINT_GROUP as CODEC_GROUP
from freight.serialize.codecs import CodecRegistry
from freight.serialize.identifiers import check_allocation, identifier_range

BROKEN_IMPORT = "raise ImportError('this plugin needs a module that is missing')\n"

BROKEN_HOOK = """
from freight.serialize import hookimpl

@hookimpl
def freight_strategies():
    raise RuntimeError("hook exploded")
"""


def install(fake_dists, dist: str, ep_name: str, **kwargs: object) -> None:
    fake_dists(
        dist,
        "1.0",
        f"{dist}_mod",
        ep_name=ep_name,
        group=ENTRY_POINT_GROUP,
        **kwargs,
    )


def registry_with(**settings: object) -> StrategyRegistry:
    return StrategyRegistry(settings=PluginSettings(**settings))  # type: ignore[arg-type]


# -- a broken plugin does not take the process down --------------------------------


@pytest.mark.parametrize("source", [BROKEN_IMPORT, BROKEN_HOOK], ids=["import", "hook"])
def test_broken_plugin_is_reported_and_skipped(fake_dists, caplog, source):
    install(fake_dists, "freight_broken", "broken", source=source)
    registry = registry_with()

    with caplog.at_level(logging.WARNING, logger="freight.serialize.registry"):
        statuses = {s.name: s for s in registry.plugin_statuses()}

    broken = statuses["broken"]
    assert broken.state == "failed"
    assert broken.distribution == "freight_broken 1.0"
    assert "Traceback" in broken.traceback
    assert ("missing" in broken.reason) or ("exploded" in broken.reason)
    # PLUGINS.md says how: a WARNING on the freight.serialize.registry logger,
    # with the traceback attached.
    (record,) = [r for r in caplog.records if "'broken'" in r.getMessage()]
    assert record.name == "freight.serialize.registry"
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None
    # Everything else keeps working.
    assert statuses["json"].state == "loaded"
    serde = ComputeSerializer(strategy_data="json", registry=registry)
    assert serde.deserialize(serde.serialize({"a": 1})) == {"a": 1}


def test_strict_mode_turns_a_broken_plugin_into_an_error(fake_dists):
    install(fake_dists, "freight_broken", "broken", source=BROKEN_IMPORT)
    registry = registry_with(strict=True)

    with pytest.raises(PluginError, match=r"'broken'.*freight_broken 1\.0") as info:
        registry.load()
    assert isinstance(info.value.__cause__, ImportError)


def test_strict_mode_is_read_from_the_environment(fake_dists, monkeypatch):
    install(fake_dists, "freight_broken", "broken", source=BROKEN_IMPORT)
    monkeypatch.setenv("FREIGHT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="FREIGHT_STRICT_PLUGINS"):
        StrategyRegistry().load()


def test_identifier_collision_skips_the_later_plugin_and_names_both(fake_dists):
    install(
        fake_dists,
        "freight_first",
        "first",
        class_name="First",
        identifier="Q1\n",
        name="first",
    )
    install(
        fake_dists,
        "freight_second",
        "second",
        class_name="Second",
        identifier="Q1\n",
        name="second",
    )
    registry = registry_with()

    statuses = {s.name: s for s in registry.plugin_statuses()}

    assert statuses["first"].state == "loaded"
    assert registry.by_identifier("Q1\n").cls.__name__ == "First"  # type: ignore[union-attr]
    second = statuses["second"]
    assert second.state == "failed"
    for part in ("First", "Second", "freight_first 1.0", "freight_second 1.0"):
        assert part in second.reason


# -- environment switches ------------------------------------------------------------


def test_settings_from_environment_parse_lists_and_flags():
    settings = PluginSettings.from_env(
        {
            "FREIGHT_DISABLE_PLUGIN_AUTOLOAD": "true",
            "FREIGHT_PLUGINS": " a, b ,,",
            "FREIGHT_BLOCK_PLUGINS": "pickle",
            "FREIGHT_STRICT_PLUGINS": "0",
        }
    )
    assert settings == PluginSettings(
        autoload=False,
        allow=frozenset({"a", "b"}),
        block=frozenset({"pickle"}),
        strict=False,
    )
    assert PluginSettings.from_env({}) == PluginSettings()


def test_disabling_autoload_skips_third_parties_but_keeps_builtins(
    fake_dists, monkeypatch
):
    install(
        fake_dists,
        "freight_extra",
        "extra",
        class_name="Extra",
        identifier="E1\n",
        name="extra",
    )
    monkeypatch.setenv("FREIGHT_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = StrategyRegistry()

    statuses = {s.name: s for s in registry.plugin_statuses()}

    assert statuses["extra"].state == "skipped"
    assert "FREIGHT_DISABLE_PLUGIN_AUTOLOAD" in statuses["extra"].reason
    assert registry.by_identifier("E1\n") is None
    assert registry.by_identifier("11\n") is not None


def test_allow_list_loads_only_named_third_parties(fake_dists, monkeypatch):
    for dist, ep, ident in [("freight_a", "aa", "A1\n"), ("freight_b", "bb", "B1\n")]:
        install(fake_dists, dist, ep, class_name=f"S{ep}", identifier=ident, name=ep)
    monkeypatch.setenv("FREIGHT_PLUGINS", "bb")
    registry = StrategyRegistry()

    assert registry.by_identifier("A1\n") is None
    assert registry.by_identifier("B1\n") is not None
    statuses = {s.name: s for s in registry.plugin_statuses()}
    assert statuses["aa"].state == "skipped"
    assert "FREIGHT_PLUGINS" in statuses["aa"].reason
    assert statuses["json"].state == "loaded"  # built-ins are not subject to it


def _install_two(fake_dists) -> None:
    for dist, ep, ident in [("freight_a", "aa", "A1\n"), ("freight_b", "bb", "B1\n")]:
        install(fake_dists, dist, ep, class_name=f"S{ep}", identifier=ident, name=ep)


def test_a_plugin_named_in_the_allow_list_loads_with_autoload_disabled(
    fake_dists, monkeypatch
):
    # As `pytest -p name` under PYTEST_DISABLE_PLUGIN_AUTOLOAD: naming a plugin
    # explicitly loads it; the others stay off; built-ins still load.
    _install_two(fake_dists)
    monkeypatch.setenv("FREIGHT_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("FREIGHT_PLUGINS", "bb")
    registry = StrategyRegistry()

    assert registry.by_identifier("B1\n") is not None
    assert registry.by_identifier("A1\n") is None
    statuses = {s.name: s for s in registry.plugin_statuses()}
    assert statuses["bb"].state == "loaded"
    assert statuses["aa"].state == "skipped"
    for builtin in ("json", "dill", "pickle"):
        assert statuses[builtin].state == "loaded"
    serde = ComputeSerializer(registry=registry)  # the default strategies work
    assert serde.deserialize(serde.serialize({"a": (1, 2)})) == {"a": (1, 2)}


def test_the_block_list_wins_over_the_allow_list(fake_dists, monkeypatch):
    _install_two(fake_dists)
    monkeypatch.setenv("FREIGHT_PLUGINS", "aa,bb")
    monkeypatch.setenv("FREIGHT_BLOCK_PLUGINS", "bb")
    registry = StrategyRegistry()

    statuses = {s.name: s for s in registry.plugin_statuses()}
    assert statuses["aa"].state == "loaded"
    assert statuses["bb"].state == "blocked"
    assert registry.by_identifier("B1\n") is None


def test_an_allowed_name_that_is_not_installed_is_reported(
    fake_dists, monkeypatch, caplog
):
    _install_two(fake_dists)
    monkeypatch.setenv("FREIGHT_PLUGINS", "bb,lzma")
    registry = StrategyRegistry()

    with caplog.at_level(logging.WARNING, logger="freight.serialize.registry"):
        statuses = {s.name: s for s in registry.plugin_statuses()}

    assert statuses["lzma"].state == "failed"
    assert "FREIGHT_PLUGINS" in statuses["lzma"].reason
    assert any("'lzma'" in r.getMessage() for r in caplog.records)
    assert statuses["bb"].state == "loaded"

    monkeypatch.setenv("FREIGHT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"'lzma'.*no 'freight\.strategies' entry"):
        StrategyRegistry().load()


def test_block_list_removes_builtins_too(monkeypatch):
    monkeypatch.setenv("FREIGHT_BLOCK_PLUGINS", "dill, combo")
    registry = StrategyRegistry()

    statuses = {s.name: s for s in registry.plugin_statuses()}
    assert statuses["dill"].state == "blocked"
    assert statuses["combo"].state == "blocked"
    assert registry.by_identifier("00\n") is None
    serde = ComputeSerializer(
        strategy_code="source-text-inspect", strategy_data="json", registry=registry
    )
    with pytest.raises(Exception, match="unknown strategy identifier '00"):
        serde.deserialize("00\ngARLAS4=")


# -- the identifier allocation policy --------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        ("00\n", "reference"),
        ("13\n", "reference"),
        ("st\n", "builtin"),
        ("p5\n", "builtin"),
        ("Z1\n", "third-party"),
        ("Ab\n", "third-party"),
        ("!x\n", "invalid"),
        ("a!\n", "invalid"),
        ("é1\n", "invalid"),
        ("Z \n", "invalid"),
        ("1a\n", "invalid"),
    ],
)
def test_identifier_ranges(identifier, expected):
    assert identifier_range(identifier) == expected


def test_third_party_cannot_claim_a_builtin_identifier(fake_dists):
    install(
        fake_dists,
        "freight_squatter",
        "squatter",
        class_name="Squatter",
        identifier="q7\n",
        name="squatter",
    )
    registry = registry_with()

    statuses = {s.name: s for s in registry.plugin_statuses()}

    assert statuses["squatter"].state == "failed"
    assert "reserved for freight's built-in strategies" in statuses["squatter"].reason
    assert "uppercase" in statuses["squatter"].reason
    assert registry.by_identifier("q7\n") is None


def test_policy_errors_are_specific():
    with pytest.raises(IdentifierPolicyError, match="reference SDK"):
        check_allocation("42\n", builtin=False, owner="X")
    with pytest.raises(IdentifierPolicyError, match="third-party range"):
        check_allocation("Z1\n", builtin=True, owner="X")
    with pytest.raises(IdentifierPolicyError, match="outside the allocation policy"):
        check_allocation("#1\n", builtin=False, owner="X")
    check_allocation("Z1\n", builtin=False, owner="X")
    check_allocation("p5\n", builtin=True, owner="X")


def test_retired_identifiers_stay_reserved(monkeypatch):
    monkeypatch.setattr(identifiers_module, "RETIRED_IDENTIFIERS", frozenset({"R2\n"}))
    with pytest.raises(IdentifierPolicyError, match="retired"):
        check_allocation("R2\n", builtin=False, owner="X")
    with pytest.raises(IdentifierPolicyError, match="retired"):
        check_allocation("R2\n", builtin=True, owner="X")


def test_every_builtin_follows_the_policy():
    registry = StrategyRegistry()
    builtin = [
        s
        for s in registry.plugin_statuses()
        if (s.distribution or "").split()[0] == "freight"
    ]
    assert builtin
    for status in builtin:
        assert status.state == "loaded", status
    for rec in registry:
        if (rec.plugin.distribution or "").split()[0] == "freight":
            assert identifier_range(rec.identifier) in ("reference", "builtin"), rec
        else:
            assert identifier_range(rec.identifier) == "third-party", rec


# -- frame codecs load by the same rules (one mechanism: plugin_loading) -------------

CODEC_PLUGIN = """
import zlib

from freight.serialize import hookimpl
from freight.serialize.codecs import FrameCodec


class {class_name}(FrameCodec):
    codec_id = {codec_id}
    name = "{name}"

    def compress(self, data, level=None):
        return zlib.compress(data)

    def decompress(self, data, size):
        return zlib.decompress(data)


@hookimpl
def freight_codecs():
    return [{class_name}]
"""

BROKEN_CODEC_HOOK = """
from freight.serialize import hookimpl

@hookimpl
def freight_codecs():
    raise RuntimeError("codec hook exploded")
"""


def install_codec(fake_dists, dist: str, ep_name: str, codec_id: int) -> None:
    source = CODEC_PLUGIN.format(
        class_name=f"Codec{codec_id}", codec_id=codec_id, name=ep_name
    )
    fake_dists(
        dist, "1.0", f"{dist}_mod", ep_name=ep_name, group=CODEC_GROUP, source=source
    )


def _install_two_codecs(fake_dists) -> None:
    install_codec(fake_dists, "freight_ca", "ca", 201)
    install_codec(fake_dists, "freight_cb", "cb", 202)


def test_codecs_obey_the_allow_list_with_autoload_disabled(fake_dists, monkeypatch):
    # The strategies' precedence: a codec plugin named in FREIGHT_PLUGINS loads
    # even with autoloading disabled; the other third parties stay off.
    _install_two_codecs(fake_dists)
    monkeypatch.setenv("FREIGHT_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("FREIGHT_PLUGINS", "cb")
    registry = CodecRegistry()

    statuses = {s.name: s for s in registry.plugin_statuses()}
    assert statuses["cb"].state == "loaded"
    assert registry.by_id(202) is not None
    assert statuses["ca"].state == "skipped"
    assert "FREIGHT_PLUGINS" in statuses["ca"].reason
    assert registry.by_id(201) is None
    assert statuses["zstd"].state == "loaded"  # built-ins are not subject to it


def test_codecs_autoload_disabled_skips_third_parties(fake_dists, monkeypatch):
    _install_two_codecs(fake_dists)
    monkeypatch.setenv("FREIGHT_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = CodecRegistry()

    statuses = {s.name: s for s in registry.plugin_statuses()}
    for name in ("ca", "cb"):
        assert statuses[name].state == "skipped"
        assert "FREIGHT_DISABLE_PLUGIN_AUTOLOAD" in statuses[name].reason
    assert registry.by_id(201) is None
    assert registry.by_id(1) is not None


def test_codecs_block_list_wins_over_the_allow_list(fake_dists, monkeypatch):
    _install_two_codecs(fake_dists)
    monkeypatch.setenv("FREIGHT_PLUGINS", "ca,cb")
    monkeypatch.setenv("FREIGHT_BLOCK_PLUGINS", "cb,zstd")
    registry = CodecRegistry()

    statuses = {s.name: s for s in registry.plugin_statuses()}
    assert statuses["ca"].state == "loaded"
    assert statuses["cb"].state == "blocked"
    assert statuses["zstd"].state == "blocked"
    assert registry.by_id(202) is None
    assert registry.by_id(1) is None


def test_a_codec_name_in_the_allow_list_that_is_not_installed_is_reported(
    fake_dists, monkeypatch, caplog
):
    _install_two_codecs(fake_dists)
    monkeypatch.setenv("FREIGHT_PLUGINS", "cb,brotli")
    registry = CodecRegistry()

    with caplog.at_level(logging.WARNING, logger="freight.serialize.registry"):
        statuses = {s.name: s for s in registry.plugin_statuses()}

    assert statuses["brotli"].state == "failed"
    assert "FREIGHT_PLUGINS" in statuses["brotli"].reason
    (record,) = [r for r in caplog.records if "'brotli'" in r.getMessage()]
    assert record.name == "freight.serialize.registry"
    assert statuses["cb"].state == "loaded"

    monkeypatch.setenv("FREIGHT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"'brotli'.*no 'freight\.codecs' entry"):
        CodecRegistry().load()


def test_a_name_installed_in_the_other_group_is_not_reported_missing(
    fake_dists, monkeypatch
):
    # FREIGHT_PLUGINS names plugins of both groups: a strategy plugin's name is
    # not "missing" for the codec registry, nor a codec plugin's for strategies.
    install_codec(fake_dists, "freight_cb", "cb", 202)
    install(
        fake_dists, "freight_b", "bb", class_name="Sbb", identifier="B1\n", name="bb"
    )
    monkeypatch.setenv("FREIGHT_PLUGINS", "bb,cb")
    monkeypatch.setenv("FREIGHT_STRICT_PLUGINS", "1")

    codecs = CodecRegistry()
    strategies = StrategyRegistry()

    assert {s.name: s.state for s in codecs.plugin_statuses()}.get("bb") is None
    assert codecs.by_id(202) is not None
    assert {s.name: s.state for s in strategies.plugin_statuses()}.get("cb") is None
    assert strategies.by_identifier("B1\n") is not None


def test_a_broken_codec_plugin_is_logged_on_the_registry_logger(fake_dists, caplog):
    fake_dists(
        "freight_cbroken",
        "1.0",
        "freight_cbroken_mod",
        ep_name="cbroken",
        group=CODEC_GROUP,
        source=BROKEN_CODEC_HOOK,
    )
    registry = CodecRegistry(settings=PluginSettings())

    with caplog.at_level(logging.WARNING, logger="freight.serialize.registry"):
        statuses = {s.name: s for s in registry.plugin_statuses()}

    broken = statuses["cbroken"]
    assert broken.state == "failed"
    assert broken.distribution == "freight_cbroken 1.0"
    assert "exploded" in broken.reason
    assert "Traceback" in broken.traceback
    (record,) = [r for r in caplog.records if "'cbroken'" in r.getMessage()]
    assert record.name == "freight.serialize.registry"
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None
    assert registry.by_id(1) is not None  # the others keep working

    strict = CodecRegistry(settings=PluginSettings(strict=True))
    with pytest.raises(PluginError, match=r"'cbroken'.*freight_cbroken 1\.0") as info:
        strict.load()
    assert isinstance(info.value.__cause__, RuntimeError)
