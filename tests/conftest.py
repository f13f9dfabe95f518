"""Fixtures shared by the registry and plugin-loading tests."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from fake_plugin import PLUGIN_MODULE_TEMPLATE


@pytest.fixture
def fake_dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Make installed-looking distributions in ``tmp_path`` (on ``sys.path``)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    modules: list[str] = []

    def make(
        dist: str,
        version: str,
        module: str,
        *,
        ep_name: str,
        class_name: str = "",
        identifier: str = "",
        name: str = "",
        group: str = "freight_test.strategies",
        source: str | None = None,
    ) -> None:
        info = tmp_path / f"{dist}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
        )
        (info / "entry_points.txt").write_text(f"[{group}]\n{ep_name} = {module}\n")
        (tmp_path / f"{module}.py").write_text(
            source
            if source is not None
            else PLUGIN_MODULE_TEMPLATE.format(
                class_name=class_name, identifier=identifier, name=name
            )
        )
        modules.append(module)
        importlib.invalidate_caches()

    yield make
    for module in modules:
        sys.modules.pop(module, None)


@pytest.fixture(params=["c", "python"])
def each_fast_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Run a test once with the C fast path (``freight.serialize._accel``) and once
    with its pure-Python twin: serializers made during the test use that one."""
    from freight.serialize import fastpath

    if request.param == "c":
        accel = pytest.importorskip(
            "freight.serialize._accel", reason="the C accelerator is not built"
        )
        monkeypatch.setattr(fastpath, "FastPath", accel.FastPath)
    else:
        monkeypatch.setattr(fastpath, "FastPath", fastpath.PyFastPath)
    return request.param
