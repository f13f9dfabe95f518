"""Fixtures for the reference-wire tests: a temporary FREIGHT_HOME (never the
user's), the engine from $FREIGHT_ENGINE (default ``process``), the embedded
service on it, and a reference ``Client`` that never touches the network
(an access-token authorizer, no version check)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from freight.service.core import ServiceCore
from freight.service.embedded import embedded_service, shutdown_embedded

ENGINE = os.environ.get("FREIGHT_ENGINE") or "process"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "home"
    monkeypatch.setenv("FREIGHT_HOME", str(path))
    monkeypatch.setenv("FREIGHT_ENGINE", ENGINE)
    monkeypatch.delenv("FREIGHT_RESULT_RETENTION_S", raising=False)
    monkeypatch.delenv("FREIGHT_MAX_PAYLOAD_BYTES", raising=False)
    monkeypatch.setenv("FREIGHT_WORKERS", "2")
    yield path
    shutdown_embedded()


@pytest.fixture
def service(home: Path) -> ServiceCore:
    """The embedded service (with its local endpoint) on ``home``."""
    return embedded_service(home, engine=ENGINE, workers=2)


@pytest.fixture
def ref_client() -> Any:
    """A reference ``globus_compute_sdk.Client`` that makes no request when made."""
    from globus_compute_sdk import Client
    from globus_sdk import AccessTokenAuthorizer

    return Client(authorizer=AccessTokenAuthorizer("t"), do_version_check=False)
