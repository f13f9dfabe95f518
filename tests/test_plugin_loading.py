"""Plugin loading the user controls, for strategy and frame codec plugins alike
(one mechanism): isolation of broken plugins, env switches,
strict mode, load statuses, and the identifier allocation policy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Kind:
    """One plugin group, strategies or frame codecs: both load by the same code
    (``freight.serialize.plugin_loading``), so every loading rule is tested on
    both."""

    name: str
    group: str
    make: Callable[..., StrategyRegistry | CodecRegistry]
    builtins: tuple[str, ...]
    broken_hook: str

    def install(self, fake_dists: Any, dist: str, ep_name: str, n: int) -> None:
        """A working third-party plugin ``ep_name`` providing one strategy or codec
        also named ``ep_name``."""
        if self.group == ENTRY_POINT_GROUP:
            ident = f"{ep_name[0].upper()}{n}\n"
            install(
                fake_dists,
                dist,
                ep_name,
                class_name=f"S{ep_name}",
                identifier=ident,
                name=ep_name,
            )
            return
        source = CODEC_PLUGIN.format(
            class_name=f"C{ep_name}", codec_id=200 + n, name=ep_name
        )
        fake_dists(
            dist, "1.0", f"{dist}_mod", ep_name=ep_name, group=self.group, source=source
        )

    def install_broken(self, fake_dists: Any, failing_import: bool) -> None:
        """A plugin ``broken`` (distribution ``freight_broken 1.0``) that fails to
        import, or whose hook raises."""
        source = BROKEN_IMPORT if failing_import else self.broken_hook
        fake_dists(
            "freight_broken",
            "1.0",
            "freight_broken_mod",
            ep_name="broken",
            group=self.group,
            source=source,
        )

    def install_two(self, fake_dists: Any) -> None:
        """Third parties ``aa`` and ``bb``."""
        self.install(fake_dists, "freight_a", "aa", 1)
        self.install(fake_dists, "freight_b", "bb", 2)

    @staticmethod
    def provided(registry: StrategyRegistry | CodecRegistry) -> set[str]:
        """The names of the strategies or codecs ``registry`` holds."""
        return {item.name for item in registry}


STRATEGIES = Kind(
    "strategies",
    ENTRY_POINT_GROUP,
    StrategyRegistry,
    ("json", "dill", "pickle"),
    BROKEN_HOOK,
)
CODECS = Kind(
    "codecs",
    CODEC_GROUP,
    CodecRegistry,
    ("zstd", "lz4"),
    BROKEN_HOOK.replace("freight_strategies", "freight_codecs"),
)


@pytest.fixture(params=[STRATEGIES, CODECS], ids=lambda k: k.name)
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param  # type: ignore[no-any-return]


# -- a broken plugin does not take the process down --------------------------------


@pytest.mark.parametrize("broken", ["import", "hook"])
def test_broken_plugin_is_reported_and_skipped(fake_dists, caplog, kind, broken):
    kind.install_broken(fake_dists, broken == "import")
    registry = kind.make(settings=PluginSettings())

    with caplog.at_level(logging.WARNING, logger="freight.serialize.registry"):
        statuses = {s.name: s for s in registry.plugin_statuses()}

    broken_status = statuses["broken"]
    assert broken_status.state == "failed"
    assert broken_status.distribution == "freight_broken 1.0"
    assert "Traceback" in broken_status.traceback
    expected = "missing" if broken == "import" else "hook exploded"
    assert expected in broken_status.reason
    # PLUGINS.md says how: a WARNING on the freight.serialize.registry logger,
    # with the traceback attached, for strategy and codec plugins alike.
    (record,) = [r for r in caplog.records if "'broken'" in r.getMessage()]
    assert record.name == "freight.serialize.registry"
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None
    # Everything else keeps working.
    for builtin in kind.builtins:
        assert statuses[builtin].state == "loaded"
    if kind is STRATEGIES:
        serde = ComputeSerializer(strategy_data="json", registry=registry)
        assert serde.deserialize(serde.serialize({"a": 1})) == {"a": 1}
    else:
        assert registry.by_id(1) is not None


def test_strict_mode_turns_a_broken_plugin_into_an_error(fake_dists, kind):
    kind.install_broken(fake_dists, failing_import=True)
    registry = kind.make(settings=PluginSettings(strict=True))

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
    fake_dists, monkeypatch, kind
):
    kind.install_two(fake_dists)
    monkeypatch.setenv("FREIGHT_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = kind.make()

    statuses = {s.name: s for s in registry.plugin_statuses()}

    for name in ("aa", "bb"):
        assert statuses[name].state == "skipped"
        assert "FREIGHT_DISABLE_PLUGIN_AUTOLOAD" in statuses[name].reason
    assert not {"aa", "bb"} & kind.provided(registry)
    for builtin in kind.builtins:
        assert statuses[builtin].state == "loaded"


def test_allow_list_loads_only_named_third_parties(fake_dists, monkeypatch, kind):
    kind.install_two(fake_dists)
    monkeypatch.setenv("FREIGHT_PLUGINS", "bb")
    registry = kind.make()

    assert "aa" not in kind.provided(registry)
    assert "bb" in kind.provided(registry)
    statuses = {s.name: s for s in registry.plugin_statuses()}
    assert statuses["aa"].state == "skipped"
    assert "FREIGHT_PLUGINS" in statuses["aa"].reason
    for builtin in kind.builtins:  # built-ins are not subject to it
        assert statuses[builtin].state == "loaded"


def test_a_plugin_named_in_the_allow_list_loads_with_autoload_disabled(
    fake_dists, monkeypatch, kind
):
    # As `pytest -p name` under PYTEST_DISABLE_PLUGIN_AUTOLOAD: naming a plugin
    # explicitly loads it; the others stay off; built-ins still load.
    kind.install_two(fake_dists)
    monkeypatch.setenv("FREIGHT_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("FREIGHT_PLUGINS", "bb")
    registry = kind.make()

    assert "bb" in kind.provided(registry)
    assert "aa" not in kind.provided(registry)
    statuses = {s.name: s for s in registry.plugin_statuses()}
    assert statuses["bb"].state == "loaded"
    assert statuses["aa"].state == "skipped"
    for builtin in kind.builtins:
        assert statuses[builtin].state == "loaded"
    if kind is STRATEGIES:
        serde = ComputeSerializer(registry=registry)  # the default strategies work
        assert serde.deserialize(serde.serialize({"a": (1, 2)})) == {"a": (1, 2)}


def test_the_block_list_wins_over_the_allow_list(fake_dists, monkeypatch, kind):
    kind.install_two(fake_dists)
    monkeypatch.setenv("FREIGHT_PLUGINS", "aa,bb")
    monkeypatch.setenv("FREIGHT_BLOCK_PLUGINS", f"bb,{kind.builtins[0]}")
    registry = kind.make()

    statuses = {s.name: s for s in registry.plugin_statuses()}
    assert statuses["aa"].state == "loaded"
    assert statuses["bb"].state == "blocked"
    assert statuses[kind.builtins[0]].state == "blocked"
    assert "bb" not in kind.provided(registry)


def test_an_allowed_name_that_is_not_installed_is_reported(
    fake_dists, monkeypatch, caplog, kind
):
    kind.install_two(fake_dists)
    monkeypatch.setenv("FREIGHT_PLUGINS", "bb,lzma")
    registry = kind.make()

    with caplog.at_level(logging.WARNING, logger="freight.serialize.registry"):
        statuses = {s.name: s for s in registry.plugin_statuses()}

    assert statuses["lzma"].state == "failed"
    assert "FREIGHT_PLUGINS" in statuses["lzma"].reason
    (record,) = [r for r in caplog.records if "'lzma'" in r.getMessage()]
    assert record.name == "freight.serialize.registry"
    assert statuses["bb"].state == "loaded"

    monkeypatch.setenv("FREIGHT_STRICT_PLUGINS", "1")
    group = kind.group.replace(".", r"\.")
    with pytest.raises(PluginError, match=rf"'lzma'.*no '{group}' entry"):
        kind.make().load()


def test_a_name_installed_in_the_other_group_is_not_reported_missing(
    fake_dists, monkeypatch
):
    # FREIGHT_PLUGINS names plugins of both groups: a strategy plugin's name is
    # not "missing" for the codec registry, nor a codec plugin's for strategies.
    CODECS.install(fake_dists, "freight_cb", "cb", 2)
    STRATEGIES.install(fake_dists, "freight_b", "bb", 2)
    monkeypatch.setenv("FREIGHT_PLUGINS", "bb,cb")
    monkeypatch.setenv("FREIGHT_STRICT_PLUGINS", "1")

    codecs = CodecRegistry()
    strategies = StrategyRegistry()

    assert {s.name: s.state for s in codecs.plugin_statuses()}.get("bb") is None
    assert "cb" in CODECS.provided(codecs)
    assert {s.name: s.state for s in strategies.plugin_statuses()}.get("cb") is None
    assert "bb" in STRATEGIES.provided(strategies)


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
