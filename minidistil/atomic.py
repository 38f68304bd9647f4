"""Writes that never leave a half-written file: a temporary file beside the target, then a rename.

Used by checkpoints, run directories, ``vocab.txt``, safetensors files and Hugging Face folders.
"""
from __future__ import annotations

import json
import os
import secrets
import time


def _create_temp(folder: str, name: str) -> tuple[int, str]:
    """A new, exclusive temporary file in ``folder``, mode 0666 minus the umask.

    ``tempfile.mkstemp`` would make it 0600 whatever the umask says, and the rename keeps that
    mode: the run's files would be private. Created with ``O_EXCL``, so it is never someone
    else's file; the kernel applies the umask (no process-wide ``os.umask`` call is needed).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".tmp-{secrets.token_hex(4)}-{name}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {folder}")


def atomic_write(path: str, write) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it to ``path``.

    The file gets the permissions any new file gets (0644 with the usual umask 022).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create_temp(folder, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temp_files(folder: str, min_age_s: float = 0.0) -> list[str]:
    """Delete the ``.tmp-*`` files that :func:`atomic_write` left in ``folder`` when a process was
    killed between writing and renaming; returns their names. Call it only while holding the
    run directory's lock (train/lock.py), so that no live writer owns them."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(folder, name)
        if name.startswith(".tmp-") and os.path.isfile(path):
            try:
                if min_age_s <= 0 or os.path.getmtime(path) < time.time() - min_age_s:
                    os.unlink(path)
                    removed.append(name)
            except OSError:
                pass
    return removed


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
