"""Real backing services for tests: a PostgreSQL server and an S3-compatible server (moto), on loopback.

PostgreSQL runs from the machine's server binaries in a throwaway data folder; as root it runs as
the `postgres` user (initdb refuses root). moto's standalone server speaks the S3 HTTP API.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from tests.support.servers import free_port, wait_for_port

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def installed_postgres_bin() -> Path:
    """The server binaries; on a machine without them, Debian's package is installed first (as root)."""
    found = postgres_bin()
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postgresql"]):
            subprocess.run(
                command, check=True, capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            )
        found = postgres_bin()
    if found is None:
        raise RuntimeError(
            "PostgreSQL server binaries (initdb, postgres) are not installed: install Debian's postgresql package"
        )
    return found


class PostgresServer:
    """`postgres` on a free loopback port with its data in a temporary folder; `database()` makes a fresh one."""

    def __init__(self) -> None:
        self.bin = installed_postgres_bin()
        self.folder = Path(tempfile.mkdtemp(prefix="batchgate-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )
        self.process: subprocess.Popen | None = None
        self.start()

    def _run(self, command: list[str]) -> None:
        subprocess.run(command, check=True, capture_output=True, user=self.user, cwd=self.folder)

    def start(self) -> None:
        with open(self.folder / "postgres.log", "ab") as log:  # the server keeps its own descriptor
            self.process = subprocess.Popen(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.folder),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=300",
                ],
                stdout=log,
                stderr=log,
                user=self.user,
                cwd=self.folder,
            )
        wait_for_port(self.port, self.process, timeout=30)
        deadline = time.monotonic() + 30
        while True:  # the port opens a little before connections are accepted
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: open sessions are cut off
            self.process.wait(30)

    def restart(self, downtime: float = 0.0) -> None:
        self.stop()
        time.sleep(downtime)
        self.start()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database; returns its url."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class S3Server:
    """moto's standalone S3 server; `bucket()` makes a fresh bucket and returns an s3:// url for it."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        with open(folder / "moto.log", "ab") as log:  # the server keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, **AWS_ENV},
            )
        wait_for_port(self.port, self.process, timeout=60)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach this server as if it were S3."""
        return {**AWS_ENV, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def bucket(self, prefix: str = "batchgate") -> str:
        name = "b-" + uuid.uuid4().hex[:16]
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}/{prefix}"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)
