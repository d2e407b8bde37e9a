"""The version tenure reports: `$TENURE_VERSION` overrides the installed package version."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version

VERSION_ENV = "TENURE_VERSION"


def package_version() -> str:
    """The installed distribution's version."""
    try:
        return _dist_version("tenure")
    except PackageNotFoundError:
        return "0.0.0"


def current_version() -> str:
    """The version this process reports everywhere (tests run several side by side)."""
    return os.environ.get(VERSION_ENV) or package_version()
