"""``orchestrate serve``: the Alertmanager webhook receiver, in front of the same Temporal as the CLI."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from temporalio.client import Client

from orchestrate.alerts.intake import Decision, take
from orchestrate.alerts.operations import TemporalOperations
from orchestrate.alerts.payload import Notification
from orchestrate.alerts.server import DEFAULT_MAX_BODY, WEBHOOK_PATH, create_app
from orchestrate.commands.common import ConfigOption, config_or_exit
from orchestrate.config import OrchestratorConfig, TemporalSettings
from orchestrate.exit_codes import ExitCode
from orchestrate.output import console, fail
from orchestrate.temporal_client import connect

TOKEN_ENV = "ORCHESTRATE_WEBHOOK_TOKEN"
READY_TIMEOUT = timedelta(seconds=2)


class LazyClient:
    """A Temporal client connected on first use and again after a failed connection (Temporal may start later)."""

    def __init__(self, settings: TemporalSettings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        """The client (connecting if needed); raises what the connection raised."""
        async with self._lock:
            if self._client is None:
                self._client = await connect(self._settings)
            return self._client

    async def problem(self) -> str | None:
        """``None`` when Temporal answers a health check, otherwise why not."""
        try:
            client = await self.get()
            await client.service_client.check_health(timeout=READY_TIMEOUT)
        except Exception as error:
            return f"Temporal at {self._settings.address} does not answer: {error}"
        return None


def read_token(token_file: Path | None) -> str:
    """The bearer token from ``token_file`` (whitespace around it dropped), else ``$ORCHESTRATE_WEBHOOK_TOKEN``."""
    if token_file is not None:
        try:
            return token_file.read_text().strip()
        except OSError as error:
            fail(f"cannot read the token file {token_file}: {error.strerror}", ExitCode.BAD_INPUT)
    return os.environ.get(TOKEN_ENV, "").strip()


def serve(
    config_path: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9095,
    token_file: Annotated[
        Path | None,
        typer.Option(help=f"File holding the bearer token Alertmanager sends (default: ${TOKEN_ENV})."),
    ] = None,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body accepted (413 above).")] = DEFAULT_MAX_BODY,
    tls_cert: Annotated[Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's private key (PEM).")] = None,
    client_ca: Annotated[
        Path | None, typer.Option(help="Require client certificates signed by this CA (mTLS; needs --tls-cert).")
    ] = None,
) -> None:
    """Receive Alertmanager webhooks and start (or join) the failovers the configured alert rules name."""
    config = config_or_exit(config_path, as_json=False)
    token = read_token(token_file)
    if not token:
        fail(
            f"the webhook needs a bearer token: pass --token-file or set ${TOKEN_ENV}",
            ExitCode.BAD_INPUT,
            hint="Alertmanager sends it with http_config.authorization.credentials_file",
        )
    if (tls_cert is None) != (tls_key is None) or (client_ca is not None and tls_cert is None):
        fail("--tls-cert and --tls-key go together, and --client-ca needs both", ExitCode.BAD_INPUT)
    if not config.alerts.rules:
        console.print("serve: the configuration has no alerts.rules: every alert will be ignored", style="yellow")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scheme = "https" if tls_cert else "http"
    console.print(
        f"serve: {scheme}://{host}:{port}{WEBHOOK_PATH}; {len(config.alerts.rules)} alert rule(s); Temporal "
        f"{config.temporal.address} namespace {config.temporal.namespace}",
        highlight=False,
    )
    asyncio.run(_serve(config, token, host, port, max_body_bytes, tls_cert, tls_key, client_ca))


async def _serve(
    config: OrchestratorConfig,
    token: str,
    host: str,
    port: int,
    max_body: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    client_ca: Path | None,
) -> None:
    client = LazyClient(config.temporal)

    async def take_notification(notification: Notification) -> list[Decision]:
        return await take(notification, config.alerts, config, TemporalOperations(await client.get(), config))

    app = create_app(token=token, take=take_notification, ready=client.problem, max_body=max_body)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="info",
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
            ssl_ca_certs=str(client_ca) if client_ca else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
        )
    )
    await server.serve()
