"""docker-compose.yml cannot run here; check that it agrees with the repository."""

from __future__ import annotations

from typing import Any

import yaml

from tests.paths import ROOT


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose


def test_the_stack_services_are_there_with_pinned_images() -> None:
    services = _compose()["services"]
    assert {"kafka", "timescaledb", "grafana", "migrate", "worker", "alerts", "api"} <= set(services)
    for name, service in services.items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name} has neither image nor build"
            continue
        tag = image.rpartition(":")[2]
        assert ":" in image and tag not in ("", "latest"), f"{name}: image {image} is not pinned"
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb-ha:pg17")


def test_infrastructure_services_have_health_checks() -> None:
    services = _compose()["services"]
    for name in ("kafka", "timescaledb", "api", "grafana"):
        assert "test" in services[name]["healthcheck"], name


def test_mounted_paths_exist_in_the_repository() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    provisioning = ROOT / "dashboards" / "provisioning"
    assert (provisioning / "datasources").is_dir()
    assert (provisioning / "dashboards").is_dir()


def test_published_ports_bind_to_loopback_only() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


def test_app_services_run_commands_the_cli_has() -> None:
    from typer.main import get_command

    from services.cli import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    for name in ("migrate", "worker", "alerts", "api"):
        command = _compose()["services"][name]["command"][0]
        assert command in commands, f"{name} runs `schoolhealth {command}`, which does not exist"


def test_grafana_datasource_uses_the_read_only_role() -> None:
    datasource = yaml.safe_load(
        (ROOT / "dashboards/provisioning/datasources/schoolhealth.yaml").read_text()
    )["datasources"][0]
    assert datasource["user"] == "${SCHOOLHEALTH_PG_GRAFANA_USER}"
    assert datasource["jsonData"]["timescaledb"] is True


def test_kafka_signs_every_service_in_as_itself() -> None:
    """The broker runs with SASL/SCRAM and ACLs; each service holds its own Kafka password only."""
    services = _compose()["services"]
    assert services["kafka"]["command"][-1] == "/opt/schoolhealth/kafka-sasl-start.sh"
    script = "./services/devtools/stack_files/kafka-sasl-start.sh:"
    assert any(volume.startswith(script) for volume in services["kafka"]["volumes"])
    own = {"worker": "WORKER", "api": "API", "alerts": "ALERTS", "importer": "IMPORTER"}
    for name, principal in own.items():
        environment = services[name]["environment"]
        assert environment["SCHOOLHEALTH_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        passwords = {key for key in environment if key.startswith("SCHOOLHEALTH_KAFKA_") and key.endswith("_PASSWORD")}
        assert passwords == {f"SCHOOLHEALTH_KAFKA_{principal}_PASSWORD"}, name
        assert services[name]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    # The init step (topics, users, ACLs) signs in as the admin.
    assert services["kafka-init"]["command"] == ["topics", "create"]
    assert "SCHOOLHEALTH_KAFKA_ADMIN_PASSWORD" in services["kafka-init"]["environment"]


def test_the_compose_broker_is_configured_like_the_local_stacks_sasl_option() -> None:
    from services.platform.kafka_security import broker_properties
    from services.platform.settings import Settings

    script = (ROOT / "services/devtools/stack_files/kafka-sasl-start.sh").read_text()
    heredoc = script.split("<<EOF\n", 1)[1].split("\nEOF", 1)[0].replace("${mechanism_lower}", "scram-sha-512")
    written = dict(line.split("=", 1) for line in heredoc.splitlines())
    local = broker_properties(Settings(kafka_security_protocol="SASL_PLAINTEXT"))
    assert set(local) <= set(written)
    for key in ("authorizer.class.name", "allow.everyone.if.no.acl.found", "listener.security.protocol.map",
                "sasl.mechanism.controller.protocol", "controller.listener.names", "inter.broker.listener.name"):
        assert written[key] == local[key], key
    assert written["super.users"] == "User:${admin}"
    assert "--add-scram" in script
