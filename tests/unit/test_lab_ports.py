"""The lab's port picking: ports outside the kernel's ephemeral range, free now, never handed out twice."""

from __future__ import annotations

import socket

import pytest

from sandbox import processes


def test_lab_ports_lie_outside_the_range_outgoing_connections_use() -> None:
    low, high = processes._ephemeral_range()
    ports = [processes.free_port() for _ in range(200)]
    assert all(not low <= port <= high for port in ports)
    assert len(set(ports)) == len(ports)


def test_a_port_something_listens_on_or_already_handed_out_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", processes.free_port()))
        listener.listen()
        busy = int(listener.getsockname()[1])
        handed_out = processes.free_port()
        fresh = processes.free_port()
        processes._handed_out.discard(fresh)
        offered = iter([busy, handed_out, fresh])
        monkeypatch.setattr("sandbox.processes.random.choice", lambda _candidates: next(offered))
        taken: set[int] = set()
        assert processes.free_port(taken) == fresh
    assert taken == {fresh}
