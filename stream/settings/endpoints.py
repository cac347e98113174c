"""The HTTP endpoints' settings: where they listen, and what a client may cost them."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, Field, field_validator

DEFAULT_METRICS_PORT = 9464


class Endpoints(BaseModel):
    """Port, address and bounds of the metrics and probe endpoints."""

    metrics_port: int = Field(
        DEFAULT_METRICS_PORT, ge=0, le=65535, description="Prometheus metrics port (0: off)."
    )
    metrics_host: str = Field(
        "0.0.0.0",
        description="Address the HTTP endpoints (metrics, probes; the supervisor's and lag --serve's too) "
        "listen on: 0.0.0.0 every IPv4 interface (probes and scrapers in a pod), 127.0.0.1 this host only, "
        ":: every interface.",
    )
    metrics_max_connections: int = Field(
        32,
        ge=1,
        le=10_000,
        description="Connections the HTTP endpoints hold at once; a new one beyond takes the place of the "
        "one waiting longest for its request.",
    )
    metrics_read_timeout_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Seconds a client of the HTTP endpoints has to send its request, and again to take the "
        "answer, before it is dropped.",
    )

    @field_validator("metrics_host")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP address: use 0.0.0.0 (every interface), 127.0.0.1 (this host "
                "only), :: or an address of this host"
            ) from None
        return value
