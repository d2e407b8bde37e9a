"""The one codec for names, versions and port ranges that come from outside (pure).

Every entry point — library, CLI, environment, record read — runs its input through here, so
what tenure accepts is exactly what `tenure ls` and the doctor can list, and no name can
address a path outside `leases/`. spec: docs/protocol/root.md#family-names
"""

from __future__ import annotations

import re

from tenure.errors import ConfigError

FAMILY_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
_FAMILY = re.compile(FAMILY_PATTERN)
MAX_VERSION_CHARS = 256  # the record codec's bound on every text field (lease.md#record)
MAX_RANGE_PORTS = 1024  # widest port range a family may have (root.md#family-names)
# The signals a stop policy may name (control.md#stop-policy): each asks a process to leave.
STOP_SIGNAL_NAMES = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
MAX_STOP_GRACE_S = 3600.0


def _shown(text: str) -> str:
    return repr(text[:40] + ("…" if len(text) > 40 else ""))


def is_family_name(name: str) -> bool:
    """Whether `name` is a family name tenure accepts (and lists)."""
    return _FAMILY.fullmatch(name) is not None


# A lease's key in file names (root.md#layout): the family, or for a scoped lease the family
# and its scope's digest — never path text, and never a name a family could have.
_KEY = re.compile(rf"({FAMILY_PATTERN})(?:\.([0-9a-f]{{16}}))?")


def split_key(name: str) -> tuple[str, str | None] | None:
    """(family, scope digest or None) of a lease key, or None when `name` is not one."""
    found = _KEY.fullmatch(name)
    return None if found is None else (found.group(1), found.group(2))


def lease_key(family: str, digest: str | None) -> str:
    """The key of `family`'s lease in the scope with `digest` (None: the user scope)."""
    key = family if digest is None else f"{family}.{digest}"
    return check_key(key)


def check_key(key: str) -> str:
    """`key` when it is a lease key, else `ConfigError` naming its family part."""
    if not isinstance(key, str) or split_key(key) is None:
        check_family(key.split(".", 1)[0] if isinstance(key, str) else key)
        raise ConfigError(f"lease key {_shown(key)} is not a family and a scope digest")
    return key


def check_family(name: str, what: str = "family") -> str:
    """`name` when it is a family name, else `ConfigError` in one line."""
    if not isinstance(name, str) or not is_family_name(name):
        shown = _shown(name) if isinstance(name, str) else type(name).__name__
        raise ConfigError(
            f"{what} {shown} is not a family name: 1 to 64 of a-z, 0-9, '-' and '_', "
            "starting with a letter or digit"
        )
    return name


# PEP 440's public and local version grammar, as the PEP states it (case-insensitive; the
# separators and spellings it normalises are accepted): epoch, release, pre, post, dev, local.
_PEP440 = re.compile(
    r"v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*"
    r"(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?"
    r"(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?"
    r"(?:[-_.]?dev[-_.]?[0-9]*)?"
    r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?",
    re.IGNORECASE,
)


def is_pep440(text: str) -> bool:
    """Whether `text` is a PEP 440 version (the one grammar every entry point accepts)."""
    return _PEP440.fullmatch(text) is not None


def check_version(text: str, what: str = "version") -> str:
    """`text` when it is a PEP 440 version a lease record can carry (at most 256 characters):
    one grammar at every door, so any two versions tenure accepts can be compared."""
    if not isinstance(text, str) or len(text) > MAX_VERSION_CHARS or not is_pep440(text):
        shown = _shown(text) if isinstance(text, str) else type(text).__name__
        raise ConfigError(
            f"{what}={shown} is not a PEP 440 version (such as 1.4, 2.0.1rc1, 2024.6.1, "
            f"1.0+local.2), at most {MAX_VERSION_CHARS} characters"
        )
    return text


def check_ports(lo: int, hi: int, what: str = "ports") -> tuple[int, int]:
    """An inclusive port range within 1..65535 and at most `MAX_RANGE_PORTS` wide."""
    if not 1 <= lo <= hi <= 65535:
        raise ConfigError(f"{what}={lo}-{hi} is out of range: LO-HI within 1..65535")
    if hi - lo + 1 > MAX_RANGE_PORTS:
        raise ConfigError(
            f"{what}={lo}-{hi} is {hi - lo + 1} ports wide: at most {MAX_RANGE_PORTS}"
        )
    return lo, hi


def check_daemon(family: str, version: str, ports: tuple[int, int] | None = None) -> None:
    """What every entry point that names a daemon checks before touching a file."""
    check_family(family)
    check_version(version)
    if ports is not None:
        check_ports(*ports)


def parse_ports(raw: str, what: str) -> tuple[int, int]:
    """`LO-HI` (inclusive) or one port `P`, checked by `check_ports`."""
    lo_text, _, hi_text = raw.partition("-")
    try:
        lo = int(lo_text)
        hi = int(hi_text) if hi_text else lo
    except ValueError:
        raise ConfigError(f"{what}={_shown(raw)} is not LO-HI") from None
    return check_ports(lo, hi, what)


def check_stop(
    signal: str, grace_s: float, allowed: tuple[str, ...], what: str = "stop"
) -> tuple[str, float]:
    """A stop policy's signal and grace (control.md#stop-policy): the signal's full name
    from `INT`, `SIGINT` (any case) among `allowed`, and a grace of 0 to 3600 seconds."""
    name = signal.strip().upper() if isinstance(signal, str) else ""
    name = name if name.startswith("SIG") else f"SIG{name}"
    if name not in allowed:
        raise ConfigError(
            f"{what} signal {_shown(str(signal))} is not one of "
            + ", ".join(n.removeprefix("SIG") for n in allowed)
        )
    if not (isinstance(grace_s, int | float) and 0 <= grace_s <= MAX_STOP_GRACE_S):
        raise ConfigError(f"{what} grace {grace_s!r} is out of range: 0 to 3600 seconds")
    return name, float(grace_s)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d{1,9})([smhd])")


def parse_duration(raw: str, what: str = "--since") -> float:
    """`90s`, `10m`, `2h`, `1d` (one number, one unit) as seconds."""
    found = _DURATION.fullmatch(raw.strip())
    if found is None:
        raise ConfigError(f"{what}={_shown(raw)} is not a duration such as 90s, 10m, 2h or 1d")
    return int(found.group(1)) * _UNITS[found.group(2)]
