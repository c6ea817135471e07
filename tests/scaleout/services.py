"""Throwaway servers for the scale-out tests and benchmarks: PostgreSQL and an S3 server.

PostgreSQL is Debian's package (installed with apt-get if ``initdb`` is missing; ``make
test`` does it once beforehand). It gets a fresh cluster in a temporary folder, listens
on a Unix socket in that folder only (no TCP port at all), and ``initdb`` runs as the
``postgres`` user when we are root (it refuses root). The S3 server is moto's
(``moto[server]``, in the dev extra), bound to 127.0.0.1 on a free port. Each is stopped
by its pid. Nothing here skips: a service that cannot start raises, and the test fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 60.0
#: Fake credentials for the local S3 server (moto accepts any); never real ones.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "breedlab-test",
    "AWS_SECRET_ACCESS_KEY": "breedlab-test",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class ServiceError(RuntimeError):
    """A test service could not be installed or started."""


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def ensure_postgres_installed() -> Path:
    """The PostgreSQL bin folder, installing Debian's package first if need be."""
    bindir = _postgres_bin()
    if bindir is not None:
        return bindir
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServiceError("PostgreSQL is not installed: run 'apt-get install -y postgresql'")
    with open("/tmp/breedlab-apt.lock", "w") as lock:  # one installer at a time (xdist)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (bindir := _postgres_bin()) is not None:
            return bindir
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "-q", "postgresql"]):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise ServiceError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    bindir = _postgres_bin()
    if bindir is None:
        raise ServiceError("apt-get installed postgresql but no initdb was found")
    return bindir


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass(frozen=True, slots=True, kw_only=True)
class Postgres:
    folder: Path
    pid: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://lab@/{database}?host={self.folder}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(
            f"host={self.folder} user=lab dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)


@contextlib.contextmanager
def postgres(*, durable: bool = False) -> Iterator[Postgres]:
    """A throwaway PostgreSQL server (``durable``: fsync on, as in production)."""
    bindir = ensure_postgres_installed()
    folder = Path(tempfile.mkdtemp(prefix="breedlab-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        data = folder / "data"
        _run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "lab",
                           "--no-sync", "-E", "UTF8"]))  # fmt: skip
        options = f"-k {folder} -c listen_addresses='' -c max_connections=50"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60",
                           "-l", str(folder / "log"), "-o", options, "start"]))  # fmt: skip
        pid = int((data / "postmaster.pid").read_text().split()[0])
        try:
            yield Postgres(folder=folder, pid=pid)
        finally:
            _stop(pid, signal.SIGINT)  # "fast" shutdown: roll back, disconnect, exit
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Server:
    endpoint: str
    pid: int

    def new_bucket(self) -> str:
        """A fresh, empty bucket; returns its name."""
        import boto3

        name = f"t-{uuid.uuid4().hex[:16]}"
        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=name)
        return name


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    """A fresh bucket as a lab's store settings."""

    url: str
    endpoint: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 (a free port), stopped by its pid."""
    os.environ.update(S3_ENV)
    moto = Path(sys.executable).with_name("moto_server")
    if not moto.exists():
        raise ServiceError(f"{moto} is missing: install the dev extra ('make venv')")
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 1),
                ):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise ServiceError(f"moto_server did not start: {log.read()[-2000:]!r}")
                time.sleep(0.05)
            yield S3Server(endpoint=f"http://127.0.0.1:{port}", pid=proc.pid)
        finally:
            _stop(proc.pid, signal.SIGTERM)
            proc.wait()


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ServiceError(f"{argv[0]} {argv[-1]} failed: {done.stderr[-2000:]}")


def _stop(pid: int, sig: signal.Signals) -> None:
    """Signal ``pid`` and wait (up to a minute) until it is gone; then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
