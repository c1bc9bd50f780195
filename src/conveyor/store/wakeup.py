"""Cross-process wake-ups for SQLite on one machine: Unix datagram sockets in ``<database>-wake/``.

PostgreSQL has LISTEN/NOTIFY; SQLite has nothing of the kind, and polling ``PRAGMA
data_version`` trades latency for idle CPU. Here each waiting thread binds a socket in the
folder ``<database>-wake/``, and a process that committed runnable work sends one byte to
every socket there after COMMIT. Best effort only: a lost or unsent datagram costs latency,
never a job, because waiters still poll ``data_version`` (``SQLiteStore.wait_for_jobs``).
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import select
import socket
import threading
import time

# AF_UNIX addresses are at most 108 bytes; longer paths go through /proc/self/fd/<folder fd>
_MAX_ADDRESS = 100
_SUFFIX = ".sock"


class WakeChannel:
    """The senders' and the waiters' side of one database's wake-up folder (safe across threads).

    A sender pays one ``stat`` of the folder (it lists it again only when its mtime moved, or
    within 1 s of a move, as coarse timestamps can hide a second change) and one ``sendto`` per
    socket, non-blocking: a full socket already has wake-ups pending. A socket nobody holds
    any more (its process died) refuses the datagram and is removed.
    """

    def __init__(self, database: str) -> None:
        self.folder = os.path.realpath(database) + "-wake"
        self._sender: socket.socket | None = None
        # (inode, mtime_ns) of the folder when listed, whether that listing may miss a change
        # made in the same timestamp tick, the socket names: one tuple, replaced whole, so
        # that threads sending at once never pair one listing's key with another's names
        self._listing: tuple[tuple[int, int] | None, bool, tuple[str, ...]] = (None, True, ())
        self._dirfd: int | None = None  # for addresses too long to bind directly
        self._dirfd_lock = threading.Lock()
        self._mine: dict[socket.socket, str] = {}
        self._closed = False

    def _address(self, name: str) -> str:
        path = f"{self.folder}/{name}"
        if len(path) <= _MAX_ADDRESS:
            return path
        with self._dirfd_lock:
            if self._dirfd is None:
                self._dirfd = os.open(self.folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            return f"/proc/self/fd/{self._dirfd}/{name}"

    def notify(self) -> None:
        """Wake every waiter on this database (this process's too). Never raises."""
        if self._closed:
            return
        try:
            st = os.stat(self.folder)
        except OSError:
            return  # no folder: nobody has ever waited here
        key = (st.st_ino, st.st_mtime_ns)
        old, racy, names = self._listing
        if key != old or racy:
            if old is not None and key[0] != old[0]:  # the folder was replaced
                with self._dirfd_lock:
                    if self._dirfd is not None:
                        os.close(self._dirfd)
                        self._dirfd = None
            try:
                names = tuple(n for n in os.listdir(self.folder) if n.endswith(_SUFFIX))
            except OSError:
                return
            self._listing = (key, time.time() - st.st_mtime < 1.0, names)
        sender = self._sender
        if sender is None:
            sender = self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            sender.setblocking(False)
        gone: list[str] = []
        for name in names:
            try:
                sender.sendto(b"\0", self._address(name))
            except BlockingIOError:
                pass  # its queue is full: that waiter has wake-ups pending already
            except ConnectionRefusedError:  # nobody holds it: its process is gone
                gone.append(name)
                with contextlib.suppress(OSError):
                    os.unlink(f"{self.folder}/{name}")
            except FileNotFoundError:
                gone.append(name)
            except OSError:
                pass
        if gone:
            listed, racy, names = self._listing
            self._listing = (listed, racy, tuple(n for n in names if n not in gone))

    def listen(self) -> Waiter | None:
        """A new socket in the folder that ``notify`` reaches, or None when the folder cannot be
        made or written (the caller then polls)."""
        if self._closed:
            return None
        try:
            os.mkdir(self.folder)
        except FileExistsError:
            pass
        except OSError:
            return None
        name = f"{os.getpid()}-{secrets.token_hex(6)}{_SUFFIX}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(self._address(name))
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        self._mine[sock] = name
        self._listing = (None, True, ())  # list again: this process's own wake-ups must reach it
        return Waiter(sock)

    def close(self) -> None:
        """Remove this process's sockets; a thread waiting on one returns at once."""
        self._closed = True
        for sock, name in list(self._mine.items()):
            with contextlib.suppress(OSError):
                os.unlink(f"{self.folder}/{name}")
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a poll() on it
            sock.close()
        self._mine.clear()
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        with self._dirfd_lock:
            if self._dirfd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._dirfd)
                self._dirfd = None


class Waiter:
    """One thread's socket: ``wait`` blocks until a wake-up or the timeout."""

    __slots__ = ("_poll", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)

    def wait(self, timeout: float) -> bool:
        """True when woken within ``timeout`` seconds; consumes every wake-up pending."""
        if not self._poll.poll(math.ceil(timeout * 1000)):
            return False
        got = False
        try:
            while self._sock.recv(16):  # b"" once the channel is closed
                got = True
        except OSError:  # BlockingIOError: nothing more queued
            pass
        return got
