"""Shared fixtures: a mock upstream process and a live `batchgate serve` in front of it."""

from __future__ import annotations

import pytest

from tests.support.servers import GatewayFactory, MockUpstream, upstream_config


@pytest.fixture
def mock_upstream(tmp_path):
    upstream = MockUpstream(tmp_path)
    yield upstream
    upstream.stop()


@pytest.fixture
def make_gateway(tmp_path):
    """make_gateway(config_text="", env={}) → a running Gateway; all are stopped at the end."""
    factory = GatewayFactory(tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture
def gateway(make_gateway, mock_upstream):
    """A gateway routing every model to the mock upstream."""
    return make_gateway(upstream_config(("mock", mock_upstream.base_url, ["*"])))


# --- real backing services: PostgreSQL and S3, started once per session when a test asks ------------

@pytest.fixture(scope="session")
def postgres_server():
    from tests.support.services import PostgresServer

    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    from tests.support.services import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3"))
    yield server
    server.close()
