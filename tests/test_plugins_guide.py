"""What PLUGINS.md promises a plugin author, checked: its examples run, and the
answers it gives (which errors a strategy may raise ...) hold."""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
import tomllib
import types
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

from freight.serialize import (
    AllowlistWildcard,
    ComputeSerializer,
    DeserializationError,
    PluginSettings,
    SerdeError,
    SerializationError,
    SerializationStrategy,
    StrategyRegistry,
    TextStrategy,
    default_registry,
    hookimpl,
)
from freight.serialize import registry as registry_module
from freight.testing import json_values
from freight.testing.assertions import traced

# -- a strategy may raise SerializationError / DeserializationError itself ----------


class RaisesItsOwnErrors(TextStrategy):
    identifier = "Q8\n"
    for_code = False
    name = "guide-raises-its-own"

    def encode_text(self, obj: Any) -> str:
        if isinstance(obj, set):
            raise SerializationError("sets are not carried")
        if isinstance(obj, frozenset):
            raise TypeError("frozensets are not carried")
        return repr(obj)

    def decode_text(self, text: str) -> Any:
        if text == "named":
            raise DeserializationError("RaisesItsOwnErrors: bad body at offset 3")
        if text == "plain":
            raise DeserializationError("bad body at offset 3")
        raise ValueError("not a body")


class _Plugin:
    @hookimpl
    def freight_strategies(self) -> list[type[TextStrategy]]:
        return [RaisesItsOwnErrors]


@pytest.fixture(scope="module")
def serde() -> ComputeSerializer:
    registry = StrategyRegistry(settings=PluginSettings(autoload=False))
    registry.register_plugin(_Plugin(), name="guide")
    return ComputeSerializer(strategy_data=RaisesItsOwnErrors, registry=registry)


PREFIX = "Data serialization strategy RaisesItsOwnErrors failed: "


@pytest.mark.parametrize("encode", ["serialize", "dumps", "dumps_frames"])
def test_a_strategy_s_own_serialization_error_is_wrapped_once(
    serde: ComputeSerializer, encode: str
) -> None:
    with pytest.raises(SerializationError) as info:
        getattr(serde, encode)({1, 2})
    assert str(info.value) == PREFIX + "sets are not carried"
    assert isinstance(info.value.__cause__, SerializationError)
    # Any other exception keeps its type name, the one thing that says what it was.
    with pytest.raises(SerializationError) as other:
        getattr(serde, encode)(frozenset())
    assert str(other.value) == PREFIX + "TypeError: frozensets are not carried"


def test_a_strategy_s_own_deserialization_error_is_wrapped_once(
    serde: ComputeSerializer,
) -> None:
    prefix = "RaisesItsOwnErrors ('Q8\\n') failed to deserialize the payload: "
    with pytest.raises(DeserializationError) as info:
        serde.deserialize("Q8\nplain")
    assert str(info.value) == prefix + "bad body at offset 3"
    # One that already names the strategy passes as it is.
    with pytest.raises(DeserializationError) as named:
        serde.deserialize("Q8\nnamed")
    assert str(named.value) == "RaisesItsOwnErrors: bad body at offset 3"
    with pytest.raises(DeserializationError) as other:
        serde.deserialize("Q8\nother")
    assert str(other.value) == prefix + "ValueError: not a body"


# -- every example of PLUGINS.md runs ---------------------------------------------

GUIDE = Path(__file__).resolve().parents[1] / "PLUGINS.md"
ROOT = GUIDE.parent
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)
EXCERPT = re.compile(r"<!-- excerpt: (\S+) -->\n$")


@dataclasses.dataclass
class Block:
    language: str
    code: str
    line: int
    #: The file this block is an excerpt of, if it says so.
    excerpt_of: str | None


def guide_blocks() -> list[Block]:
    text = GUIDE.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()]
        excerpt = EXCERPT.search(before)
        blocks.append(
            Block(
                match.group(1),
                match.group(2),
                before.count("\n") + 1,
                excerpt.group(1) if excerpt else None,
            )
        )
    return blocks


def _module(name: str, package: bool = False) -> types.ModuleType:
    module = types.ModuleType(name)
    if package:
        module.__path__ = []
    sys.modules[name] = module
    return module


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run the guide's Python blocks in order, as its reader would: the strategy
    blocks are ``my_package/strategy.py``, the block headed ``# src/my_package/
    plugin.py`` is that module, and the TOML block declaring
    ``my_package``'s entry point is installed (a dist-info on ``sys.path``), so
    the blocks that look strategies up find it through a real entry point in a
    fresh default registry.  Yields the strategy module's namespace."""
    site = tmp_path_factory.mktemp("guide-site")
    saved_default = registry_module._default
    registry_module._default = None  # a fresh default registry reads our dist
    sys.path.insert(0, str(site))
    _module("my_package", package=True)
    strategy = _module("my_package.strategy")
    try:
        for block in guide_blocks():
            where = f"PLUGINS.md line {block.line}"
            if block.language == "toml":
                _install_entry_points(tomllib.loads(block.code), site)
                continue
            if block.language != "python" or block.excerpt_of:
                continue
            first = block.code.splitlines()[0]
            target = strategy
            if first.startswith("# src/my_package/"):
                name = first.removeprefix("# src/").removesuffix(".py")
                target = _module(name.replace("/", "."))
            try:
                exec(compile(block.code, where, "exec"), target.__dict__)
            except Exception as e:
                raise AssertionError(f"the example at {where} fails: {e!r}") from e
        yield strategy.__dict__
    finally:
        sys.path.remove(str(site))
        registry_module._default = saved_default
        for name in [m for m in sys.modules if m.split(".")[0] == "my_package"]:
            del sys.modules[name]
        importlib.invalidate_caches()


def _install_entry_points(pyproject: dict[str, Any], site: Path) -> None:
    groups = pyproject.get("project", {}).get("entry-points", {})
    entries = {
        (group, name, target)
        for group, table in groups.items()
        for name, target in table.items()
        if target.startswith("my_package.")  # freight_zstd is really installed
    }
    if not entries:
        return
    info = site / "my_package-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n"
    )
    lines = []
    for group, name, target in sorted(entries):
        lines += [f"[{group}]", f"{name} = {target}"]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    importlib.invalidate_caches()


def test_the_guide_has_examples_of_each_kind() -> None:
    languages = {b.language for b in guide_blocks()}
    assert {"python", "toml"} <= languages
    assert sum(b.language == "python" and not b.excerpt_of for b in guide_blocks()) > 8


def test_every_toml_example_parses() -> None:
    for block in guide_blocks():
        if block.language == "toml":
            tomllib.loads(block.code)


def test_every_python_example_runs(guide: dict[str, Any]) -> None:
    # The fixture ran them all; the plugin is found through its entry point.
    rec = default_registry().resolve("J1")
    assert rec.cls is guide["CompactJSON"]
    assert rec.plugin.distribution == "my-package 0.1"
    assert default_registry().resolve("J1\n") is rec
    assert default_registry().by_identifier("J1\n") is rec
    assert default_registry().by_identifier("J1") is None  # as the guide says


def test_every_excerpt_uses_only_what_its_file_defines() -> None:
    excerpts = [b for b in guide_blocks() if b.excerpt_of]
    assert excerpts
    for block in excerpts:
        source = (ROOT / str(block.excerpt_of)).read_text()
        defined = set(re.findall(r"^\s*(?:def|class) (\w+)", source, re.M))
        shown = set(re.findall(r"^\s*(?:def|class) (\w+)", block.code, re.M))
        used = set(re.findall(r"\b(_\w+)\(", block.code))
        missing = (shown | used) - defined
        assert not missing, f"PLUGINS.md line {block.line}: {missing} not in the file"


def test_the_guide_s_strategies_round_trip(guide: dict[str, Any]) -> None:
    from freight.testing import assert_roundtrip

    value = {"a": [1, 2.5, "x", None, True], "b": {"c": "d"}}
    strategies = [
        v
        for v in guide.values()
        if isinstance(v, type)
        and issubclass(v, SerializationStrategy)
        and v.__module__ == "my_package.strategy"
    ]
    names = {cls.__name__ for cls in strategies}
    assert {"CompactJSON", "Pickle5", "Pickle5Frames", "DeflatedJSON"} <= names
    for cls in strategies:
        assert_roundtrip(cls, value)
    big = np.arange(1 << 16, dtype=np.float64)
    for name in ("Pickle5", "Pickle5Parts", "Pickle5Frames", "Pickle5Fast"):
        assert_roundtrip(guide[name], {"array": big, "bytes": bytes(200_000)})


@given(json_values())
@settings(max_examples=40, deadline=None)
def test_compact_json_gives_back_what_it_carries(
    guide: dict[str, Any], value: Any
) -> None:
    # The guide's domain claim for it: json_values(), unchanged, type for type.
    from freight.testing import assert_roundtrip

    assert_roundtrip(guide["CompactJSON"], value)


@pytest.mark.parametrize(
    "value",
    [(1, 2), {"t": (1,)}, {1: "int key"}, float("nan"), [float("inf")], {1, 2}],
    ids=["tuple", "nested-tuple", "int-key", "nan", "infinity", "set"],
)
def test_compact_json_refuses_what_json_would_change(
    guide: dict[str, Any], value: Any
) -> None:
    serde = ComputeSerializer(strategy_data=guide["CompactJSON"])
    with pytest.raises(SerializationError, match="CompactJSON"):
        serde.serialize(value)


def test_the_data_wildcard_covers_the_third_party_strategy(
    guide: dict[str, Any],
) -> None:
    serde = ComputeSerializer(
        allowed_deserializer_types=[AllowlistWildcard.CODE, AllowlistWildcard.DATA]
    )
    assert guide["CompactJSON"] in serde.allowed_deserializer_types
    with pytest.raises(SerdeError, match="at least one code and one data"):
        ComputeSerializer(allowed_deserializer_types=["compact-json"])


def test_inflate_caps_its_output_whatever_the_stream_holds(
    guide: dict[str, Any],
) -> None:
    inflate = guide["inflate"]
    data = bytes(range(256)) * 64
    assert inflate(zlib.compress(data), len(data), "it") == data
    bomb = zlib.compress(bytes(64 << 20), 9)  # 64 MiB of zeros, ~64 KiB
    with traced() as memory:
        with pytest.raises(DeserializationError, match="more than 1048576 bytes"):
            inflate(bomb, 1 << 20, "the bomb")
    assert memory.peak < 8 << 20
    for damaged, problem in (
        (zlib.compress(data)[:-9], "truncated"),
        (zlib.compress(data) + b"junk", "unexpected bytes"),
        (b"not zlib at all", "corrupt"),
    ):
        with pytest.raises(DeserializationError, match=problem):
            inflate(damaged, 1 << 20, "it")
