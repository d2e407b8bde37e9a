"""The `tenure` command line: the hot commands without typer (`tenure.cli.hot`), everything
else through the typer app. Rich is imported lazily, only for human output."""

from __future__ import annotations

import os
import sys

from tenure.core.hints import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, TextIO


class PipeSafeStdout:
    """stdout that goes quiet when its reader left (`tenure auth doctor | head -1`).

    The command then finishes and exits with the code it would have had, instead of the
    traceback or the exit 1 a broken pipe would otherwise cause.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._silence()
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()

    def _silence(self) -> None:
        self.broken = True
        # Later flushes (ours, the interpreter's at exit) go to /dev/null, not a dead pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main() -> None:
    """Console-script entry point."""
    from tenure.cli.out import EXIT_ATTENTION, EXIT_USAGE, error  # noqa: PLC0415
    from tenure.errors import ConfigError, TenureError  # noqa: PLC0415

    sys.stdout = PipeSafeStdout(sys.stdout)  # type: ignore[assignment,unused-ignore]
    if len(sys.argv) == 1:
        # Bare `tenure` is `tenure -h`: the eager help path, which skips the invoke machinery
        # (and the pydantic it imports: ~80 ms) that the callback route pays for.
        sys.argv.append("-h")
    try:
        from tenure.cli.hot import dispatch  # noqa: PLC0415

        if not dispatch(sys.argv[1:]):
            from tenure.cli.app import app  # noqa: PLC0415  (typer: only when needed)

            app()
    except KeyboardInterrupt:
        sys.exit(130)
    except TenureError as exc:
        # The last net: a command that did not catch its own error says it in one line
        # (bad configuration: 2, anything else: 1), never as a traceback.
        error(str(exc))
        sys.exit(EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_ATTENTION)
