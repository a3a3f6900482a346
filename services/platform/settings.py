"""One settings object per process, read from `SCHOOLHEALTH_*` variables.

Built in the entry point (`services.cli`) and passed explicitly; nothing reads the environment or
connects anywhere at import time.
"""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
# The built-in values of the secret settings: fine on the local loopback stack, refused elsewhere.
_LOCAL_DEFAULTS = {
    "pg_admin_password": "owner-local-only",
    "pg_app_password": "app-local-only",
    "pg_grafana_password": "grafana-local-only",
    "student_key_secret": "local-synthetic-only-secret",
}
# Kafka's principals, one per service (services.platform.kafka_security grants each only what it needs), and
# their built-in passwords: the loopback stack only, refused elsewhere when the principal is used.
KafkaPrincipal = Literal["admin", "worker", "api", "alerts", "importer"]
KAFKA_PRINCIPALS: tuple[KafkaPrincipal, ...] = ("admin", "worker", "api", "alerts", "importer")
_KAFKA_LOCAL_DEFAULTS = {principal: f"kafka-{principal}-local-only" for principal in KAFKA_PRINCIPALS}
_MIN_STUDENT_KEY_SECRET = 32


class UnsafeSettings(RuntimeError):
    """Start-up refused: a secret setting keeps a default or placeholder outside the loopback stack."""


class Settings(BaseSettings):
    """Every knob of schoolhealth. `schoolhealth stack env` prints them for a shell."""

    model_config = SettingsConfigDict(env_prefix="SCHOOLHEALTH_", extra="ignore")

    # Where the local stack keeps jars, data directories and logs (git-ignored).
    state_dir: Path = PROJECT_ROOT / ".stack"

    kafka_host: str = "127.0.0.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap_mb: int = 512
    # PLAINTEXT is for the loopback stack only; elsewhere SASL (SCRAM) is required, each service
    # signing in as its own principal (`kafka_<principal>_user` / `_password`) with ACLs per principal.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    # SASL_SSL: the CA that signed the broker's certificate (the system's CAs when unset).
    kafka_ssl_cafile: Path | None = None
    kafka_admin_user: str = "schoolhealth-admin"
    kafka_admin_password: SecretStr = SecretStr(_KAFKA_LOCAL_DEFAULTS["admin"])
    kafka_worker_user: str = "schoolhealth-worker"
    kafka_worker_password: SecretStr = SecretStr(_KAFKA_LOCAL_DEFAULTS["worker"])
    kafka_api_user: str = "schoolhealth-api"
    kafka_api_password: SecretStr = SecretStr(_KAFKA_LOCAL_DEFAULTS["api"])
    kafka_alerts_user: str = "schoolhealth-alerts"
    kafka_alerts_password: SecretStr = SecretStr(_KAFKA_LOCAL_DEFAULTS["alerts"])
    kafka_importer_user: str = "schoolhealth-importer"
    kafka_importer_password: SecretStr = SecretStr(_KAFKA_LOCAL_DEFAULTS["importer"])

    pg_host: str = "127.0.0.1"
    pg_port: int = 15432
    pg_database: str = "schoolhealth"
    # The migration owner; the worker and the API connect as less privileged roles.
    pg_admin_user: str = "schoolhealth_owner"
    pg_admin_password: SecretStr = SecretStr("owner-local-only")
    pg_app_user: str = "schoolhealth_app"
    pg_app_password: SecretStr = SecretStr("app-local-only")
    pg_grafana_user: str = "schoolhealth_grafana"
    pg_grafana_password: SecretStr = SecretStr("grafana-local-only")

    # HMAC secret for student keys. The default is for the local synthetic stack only.
    student_key_secret: SecretStr = SecretStr("local-synthetic-only-secret")

    topic_partitions: int = Field(default=4, ge=1)
    # Prepended to every topic name and the consumer group (tests use it to stay apart).
    topic_prefix: str = ""
    # Kafka messages per micro-batch at most (its offsets are committed together). Envelopes of 500
    # events end a batch by bytes first (about 38 of them in 8 MiB); single-event messages (API, web,
    # devices) by this count or by time: 40 of them per transaction, as before, gave 1.9k events/s,
    # 1,000 gave 6.2k (`bench pipeline`, single-event path).
    worker_batch_size: int = Field(default=1000, ge=1)
    # The worker's memory bound: a micro-batch is made durable in parts of at most this many events
    # (plus one message: an envelope holds up to 5,000) and this many message bytes (plus one message).
    worker_batch_events: int = Field(default=20_000, ge=1)
    worker_batch_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    worker_batch_seconds: float = Field(default=0.2, gt=0)
    # The worker's asyncio event loop: uvloop (faust's documented option) took 8 % of the workers'
    # CPU per event off and gave 4.7 % more events/s end to end (`bench pipeline`, five runs a side,
    # bench/README.md, 4 December); `asyncio` is the standard library's, where uvloop cannot run.
    worker_event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # How often the worker's leader scores current students with the active screening models.
    scoring_interval_seconds: float = Field(default=300.0, gt=0)
    # How often a stream worker refreshes the metric rollups and live indicators (0: only by command).
    metrics_refresh_seconds: float = Field(default=900.0, ge=0)

    api_host: str = "127.0.0.1"
    api_port: int = 18080
    # The time zone in which people read times on pages, letters and reports (IANA name).
    school_timezone: str = "Asia/Shanghai"

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        """Outside the local loopback stack, every secret must be chosen (not a default or placeholder).

        A default student-key secret lets anyone who has a student key try the (enumerable) national
        numbers and recover whose it is; default passwords open the database.
        """
        if self.on_loopback:
            return self
        for name, default in _LOCAL_DEFAULTS.items():
            value: SecretStr = getattr(self, name)
            text = value.get_secret_value()
            if text == default or not text or "change-me" in text.lower():
                raise UnsafeSettings(
                    f"SCHOOLHEALTH_{name.upper()} is a built-in default or placeholder, which only the local "
                    f"loopback stack may use (this one connects to {self.pg_host} / {self.kafka_host}): "
                    "set it to a secret of your own, e.g. python3 -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))'.")
        if len(self.student_key_secret.get_secret_value()) < _MIN_STUDENT_KEY_SECRET:
            raise UnsafeSettings(
                f"SCHOOLHEALTH_STUDENT_KEY_SECRET must be at least {_MIN_STUDENT_KEY_SECRET} characters outside "
                "the local loopback stack (student keys would be guessable otherwise).")
        if self.kafka_security_protocol == "PLAINTEXT":
            raise UnsafeSettings(
                f"SCHOOLHEALTH_KAFKA_SECURITY_PROTOCOL is PLAINTEXT, which only the local loopback stack may use "
                f"(this one connects to Kafka at {self.kafka_host}): set it to SASL_PLAINTEXT or SASL_SSL and give "
                "each service its SCHOOLHEALTH_KAFKA_<SERVICE>_PASSWORD.")
        return self

    @property
    def on_loopback(self) -> bool:
        """PostgreSQL, Kafka and the API all on the loopback interface: the local stack."""
        return {self.pg_host, self.kafka_host, self.api_host} <= _LOOPBACK

    @property
    def kafka_sasl(self) -> bool:
        return self.kafka_security_protocol != "PLAINTEXT"

    def kafka_credentials(self, principal: KafkaPrincipal) -> tuple[str, str]:
        """(user, password) of one Kafka principal; outside the loopback stack a built-in, empty or
        placeholder password is refused here, when a process is about to sign in with it."""
        user: str = getattr(self, f"kafka_{principal}_user")
        password: str = getattr(self, f"kafka_{principal}_password").get_secret_value()
        if not self.on_loopback and (password == _KAFKA_LOCAL_DEFAULTS[principal] or not password
                                     or "change-me" in password.lower()):
            raise UnsafeSettings(
                f"SCHOOLHEALTH_KAFKA_{principal.upper()}_PASSWORD is a built-in default, empty or a placeholder, "
                f"which only the local loopback stack may use (this process signs in to Kafka at {self.kafka_host} "
                f"as {user}): set it to the password of that Kafka user.")
        return user, password

    @field_validator("school_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Asia/Shanghai") from None
        return value

    @property
    def zone(self) -> tzinfo:
        """``school_timezone`` as a tzinfo."""
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.school_timezone)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def consumer_group(self) -> str:
        return f"{self.topic_prefix}schoolhealth-worker"

    @property
    def alerts_consumer_group(self) -> str:
        """The alert service's consumer group (its Kafka ACLs name it too)."""
        return f"{self.topic_prefix}schoolhealth-alerts"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    def pg_dsn(self, role: str = "app") -> str:
        """A libpq connection string for one of the project's roles: admin, app or grafana."""
        user, password = {
            "admin": (self.pg_admin_user, self.pg_admin_password),
            "app": (self.pg_app_user, self.pg_app_password),
            "grafana": (self.pg_grafana_user, self.pg_grafana_password),
        }[role]
        return (
            f"host={self.pg_host} port={self.pg_port} dbname={self.pg_database} "
            f"user={user} password={password.get_secret_value()}"
        )

    def as_environment(self) -> dict[str, str]:
        """The settings as `SCHOOLHEALTH_*` variables, secrets included (for a local shell)."""
        result: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:  # unset optional settings stay unset
                continue
            text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            result[f"SCHOOLHEALTH_{name.upper()}"] = text
        return result
