"""The listening socket of `tenure run --socket` (adapter): bound by the wrapper, passed to
its child by the socket-activation convention, and handed from a superseded wrapper to its
successor over a unix socket in the root. spec: docs/protocol/control.md#socket-handover

The successor listens on `<root>/handover/<family>.<its pid>.sock` (a 0700 directory) before
it asks the holder to leave; the superseded wrapper connects there, and each side proves the
other by the kernel's word (SO_PEERCRED: the same uid, and the pid the record names) before a
byte is sent. Linux only: elsewhere the handover is declined and the upgrade is break before
make, as without `--socket`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tenure.adapters import platform
from tenure.core.timing import POLL_S

HANDOVER_DIR = "handover"
LISTEN_FD = 3  # the first socket-activation descriptor (SD_LISTEN_FDS_START)
_HELLO = b"tenure-socket 1"
_OK = b"ok"
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_SUN_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin for the terminator

# Run with `python -I -S -c`: put the socket on fd 3 and name this process in LISTEN_PID
# just before the command replaces it (the pid is the child's own: exec keeps it).
TRAMPOLINE = (
    "import os,sys\n"
    "fd=int(sys.argv[1])\n"
    "os.dup2(fd,3)\n"
    "os.close(fd)\n"
    "os.environ['LISTEN_PID']=str(os.getpid())\n"
    "os.execvp(sys.argv[2],sys.argv[2:])\n"
)


def supported() -> bool:
    """Whether a socket can be handed between wrappers here (SO_PEERCRED: Linux)."""
    return platform.LINUX and hasattr(socket, "SO_PEERCRED") and hasattr(socket, "send_fds")


def socket_refusal(has_port: bool, mode: str | None) -> str | None:
    """Why `--socket` cannot be used as asked, or None."""
    if sys.platform == "win32":
        return "--socket passes a descriptor to the child: not on Windows"
    if not has_port:
        return "--socket needs the family's port range (--ports LO-HI)"
    if mode == "port":
        return (
            "readiness by port proves nothing on a socket the wrapper holds (it accepts "
            "before the child does): use --ready notify or --ready started"
        )
    return None


def listen_on(port: int) -> socket.socket:
    """A listening TCP socket on loopback `port`, the wrapper's for its whole life."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def child_argv(sock: socket.socket, argv: list[str]) -> tuple[list[str], int]:
    """The argv that starts `argv` with `sock` on fd 3, and the descriptor to pass it by."""
    if sys.platform == "win32":  # pragma: no cover - --socket is refused there
        raise OSError("no socket activation on Windows")
    import fcntl  # noqa: PLC0415

    # Above the standard three and fd 3 itself, so the dup2 in the trampoline never
    # clobbers the descriptor it copies.
    fd = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 10)
    return [sys.executable, "-I", "-S", "-c", TRAMPOLINE, str(fd), *argv], fd


def child_env() -> dict[str, str]:
    """What the socket-activation convention adds to the child's environment."""
    return {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "tenure"}


def port_of(sock: socket.socket) -> int:
    """The port a listening socket is bound to."""
    return int(sock.getsockname()[1])


def _peer(conn: socket.socket) -> tuple[int, int]:
    option: int = getattr(socket, "SO_PEERCRED")  # noqa: B009  (Linux: see `supported`)
    pid, uid, _gid = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, option, _UCRED.size))
    return pid, uid


def _private_dir(root: Path) -> Path | None:
    """`<root>/handover`, made 0700 if missing; None unless it is a real directory of ours
    that nobody else may enter (a symlink, a file or a loose mode is not used)."""
    where = root / HANDOVER_DIR
    with contextlib.suppress(FileExistsError):
        os.mkdir(where, 0o700)
    try:
        st = os.lstat(where)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != platform.uid() or st.st_mode & 0o077:
        return None
    return where


def _address(path: Path) -> tuple[str, int | None]:
    """An address for `path` that fits sun_path: the path itself, or the same file reached
    through an O_PATH descriptor of its directory (a deep root)."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX or sys.platform == "win32":
        return str(path), None
    o_path: int = getattr(os, "O_PATH", 0)  # Linux, like the handover itself
    dirfd = os.open(path.parent, o_path | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{dirfd}/{path.name}", dirfd


def _at(path: Path, act: Callable[[str], None]) -> None:
    """Bind or connect (`act`) to the unix socket at `path`, however deep it is."""
    address, dirfd = _address(path)
    try:
        act(address)
    finally:
        if dirfd is not None:
            os.close(dirfd)


def _valid_listener(sock: socket.socket) -> bool:
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        return False
    return (
        bool(listening)
        and sock.type == socket.SOCK_STREAM
        and sock.family
        in (
            socket.AF_INET,
            socket.AF_INET6,
        )
    )


class Receiver:
    """The successor's side: listen for the socket of the holder `from_pid` (that pid and
    our uid only), in the background, until `take` or `close`."""

    def __init__(self, root: Path, family: str, from_pid: int) -> None:
        self.from_pid = from_pid
        self._got: socket.socket | None = None
        self._closed = threading.Event()
        self._srv: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.path: Path | None = None
        where = _private_dir(root)
        if where is None or sys.platform == "win32":
            return
        path = where / f"{family}.{os.getpid()}.sock"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # ours: our pid's name, from a run of a process with this pid
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _at(path, srv.bind)
            srv.listen(4)
            srv.settimeout(POLL_S)
        except OSError:
            srv.close()
            return
        self._srv, self.path = srv, path
        self._thread = threading.Thread(target=self._serve, name="tenure-handover", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._srv is not None
        while not self._closed.is_set() and self._got is None:
            try:
                conn, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                self._receive(conn)

    def _receive(self, conn: socket.socket) -> None:
        if sys.platform == "win32":  # pragma: no cover - never listens there
            return
        try:
            conn.settimeout(1.0)
            pid, uid = _peer(conn)
            if pid != self.from_pid or uid != platform.uid():
                return  # not the holder we superseded: nothing is read from it
            msg, fds, _flags, _addr = socket.recv_fds(conn, 64, 1)
            if msg != _HELLO or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                return
            sock = socket.socket(fileno=fds[0])
            if not _valid_listener(sock):
                sock.close()
                return
            self._got = sock  # before the holder hears it, so it is ours when it releases
            conn.sendall(_OK)
        except OSError:
            return

    def take(self) -> socket.socket | None:
        """Stop listening; the socket handed to us, if one was (a receive in flight ends
        first: the holder released only after we said we have it)."""
        self.close()
        if self._thread is not None:
            self._thread.join(2.0)
        got, self._got = self._got, None
        return got

    def close(self) -> None:
        """Stop listening and remove the address."""
        self._closed.set()
        if self._srv is not None:
            self._srv.close()
            self._srv = None
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.path = None


def offer(root: Path, family: str, to_pid: int, sock: socket.socket, wait_s: float) -> bool:
    """The superseded wrapper's side: hand `sock` to the successor `to_pid`, if it listens
    for it; True once it said it has it."""
    if not supported() or sys.platform == "win32":
        return False
    where = _private_dir(root)
    if where is None:
        return False
    path = where / f"{family}.{to_pid}.sock"
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return False
    except OSError:
        return False  # the successor takes no socket: break before make
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(wait_s)
        _at(path, conn.connect)
        pid, uid = _peer(conn)
        if pid != to_pid or uid != platform.uid():
            return False  # someone else bound that name: it gets nothing
        socket.send_fds(conn, [_HELLO], [sock.fileno()])
        return conn.recv(len(_OK)) == _OK
    except OSError:
        return False
    finally:
        conn.close()
