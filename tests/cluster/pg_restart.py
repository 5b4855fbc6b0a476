"""A PostgreSQL server that a test can stop and start again on the same port (an outage of
the results store), built on tests/pg_server.py."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from pg_server import (
    SUPERUSER,
    _run,
    _server_user,
    create_database,
    find_pg_bindir,
    free_port,
)

# Commits are durable against a crash of the server (synchronous_commit on, unlike the fast
# throwaway server, which may lose its last commits when killed); fsync stays off because the
# machine itself never goes down in these tests and the OS keeps what was written.
_CRASH_SAFE = "-c fsync=off -c synchronous_commit=on"


class RestartablePostgres:
    """``initdb`` into a temporary folder; :meth:`start` / :meth:`stop` the server at will;
    :meth:`remove` stops it and deletes everything."""

    def __init__(self, dbname: str = "slscale_outage") -> None:
        bindir = find_pg_bindir()
        assert bindir is not None
        self.bindir, self.user = bindir, _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="slscale-pg-"))
        if self.user is not None:
            shutil.chown(self.root, self.user)
        self.data, self.port = self.root / "data", free_port()
        initdb = [bindir / "initdb", "-D", self.data, "-U", SUPERUSER, "-A", "trust"]
        _run(self.user, self.root, [*initdb, "-E", "UTF8", "--locale=C", "--no-sync"])
        self.running = False
        self.start()
        create_database(self.port, dbname)
        self.url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {_CRASH_SAFE}"
        _run(self.user, self.root, [self.bindir / "pg_ctl", "-D", self.data, "-l",
                                    self.root / "server.log", "-w", "-t", "60", "-o", options,
                                    "start"])  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Stop at once, dropping every connection (``-m immediate``: a crash of the server)."""
        _run(self.user, self.root, [self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate",
                                    "-w", "stop"])  # fmt: skip
        self.running = False

    def remove(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
