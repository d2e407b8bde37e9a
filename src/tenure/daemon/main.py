"""A reference daemon: holds its family's lease and serves the control plane (no typer, no rich).

Run as `python -m tenure.daemon.main --tenure-root=<root> --tenure-family=<family>`; the two argv
markers let a reaper attribute the process without trusting any file.
spec: docs/protocol/control.md
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tenure.adapters import config, platform
from tenure.adapters.daemonlog import LOG
from tenure.adapters.daemonlog import log as _log
from tenure.adapters.http import LOOPBACK
from tenure.adapters.root import ensure_root
from tenure.adapters.server import BoundedServer, bind_first_free
from tenure.adapters.store import log_path
from tenure.adapters.tokens import token_path, write_token
from tenure.core.argv import argv_option
from tenure.core.families import (
    EXIT_CONFIG,
    EXIT_HELD,
    EXIT_NO_PORT,
    EXIT_ROOT,
    Family,
    family_named,
)
from tenure.core.fields import MAX_FAULT
from tenure.core.health import ROLE_HOLDER, ROLE_RETIRING, Health
from tenure.core.hints import TYPE_CHECKING
from tenure.core.inputs import lease_key
from tenure.daemon.control import make_route
from tenure.errors import ConfigError, LeaseHeld, LeaseUnreadable, RootError
from tenure.holder.governor import RetireReason
from tenure.holder.hold import Held, hold
from tenure.version import checked_version

if TYPE_CHECKING:
    from typing import Any

    from tenure.core.record import LeaseScope

StartupHook = Callable[["Daemon"], None]


class Daemon:
    """One governed daemon: its server, governor, token and startup-reaper status."""

    def __init__(
        self, family: Family, root: Path, version: str, server: BoundedServer, held: Held
    ) -> None:
        self.family = family
        self.root = root
        self.version = version
        self.server = server
        self.port: int = server.server_address[1]
        self.token = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
        self.reaper_status = "pending"
        self.reaper_result: dict[str, Any] | None = None  # what the startup reaper did
        self.reaper_finished = threading.Event()  # set once reaper_status is no longer pending
        self.governor = held.governor

    def health(self) -> dict[str, Any]:
        """The /api/health document: memory only, never the token."""
        gov = self.governor
        # A stat of root.id on every answer: once its root is removed or replaced, an old
        # holder never answers `holder` beside the new one (lease.md#fencing).
        holding = gov.holding() and gov.root_intact()
        return Health(
            status="ok" if holding else "retiring",
            daemon_family=self.family.name,
            package_version=self.version,
            pid=gov.me.pid,
            port=self.port,
            root=str(self.root),
            epoch=gov.epoch,
            role=ROLE_HOLDER if holding else ROLE_RETIRING,
            started_at=gov.me.started_at,
            in_flight=gov.in_flight,
            startup_reaper=self.reaper_status,
            startup_reaper_result=self.reaper_result,
            root_id=gov.root_id,
            last_fault=None if gov.last_fault is None else gov.last_fault[:MAX_FAULT],
            scope=None if gov.scope is None else gov.scope.path,
        ).to_json()

    def authorized(self, header: str | None) -> int:
        """200 when `header` carries this daemon's token, 401 when absent, 403 when wrong."""
        if not header or not header.startswith("Bearer "):
            return 401
        # hmac loads OpenSSL (~4 MB resident): only once someone presents a token.
        from hmac import compare_digest  # noqa: PLC0415

        given = header[len("Bearer ") :].encode()
        return 200 if compare_digest(given, self.token.encode()) else 403


def run(
    family: Family,
    root: Path,
    version: str,
    acquire_wait: float = 0.0,
    startup_hook: StartupHook | None = None,
) -> int:
    """Serve as the family's holder until retirement; returns the process exit code."""
    try:
        root = ensure_root(root)
        ports = config.ports(family)
        config.timing(family.idle_s)  # refuse bad timing before binding anything
        scope = _scope(family)
    except RootError as exc:
        _log(str(exc))
        return EXIT_ROOT
    except ConfigError as exc:
        _log(str(exc))
        return EXIT_CONFIG
    key = lease_key(family.name, None if scope is None else scope.digest)
    LOG.path = log_path(root, key)
    daemons: list[Daemon] = []
    server = bind_first_free(ports, make_route(lambda: daemons[0]))
    if server is None:
        _log(f"no free port in {ports.start}-{ports.stop - 1}")
        return EXIT_NO_PORT
    if acquire_wait:
        _log(f"waiting up to {acquire_wait:.1f}s for the lease")
    try:
        # The same public API a tool's own daemon uses; signals are this daemon's own
        # (SIGTERM/SIGINT/SIGHUP: shut down at once, no drain), not `hold`'s defaults.
        with hold(
            family.name,
            version=version,
            root=root,
            port=server.server_address[1],
            timing=config.timing(family.idle_s),
            wait_s=acquire_wait,
            handle_signals=False,
            control=True,
            scope=scope,
        ) as held:
            daemon = Daemon(family, root, version, server, held)
            daemons.append(daemon)
            reason = _serve(daemon, startup_hook)
    except (LeaseHeld, LeaseUnreadable) as exc:
        _log(str(exc))
        server.server_close()
        return EXIT_HELD
    except (RootError, OSError) as exc:
        _log(f"cannot take the lease: {exc}")
        server.server_close()
        return EXIT_ROOT
    server.server_close()
    with contextlib.suppress(OSError):
        token_path(root, key, daemon.governor.me.pid).unlink()
    _log(f"exited: {reason.value if reason else 'unknown'}")
    return 0


def _scope(family: Family) -> LeaseScope | None:
    """The project a launcher started this daemon for (`TENURE_SCOPE`), or None."""
    given = config.spawned_scope(family.name)
    if given is None:
        return None
    from tenure.adapters.scopes import resolve_scope  # noqa: PLC0415  (a project's daemon)

    return resolve_scope(given)


def _serve(daemon: Daemon, startup_hook: StartupHook | None) -> RetireReason | None:
    """Serve as holder until retirement finished; the reason."""
    gov, server = daemon.governor, daemon.server
    write_token(daemon.root, gov.store.key, gov.me.pid, daemon.token)
    for signum in platform.STOP_SIGNALS:
        # SIGTERM / SIGINT: graceful, tombstone `signal`, as every holder (root.md#tombstones).
        signal.signal(signum, lambda *_: gov.retire(RetireReason.SIGNAL))

    def stop_serving() -> None:
        gov.wait_retired()  # drained, released and recorded: now the port can go
        server.shutdown()

    gov.on_retiring.append(lambda reason: _log(f"retiring: {reason.value}"))
    threading.Thread(target=stop_serving, daemon=True).start()
    if startup_hook is not None:
        threading.Thread(target=_run_hook, args=(startup_hook, daemon), daemon=True).start()
    else:
        daemon.reaper_status = "none"
        daemon.reaper_finished.set()
    _log(
        f"holding {daemon.family.name} lease epoch {gov.epoch} "
        f"on {LOOPBACK}:{daemon.port} as version {daemon.version}"
    )
    server.serve_forever(poll_interval=0.05)
    return gov.wait_retired(timeout=gov.timing.drain_s + 5)


def _run_hook(hook: StartupHook, daemon: Daemon) -> None:
    try:
        hook(daemon)
    except Exception as exc:
        daemon.reaper_status = "failed"
        _log(f"startup reaper failed: {type(exc).__name__}: {exc}")
    else:
        daemon.reaper_status = "done"
    finally:
        daemon.reaper_finished.set()


def default_startup_hook(family: Family) -> StartupHook:
    """The startup reaper: clean `safe_auto` daemons of this family only; spawn nothing."""

    def hook(daemon: Daemon) -> None:
        # Imported here: the scan and the reaper are off the daemon's start-up path.
        from tenure.hygiene.cleanup import startup_cleanup  # noqa: PLC0415
        from tenure.hygiene.survey import legacy_root  # noqa: PLC0415

        result = startup_cleanup(family, daemon.root, legacy_root()).result
        daemon.reaper_result = result.to_json()
        _log(
            f"startup reaper for {family.name}: swept {len(result.swept)}, "
            f"skipped {len(result.skipped)}, failed {len(result.failed)}"
        )

    return hook


def main(argv: list[str] | None = None) -> int:
    """Entry point of the daemon process."""
    args = sys.argv[1:] if argv is None else argv
    # The launcher passes exactly these `--name=value` markers (no argparse: ~6 ms of start).
    names = ("tenure-root", "tenure-family", "acquire-wait")
    root, family_name, wait = (argv_option(args, n) for n in names)
    unknown = [a for a in args if not a.startswith(tuple(f"--{n}=" for n in names))]
    try:
        acquire_wait = float(wait or 0.0)
    except ValueError:
        unknown.append(f"--acquire-wait={wait}")
    if root is None or family_name is None or unknown:
        print(
            "usage: python -m tenure.daemon.main --tenure-root=ROOT --tenure-family=NAME "
            f"[--acquire-wait=SECONDS]{f'; not understood: {unknown}' if unknown else ''}",
            file=sys.stderr,
        )
        return 2
    family = family_named(family_name)
    try:
        version = checked_version()
    except ConfigError as exc:
        _log(str(exc))
        return EXIT_CONFIG
    return run(
        family,
        Path(root),
        version,
        acquire_wait,
        default_startup_hook(family),
    )


if __name__ == "__main__":
    sys.exit(main())
