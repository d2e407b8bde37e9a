"""The version tenure reports: `$TENURE_VERSION` overrides the installed package version."""

from __future__ import annotations

import os

from tenure.errors import ConfigError

# The single source of the package version (pyproject reads it from here).
__version__ = "0.1.0"
VERSION_ENV = "TENURE_VERSION"
MAX_VERSION_CHARS = 256  # the record codec's bound on every text field


def package_version() -> str:
    """The package's own version."""
    return __version__


def current_version() -> str:
    """The version this process reports everywhere (tests run several side by side)."""
    return os.environ.get(VERSION_ENV) or package_version()


def checked_version() -> str:
    """`current_version()`, refused when a record could not carry it (lease.md#record)."""
    version = current_version()
    if len(version) > MAX_VERSION_CHARS or not version.isprintable() or not version.strip():
        shown = version[:40] + ("…" if len(version) > 40 else "")
        raise ConfigError(
            f"{VERSION_ENV}={shown!r} is not a usable version: at most {MAX_VERSION_CHARS} "
            "printable characters"
        )
    return version
