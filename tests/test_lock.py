"""The run-directory lock (issue 20, item 1): one writer per --out, stale locks taken over."""
import json
import os
import subprocess
import sys

import pytest

from minidistil import cli
from minidistil.train.lock import LOCK_FILE, RunLock, RunLocked


def _snapshot(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_second_lock_is_refused_and_names_the_holder(tmp_path):
    with RunLock(str(tmp_path / "run"), command="first") as held:
        assert held.note is None
        info = json.loads((tmp_path / "run" / LOCK_FILE).read_text())
        assert info["pid"] == os.getpid() and info["command"] == "first"
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
            RunLock(str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # created by the lock, empty: removed again
    RunLock(str(tmp_path / "run")).release()  # free again


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_note(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    import socket
    (run / LOCK_FILE).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    lock = RunLock(str(run))
    try:
        assert lock.note and "stale" in lock.note and "no longer running" in lock.note
        assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()
    finally:
        lock.release()
    assert not (run / LOCK_FILE).exists()


def test_lock_of_a_killed_holder_is_stale(tmp_path):
    """kill -9 of the holder: its flock goes with it, the next command takes over."""
    run = tmp_path / "run"
    code = ("import sys, time; from minidistil.train.lock import RunLock; "
            f"l = RunLock({str(run)!r}); print('held', flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked):
            RunLock(str(run))
    finally:
        p.kill()
        p.wait()
    with RunLock(str(run)) as lock:
        assert lock.note and f"pid {p.pid}" in lock.note


def test_cli_second_writer_exits_2_and_changes_nothing(tmp_path, capsys):
    """The repro: a second `pretrain` into a busy --out used to run and delete metrics.jsonl."""
    run = tmp_path / "X"
    (run / "pretrain").mkdir(parents=True)
    (run / "pretrain" / "metrics.jsonl").write_text('{"step": 1, "loss": 5.0}\n')
    before = _snapshot(run)
    with RunLock(str(run), command="minidistil pretrain"):
        before = _snapshot(run)
        code = cli.main(["pretrain", "--quick", "--out", str(run), "--seed", "1", "--max-steps", "1",
                         "--no-progress"])
        assert _snapshot(run) == before
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "in use by pid" in err, err
