"""CLI output without typer: stdout results, stderr diagnostics, JSON, exit codes, the root.

The hot commands (`tenure sync start`, `status`) run through this module without importing
typer or rich (`tenure.cli.hot`); the typer commands use it too (`tenure.cli.common`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tenure.core import schemas
from tenure.core.hints import TYPE_CHECKING
from tenure.errors import RootError, TenureError

if TYPE_CHECKING:
    from typing import Any, NoReturn

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2
EXIT_UNKNOWN = 5  # no such family in the root, as systemctl answers for no such unit
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # SIGTERM: 128 + 15, as a shell reports it
SCHEMA_VERSION = schemas.DAEMON


class Quiet:
    """--quiet: notes on stderr are silenced (errors never are)."""

    on = False


def set_quiet(value: bool) -> bool:
    """Turn --quiet on (typer's option callback, or the hot path's own parse)."""
    Quiet.on = Quiet.on or value
    return value


def echo(text: str) -> None:
    """One line of the result on stdout."""
    sys.stdout.write(text + "\n")


def resolve_root(root: Path | None) -> Path:
    """The root to use: the option, else $TENURE_ROOT, else the platform default; absolute,
    so what is printed names the same directory from anywhere."""
    from tenure.adapters.root import default_root  # noqa: PLC0415  (filelock is slow to import)

    return (root if root is not None else default_root()).expanduser().absolute()


def lease_timing(doc: dict[str, Any]) -> str:
    """A lease's timing in words that cannot be misread (`lease_json`'s fields): a released
    lease says when it was released, a dead holder's lease shows no countdown, an expired one
    says how long ago it expired; "" when there is no timing to tell (absent, unreadable)."""
    state, renewed, expires = doc.get("state"), doc.get("renewed_ago_s"), doc.get("expires_in_s")
    if not isinstance(renewed, int | float):
        return ""
    if state == "released":
        return f"released {renewed:.1f}s ago"
    if state == "expired" and doc.get("holder_alive") is False:
        return f"holder gone (dead); last renewed {renewed:.1f}s ago"
    if not isinstance(expires, int | float):
        return f"renewed {renewed:.1f}s ago"
    if expires < 0 or state == "expired":
        return f"renewed {renewed:.1f}s ago, expired {max(-expires, 0.0):.1f}s ago"
    return f"renewed {renewed:.1f}s ago, expires in {expires:.1f}s"


def clean(text: object) -> str:
    """Text from outside made safe for a terminal: control characters shown as escapes.

    Health answers, argv, records, tombstones and file names can carry ESC sequences or BEL;
    none of them reaches a terminal raw. (Rich markup is never interpreted either: human
    output renders outside strings as `rich.text.Text`, not as markup.)
    """
    s = str(text)
    if s.isprintable():
        return s
    return "".join(ch if ch.isprintable() else _escape(ord(ch)) for ch in s)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def note(message: str) -> None:
    """A diagnostic line on stderr (stdout carries only the result), control-safe.

    Silenced by --quiet; errors go through `fail`, which is never silenced.
    """
    if not Quiet.on:
        sys.stderr.write(clean(message) + "\n")


def error(message: str) -> None:
    """An error on stderr, shown even with --quiet. A message of several lines (a start error
    with its log's tail) keeps its line breaks; every other control character is escaped."""
    sys.stderr.write("\n".join(clean(line) for line in f"error: {message}".split("\n")) + "\n")


def emit_json(doc: dict[str, Any]) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps({"schema_version": SCHEMA_VERSION, **doc}, sort_keys=True) + "\n")


def root_fix(exc: RootError) -> str:
    """The one-line fix for a refused root, file or subdirectory (same advice as the doctor)."""
    from tenure.core.findings import RootProblem, root_remediation  # noqa: PLC0415

    if exc.kind in ("uncreatable", "unwritable", "missing"):
        return "use a writable directory of yours: --root DIR or TENURE_ROOT=DIR"
    return root_remediation(RootProblem(str(exc.path), exc.kind, str(exc)))[1]


def fail(exc: BaseException, as_json: bool) -> NoReturn:
    """Report an error in one line and exit: 2 for bad configuration, 1 otherwise."""
    from tenure.errors import ConfigError  # noqa: PLC0415

    message = str(exc)
    if isinstance(exc, RootError):
        message = f"{message}; fix: {root_fix(exc)}"
    elif isinstance(exc, OSError) and not isinstance(exc, TenureError):
        where = f" ({exc.filename})" if exc.filename else ""
        message = f"{exc.strerror or exc}{where}"
    if as_json:
        emit_json({"error": type(exc).__name__, "message": message})
    error(message)
    raise SystemExit(EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_ATTENTION)


# What each state, class and severity looks like on a colour terminal (Rich style names; the
# plain `tenure ls` writes the same as SGR codes). Words not listed stay plain.
STYLES = {
    "held": "green",
    "running": "green",
    "expired": "yellow",
    "foreign": "cyan",
    "unreadable": "red",
    "released": "dim",
    "absent": "dim",
    "safe_auto": "yellow",
    "operator_required": "red",
    "never_touch": "green",
    "critical": "bold red",
    "warning": "yellow",
    "info": "cyan",
}
_SGR = {"green": "32", "yellow": "33", "red": "31", "cyan": "36", "dim": "2", "bold red": "1;31"}


def colour_on(stream: Any = None) -> bool:
    """Colour only on a terminal that has it, and never with NO_COLOR set (no-color.org)."""
    import os  # noqa: PLC0415

    stream = sys.stdout if stream is None else stream
    term = os.environ.get("TERM", "")
    return bool(stream.isatty()) and not os.environ.get("NO_COLOR") and term not in ("", "dumb")


def paint(word: str, key: str | None = None) -> str:
    """`word` in the colour of `key` (default: the word itself) when colour is on."""
    style = STYLES.get(key or word)
    if style is None or not colour_on():
        return word
    return f"\x1b[{_SGR[style]}m{word}\x1b[0m"
