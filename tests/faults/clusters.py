"""Servers of one test alone, on ports of their own: the shared stack is never stopped or killed."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.devtools.stack import Postgres
from services.platform.database import bootstrap_database
from services.platform.migrate import migrate
from services.platform.settings import Settings
from services.platform.topics import create_topics


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def private_cluster(base: Settings, *, topics: bool) -> Iterator[tuple[Settings, Postgres]]:
    """A throwaway PostgreSQL cluster (plain PostgreSQL) with `base`'s database migrated on it;
    `topics` also creates `base`'s Kafka topics on the shared broker."""
    home = Path(tempfile.mkdtemp(prefix="schoolhealth-pg-"))
    home.chmod(0o755)  # the cluster runs as the postgres user
    port = free_port()
    cluster = Postgres(base.model_copy(update={"state_dir": home, "pg_port": port,
                                               "pg_database": "schoolhealth_bootstrap"}))
    try:
        cluster.up()
        settings = base.model_copy(update={"pg_port": port})
        bootstrap_database(settings, cluster._superuser_dsn(), timescaledb=False)
        migrate(settings)
        if topics:
            create_topics(settings)
        yield settings, cluster
    finally:
        cluster.down()
        shutil.rmtree(home, ignore_errors=True)
