"""Session fixtures for the scale-out backends: a throwaway PostgreSQL, an S3 server and
a private Ray cluster, each started once per test process and stopped by its pid (Ray:
``ray.shutdown()`` of the cluster this process started, never ``ray stop``).

Nothing skips: if a service cannot start, the tests that need it error with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from services import Bucket, Postgres, S3Server, postgres, s3_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Postgres]:
    with postgres() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: Postgres) -> str:
    """A fresh, empty PostgreSQL database."""
    return pg_server.new_database()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture
def bucket(s3: S3Server) -> Bucket:
    """A fresh, empty bucket, as a store URL with a prefix."""
    return Bucket(url=f"s3://{s3.new_bucket()}/lab", endpoint=s3.endpoint)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """A private Ray cluster (started by the first RayExecutor run), shut down at the end."""
    from breedlab.sandbox import ray_executor

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    yield
    ray_executor.shutdown()
