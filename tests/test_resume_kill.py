"""Resume after a real ``kill -9`` is exact, whoever compiled the kernels (issue 20).

Each scenario runs ``minidistil distill`` (the --quick settings) in a subprocess that SIGKILLs itself before
optimizer step KILL_AT + 1 (``_killed_run.py``), then ``--resume`` in a second subprocess, and
compares the metrics (every figure but the wall time) and the final ``model.npz`` bit for bit
with an uninterrupted run, itself on a fresh, empty Numba cache (so it compiles every kernel).
The stage is ``distill`` because it runs every kernel the pretraining runs plus the soft-target
and temperature softmax kernels. The Numba cache the killed run and its resume see:

* cold: a fresh, empty cache: the killed run compiles every kernel, the resume loads them (the
  issue's repro: a new user's first run is the one likely to be killed);
* warm: the cache the cold scenario filled, so both halves load and nothing is compiled;
* another process's: the killed run loads the kernels the reference run compiled, and the resume
  those of the cold scenario's killed run: neither half uses kernels its own process made.

Two processes compile (the reference and the cold kill); the teacher both start from is trained
with the NumPy twins, so it compiles nothing. Budget: about 60 s of CPU on an idle core.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from minidistil.train.loop import CKPT_FILE, METRICS_FILE, read_metrics
from minidistil.train.runs import MODEL_FILE

pytestmark = pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1",
                                reason="about which process compiled the Numba kernels")

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS, KILL_AT = 30, 25  # --quick checkpoints the student every 20 steps: the resume redoes 21-25
WORDS = ("the a student teacher layer model loss token word sentence learns predicts masked "
         "hidden state attention head softmax temperature gradient weight small large network "
         "reads writes keeps drops copies half every each one two three of in on with from to "
         "and or but is are was were be has have will can may fast slow deep wide narrow").split()


def _corpus(path):
    """About 40 KB of seeded word salad in 120 paragraphs: enough for --quick, tokenised in
    well under a second (the built-in corpus is harvested from the standard library)."""
    rng = np.random.default_rng(0)
    paras = [" ".join(" ".join(rng.choice(WORDS, rng.integers(6, 14))) + "." for _ in range(5))
             for _ in range(120)]
    path.write_text("\n\n".join(paras) + "\n", encoding="utf-8")
    return path


def _minidistil(cache, argv, kill_at=None, backend="numba"):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), MINIDISTIL_BACKEND=backend, MPLBACKEND="Agg")
    env.pop("NUMBA_DISABLE_JIT", None)
    cmd = ([sys.executable, os.path.join(HERE, "_killed_run.py"), str(kill_at)] if kill_at is not None
           else [sys.executable, "-m", "minidistil"]) + list(argv) + ["--no-progress"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)


def _cache_files(cache):
    return sorted(os.path.relpath(os.path.join(d, f), cache) for d, _, fs in os.walk(cache) for f in fs)


def _result(out):
    rows = read_metrics(os.path.join(out, "distill", METRICS_FILE))
    with np.load(os.path.join(out, "distill", MODEL_FILE), allow_pickle=False) as z:
        weights = {k: z[k] for k in z.files}
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows], weights


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A teacher run directory (4 NumPy-twin steps), and the uninterrupted student on a fresh cache."""
    root = tmp_path_factory.mktemp("kill")
    corpus = _corpus(root / "corpus.txt")
    base = root / "base"
    res = _minidistil(root / "cache-numpy", ["pretrain", "--quick", "--steps", "4", "--corpus",
                                             str(corpus), "--out", str(base)], backend="numpy")
    assert res.returncode == 0, res.stderr
    ref_cache = root / "cache-ref"
    ref = _student_dir(root, base, "ref")
    res = _minidistil(ref_cache, ["distill", "--steps", str(STEPS), "--out", str(ref)])
    assert res.returncode == 0, res.stderr
    assert _cache_files(ref_cache), "the reference run cached no kernel"
    return {"root": root, "base": base, "ref": _result(ref), "ref_cache": ref_cache}


def _student_dir(root, base, name):
    out = root / name
    shutil.copytree(base, out)
    return out


def _kill_and_resume(runs, name, kill_cache, resume_cache):
    """The killed run, checked to have died by SIGKILL mid-stage, then its --resume."""
    out = _student_dir(runs["root"], runs["base"], name)
    argv = ["distill", "--steps", str(STEPS), "--out", str(out)]
    res = _minidistil(kill_cache, argv, kill_at=KILL_AT)
    assert res.returncode == -9, (res.returncode, res.stderr)
    assert len(read_metrics(os.path.join(out, "distill", METRICS_FILE), repair=True)) == KILL_AT
    assert os.path.isfile(os.path.join(out, "distill", CKPT_FILE))
    assert not os.path.isfile(os.path.join(out, "distill", MODEL_FILE))
    assert os.path.isfile(os.path.join(out, "run.lock"))  # left by the dead process: stale
    res = _minidistil(resume_cache, ["distill", "--out", str(out), "--resume"])
    assert res.returncode == 0, res.stderr
    assert "took over the stale lock" in res.stderr, res.stderr
    return _result(out)


def _assert_same(got, want):
    rows, weights = got
    ref_rows, ref_weights = want
    assert len(rows) == len(ref_rows) == STEPS
    first = next((r["step"] for r, s in zip(rows, ref_rows) if r != s), None)
    assert first is None, f"the resumed run's metrics differ from step {first} on"
    assert weights.keys() == ref_weights.keys()
    differ = [k for k in weights if not np.array_equal(weights[k], ref_weights[k])]
    assert not differ, f"final weights differ in {differ}"


@pytest.fixture(scope="module")
def cold(runs):
    cache = runs["root"] / "cache-cold"
    cache.mkdir()
    assert not _cache_files(cache)
    result = _kill_and_resume(runs, "cold", cache, cache)  # the killed run compiles, the resume loads
    return cache, result


def test_resume_after_kill_9_is_exact_with_a_cold_cache(runs, cold):
    cache, result = cold
    assert _cache_files(cache), "the killed run cached no kernel"
    _assert_same(result, runs["ref"])


def test_resume_after_kill_9_is_exact_with_a_warm_cache(runs, cold):
    cache, _ = cold
    before = {f: os.path.getmtime(os.path.join(cache, f)) for f in _cache_files(cache)}
    result = _kill_and_resume(runs, "warm", cache, cache)
    after = {f: os.path.getmtime(os.path.join(cache, f)) for f in _cache_files(cache)}
    assert after == before, "the warm cache was written to: something was compiled again"
    _assert_same(result, runs["ref"])


def test_resume_after_kill_9_is_exact_with_a_cache_warmed_by_another_process(runs, cold):
    cold_cache, _ = cold
    # the first half loads what the reference process compiled, the resume what the cold kill compiled
    _assert_same(_kill_and_resume(runs, "other", runs["ref_cache"], cold_cache), runs["ref"])
