"""Issue 20: the NaN guard, broken run files, a full disk, stale temporary files, bad temperatures.

The training loop is driven here by a tiny NumPy "model" (one weight vector, a quadratic loss), so
these tests need no corpus and no compiled kernel.
"""
import errno
import json
import os
import pickle

import numpy as np
import pytest

from minidistil.losses import DistillLossConfig

from minidistil import cli
from minidistil.losses import NonFiniteLoss
from minidistil.train import loop as loop_mod
from minidistil.train.checkpoint import RunFileError, save_checkpoint
from minidistil.train.loop import CKPT_FILE, METRICS_FILE, TrainingDiverged, read_metrics, train_loop
from minidistil.train.runs import DistillStageConfig, StageConfig


class Tiny:
    """params {"w": (4,)}; state_dict/load_state_dict like the real models (shapes checked)."""

    def __init__(self, n=4):
        self.params = {"w": np.linspace(-1.0, 1.0, n)}  # (n,)

    def state_dict(self):
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state):
        if set(state) != set(self.params) or any(state[k].shape != v.shape for k, v in self.params.items()):
            raise ValueError(f"state keys/shapes {sorted((k, v.shape) for k, v in state.items())} do not match")
        for k in self.params:
            self.params[k][...] = state[k]


def _step(model, fail_at=None, exc=None):
    calls = {"n": 0}

    def step_fn(ids, attn, rng):
        calls["n"] += 1
        if fail_at is not None and calls["n"] >= fail_at:
            raise exc
        w = model.params["w"]
        noise = rng.normal(size=w.shape)  # (n,)
        return {"loss": float(((w - noise) ** 2).sum())}, {"w": 2 * (w - noise)}
    return step_fn


SEQS = [np.arange(2, 10) for _ in range(16)]


def _run(folder, cfg, model=None, resume=False, max_steps=None, step_fn=None):
    model = model or Tiny()
    return train_loop("pretrain", model, step_fn or _step(model), SEQS, 0, cfg, 0, str(folder),
                      resume=resume, max_steps=max_steps, progress=False)


CFG = StageConfig(steps=6, batch_size=4, lr=0.01, ckpt_every=2)


# ---------------------------------------------------------------- the NaN guard

def test_guard_catches_the_losses_own_nan_check_and_keeps_the_checkpoint(tmp_path):
    _run(tmp_path, CFG, max_steps=2)
    before = (tmp_path / CKPT_FILE).read_bytes()
    m = Tiny()
    err = NonFiniteLoss("t_logits contains NaN or inf; the soft-target loss is undefined", "t_logits")
    with pytest.raises(TrainingDiverged) as e:
        _run(tmp_path, CFG, model=m, resume=True, step_fn=_step(m, fail_at=1, exc=err))
    msg = str(e.value)
    assert "teacher" in msg and "kept" in msg and "step 3" in msg
    assert (tmp_path / CKPT_FILE).read_bytes() == before


def test_guard_names_alpha_not_lr_when_alpha_overflows(tmp_path):
    cfg = DistillStageConfig(steps=4, batch_size=4, lr=0.01, ckpt_every=2, loss=DistillLossConfig(alpha_ce=1e308))
    m = Tiny()
    with pytest.raises(TrainingDiverged, match="--alpha-ce 1e\\+308") as e:
        _run(tmp_path, cfg, model=m, step_fn=_step(m, fail_at=1, exc=NonFiniteLoss("overflowed")))
    assert "--lr" not in str(e.value)


def test_guard_names_the_temperature_and_the_lr(tmp_path):
    m = Tiny()
    cfg = DistillStageConfig(steps=4, batch_size=4, ckpt_every=2, loss=DistillLossConfig(temperature=1e200))
    with pytest.raises(TrainingDiverged, match="--temperature 1e\\+200"):
        _run(tmp_path / "a", cfg, model=m, step_fn=_step(m, fail_at=1, exc=NonFiniteLoss("x")))
    big = StageConfig(steps=8, batch_size=4, lr=1e30, ckpt_every=2, clip_norm=1e300)
    m = Tiny()

    def step_fn(ids, attn, rng):  # the loss overflows once the huge updates have moved w
        w = m.params["w"]
        with np.errstate(over="ignore"):
            loss = float((w.astype(np.float32) ** 2).sum())
        if not np.isfinite(loss):
            raise NonFiniteLoss("the MLM loss overflowed to inf")
        return {"loss": loss}, {"w": 2 * w + 1.0}
    with pytest.raises(TrainingDiverged, match="--lr 1e\\+30"):
        _run(tmp_path / "b", big, model=m, step_fn=step_fn)


def test_guard_names_non_finite_parameters(tmp_path):
    m = Tiny()
    m.params["w"][1] = np.nan
    with pytest.raises(TrainingDiverged, match="parameter 'w' is not finite"):
        _run(tmp_path, CFG, model=m)


# ---------------------------------------------------------------- broken run files

def _broken(path, kind):
    if kind == "garbage":
        path.write_bytes(b"this is not a zip file at all" * 10)
    elif kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "pickled":
        path.write_bytes(pickle.dumps({"model/w": np.zeros(4)}))
    elif kind == "no_meta":
        np.savez(str(path)[:-4], **{"model/w": np.zeros(4)})
    elif kind == "other_model":
        save_checkpoint(str(path), {"model/w": np.zeros(7)},
                        {"stage": "pretrain", "step": 2, "epoch": 0, "pos": 2, "rng": {}})


@pytest.mark.parametrize("kind", ["garbage", "truncated", "pickled", "no_meta", "other_model"])
def test_broken_checkpoint_is_one_clear_error_naming_the_file(tmp_path, kind):
    _run(tmp_path, CFG, max_steps=2)
    ckpt = tmp_path / CKPT_FILE
    _broken(ckpt, kind)
    with pytest.raises(RunFileError) as e:
        _run(tmp_path, CFG, resume=True)
    assert str(ckpt) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "pickled", "no_meta"])
def test_cli_broken_model_file_exits_2_with_one_line(tmp_path, capsys, kind):
    run = tmp_path / "run"
    (run / "pretrain").mkdir(parents=True)
    model = run / "pretrain" / "model.npz"
    save_checkpoint(str(model), {"w": np.zeros(3)}, {"kind": "Bert"})
    _broken(model, kind)
    assert cli.main(["evaluate", "--quick", "--out", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.npz" in err, err


def test_metrics_cut_mid_line_by_a_kill_is_repaired_on_resume(tmp_path):
    _run(tmp_path, CFG, max_steps=4)
    metrics = tmp_path / METRICS_FILE
    with open(metrics, "a") as f:
        f.write('{"step": 5, "lo')  # a kill in the middle of a write
    res = _run(tmp_path, CFG, resume=True)
    rows = read_metrics(str(metrics))
    assert res.finished and [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]


def test_metrics_damaged_inside_is_one_clear_error(tmp_path):
    _run(tmp_path, CFG, max_steps=4)
    metrics = tmp_path / METRICS_FILE
    lines = metrics.read_text().splitlines()
    lines[1] = lines[1][:7]
    metrics.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFileError, match="line 2"):
        _run(tmp_path, CFG, resume=True)


def test_full_disk_is_one_line_and_keeps_the_older_checkpoint(tmp_path, monkeypatch):
    _run(tmp_path, CFG, max_steps=2)
    before = (tmp_path / CKPT_FILE).read_bytes()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(RunFileError, match="No space left on device") as e:
        _run(tmp_path, CFG, resume=True)
    assert "\n" not in str(e.value) and "kept" in str(e.value)
    assert (tmp_path / CKPT_FILE).read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_stale_temp_file_of_a_killed_write_is_removed_on_resume(tmp_path):
    _run(tmp_path, CFG, max_steps=2)
    stale = tmp_path / ".tmp-abc123checkpoint.npz"
    stale.write_bytes(b"half a checkpoint")
    _run(tmp_path, CFG, resume=True)
    assert not stale.exists()


# ---------------------------------------------------------------- temperature

def test_float32_temperature_whose_reciprocal_overflows_is_an_error():
    from minidistil.kernels import log_softmax_forward, soft_target_rows, softmax_forward
    x = np.ones((2, 3), dtype=np.float32)  # (N, V)
    for fn in (lambda: softmax_forward(x, 1e-40), lambda: log_softmax_forward(x, 1e-40),
               lambda: soft_target_rows(x, x, 1e-40)):
        with pytest.raises(ValueError, match="1/temperature overflows"):
            fn()
    assert np.all(np.isfinite(softmax_forward(x.astype(np.float64), 1e-40)[0]))  # fine in float64


@pytest.mark.parametrize("t", ["1e-40", "1e200"])
def test_cli_extreme_temperature_is_a_usage_error(tmp_path, capsys, t):
    assert cli.main(["distill", "--quick", "--out", str(tmp_path / "r"), "--temperature", t]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--temperature" in err


@pytest.mark.parametrize("corpus, words", [("", "empty path"), ("/dev/null", "not a regular file"),
                                           ("fifo", "not a regular file")])
def test_cli_unusable_corpus_paths_are_precise_errors(tmp_path, capsys, corpus, words):
    if corpus == "fifo":
        corpus = str(tmp_path / "fifo")
        os.mkfifo(corpus)
    assert cli.main(["pretrain", "--quick", "--out", str(tmp_path / "r"), "--corpus", corpus]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "r").exists()


def test_reliability_doc_names_tests_that_exist():
    """docs/reliability.md: every promise names a test, and every test id it names exists."""
    import fnmatch
    import re
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "docs", "reliability.md"), encoding="utf-8") as f:
        rows = [r for r in f.read().splitlines() if r.startswith("| ") and not r.startswith("| Promise")
                and not set(r) <= set("|- ")]
    assert len(rows) >= 6  # atomic writes, the lock, exact resume, no pickle, strict loading, NaN guard
    for row in rows:
        held_by = row.rstrip(" |").rsplit(" | ", 1)[1]
        files = re.findall(r"`(tests/\w+\.py)", held_by)
        assert files, f"no test named for: {row[:60]}"
        defined = set()
        for path in files:
            with open(os.path.join(root, path), encoding="utf-8") as f:
                defined |= set(re.findall(r"^def (test_\w+)", f.read(), re.M))
        for name in re.findall(r"(?:::|`)(test_\w+\*?)", held_by):
            assert fnmatch.filter(defined, name), f"docs/reliability.md names {name}, which no test file it cites defines"
