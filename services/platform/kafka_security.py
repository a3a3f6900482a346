"""Kafka authentication and authorization: one SASL/SCRAM principal per service, ACLs per principal.

With `kafka_security_protocol` PLAINTEXT (the loopback stack's default) every client connects
anonymously and nothing here applies. With SASL the broker refuses anonymous clients, the
authorizer (KRaft's StandardAuthorizer, `allow.everyone.if.no.acl.found=false`) refuses whatever a
principal was not granted, and each process signs in as its service:

    admin     super user: topics, ACLs, SCRAM users, `audit delivery`, consumer lag
    worker    reads the input topics (its group), writes dead letters and alerts
    api       writes the input topics (screenings, surveys and uploads from the API and /web)
    importer  writes the input topics (`schoolhealth import`, `fitness import`: the operator's path)
    alerts    reads intervention alerts and, as the self-harm fast lane, psych-surveys (its group)

So only the pipeline (the worker and the alert service) reads `psych-surveys`; the API and the
importer can publish to it but not read back what anyone else submitted.

The admin's SCRAM credential is written when the storage is formatted (`--add-scram`), since
nobody could sign in to create it otherwise; the services' users and every ACL are created by
`schoolhealth topics create` (`services.platform.topics.apply_users_and_acls`, through the admin
adapter of `services.platform.kafka`), which signs in as the admin (idempotent: run it again after
changing a password). The controller listener uses SASL PLAIN with the admin's password (KRaft
controllers cannot use SCRAM, whose credentials live in the metadata they serve).

This module is the policy (who may do what, how each client signs in, the broker's properties);
it calls no Kafka client itself.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from models.topics import DEAD_LETTERS, INPUT_TOPICS, INTERVENTION_ALERTS, PSYCH_SURVEYS
from services.platform.settings import KafkaPrincipal, Settings

Library = Literal["kafka-python", "aiokafka"]
Operation = Literal["READ", "WRITE"]
Resource = Literal["TOPIC", "GROUP"]


def client_options(settings: Settings, principal: KafkaPrincipal, *,
                   library: Library = "kafka-python") -> dict[str, Any]:
    """Connection keyword arguments for a kafka-python or aiokafka client signing in as `principal`."""
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap,
                               "security_protocol": settings.kafka_security_protocol}
    if not settings.kafka_sasl:
        return options
    user, password = settings.kafka_credentials(principal)
    options |= {"sasl_mechanism": settings.kafka_sasl_mechanism, "sasl_plain_username": user,
                "sasl_plain_password": password}
    if settings.kafka_security_protocol == "SASL_SSL":
        if library == "aiokafka":
            options["ssl_context"] = ssl_context(settings)
        elif settings.kafka_ssl_cafile is not None:
            options["ssl_cafile"] = str(settings.kafka_ssl_cafile)
    return options


def faust_credentials(settings: Settings) -> Any:
    """The worker's SASL sign-in for faust (`faust.SASLCredentials`), or None with PLAINTEXT."""
    if not settings.kafka_sasl:
        return None
    import faust

    user, password = settings.kafka_credentials("worker")
    context = ssl_context(settings) if settings.kafka_security_protocol == "SASL_SSL" else None
    return faust.SASLCredentials(username=user, password=password, mechanism=settings.kafka_sasl_mechanism,
                                 ssl_context=context)


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A verifying TLS context for SASL_SSL (the configured CA, or the system's)."""
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile is not None else None
    return ssl.create_default_context(cafile=cafile)


def grants(settings: Settings) -> dict[KafkaPrincipal, list[tuple[Resource, str, Operation]]]:
    """What each service principal may do: (resource type TOPIC or GROUP, name, operation).

    The admin is a super user and needs none.
    """
    inputs = [settings.topic(name) for name in INPUT_TOPICS]
    return {
        "worker": [("TOPIC", topic, "READ") for topic in inputs]
        + [("TOPIC", settings.topic(DEAD_LETTERS), "WRITE"), ("TOPIC", settings.topic(INTERVENTION_ALERTS), "WRITE"),
           ("GROUP", settings.consumer_group, "READ")],
        "api": [("TOPIC", topic, "WRITE") for topic in inputs],
        "importer": [("TOPIC", topic, "WRITE") for topic in inputs],
        "alerts": [("TOPIC", settings.topic(INTERVENTION_ALERTS), "READ"),
                   ("TOPIC", settings.topic(PSYCH_SURVEYS), "READ"),
                   ("GROUP", settings.alerts_consumer_group, "READ")],
    }


class KafkaSecurityError(RuntimeError):
    """The broker refused to create a SCRAM user or an ACL; the message says which."""


def broker_properties(settings: Settings) -> dict[str, str]:
    """The broker's listener and authorizer properties for the local stack (and the compose script)."""
    s = settings
    listeners = {
        "listeners": f"PLAINTEXT://{s.kafka_host}:{s.kafka_port},CONTROLLER://{s.kafka_host}:{s.kafka_controller_port}",
        "advertised.listeners": f"PLAINTEXT://{s.kafka_host}:{s.kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    }
    if not s.kafka_sasl:
        return listeners
    if s.kafka_security_protocol != "SASL_PLAINTEXT":
        raise KafkaSecurityError("the local stack's broker offers SASL_PLAINTEXT on loopback only; SASL_SSL needs "
                                 "a broker with certificates (see docker-compose.yml and the README)")
    user, password = s.kafka_credentials("admin")
    mechanism = s.kafka_sasl_mechanism.lower()
    return {
        "listeners": f"CLIENTS://{s.kafka_host}:{s.kafka_port},CONTROLLER://{s.kafka_host}:{s.kafka_controller_port}",
        "advertised.listeners": f"CLIENTS://{s.kafka_host}:{s.kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "CLIENTS",
        "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,CLIENTS:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": s.kafka_sasl_mechanism,
        "sasl.mechanism.inter.broker.protocol": s.kafka_sasl_mechanism,
        f"listener.name.clients.{mechanism}.sasl.jaas.config":
            f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" '
            f'password="{password}";',
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config":
            f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{user}" '
            f'password="{password}" user_{user}="{password}";',
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{user}",
    }


def format_arguments(settings: Settings) -> list[str]:
    """`StorageTool format` arguments that write the admin's SCRAM credential (none without SASL)."""
    if not settings.kafka_sasl:
        return []
    user, password = settings.kafka_credentials("admin")
    if any(character in password for character in ',]"= '):
        raise KafkaSecurityError("SCHOOLHEALTH_KAFKA_ADMIN_PASSWORD must not contain , ] \" = or spaces "
                                 "(the storage tool's --add-scram syntax); e.g. secrets.token_urlsafe(32)")
    return ["--add-scram", f"{settings.kafka_sasl_mechanism}=[name={user},password={password}]"]
