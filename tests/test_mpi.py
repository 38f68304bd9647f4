"""Data parallelism on 2 real MPI ranks (loopback), each run under a hard timeout.

Every test starts ``mpiexec -n 2`` in its own process group with ``MPIEXEC_TIMEOUT`` set, and
kills the whole group if it outlives ``TIMEOUT_S``: a hang fails the test, it cannot stall the
suite. The ranks use the NumPy twins (MINIDISTIL_BACKEND=numpy), so two ranks do not both spend
minutes compiling Numba kernels; the kernels' parity with their twins is tested elsewhere.

Skipped when mpi4py or mpiexec is missing, unless MINIDISTIL_REQUIRE_MPI=1 (CI sets it, so
there the tests must run).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 240
REQUIRED = os.environ.get("MINIDISTIL_REQUIRE_MPI") == "1"


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
if MPIEXEC is None:
    if REQUIRED:
        raise RuntimeError("MINIDISTIL_REQUIRE_MPI=1 but mpi4py/mpiexec are missing: "
                           "pip install '.[mpi]'")
    pytest.skip("mpi4py or mpiexec not installed (pip install '.[mpi]')", allow_module_level=True)


def run(cmd, n=2, cwd=None, timeout=TIMEOUT_S):
    """``mpiexec -n n cmd...`` (or ``cmd`` alone for n=0); returns (returncode, stdout, stderr, s)."""
    env = dict(os.environ, MINIDISTIL_BACKEND="numpy", MPIEXEC_TIMEOUT=str(timeout - 10),
               PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = ([MPIEXEC, "-n", str(n)] if n else []) + [str(c) for c in cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(argv)} hung for {timeout} s\n{err[-2000:]}")
    return proc.returncode, out, err, time.perf_counter() - t0


def worker(case, tmp_path):
    code, out, err, seconds = run([sys.executable, HERE / "mpi_worker.py", case, tmp_path])
    return code, out, err, seconds


def test_two_ranks_float64_gradients_and_losses_equal_one_process(tmp_path):
    code, _, err, _ = worker("grads64", tmp_path)
    assert code == 0, err[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    for name in ("mlm", "distill", "distill_ce_masked"):
        r = result[name]
        assert r["grad_rel"] < 1e-12 and r["grad_rel_per_tensor"] < 1e-12, (name, r)
        assert r["loss_rel"] < 1e-12, (name, r)
    assert len(result["loop"]) == 3  # three optimizer steps of train_loop, 2 micro-batches each
    for row in result["loop"]:
        assert row["loss"] < 1e-12 and row["grad_norm"] < 1e-12, result["loop"]


def test_two_ranks_float32_twenty_steps_match_one_process(tmp_path):
    code, _, err, _ = worker("steps32", tmp_path)
    assert code == 0, err[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["steps"] == 20
    assert result["loss_rel"] < 1e-5, result
    assert result["param_abs"] < 1e-3, result  # float32 rounding only, after 20 Adam steps


@pytest.mark.parametrize("how, message", [
    ("raise", "RuntimeError: injected failure on rank 1"),
    ("die", "BAD TERMINATION"),
    ("diverge", "disagree on the parameters after step 4"),
])
def test_a_failing_rank_stops_every_rank_and_keeps_the_checkpoint(tmp_path, how, message):
    import numpy as np
    from minidistil.train.checkpoint import load_checkpoint
    code, out, err, seconds = worker(how, tmp_path)
    assert code != 0
    assert message in out + err, (out + err)[-3000:]
    assert not (tmp_path / "result.json").exists()
    arrays, meta = load_checkpoint(str(tmp_path / "checkpoint.npz"))
    assert meta["step"] == 2  # saved after step 2; rank 1 failed during step 4
    assert all(np.all(np.isfinite(a)) for a in arrays.values())


def _small_corpus(path):
    from minidistil.data.corpus import load_default_corpus
    docs = load_default_corpus()
    text, n = [], 0
    for d in docs:  # ~60 KB of the embedded prose: quick to tokenize, enough for 8+ batches
        text.append(d)
        n += len(d)
        if n > 60_000:
            break
    path.write_text("\n\n".join(text), encoding="utf-8")
    return path


def _losses(out):
    from minidistil.train.loop import read_metrics
    return [(r["step"], r["loss"]) for r in read_metrics(str(out / "pretrain" / "metrics.jsonl"))]


def test_cli_under_mpiexec_and_resume_with_another_number_of_ranks(tmp_path):
    corpus = _small_corpus(tmp_path / "corpus.txt")
    base = [sys.executable, "-m", "minidistil.cli", "pretrain", "--quick", "--corpus", corpus,
            "--no-progress", "--steps", "6", "--batch-size", "12"]
    # one process, uninterrupted: the reference
    code, _, err, _ = run(base + ["--out", tmp_path / "one"], n=0)
    assert code == 0, err
    # 2 ranks for 3 steps, then 1 process resumes; and 1 process for 3 steps, then 2 ranks resume
    for name, first, second in (("two_then_one", 2, 0), ("one_then_two", 0, 2)):
        out = tmp_path / name
        code, stdout, err, _ = run(base + ["--out", out, "--max-steps", "3"], n=first)
        assert code == 0, err
        if first:
            assert stdout.count("pretrain: 3/6 steps") == 1  # rank 0 alone reports
            assert "MPI: 2 ranks" in stdout
        code, _, err, _ = run(base + ["--out", out, "--resume"], n=second)
        assert code == 0, err
        got, want = _losses(out), _losses(tmp_path / "one")
        assert [s for s, _ in got] == [1, 2, 3, 4, 5, 6]  # each step logged once, by rank 0
        for (_, a), (_, b) in zip(got, want):
            assert abs(a - b) <= 1e-5 * abs(b), (name, got, want)
        assert (out / "pretrain" / "model.npz").is_file()


def test_cli_commands_that_run_in_one_process_refuse_mpiexec(tmp_path):
    code, _, err, seconds = run([sys.executable, "-m", "minidistil.cli", "evaluate", "--out", tmp_path])
    assert code == 2
    assert "evaluate runs in one process; under mpiexec run pretrain or distill" in err
