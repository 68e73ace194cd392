"""Connect to Temporal the same way everywhere: pydantic data converter, TLS or API key from the configuration."""

from __future__ import annotations

import os

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter

from orchestrate.config import TemporalSettings


async def connect(settings: TemporalSettings) -> Client:
    """A client for ``settings`` (address, namespace, mTLS or Temporal Cloud API key)."""
    tls: TLSConfig | bool = False
    if settings.tls is not None:
        tls = TLSConfig(
            client_cert=settings.tls.client_cert.read_bytes(),
            client_private_key=settings.tls.client_key.read_bytes(),
            server_root_ca_cert=settings.tls.server_ca.read_bytes() if settings.tls.server_ca else None,
            domain=settings.tls.server_name,
        )
    api_key = settings.api_key or os.environ.get("TEMPORAL_API_KEY")
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        tls=tls or bool(api_key),
        api_key=api_key,
        data_converter=pydantic_data_converter,
    )
