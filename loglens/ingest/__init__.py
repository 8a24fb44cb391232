"""Receivers: one module per wire format, each turning its bytes into raw items for the pipeline.

A receiver acknowledges only what the pipeline has committed. HTTP receivers are routers mounted
on the API's port; socket and consumer receivers are started here from the settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fastapi import APIRouter

    from loglens.config import Settings
    from loglens.pipeline import Pipeline


class Receiver(Protocol):
    def close(self) -> None: ...


def http_routers(settings: Settings) -> list[APIRouter]:
    """Routers of the receivers that share the HTTP port (Elasticsearch bulk, Loki push, OTLP)."""
    routers: list[APIRouter] = []
    if settings.elastic:
        from loglens.ingest.elastic import router as elastic

        routers.append(elastic)
    if settings.loki:
        from loglens.ingest.loki import router as loki

        routers.append(loki)
    if settings.otlp:
        from loglens.ingest.otlp import router as otlp

        routers.append(otlp)
    return routers


def start_receivers(settings: Settings, pipeline: Pipeline) -> list[Receiver]:
    """Start the socket and consumer receivers the settings enable; close them on shutdown."""
    receivers: list[Receiver] = []
    if settings.syslog_port:
        from loglens.ingest.syslog import start as start_syslog

        receivers.append(start_syslog(settings, pipeline))
    if settings.forward_port:
        from loglens.ingest.forward import start as start_forward

        receivers.append(start_forward(settings, pipeline))
    if settings.kafka_brokers:
        from loglens.ingest.kafka import start as start_kafka

        receivers.append(start_kafka(settings, pipeline))
    if settings.config:
        from loglens.ingest.files import start as start_files

        receivers.append(start_files(settings, pipeline))
    return receivers
