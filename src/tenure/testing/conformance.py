"""The conformance kit from pytest: `--tenure-conformance="CMD"`, or the `tenure_conformance`
fixture. Both run `tenure.conformance` (real processes, fresh private roots).

    pytest --tenure-conformance="./mydaemon --port {port}" --tenure-conformance-family=mine

adds one test per check (`tenure-conformance[takes_lease]`, …); in a test of one's own:

    def test_my_daemon_speaks_tenure(tenure_conformance):
        report = tenure_conformance(["./mydaemon", "--port", "{port}"], family="mine")
        assert report.passed, report.explain()
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence

import pytest

from tenure.core.hints import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from tenure.conformance import Options, Report

# The kit loads only when a run asks for it: a project's pytest that never uses it pays nothing.
_REPORT: pytest.StashKey[Report] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    """The kit's command-line options."""
    group = parser.getgroup("tenure", "tenure conformance kit")
    group.addoption(
        "--tenure-conformance",
        metavar="CMD",
        default=None,
        help="check that the daemon command CMD speaks the tenure/1 protocol",
    )
    group.addoption("--tenure-conformance-family", metavar="NAME", default="conformance")
    group.addoption("--tenure-conformance-version", metavar="V", default=None)
    group.addoption("--tenure-conformance-ports", metavar="LO-HI", default=None)


def options_from(config: pytest.Config) -> Options:
    """The kit's options as given on the command line."""
    from tenure.adapters.config import parse_port_range  # noqa: PLC0415
    from tenure.conformance import Options  # noqa: PLC0415

    ports = config.getoption("--tenure-conformance-ports")
    return Options(
        family=config.getoption("--tenure-conformance-family"),
        version=config.getoption("--tenure-conformance-version"),
        ports=parse_port_range(ports, "--tenure-conformance-ports") if ports else None,
    )


class ConformanceItem(pytest.Item):
    """One check of the conformance report (the report is made once, by the first item run)."""

    def runtest(self) -> None:
        """Fail with the check's own words."""
        from tenure.conformance import run_conformance  # noqa: PLC0415

        config = self.config
        if _REPORT not in config.stash:
            command = shlex.split(config.getoption("--tenure-conformance"))
            config.stash[_REPORT] = run_conformance(command, options_from(config))
        check = config.stash[_REPORT].check(self.name.partition("[")[2].rstrip("]"))
        if not check.passed:
            pytest.fail(f"{check.name}: {check.detail}", pytrace=False)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        """How pytest names the check in its report."""
        return self.path, None, self.name


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """With `--tenure-conformance`, one item per check after the collected tests."""
    if config.getoption("--tenure-conformance", default=None):
        from tenure.conformance import CHECKS  # noqa: PLC0415

        items.extend(
            ConformanceItem.from_parent(session, name=f"tenure-conformance[{name}]")
            for name in CHECKS
        )


@pytest.fixture
def tenure_conformance() -> Callable[..., Report]:
    """`tenure_conformance(command, family=..., version=..., ports=(lo, hi), env={...})`: run
    the kit against `command` and return its `Report` (assert `report.passed`)."""

    def run(command: Sequence[str], **options: Any) -> Report:
        from tenure.conformance import Options, run_conformance  # noqa: PLC0415

        return run_conformance(command, Options(**options))

    return run
