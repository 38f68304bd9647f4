"""The run-directory lock: one writer per ``--out`` at a time.

Two commands writing into one run directory would mix their files (one run's ``config.json``
with the other's checkpoint, one deleting the other's ``metrics.jsonl``), so every command that
writes takes ``<out>/run.lock`` first and a second one stops with :class:`RunLocked` before it
changes anything.

The lock file is a small JSON document (``pid``, ``host``, ``started``, ``command``). It is
written to a temporary file, locked with ``flock`` and only then made visible with ``os.link``,
which fails if the name exists: taking the lock is atomic, and the file is never seen half
written or unlocked. The ``flock`` lives as long as the holding process: the kernel drops it when
that process ends, however it ends (kill -9 included). So a lock file whose ``flock`` can be taken
is *stale* (its holder is gone; on the same host its pid is checked as well): it is taken over and
the caller is told so. On a file system without ``flock`` the pid alone decides (same host
only; a lock from another host is never taken over automatically).
"""
from __future__ import annotations

import errno
import json
import os
import socket
import time

try:
    import fcntl
except ImportError:  # not POSIX: the pid check alone
    fcntl = None

LOCK_FILE = "run.lock"


class RunLocked(RuntimeError):
    """Another live process holds the run directory's lock."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _try_flock(fd) -> bool | None:
    """True: we hold it; False: another process does; None: no flock on this file system."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            return None
        raise


def _read(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


class RunLock:
    """Holds ``<folder>/run.lock`` until :meth:`release` (or the end of a ``with`` block).

    ``RunLock(folder)`` creates ``folder`` if needed and takes the lock, or raises
    :class:`RunLocked` naming the holder. ``note`` is the sentence about a stale lock that was
    taken over (``None`` when there was none). A folder this lock created and that is still
    empty at release is removed again, so a command that stops early leaves nothing behind.
    """

    def __init__(self, folder: str, command: str = ""):
        self.folder = os.path.abspath(folder)
        self.path = os.path.join(self.folder, LOCK_FILE)
        self.note = None
        self._fd = None
        self._created = []  # the folders this lock made, innermost first
        path = self.folder
        while not os.path.isdir(path):
            self._created.append(path)
            path = os.path.dirname(path)
        os.makedirs(self.folder, exist_ok=True)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "command": command}
        tmp = os.path.join(self.folder, f".{LOCK_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
        try:
            os.write(fd, (json.dumps(info) + "\n").encode("utf-8"))
            os.fsync(fd)
            flocked = _try_flock(fd)
            for _ in range(3):
                try:
                    os.link(tmp, self.path)  # atomic: fails if the name exists
                    break
                except FileExistsError:
                    if not self._stale(flocked):
                        raise self._locked_error() from None
                    os.replace(tmp, self.path)  # take over: our locked inode gets the name
                    tmp = None
                    break
            else:  # pragma: no cover - the name kept reappearing
                raise self._locked_error()
        except BaseException:
            os.close(fd)
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
            self._rmdir_if_created()
            raise
        if tmp is not None:
            os.unlink(tmp)  # the inode lives on as run.lock
        self._fd = fd

    def _stale(self, flocked) -> bool:
        """True (and self.note set) when the existing lock file's holder is gone."""
        holder = _read(self.path)
        pid, host = holder.get("pid"), holder.get("host")
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:  # released meanwhile: the caller tries again
            self.note = None
            return True
        try:
            free = _try_flock(fd) if flocked is not None else None
        finally:
            os.close(fd)  # closing drops our probe flock again
        same_host = host == socket.gethostname()
        if free is None:  # no flock here: only a dead pid on this host is proof
            if not (same_host and isinstance(pid, int) and not _pid_alive(pid)):
                return False
        elif not free:
            return False
        who = f"pid {pid}" if isinstance(pid, int) else "an unknown process"
        state = "no longer running" if not (isinstance(pid, int) and same_host and _pid_alive(pid)) \
            else "running but no longer holding it"
        self.note = (f"took over the stale lock {self.path} of {who} on {host or 'an unknown host'} "
                     f"({state}; it was probably killed)")
        return True

    def _locked_error(self) -> RunLocked:
        holder = _read(self.path)
        since = holder.get("started")
        when = time.strftime(" since %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else ""
        cmd = f" ({holder['command']})" if holder.get("command") else ""
        return RunLocked(f"{self.folder} is in use by pid {holder.get('pid', '?')} on "
                         f"{holder.get('host', '?')}{cmd}{when}; wait for it to finish or use "
                         f"another --out (if that process is gone, delete {self.path})")

    def _rmdir_if_created(self):
        for folder in self._created:  # innermost first; only those still empty
            try:
                os.rmdir(folder)
            except OSError:
                break
        self._created = []

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            st, mine = os.stat(self.path), os.fstat(self._fd)
            if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        self._rmdir_if_created()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False
