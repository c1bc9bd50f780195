"""Wake-ups: cross-process ones for SQLite on one machine (Unix datagram sockets in
``<database>-wake/``), and the ``Interrupt`` that ends one thread's wait from another.

PostgreSQL has LISTEN/NOTIFY; SQLite has nothing of the kind, and polling ``PRAGMA
data_version`` trades latency for idle CPU. Here each waiting thread binds a socket in the
folder ``<database>-wake/``, and a process that committed runnable work sends one byte to
every socket there after COMMIT. Best effort only: a lost or unsent datagram costs latency,
never a job, because waiters still poll ``data_version`` (``SQLiteStore.wait_for_jobs``).

The byte is the socket's rank in the sender's round: the first waiter acts at once, the others
``STAGGER`` seconds later unless something else wakes them first. One submission then wakes
one idle worker rather than all of them racing for the write lock (on 2 cores the loser's
claim ran beside the winner's job: ~0.4 ms p50 more, and the tail) — and when the first
cannot take the job (busy, another environment), the others still do, ``STAGGER`` later.
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
# how long a waiter woken with a rank above 0 leaves the first one to claim the work
STAGGER = 0.002
# Whether any job is runnable: what a waiter that waited out the stagger (``Waiter.late``)
# asks before it reports the wake-up. The first waiter has usually claimed the job by then,
# and this read is a fraction of the claim (a write transaction on SQLite, with the write
# lock, one ~0.5 ms statement on PostgreSQL) that every later waiter made after every
# submission, beside the first one's job on 2 cores
ANY_RUNNABLE = "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'RUNNABLE')"


class Interrupt:
    """Ends one thread's wait from any thread: a flag, a byte in a pipe for waits that poll file
    descriptors, and a notify of ``cond`` for waits on a condition. Never raises."""

    __slots__ = ("_cond", "_w", "fd", "pending")

    def __init__(self, cond: threading.Condition) -> None:
        self._cond = cond
        self.fd, self._w = os.pipe()  # not inherited by child processes (PEP 446)
        os.set_blocking(self.fd, False)
        os.set_blocking(self._w, False)
        self.pending = False

    def __call__(self) -> None:
        self.pending = True
        # full: a byte is there already; closed: nobody waits any more
        with contextlib.suppress(OSError):
            os.write(self._w, b"\0")
        with self._cond:
            self._cond.notify_all()

    def consume(self) -> bool:
        """Whether it was set since the last call; empties the pipe."""
        with contextlib.suppress(OSError):
            while os.read(self.fd, 64):
                pass
        was, self.pending = self.pending, False
        return was

    def __del__(self) -> None:  # not before: another thread may still call it
        for fd in (self.fd, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)


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
        rank = 0
        for name in names:
            try:
                sender.sendto(_RANKS[min(rank, 255)], self._address(name))
                rank += 1
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


_RANKS = [bytes((i,)) for i in range(256)]


class Waiter:
    """One thread's socket: ``wait`` blocks until a wake-up, an interrupt or the timeout."""

    __slots__ = ("_intr", "_poll", "_sock", "late")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self._intr: Interrupt | None = None
        # whether the last wait that returned True waited out the stagger (no wake-up of rank
        # 0, no interrupt): the first waiter has likely taken the work already
        self.late = False

    def wait(self, timeout: float, interrupt: Interrupt | None = None) -> bool:
        """True when woken (or interrupted) within ``timeout`` seconds; consumes every wake-up
        pending. A wake-up of rank 1 or more waits up to ``STAGGER`` more for the first waiter
        to act, returning early on an interrupt or a wake-up of rank 0 (another commit); it
        sets ``late`` when it did not."""
        self.late = False
        if interrupt is not self._intr:
            if self._intr is not None:
                self._poll.unregister(self._intr.fd)
            if interrupt is not None:
                self._poll.register(interrupt.fd, select.POLLIN)
            self._intr = interrupt
        if interrupt is not None and interrupt.pending:
            interrupt.consume()
            return True
        if not self._poll.poll(math.ceil(timeout * 1000)):
            return False
        rank = self._receive()
        if interrupt is not None and interrupt.consume():
            return True
        if rank is None:
            return False
        end = time.monotonic() + STAGGER
        while rank:
            left = end - time.monotonic()
            if left <= 0 or not self._poll.poll(math.ceil(left * 1000)):
                self.late = True
                break
            got = self._receive()
            if interrupt is not None and interrupt.consume():
                break
            if got is not None:
                rank = min(rank, got)
        return True

    def _receive(self) -> int | None:
        """The lowest rank among the wake-ups queued (None: none)."""
        rank: int | None = None
        try:
            while True:
                data = self._sock.recv(16)
                if not data:  # the channel was closed
                    return rank
                r = data[0]
                rank = r if rank is None else min(rank, r)
        except OSError:  # BlockingIOError: nothing more queued
            pass
        return rank
