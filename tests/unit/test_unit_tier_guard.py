"""The unit tier's guard (tests/unit/conftest.py) refuses network connections and child
processes, naming the test that tried."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.unit.conftest import ServiceUsedInUnitTest, _services_refused


class _UnitTest:
    nodeid = "tests/unit/test_example.py::test_example"

    def get_closest_marker(self, name: str) -> object:
        return pytest.mark.unit if name == "unit" else None


def test_a_connection_or_a_process_fails_naming_the_test() -> None:
    with _services_refused(_UnitTest()):  # type: ignore[arg-type]
        with (
            socket.socket() as sock,
            pytest.raises(ServiceUsedInUnitTest, match=r"test_example: connect to \('127.0.0.1'"),
        ):
            sock.connect(("127.0.0.1", 6379))
        with pytest.raises(ServiceUsedInUnitTest, match="test_example: started"):
            subprocess.run([sys.executable, "-c", "pass"], check=True)


@pytest.fixture(scope="module")
def started_in_a_module_fixture() -> str:
    try:
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    except ServiceUsedInUnitTest as refused:
        return str(refused)
    return "started"


def test_a_module_fixture_is_held_to_the_rule_too(started_in_a_module_fixture: str) -> None:
    assert "test_a_module_fixture_is_held_to_the_rule_too: started" in started_in_a_module_fixture
