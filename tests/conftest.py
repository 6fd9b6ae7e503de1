"""Shared fixtures: a mock upstream process and a live `batchgate serve` in front of it."""

from __future__ import annotations

import pytest

from tests.support.servers import GatewayFactory, MockUpstream, upstream_config


@pytest.fixture
def mock_upstream(tmp_path):
    upstream = MockUpstream(tmp_path)
    yield upstream
    upstream.stop()


def pytest_generate_tests(metafunc):
    # A test module runs on several stacks by naming them: STACKS = ("local", "postgresql+s3").
    stacks = getattr(metafunc.module, "STACKS", None)
    if stacks and "stack" in metafunc.fixturenames:
        metafunc.parametrize("stack", stacks, indirect=True, scope="module")


@pytest.fixture(scope="module")
def stack(request) -> str:
    """Where gateways keep metadata and files: "local" (SQLite and a folder) or "postgresql+s3"."""
    return getattr(request, "param", "local")


@pytest.fixture(scope="module")
def backing(stack, request):
    """backing() → the environment that gives one gateway its own database and storage on `stack`."""
    if stack == "local":
        return dict
    postgres, s3 = request.getfixturevalue("postgres_server"), request.getfixturevalue("s3_server")
    return lambda: {"BATCHGATE_DATABASE_URL": postgres.database(), "BATCHGATE_STORAGE_URL": s3.bucket(), **s3.env}


@pytest.fixture
def make_gateway(tmp_path, backing):
    """make_gateway(config_text="", env={}) → a running Gateway; all are stopped at the end."""
    factory = GatewayFactory(tmp_path, backing)
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
