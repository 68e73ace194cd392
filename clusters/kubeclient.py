"""Construction of Kubernetes API clients: one ``ApiClient`` per cluster, never the process-global default."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubernetes import client, config

CONNECTIONS_PER_CLUSTER = 256
"""Connections kept open per cluster (the client's default is 5 per CPU)."""


def new_api_client(kubeconfig: Path, context: str) -> client.ApiClient:
    """A client for ``context`` of ``kubeconfig``; the caller closes it.

    Args:
        kubeconfig: path of the kubeconfig file.
        context: the context naming the cluster and credentials.
    """
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), context=context, client_configuration=configuration, persist_config=False
    )
    # One quick retry of a refused connection, not urllib3's default three: a dead cluster must cost seconds.
    configuration.retries = 1
    # Waits hold a watch open each: keep enough connections for the worker's concurrent activities.
    configuration.connection_pool_maxsize = CONNECTIONS_PER_CLUSTER
    return client.ApiClient(configuration)


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
