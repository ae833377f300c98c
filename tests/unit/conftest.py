"""The unit tier needs no services: a test here that opens a network connection or starts a
process fails at once, naming what it tried, instead of passing slowly on a developer's machine
that happens to run Redis.

The guard wraps every phase of a test, so a module or session fixture set up for it is held to
the same rule as the test itself."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

NETWORK_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class ServiceUsedInUnitTest(RuntimeError):
    """A unit test reached for a network service or a child process."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _services_refused(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _services_refused(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    with _services_refused(item):
        return (yield)


@contextmanager
def _services_refused(item: pytest.Item) -> Iterator[None]:
    # The PostgreSQL variant of a unit test is marked integration and may reach its server.
    if item.get_closest_marker("unit") is None:
        yield
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    where = item.nodeid

    def refuse_network(sock: socket.socket, address: Any) -> None:
        raise ServiceUsedInUnitTest(
            f"{where}: connect to {address!r}; unit tests use no network (move it to integration)"
        )

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family in NETWORK_FAMILIES:
            refuse_network(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if sock.family in NETWORK_FAMILIES:
            refuse_network(sock, address)
        return real_connect_ex(sock, address)

    def refuse_process(self: subprocess.Popen[Any], args: Any, *more: Any, **options: Any) -> None:
        raise ServiceUsedInUnitTest(
            f"{where}: started {args!r}; unit tests start no processes (move it to integration)"
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        patch.setattr(subprocess.Popen, "__init__", refuse_process)
        yield
