"""A throwaway PostgreSQL server for tests.

``postgres_server()`` runs ``initdb`` into a temporary folder, starts the server with
``pg_ctl`` on a free 127.0.0.1 port (its unix socket in the same folder), creates a database,
yields its SQLAlchemy URL and stops and deletes everything on exit. As root it runs the server
binaries as the ``postgres`` user (``initdb`` refuses to run as root), creating a system user
``slscale-pg`` when there is none. Durability is switched off: the data is thrown away.

Use it from any test folder (with ``tests/`` on ``sys.path``, as tests/store/conftest.py
arranges)::

    from pg_server import MISSING_REASON, find_pg_bindir, postgres_server

    @pytest.fixture(scope="session")
    def postgres_url():
        require_pg_server()  # skips without the binaries; fails instead under CI
        with postgres_server() as url:
            yield url
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ci_env import missing

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
MISSING_REASON = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in "
    "/usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql)"
)
SUPERUSER = "slscale"
_FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def find_pg_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None if they are absent."""
    candidates = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    versions.sort(key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    candidates += [Path(p) for p in reversed(versions)]
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in SERVER_BINARIES):
            return folder
    return None


def require_pg_server() -> None:
    """Skip the calling test when the server binaries are missing, except under CI
    (``CI=true``, as .ci/run sets), where the PostgreSQL half of the store tests must run:
    there a missing server fails the test instead of skipping it silently."""
    if find_pg_bindir() is None:
        missing(MISSING_REASON)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def postgres_server(dbname: str = "slscale_test") -> Iterator[str]:
    """Start a PostgreSQL server; yield ``postgresql+psycopg://slscale@127.0.0.1:PORT/dbname``."""
    bindir = find_pg_bindir()
    if bindir is None:
        raise RuntimeError(MISSING_REASON)
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="slscale-pg-"))
    if user is not None:
        shutil.chown(root, user)
    data, port = root / "data", free_port()
    try:
        _run(user, root, [bindir / "initdb", "-D", data, "-U", SUPERUSER, "-A", "trust",
                          "-E", "UTF8", "--locale=C", "--no-sync"])  # fmt: skip
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 {_FAST}"
        _run(user, root, [bindir / "pg_ctl", "-D", data, "-l", root / "server.log", "-w",
                          "-t", "60", "-o", options, "start"])  # fmt: skip
        try:
            create_database(port, dbname)
            yield f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{dbname}"
        finally:
            _run(user, root, [bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def create_database(port: int, dbname: str) -> None:
    """Create database ``dbname`` on the server listening on ``port``."""
    import psycopg

    params = {"host": "127.0.0.1", "port": port, "user": SUPERUSER, "dbname": "postgres"}
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')  # type: ignore[arg-type]


def _server_user() -> str | None:
    """None when not root; else a user that initdb accepts."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "slscale-pg"):
        if _user_exists(name):
            return name
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    "slscale-pg"], check=True, capture_output=True)  # fmt: skip
    return "slscale-pg"


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _run(user: str | None, cwd: Path, args: list[object]) -> None:
    """Run a server binary (as ``user`` when given); output goes to a file, never a pipe that
    the forked server would keep open."""
    command = [str(a) for a in args]
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    log = cwd / "commands.log"
    with open(log, "ab") as out:
        done = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{tail}")
