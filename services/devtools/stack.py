"""The local stack without Docker: Apache Kafka (KRaft) from Maven Central and a PostgreSQL cluster.

Both run as project-local processes bound to 127.0.0.1, with their state under
`Settings.state_dir` (git-ignored):

    .stack/kafka-libs/     jars resolved by `mvn copy-dependencies` (runtime scope), cached
    .stack/kafka/          server.properties, log4j2.properties, data/, kafka.log, kafka.pid
    .stack/pg/             data/ (owned by the `postgres` user when we run as root), pg.log

`up` is idempotent: what already runs is left alone, and a warm start only launches processes.
Every failure raises `StackError` naming what failed and the log to read.
"""

from __future__ import annotations

import base64
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from services.platform.database import DatabaseSetupError, bootstrap_database
from services.platform.kafka_limits import MESSAGE_MAX_BYTES
from services.platform.kafka_security import broker_properties, format_arguments
from services.platform.settings import Settings

KAFKA_POM = Path(__file__).resolve().parent / "stack_files" / "kafka-pom.xml"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"


# Servers this process started stay referenced until they are stopped and reaped: they outlive
# the objects that started them, and a collected Popen of a running child warns.
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RuntimeError):
    """A stack component failed to install, start or stop; the message names the log."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentStatus:
    name: str
    running: bool
    detail: str


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def _pid_alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # A zombie is not alive; /proc tells us.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return None
    return pid


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log yet)"


# --------------------------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------------------------


class Kafka:
    """A single-node Apache Kafka 4.x (KRaft, combined broker and controller)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.libs = settings.state_dir / "kafka-libs"
        self.home = settings.state_dir / "kafka"
        self.data = self.home / "data"
        self.log = self.home / "kafka.log"
        self.stdout_log = self.home / "kafka.out"
        self.pid_file = self.home / "kafka.pid"

    def version(self) -> str | None:
        for jar in sorted(self.libs.glob("kafka_2.13-*.jar")):
            return jar.stem.removeprefix("kafka_2.13-")
        return None

    def ensure_jars(self) -> None:
        """Resolve the broker's jars from Maven Central once; later starts reuse the cache."""
        marker = self.libs / ".complete"
        if marker.exists():
            return
        if shutil.which("mvn") is None or shutil.which("java") is None:
            raise StackError("Kafka needs `java` (17+) and `mvn` on PATH; install openjdk-17 and maven")
        self.libs.mkdir(parents=True, exist_ok=True)
        log = self.settings.state_dir / "mvn.log"
        with log.open("w") as out:
            result = subprocess.run(
                ["mvn", "-B", "-q", "-f", str(KAFKA_POM), DEPENDENCY_PLUGIN,
                 "-DincludeScope=runtime", f"-DoutputDirectory={self.libs}"],
                stdout=out, stderr=subprocess.STDOUT, check=False,
            )
        if result.returncode != 0 or not any(self.libs.glob("kafka_2.13-*.jar")):
            raise StackError(f"resolving Kafka jars with mvn failed; see {log}:\n{_tail(log)}")
        marker.touch()

    def _write_config(self) -> Path:
        s = self.settings
        self.home.mkdir(parents=True, exist_ok=True)
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # Listeners, and with SASL the SCRAM/PLAIN sign-in and the ACL authorizer.
            **broker_properties(s),
            "controller.quorum.bootstrap.servers": f"{s.kafka_host}:{s.kafka_controller_port}",
            "log.dirs": str(self.data),
            "num.partitions": str(s.topic_partitions),
            # Topics are created explicitly by `schoolhealth topics create`.
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            # The default 50 partitions make the first group join slow on 2 cores.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": str(MESSAGE_MAX_BYTES),
        }
        config = self.home / "server.properties"
        config.touch()
        config.chmod(0o600)  # with SASL it holds the admin's password
        config.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        (self.home / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.file.type = File\n"
            "appender.file.name = FILE\n"
            f"appender.file.fileName = {self.log}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = info\n"
            "rootLogger.appenderRef.file.ref = FILE\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = info\n"
            "logger.state.name = state.change.logger\nlogger.state.level = warn\n"
        )
        return config

    def _java(self, *args: str) -> list[str]:
        heap = f"{self.settings.kafka_heap_mb}m"
        return [
            "java", f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile=file:{self.home / 'log4j2.properties'}",
            "-cp", f"{self.libs}/*", *args,
        ]

    def running(self) -> bool:
        return _pid_alive(self.pid_file) is not None

    def up(self, timeout: float = 90.0) -> None:
        s = self.settings
        if self.running() and _port_open(s.kafka_host, s.kafka_port):
            return
        if _port_open(s.kafka_host, s.kafka_port):
            raise StackError(f"port {s.kafka_port} is taken by another process; set SCHOOLHEALTH_KAFKA_PORT")
        self.ensure_jars()
        config = self._write_config()
        formatted_with = self.home / "security-protocol"
        if (self.data / "meta.properties").exists():
            previous = formatted_with.read_text().strip() if formatted_with.exists() else "PLAINTEXT"
            if s.kafka_sasl and previous == "PLAINTEXT":
                raise StackError(
                    f"Kafka's data in {self.data} was formatted without SASL users, so the admin could not sign in: "
                    "stop the stack and remove that folder, or use another SCHOOLHEALTH_STATE_DIR, to start with "
                    f"SCHOOLHEALTH_KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol}")
        else:
            self.data.mkdir(parents=True, exist_ok=True)
            # 16 random bytes, base64url without padding; must not start with '-'.
            cluster_id = "A" + base64.urlsafe_b64encode(secrets.token_bytes(16)).decode()[1:22]
            result = subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "--standalone",
                           "-t", cluster_id, "-c", str(config), *format_arguments(s)),
                capture_output=True, text=True, check=False,
            )
            if result.returncode != 0:
                raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
            formatted_with.write_text(s.kafka_security_protocol)
        self.log.unlink(missing_ok=True)
        with self.stdout_log.open("w") as out:
            process = subprocess.Popen(
                self._java("kafka.Kafka", str(config)),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        _STARTED[process.pid] = process
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(
                    f"Kafka exited with code {process.returncode}; see {self.log} and "
                    f"{self.stdout_log}:\n{_tail(self.stdout_log)}\n{_tail(self.log)}"
                )
            started = self.log.exists() and "Kafka Server started" in self.log.read_text(errors="replace")
            if started and _port_open(s.kafka_host, s.kafka_port):
                self._check_admin()
                return
            time.sleep(0.25)
        raise StackError(f"Kafka did not start within {timeout:.0f}s; see {self.log}:\n{_tail(self.log)}")

    def _check_admin(self) -> None:
        """The broker answers metadata requests and accepts topic creation."""
        from services.platform.kafka import KafkaAdmin, NewTopicSpec

        with KafkaAdmin(self.settings, request_timeout_ms=15000) as admin:
            admin.create_topics([NewTopicSpec(name="_schoolhealth_probe", partitions=1, configs={})])
            if "_schoolhealth_probe" not in admin.topics():
                raise StackError("Kafka answered but the probe topic was not created")

    def down(self, timeout: float = 60.0) -> None:
        pid = _pid_alive(self.pid_file)
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        # SIGTERM runs the broker's controlled shutdown; wait for the process to exit.
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(self.pid_file) is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        if _pid_alive(self.pid_file) is not None:
            os.kill(pid, signal.SIGKILL)
        started = _STARTED.pop(pid, None)
        if started is not None:
            started.wait(timeout=30)
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> ComponentStatus:
        s = self.settings
        pid = _pid_alive(self.pid_file)
        answering = _port_open(s.kafka_host, s.kafka_port)
        detail = f"Apache Kafka {self.version() or '?'} (KRaft) at {s.kafka_bootstrap}, {s.kafka_security_protocol}"
        if pid and answering:
            return ComponentStatus(name="kafka", running=True, detail=f"{detail}, pid {pid}")
        return ComponentStatus(name="kafka", running=False, detail=f"{detail}: not running; log {self.log}")


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def _postgres_bindir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return candidates[-1].parent if candidates else None


class Postgres:
    """A project-local PostgreSQL cluster on a loopback port, with the project's roles."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir / "pg"
        self.data = self.home / "data"
        self.log = self.home / "pg.log"
        self.superuser_password_file = self.home / "superuser-password"

    # Tools such as initdb refuse to run as root: run them as the `postgres` user then.
    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def ensure_binaries(self) -> Path:
        bindir = _postgres_bindir()
        if bindir is not None:
            return bindir
        if os.geteuid() != 0:
            raise StackError("PostgreSQL is not installed; run `sudo apt-get install -y postgresql`")
        log = self.settings.state_dir / "apt.log"
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
                if subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode:
                    raise StackError(f"`{' '.join(argv)}` failed; see {log}:\n{_tail(log)}")
        bindir = _postgres_bindir()
        if bindir is None:
            raise StackError(f"postgresql installed but no pg_ctl found; see {log}")
        return bindir

    def timescaledb_available(self, bindir: Path) -> bool:
        sharedir = subprocess.run(
            [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        return bool(sharedir) and Path(sharedir, "extension", "timescaledb.control").exists()

    def _superuser_dsn(self) -> str:
        s = self.settings
        password = self.superuser_password_file.read_text().strip()
        return f"host={s.pg_host} port={s.pg_port} dbname=postgres user=postgres password={password}"

    def _initdb(self, bindir: Path, timescaledb: bool) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        self.superuser_password_file.write_text(password)
        self.superuser_password_file.chmod(0o600)
        pwfile = self.home / ".initdb-pw"
        pwfile.write_text(password)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in (self.home, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        try:
            result = subprocess.run(
                self._as_owner([str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                                "--auth-local=peer", "--auth-host=scram-sha-256",
                                f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"]),
                capture_output=True, text=True, check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            raise StackError(f"initdb failed:\n{result.stdout}{result.stderr}")
        s = self.settings
        conf = [
            f"listen_addresses = '{s.pg_host}'",
            f"port = {s.pg_port}",
            f"unix_socket_directories = '{self.home}'",
            "max_connections = 200",
            "shared_buffers = 256MB",
            "wal_level = minimal",
            "max_wal_senders = 0",
            "max_wal_size = 2GB",
            "log_min_messages = warning",
            "log_statement = 'none'",
        ]
        if timescaledb:
            conf += ["shared_preload_libraries = 'timescaledb'", "timescaledb.telemetry_level = off"]
        with (self.data / "postgresql.conf").open("a") as out:
            out.write("\n# schoolhealth local stack\n" + "\n".join(conf) + "\n")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and _port_open(self.settings.pg_host, self.settings.pg_port)

    def _preloaded_libraries(self) -> list[str]:
        """shared_preload_libraries as the cluster's configuration files set it (the last setting wins)."""
        value = ""
        for name in ("postgresql.conf", "postgresql.auto.conf"):
            path = self.data / name
            if not path.exists():
                continue
            for match in re.finditer(r"^\s*shared_preload_libraries\s*=\s*'([^']*)'", path.read_text(), re.MULTILINE):
                value = match.group(1)
        return [library.strip() for library in value.split(",") if library.strip()]

    def _add_timescaledb_preload(self) -> None:
        libraries = [*self._preloaded_libraries(), "timescaledb"]
        with (self.data / "postgresql.conf").open("a") as out:
            out.write("\n# TimescaleDB installed after this cluster was created (schoolhealth stack up)\n"
                      f"shared_preload_libraries = '{','.join(libraries)}'\n"
                      "timescaledb.telemetry_level = off\n")

    def _pg_ctl(self, bindir: Path, action: str, timeout: float) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.home, owner.pw_uid, owner.pw_gid)
            if self.log.exists():
                os.chown(self.log, owner.pw_uid, owner.pw_gid)
        result = subprocess.run(
            self._as_owner([str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                            "-m", "fast", "-w", "-t", str(int(timeout)), action]),
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise StackError(f"PostgreSQL did not {action}; see {self.log}:\n{result.stderr}{_tail(self.log)}")

    def up(self, timeout: float = 60.0) -> None:
        bindir = self.ensure_binaries()
        timescaledb = self.timescaledb_available(bindir)
        if not (self.data / "PG_VERSION").exists():
            self._initdb(bindir, timescaledb)
        # TimescaleDB installed after the cluster was created: it must be preloaded, which takes a
        # restart; then the databases already migrated are converted (`archive.apply_timescaledb`).
        adopted = timescaledb and "timescaledb" not in self._preloaded_libraries()
        if adopted:
            self._add_timescaledb_preload()
        if not self.running():
            if _port_open(self.settings.pg_host, self.settings.pg_port):
                raise StackError(f"port {self.settings.pg_port} is taken; set SCHOOLHEALTH_PG_PORT")
            self._pg_ctl(bindir, "start", timeout)
        elif adopted:
            self._pg_ctl(bindir, "restart", timeout)
        try:
            bootstrap_database(self.settings, self._superuser_dsn(), timescaledb=timescaledb)
        except DatabaseSetupError as error:
            raise StackError(str(error)) from error
        if adopted:
            self._migrate_if_migrated()

    def _migrate_if_migrated(self) -> None:
        from services.platform.migrate import MigrationError, migrate

        with psycopg.connect(self.settings.pg_dsn("admin")) as conn:
            migrated = conn.execute("SELECT to_regclass('public.schema_migrations') IS NOT NULL").fetchone()
        if migrated and migrated[0]:
            try:
                migrate(self.settings)
            except MigrationError as error:
                raise StackError(f"TimescaleDB is now preloaded, but converting the archive failed: {error}; "
                                 "fix the cause and run `schoolhealth migrate`") from error

    def down(self) -> None:
        bindir = _postgres_bindir()
        if bindir is None or not (self.data / "postmaster.pid").exists():
            return
        result = subprocess.run(
            self._as_owner([str(bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0 and (self.data / "postmaster.pid").exists():
            raise StackError(f"stopping PostgreSQL failed; see {self.log}:\n{result.stderr}")

    def status(self) -> ComponentStatus:
        s = self.settings
        where = f"{s.pg_host}:{s.pg_port}/{s.pg_database}"
        if not self.running():
            return ComponentStatus(name="postgresql", running=False, detail=f"{where}: not running; log {self.log}")
        try:
            with psycopg.connect(s.pg_dsn("admin"), connect_timeout=5) as conn:
                version = conn.execute("SHOW server_version").fetchone()
                ts = conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
                ).fetchone()
                available = conn.execute(
                    "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
                ).fetchone()
        except psycopg.Error as error:
            return ComponentStatus(name="postgresql", running=False, detail=f"{where}: {error}")
        server = re.split(r"\s", str(version[0] if version else "?"))[0]
        if ts:
            timescale = f"TimescaleDB {ts[0]}: {self._timescaledb_features()}"
        elif available:
            timescale = "plain PostgreSQL schema (TimescaleDB available, not created in this database)"
        else:
            timescale = "plain PostgreSQL schema (TimescaleDB not installed)"
        return ComponentStatus(name="postgresql", running=True, detail=f"PostgreSQL {server} at {where}; {timescale}")

    def _timescaledb_features(self) -> str:
        """Which TimescaleDB features the project database uses, in one line."""
        try:
            with psycopg.connect(self.settings.pg_dsn("admin"), connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT current_setting('timescaledb.license', true),"
                    " (SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_schema = 'archive'),"
                    " (SELECT count(*) FROM timescaledb_information.hypertables"
                    "   WHERE hypertable_schema = 'archive' AND compression_enabled),"
                    " (SELECT count(*) FILTER (WHERE is_compressed) || '/' || count(*)"
                    "   FROM timescaledb_information.chunks WHERE hypertable_schema = 'archive'),"
                    " (SELECT count(*) FROM timescaledb_information.continuous_aggregates),"
                    " (SELECT count(*) FROM timescaledb_information.jobs WHERE job_id >= 1000)"
                ).fetchone()
        except psycopg.Error as error:
            return f"features unknown ({error})".strip()
        if row is None:
            return "features unknown"
        licence, hypertables, columnstore, chunks, aggregates, jobs = row
        if not hypertables:
            return f"{licence} licence, archive not converted yet (run `schoolhealth migrate`)"
        return (f"{licence} licence; {hypertables} hypertables ({columnstore} with columnstore, "
                f"chunks in columnstore {chunks}), {aggregates} continuous aggregates, {jobs} jobs")


class Stack:
    """Both components together, as `schoolhealth stack` drives them."""

    def __init__(self, settings: Settings) -> None:
        self.kafka = Kafka(settings)
        self.postgres = Postgres(settings)
        settings.state_dir.mkdir(parents=True, exist_ok=True)

    def up(self) -> None:
        self.postgres.up()
        self.kafka.up()

    def down(self) -> None:
        errors: list[str] = []
        for component in (self.kafka, self.postgres):
            try:
                component.down()
            except StackError as error:
                errors.append(str(error))
        if errors:
            raise StackError("\n".join(errors))

    def status(self) -> list[ComponentStatus]:
        return [self.kafka.status(), self.postgres.status()]
