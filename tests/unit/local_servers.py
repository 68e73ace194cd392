"""Real endpoints on 127.0.0.1 for the ClusterApi and reachability tests.

An HTTP(S) server in a thread that answers every request with a canned status and body, a listening socket that
accepts connections but never answers (read timeout), a closed port (connection refused), a self-signed
certificate made with ``cryptography``, and a :class:`ClusterApi` built against any of them the way
``clusters.kubeclient`` builds clients (one ``ApiClient`` per cluster, one urllib3 retry).
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from clusters.api import ClusterApi
from clusters.kubeclient import api_client_for, close_api_client

VERSION_BODY = b'{"major": "1", "minor": "31", "gitVersion": "v1.31.0"}'
PROXY_502 = b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"


@dataclass
class Answer:
    """What the server answers to every request (tests may change it while the server runs)."""

    status: int = 200
    body: bytes = VERSION_BODY
    content_type: str = "application/json"
    paths: list[str] = field(default_factory=list)


@dataclass
class Server:
    """A running server: its URL and the answer it gives."""

    url: str
    answer: Answer


def _handler(answer: Answer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer.paths.append(self.path)
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def do_POST(self) -> None:
            self.do_GET()

        def do_PUT(self) -> None:
            self.do_GET()

        def do_PATCH(self) -> None:
            self.do_GET()

        def do_DELETE(self) -> None:
            self.do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def http_server(answer: Answer | None = None, *, port: int = 0, tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    """An HTTP server (HTTPS with ``tls``) on 127.0.0.1 giving ``answer`` to every request."""
    answer = answer or Answer()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(answer))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    try:
        yield Server(url=f"{scheme}://127.0.0.1:{server.server_address[1]}", answer=answer)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def silent_server() -> Iterator[str]:
    """A URL whose port accepts TCP connections (the kernel's backlog) but never answers a request."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def server_tls(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server-side TLS context presenting ``cert_file``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@contextmanager
def cluster_api(
    url: str, *, ca_file: Path | None = None, cluster: str = "dc1", retries: int | bool = 1
) -> Iterator[ClusterApi]:
    """A ClusterApi for ``url``, configured like ``clusters.kubeclient.new_api_client`` (one urllib3 retry).

    ``retries=False`` makes urllib3 raise the first failure itself instead of a ``MaxRetryError`` (and the
    kubernetes REST layer turn a TLS failure into ``ApiException(status=0)``).
    """
    configuration = client.Configuration()
    configuration.host = url
    configuration.proxy = None  # a proxy from the environment must not stand between the test and 127.0.0.1
    configuration.retries = retries
    configuration.verify_ssl = True
    if ca_file is not None:
        configuration.ssl_ca_cert = str(ca_file)
    api_client = api_client_for(configuration)
    try:
        yield ClusterApi(cluster, api_client)
    finally:
        close_api_client(api_client)
