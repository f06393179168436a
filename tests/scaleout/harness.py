"""Start and stop the servers of a scale-out setup in a temporary directory.

Each server listens on 127.0.0.1 only, on a free port of ``PORT_RANGE``, and
keeps all its files in one directory that ``Topology.close()`` removes:

* ``PostgresCluster.primary()``: a new cluster (``initdb``) that allows
  streaming replication from 127.0.0.1;
* ``PostgresCluster.replica_of()``: a hot standby of it made with
  ``pg_basebackup -R`` (streaming replication, replay pausable);
* ``PgBouncer``: transaction pooling in front of a PostgreSQL server;
* ``RedisServer``: a Redis primary, or a replica of one.

PostgreSQL and PgBouncer refuse to run as root; as root the harness runs them
as the ``postgres`` user (what the Debian packages create). What cannot be
started raises ``Unavailable`` with the reason, which callers print as a
SKIPPED line.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PORT_RANGE = range(int(os.environ.get("SCALEOUT_PORT_FIRST", "15400")), 15500)
PG_BINARIES = [
    Path(os.environ["PG_BINDIR"]) if "PG_BINDIR" in os.environ else None,
    *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True),
]
SERVICE_USER = "postgres"
START_TIMEOUT = 30.0


class Unavailable(Exception):
    """A server could not be started here; the message says why."""


_ports_taken: set[int] = set()


def take_port() -> int:
    """A free port not handed out before by this process (servers bind late)."""
    for port in PORT_RANGE:
        if port in _ports_taken:
            continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_taken.add(port)
        return port
    raise Unavailable(f"no free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise Unavailable(f"the server on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise Unavailable(f"nothing listened on port {port} after {START_TIMEOUT:.0f} s")


def _as_root() -> bool:
    return os.geteuid() == 0


def _service_user() -> pwd.struct_passwd | None:
    """The account PostgreSQL and PgBouncer run as when we are root."""
    if not _as_root():
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError as exc:
        raise Unavailable(f"running as root and there is no {SERVICE_USER!r} user") from exc


def _give(path: Path) -> None:
    """Let the service user own ``path`` (as root), so its servers can write there."""
    account = _service_user()
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


def _run_as_service(command: Sequence[str]) -> list[str]:
    if _service_user() is None:
        return list(command)
    runuser = shutil.which("runuser")
    if runuser is None:
        raise Unavailable("running as root and runuser (util-linux) is missing")
    return [runuser, "-u", SERVICE_USER, "--", *command]


def _run(command: Sequence[str], what: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise Unavailable(f"{what} failed: {' / '.join(tail)}")
    return result.stdout


def pg_binary(name: str) -> str:
    for directory in PG_BINARIES:
        if directory is not None and (directory / name).is_file():
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        raise Unavailable(f"PostgreSQL's {name} not found (apt-get install postgresql)")
    return found


@dataclass
class PostgresCluster:
    """One PostgreSQL server of our own, stopped by ``stop()``."""

    directory: Path
    port: int
    standby: bool = False

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    @classmethod
    def primary(cls, root: Path) -> PostgresCluster:
        cluster = cls(root / "pg-primary", take_port())
        cluster.directory.mkdir()
        _give(cluster.directory)
        _run(
            _run_as_service(
                [
                    pg_binary("initdb"),
                    "-D",
                    str(cluster.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            ),
            "initdb",
        )
        # A fresh cluster already allows replication connections from
        # 127.0.0.1 (initdb's pg_hba.conf); wal_level is replica by default.
        cluster._configure(
            {
                "listen_addresses": "'127.0.0.1'",
                "port": str(cluster.port),
                "unix_socket_directories": "''",
                "fsync": "off",
                "full_page_writes": "off",
                "max_wal_senders": "4",
                "max_connections": "60",
                "shared_buffers": "32MB",
            }
        )
        cluster.start()
        return cluster

    @classmethod
    def replica_of(cls, primary: PostgresCluster, root: Path) -> PostgresCluster:
        cluster = cls(root / "pg-replica", take_port(), standby=True)
        cluster.directory.mkdir()
        _give(cluster.directory)
        _run(
            _run_as_service(
                [
                    pg_binary("pg_basebackup"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(primary.port),
                    "-U",
                    "postgres",
                    "-D",
                    str(cluster.data),
                    "-R",  # standby.signal and primary_conninfo
                    "-X",
                    "stream",
                    "--no-sync",
                ]
            ),
            "pg_basebackup",
        )
        cluster._configure({"port": str(cluster.port), "hot_standby": "on"})
        cluster.start()
        return cluster

    def _configure(self, values: dict[str, str]) -> None:
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/scaleout\n")
            for name, value in values.items():
                conf.write(f"{name} = {value}\n")

    def start(self) -> None:
        _run(
            _run_as_service(
                [
                    pg_binary("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.directory / "server.log"),
                    "-w",
                    "-t",
                    str(int(START_TIMEOUT)),
                    "start",
                ]
            ),
            f"starting PostgreSQL on port {self.port}",
        )

    def stop(self) -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        subprocess.run(
            _run_as_service([pg_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
            check=False,
        )


def pgbouncer_version(binary: str) -> str:
    """``1.18.0`` for PgBouncer 1.18.0."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].split()[-1] if out else "0"


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


@dataclass
class PgBouncer:
    """PgBouncer in transaction pooling mode in front of ``upstream_port``."""

    directory: Path
    port: int
    upstream_port: int
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, root: Path, upstream_port: int, upstream_host: str = "127.0.0.1") -> PgBouncer:
        binary = shutil.which("pgbouncer") or (
            "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
        )
        if binary is None:
            raise Unavailable("pgbouncer not found (apt-get install pgbouncer)")
        bouncer = cls(root / "pgbouncer", take_port(), upstream_port)
        bouncer.directory.mkdir()
        _give(bouncer.directory)
        config = bouncer.directory / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={upstream_host} port={upstream_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {bouncer.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {bouncer.directory / 'users.txt'}\n"
            "pool_mode = transaction\n"
            "max_client_conn = 400\n"
            "default_pool_size = 10\n"
            # Databases are created and dropped through it (test databases):
            # idle server connections must not hold them open for long.
            "server_idle_timeout = 2\n"
            + (
                # Protocol-level prepared statements (PgBouncer 1.21+).
                "max_prepared_statements = 100\n"
                if version_tuple(pgbouncer_version(binary)) >= (1, 21)
                else ""
            )
            + "ignore_startup_parameters = extra_float_digits,options\n"
            "admin_users = postgres\n"
        )
        (bouncer.directory / "users.txt").write_text('"postgres" ""\n')
        command = [binary, str(config)]
        account = _service_user()
        if account is not None:
            command[1:1] = ["-u", SERVICE_USER]
        log = (bouncer.directory / "pgbouncer.log").open("wb")
        bouncer.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(bouncer.port, bouncer.process)
        return bouncer

    def version(self) -> str:
        return pgbouncer_version(shutil.which("pgbouncer") or "pgbouncer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # PgBouncer's immediate shutdown
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@dataclass
class RedisServer:
    """A redis-server of our own: a primary, or a replica of one."""

    directory: Path
    port: int
    primary_port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, root: Path, replica_of: RedisServer | None = None) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable("redis-server not found (apt-get install redis-server)")
        name = "redis-replica" if replica_of else "redis-primary"
        server = cls(root / name, take_port(), replica_of.port if replica_of else None)
        server.directory.mkdir()
        command = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(server.port),
            "--dir",
            str(server.directory),
            "--save",
            "",
            "--repl-diskless-sync-delay",
            "0",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        if server.primary_port is not None:
            command += ["--replicaof", "127.0.0.1", str(server.primary_port)]
        log = (server.directory / "redis.log").open("wb")
        server.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(server.port, server.process)
        return server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@dataclass
class Topology:
    """The servers started so far, all stopped and removed by ``close()``."""

    root: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="user-sessions-scaleout-"))
    )
    stoppers: list[object] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The service user must reach the directories under it.
        self.root.chmod(0o755)

    def add(self, server: object) -> None:
        self.stoppers.append(server)

    def close(self) -> None:
        for server in reversed(self.stoppers):
            with contextlib.suppress(Exception):
                server.stop()  # type: ignore[attr-defined]
        self.stoppers.clear()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def topology() -> Iterator[Topology]:
    servers = Topology()
    try:
        yield servers
    finally:
        servers.close()
