"""Construction of Kubernetes API clients: one ``ApiClient`` per cluster, never the process-global default."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, config

from clusters.errors import KubeconfigError

CONNECTIONS_PER_CLUSTER = 256
"""Connections kept open per cluster (the client's default is 5 per CPU)."""


def new_api_client(kubeconfig: Path, context: str) -> client.ApiClient:
    """A client for ``context`` of ``kubeconfig``; the caller closes it.

    Args:
        kubeconfig: path of the kubeconfig file.
        context: the context naming the cluster and credentials.

    Raises:
        KubeconfigError: the file is missing or unreadable, malformed, or has no such context.
    """
    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), context=context, client_configuration=configuration, persist_config=False
        )
    except (config.ConfigException, yaml.YAMLError, OSError, ValueError, TypeError, AttributeError) as error:
        raise KubeconfigError(f"kubeconfig {kubeconfig}: {_kubeconfig_problem(kubeconfig, context, error)}") from None
    # One quick retry of a refused connection, not urllib3's default three: a dead cluster must cost seconds.
    configuration.retries = 1
    # Waits hold a watch open each: keep enough connections for the worker's concurrent activities.
    configuration.connection_pool_maxsize = CONNECTIONS_PER_CLUSTER
    return api_client_for(configuration)


def _kubeconfig_problem(kubeconfig: Path, context: str, error: Exception) -> str:
    """Why ``context`` of ``kubeconfig`` cannot be loaded, naming the contexts the file has when that is why."""
    if not kubeconfig.is_file():
        return "cannot be read (no such file)"
    if isinstance(error, OSError):
        return f"cannot be read ({error.strerror or error})"
    try:
        contexts, _ = config.list_kube_config_contexts(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    except Exception:  # the file itself is malformed: the loader's message says how
        return f"not a usable kubeconfig ({error})"
    names = sorted(str(c.get("name")) for c in contexts or [])
    if context not in names:
        return f"has no context {context!r} (its contexts: {', '.join(names) or 'none'}); set the cluster's `context`"
    return f"context {context!r} cannot be used ({error})"


def api_client_for(configuration: client.Configuration) -> client.ApiClient:
    """An ``ApiClient`` for ``configuration`` whose HTTPS connections share one TLS context.

    The client's own pool gives urllib3 file names (CA, certificate, key), which it loads again for every new
    connection; a waiting step opens a watch connection, so that cost would be paid many times per failover.
    Here the files are loaded once into one ``ssl.SSLContext`` with the same verification.
    """
    api_client = client.ApiClient(configuration)
    if not str(configuration.host).startswith("https") or configuration.proxy:
        return api_client
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert, cadata=configuration.ca_cert_data)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    pool_args: dict[str, Any] = {"ssl_context": context, "cert_reqs": context.verify_mode}
    if configuration.assert_hostname is not None:
        pool_args["assert_hostname"] = configuration.assert_hostname
    if configuration.retries is not None:
        pool_args["retries"] = configuration.retries
    if configuration.tls_server_name:
        pool_args["server_hostname"] = configuration.tls_server_name
    if configuration.connection_pool_maxsize is not None:
        pool_args["maxsize"] = configuration.connection_pool_maxsize
    rest = api_client.rest_client
    rest.pool_manager.clear()
    rest.pool_manager = urllib3.PoolManager(**pool_args)
    return api_client


def close_api_client(api_client: client.ApiClient) -> None:
    """Close ``api_client``'s connection pool (the client's own ``close`` is untyped)."""
    api_client.close()  # type: ignore[no-untyped-call]


@contextmanager
def open_api_client(kubeconfig: Path, context: str) -> Iterator[client.ApiClient]:
    """A client for ``context`` of ``kubeconfig``, closed on exit."""
    api_client = new_api_client(kubeconfig, context)
    try:
        yield api_client
    finally:
        close_api_client(api_client)
