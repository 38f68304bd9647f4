"""bench-ranks: the workers run as the CLI does (speed layer on) unless --no-fast; the report
says which. The timing itself is a benchmark (minidistil bench-ranks), never a test."""
import json
import subprocess
from types import SimpleNamespace

import pytest

from minidistil.parallel import bench


def _args(**kw):
    base = dict(stage="distill", steps=1, warmup=0, batch_size=4, rounds=1, no_fast=False, timeout=60)
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.mark.parametrize("no_fast", [False, True])
def test_worker_command_carries_no_fast(monkeypatch, no_fast):
    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"], seen["env"] = cmd, kw["env"]
        return subprocess.CompletedProcess(cmd, 0, stdout=json.dumps({"times": [0.1]}) + "\n", stderr="")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    bench._run_config(_args(no_fast=no_fast), ranks=1, threads=2, timeout=60)
    assert ("--no-fast" in seen["cmd"]) is no_fast
    assert seen["env"]["NUMBA_NUM_THREADS"] == "2"


def test_report_names_the_code_path():
    rep = {"stage": "distill", "batch_size": 32, "rounds": 1, "steps": 1, "configs": [],
           "threads_over_ranks": (1.0, 0.5)}
    assert "speed layer on" in bench.format_report(dict(rep, no_fast=False))
    assert "plain code" in bench.format_report(dict(rep, no_fast=True))


def test_every_flag_has_help(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    out = capsys.readouterr().out
    for flag in ("--stage", "--rounds", "--steps", "--warmup", "--batch-size", "--timeout", "--no-fast"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(flag))
        block = out[out.index(line):].split("\n  -")[0]
        assert len(block.split()) > 2, block  # the flag, its metavar and some words of help
