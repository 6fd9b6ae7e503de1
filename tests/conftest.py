"""Shared fixtures: a mock upstream process and a live `batchgate serve` in front of it."""

from __future__ import annotations

import pytest

from tests.support.servers import Gateway, MockUpstream, upstream_config


@pytest.fixture
def mock_upstream(tmp_path):
    upstream = MockUpstream(tmp_path)
    yield upstream
    upstream.stop()


@pytest.fixture
def make_gateway(tmp_path):
    """make_gateway(config_text="", env={}) → a running Gateway; all are stopped at the end."""
    started: list[Gateway] = []

    def make(config: str = "", env: dict[str, str] | None = None, name: str = "gw") -> Gateway:
        folder = tmp_path / f"{name}{len(started)}"
        folder.mkdir()
        gateway = Gateway(folder, config, env)
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(make_gateway, mock_upstream):
    """A gateway routing every model to the mock upstream."""
    return make_gateway(upstream_config(("mock", mock_upstream.base_url, ["*"])))
