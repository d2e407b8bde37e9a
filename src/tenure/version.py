"""The version tenure reports: `$TENURE_VERSION` overrides the installed package version."""

from __future__ import annotations

import os

from tenure.core.inputs import check_version

# The single source of the package version (pyproject reads it from here).
__version__ = "0.1.0"
VERSION_ENV = "TENURE_VERSION"


def package_version() -> str:
    """The package's own version."""
    return __version__


def current_version() -> str:
    """The version this process reports everywhere (tests run several side by side)."""
    return os.environ.get(VERSION_ENV) or package_version()


def checked_version() -> str:
    """`current_version()`, refused when a record could not carry it (lease.md#record)."""
    return check_version(current_version(), VERSION_ENV)
