"""Start-up refuses default secrets unless the stack is the local loopback one."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from pydantic import SecretStr

from services.platform.settings import KAFKA_PRINCIPALS, KafkaPrincipal, Settings, UnsafeSettings
from tests.paths import ROOT

CHOSEN: dict[str, Any] = {"pg_admin_password": "a" * 24, "pg_app_password": "b" * 24, "pg_grafana_password": "c" * 24,
          "student_key_secret": "d" * 40}
SASL: dict[str, Any] = {"kafka_security_protocol": "SASL_PLAINTEXT"}


def test_the_loopback_stack_keeps_its_defaults() -> None:
    assert Settings().student_key_secret.get_secret_value() == "local-synthetic-only-secret"


@pytest.mark.parametrize("name", sorted(CHOSEN))
def test_a_default_secret_is_refused_elsewhere(name: str) -> None:
    values: dict[str, Any] = {**CHOSEN, **SASL, name: Settings.model_fields[name].default}
    with pytest.raises(UnsafeSettings, match=f"SCHOOLHEALTH_{name.upper()} is a built-in default"):
        Settings(pg_host="db.internal", kafka_host="kafka.internal", **values)


def test_placeholders_and_short_key_secrets_are_refused() -> None:
    with pytest.raises(UnsafeSettings, match="SCHOOLHEALTH_PG_APP_PASSWORD"):
        Settings(pg_host="timescaledb", **{**CHOSEN, **SASL, "pg_app_password": "change-me"})
    with pytest.raises(UnsafeSettings, match="at least 32 characters"):
        Settings(api_host="10.0.0.5", **{**CHOSEN, **SASL, "student_key_secret": "short-secret"})
    assert Settings(pg_host="timescaledb", kafka_host="kafka", api_host="10.0.0.5", **CHOSEN, **SASL)


def test_kafka_without_sasl_is_refused_elsewhere() -> None:
    with pytest.raises(UnsafeSettings, match="SCHOOLHEALTH_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"):
        Settings(pg_host="timescaledb", kafka_host="kafka", **CHOSEN)


@pytest.mark.parametrize("principal", KAFKA_PRINCIPALS)
def test_a_kafka_principal_signs_in_only_with_a_chosen_password(principal: KafkaPrincipal) -> None:
    from services.platform.kafka_security import client_options

    # The loopback stack: the built-in passwords work, and PLAINTEXT needs none.
    assert "sasl_plain_password" not in client_options(Settings(), principal)
    local = client_options(Settings(**SASL), principal)
    assert local["sasl_plain_username"] == f"schoolhealth-{principal}"
    assert local["sasl_plain_password"] == f"kafka-{principal}-local-only"
    # Elsewhere a process refuses to sign in with a built-in, empty or placeholder password.
    remote = Settings(pg_host="timescaledb", kafka_host="kafka", **CHOSEN, **SASL)
    for password in (f"kafka-{principal}-local-only", "", "change-me-please"):
        chosen = remote.model_copy(update={f"kafka_{principal}_password": SecretStr(password)})
        with pytest.raises(UnsafeSettings, match=f"SCHOOLHEALTH_KAFKA_{principal.upper()}_PASSWORD"):
            client_options(chosen, principal)
    chosen = remote.model_copy(update={f"kafka_{principal}_password": SecretStr("p" * 30)})
    assert client_options(chosen, principal)["sasl_mechanism"] == "SCRAM-SHA-512"


def test_the_command_says_which_setting_in_one_sentence() -> None:
    env = {**os.environ, "SCHOOLHEALTH_PG_HOST": "timescaledb", "SCHOOLHEALTH_PG_ADMIN_PASSWORD": "x" * 30,
           "SCHOOLHEALTH_PG_APP_PASSWORD": "y" * 30, "SCHOOLHEALTH_PG_GRAFANA_PASSWORD": "z" * 30,
           "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("SCHOOLHEALTH_STUDENT_KEY_SECRET", None)
    done = subprocess.run([sys.executable, "-m", "services.cli", "api"], env=env, capture_output=True, text=True,
                          check=False, timeout=120, cwd=ROOT)
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2
    assert "SCHOOLHEALTH_STUDENT_KEY_SECRET is a built-in default" in said
    assert "Traceback" not in done.stdout + done.stderr


def test_compose_ships_no_working_default() -> None:
    values = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert values and all(value == "" for value in values.values())
    compose = (ROOT / "docker-compose.yml").read_text()
    for name in values:
        assert f"${{{name}:?" in compose or f"${{{name}}}" in compose
