"""The training pipeline: exact resume, the NaN guard, and a --quick end-to-end run."""
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from minidistil.models import Bert, BertConfig
from minidistil.train.checkpoint import load_checkpoint
from minidistil.train.loop import CKPT_FILE, METRICS_FILE, TrainingDiverged, read_metrics, train_loop
from minidistil.train.pretrain import make_mlm_step
from minidistil.train.runs import StageConfig

V = 40
TOK = SimpleNamespace(vocab_size=V, pad_id=0, unk_id=1, cls_id=2, sep_id=3, mask_id=4,
                      special_ids=[0, 1, 2, 3, 4])


def synthetic_sequences(n=48, seed=0):
    """[CLS] a, a+1, a+2, ... [SEP]: a pattern a tiny model can pick up."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        length = int(rng.integers(12, 20))
        start = int(rng.integers(5, V))
        body = [(start - 5 + i) % (V - 5) + 5 for i in range(length)]
        out.append(np.array([2] + body + [3], dtype=np.int64))
    return out


def tiny_teacher(seed=0):
    return Bert(BertConfig.tiny(vocab_size=V), dtype=np.float32, seed=seed)


STAGE = StageConfig(steps=10, batch_size=8, accum_steps=2, lr=3e-3, ckpt_every=3)


def run_loop(folder, step_wrapper=None, resume=False, max_steps=None):
    model = tiny_teacher()
    step_fn = make_mlm_step(model, TOK, STAGE)
    if step_wrapper is not None:
        step_fn = step_wrapper(step_fn)
    result = train_loop("pretrain", model, step_fn, synthetic_sequences(), TOK.pad_id, STAGE, seed=5,
                        folder=str(folder), resume=resume, max_steps=max_steps, progress=False)
    return model, result


def losses(folder):
    return [(r["step"], r["loss"], r["grad_norm"], r["lr"]) for r in read_metrics(os.path.join(folder, METRICS_FILE))]


def test_resume_after_a_kill_reproduces_the_uninterrupted_losses(tmp_path):
    full_model, full = run_loop(tmp_path / "full")
    assert full.finished and full.step == 10
    reference = losses(tmp_path / "full")
    assert len(reference) == 10

    calls = {"n": 0}

    def killer(step_fn):  # dies in the middle of optimizer step 8 (checkpoints at 3 and 6)
        def wrapped(*a):
            calls["n"] += 1
            if calls["n"] == 2 * 7 + 1:
                raise KeyboardInterrupt
            return step_fn(*a)
        return wrapped

    with pytest.raises(KeyboardInterrupt):
        run_loop(tmp_path / "killed", killer)
    _, meta = load_checkpoint(os.path.join(tmp_path / "killed", CKPT_FILE))
    assert meta["step"] == 6
    assert len(losses(tmp_path / "killed")) == 7  # step 7 was logged after the last checkpoint
    resumed_model, res = run_loop(tmp_path / "killed", resume=True)
    assert res.finished
    assert losses(tmp_path / "killed") == reference  # exactly, not approximately
    for k, p in full_model.params.items():
        assert np.array_equal(p, resumed_model.params[k]), k


def test_max_steps_then_resume(tmp_path):
    _, r = run_loop(tmp_path / "a", max_steps=4)
    assert r.step == 4 and not r.finished
    _, r = run_loop(tmp_path / "a", resume=True)
    assert r.finished
    _, _ = run_loop(tmp_path / "b")
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def poison(step_fn):  # the loss turns NaN in the second micro-batch of step 5
        def wrapped(*a):
            calls["n"] += 1
            out = step_fn(*a)
            if calls["n"] == 2 * 4 + 2:
                parts, grads = out
                return {**parts, "loss": float("nan")}, grads
            return out
        return wrapped

    model = tiny_teacher()
    step_fn = poison(make_mlm_step(model, TOK, STAGE))
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 5.*checkpoint.*kept"):
        train_loop("pretrain", model, step_fn, synthetic_sequences(), TOK.pad_id, STAGE, seed=5,
                   folder=str(tmp_path), progress=False)
    arrays, meta = load_checkpoint(os.path.join(tmp_path, CKPT_FILE))
    assert meta["step"] == 3
    for k, v in arrays.items():
        assert np.all(np.isfinite(v)), k
    # the bad update never reached the parameters
    assert all(np.all(np.isfinite(p)) for p in model.params.values())
    assert len(losses(tmp_path)) == 4


# ---------------------------------------------------------------- --quick end to end, via the CLI

@pytest.fixture(scope="module", autouse=True)
def numpy_twins_without_jit():
    """Under NUMBA_DISABLE_JIT=1 the Numba kernels run as Python loops (minutes for a training
    run): train with the NumPy twins instead. The kernels' own tests cover both backends."""
    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        from minidistil.kernels.backend import use_backend
        with use_backend("numpy"):
            yield
    else:
        yield


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, numpy_twins_without_jit):
    from minidistil.cli import main
    out = tmp_path_factory.mktemp("quick") / "run"
    assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    return out


def teacher_only_copy(run, out):
    """A new run directory holding ``run``'s settings, vocabulary and teacher, and no student."""
    import shutil
    out.mkdir()
    for f in ("config.json", "vocab.txt"):
        shutil.copy(run / f, out / f)
    shutil.copytree(run / "pretrain", out / "pretrain")
    return out


def test_quick_demo_trains_teacher_past_unigram_and_distils(quick_run):
    out = quick_run
    for f in ("config.json", "vocab.txt", "eval.json", "pretrain/metrics.jsonl", "pretrain/model.npz",
              "distill/metrics.jsonl", "distill/model.npz", "distill/hf/model.safetensors",
              "distill/hf/config.json", "distill/hf/vocab.txt",
              "plots/losses.png", "plots/comparison.png", "plots/controls.png",
              "control-mlm-teacher-init/model.npz", "control-mlm-random-init/model.npz",
              "control-triple-random-init/model.npz", "distill/curve.json"):
        assert (out / f).is_file(), f
    for stage in ("pretrain", "distill"):  # finished: the resume checkpoint is dropped
        assert not (out / stage / "checkpoint.npz").exists()
    report = json.loads((out / "eval.json").read_text())
    t, s, u = report["teacher"]["accuracy"], report["student"]["accuracy"], report["unigram"]["accuracy"]
    assert t > 2 * u and t > u + 0.01, (t, u)  # the teacher learned more than token frequencies
    assert s > u, (s, u)
    assert report["student"]["layers"] < report["teacher"]["layers"]
    assert report["student"]["parameters"] < report["teacher"]["parameters"]
    rows = read_metrics(str(out / "distill" / METRICS_FILE))
    assert {"loss", "loss_ce", "loss_mlm", "loss_cos", "lr", "grad_norm"} <= rows[0].keys()
    pre = read_metrics(str(out / "pretrain" / METRICS_FILE))
    assert np.mean([r["loss"] for r in pre[-20:]]) < np.mean([r["loss"] for r in pre[:20]])


def test_demo_students_trains_only_those_and_reports_the_gain(quick_run, tmp_path):
    """``--students distill,a``: the quick run's teacher reused (--resume), two students trained."""
    from minidistil.cli import main
    out = teacher_only_copy(quick_run, tmp_path / "two")
    assert main(["demo", "--quick", "--no-progress", "--resume", "--students", "distill,a", "--out", str(out)]) == 0
    assert (out / "distill" / "model.npz").is_file() and (out / "control-mlm-teacher-init" / "model.npz").is_file()
    assert not (out / "control-mlm-random-init").exists() and not (out / "control-triple-random-init").exists()
    report = json.loads((out / "eval.json").read_text())
    assert set(report["controls"]) == {"control-mlm-teacher-init"}
    assert report["gain"]["against"] == "control-mlm-teacher-init"
    full = json.loads((quick_run / "eval.json").read_text())  # training is deterministic
    assert report["student"]["accuracy"] == full["student"]["accuracy"]


def test_quick_demo_controls_share_batches_and_masks(quick_run):
    """The four students see the same batches and masks: their Lmlm at step 1 agrees where the
    start agrees (teacher init: distill and control a; random init: controls b and c)."""
    out = quick_run
    first = {n: read_metrics(str(out / n / METRICS_FILE))[0] for n in
             ("distill", "control-mlm-teacher-init", "control-mlm-random-init", "control-triple-random-init")}
    assert first["distill"]["loss_mlm"] == pytest.approx(first["control-mlm-teacher-init"]["loss_mlm"], rel=1e-6)
    assert first["control-mlm-random-init"]["loss_mlm"] == \
        pytest.approx(first["control-triple-random-init"]["loss_mlm"], rel=1e-6)
    assert first["control-mlm-teacher-init"]["loss_ce"] == 0.0  # no teacher in the controls' loss
    report = json.loads((out / "eval.json").read_text())
    g = report["gain"]
    assert g["against"] == "control-mlm-teacher-init" and g["se"] > 0
    assert g["ci95"][0] < g["diff"] < g["ci95"][1]
    lo, hi = report["retention_ci95"]
    assert lo < report["retention"] < hi
    assert set(report["controls"]) == {"control-mlm-teacher-init", "control-mlm-random-init",
                                       "control-triple-random-init"}
    curve = json.loads((out / "distill" / "curve.json").read_text())["rows"]
    assert curve[0]["step"] == 0 and curve[-1]["step"] == report["student_steps"]


def test_cli_distill_max_steps_then_resume_matches(quick_run, tmp_path):
    from minidistil.cli import main
    out = teacher_only_copy(quick_run, tmp_path / "again")
    assert main(["distill", "--quick", "--no-progress", "--out", str(out), "--max-steps", "15"]) == 0
    assert not (out / "distill" / "model.npz").exists()
    assert main(["distill", "--quick", "--no-progress", "--out", str(out), "--resume"]) == 0
    key = lambda rows: [(r["step"], r["loss"], r["loss_ce"], r["loss_mlm"], r["loss_cos"]) for r in rows]
    assert key(read_metrics(str(out / "distill" / METRICS_FILE))) == \
        key(read_metrics(str(quick_run / "distill" / METRICS_FILE)))


def test_quick_ablation_table_and_plot(quick_run, tmp_path, capsys):
    from minidistil.cli import main
    out = teacher_only_copy(quick_run, tmp_path / "abl")  # the teacher is reused
    capsys.readouterr()
    assert main(["ablate", "--quick", "--no-progress", "--out", str(out), "--seeds", "2", "--steps", "3"]) == 0
    printed = capsys.readouterr().out
    for variant, paper in (("-Lce", "-2.96"), ("-Lcos", "-1.46"), ("-Lmlm", "-0.31"), ("random-init", "-3.69")):
        assert variant in printed and paper in printed
    assert "(a) Lmlm, teacher init" in printed and "(b) Lmlm, random init" in printed
    report = json.loads((out / "ablation.json").read_text())
    assert len(report["runs"]) == 14 and report["seeds"] == [0, 1]
    rows = {r["variant"]: r for r in report["summary"]}
    assert "mean_delta" not in rows["triple"]
    for name, r in rows.items():
        if name == "triple":
            continue
        lo, hi = r["ci95"]
        assert lo <= r["mean_delta"] <= hi and r["verdict"] in (
            "the paper's sign, significant", "not resolved", "opposite sign, significant")
        assert r["verdict"] in printed
        assert r["mean_delta"] == pytest.approx(np.mean(r["per_seed_delta"]))
    assert (out / "plots" / "ablation.png").stat().st_size > 1000
    assert (out / "ablate" / "control-mlm-teacher-init" / "seed1" / "model.npz").is_file()


@pytest.mark.parametrize("keep", [False, True])
def test_ablation_runs_drop_their_checkpoint_unless_kept(tmp_path, keep, numpy_twins_without_jit):
    """A finished ablation run keeps model.npz; its checkpoint.npz only with --keep-checkpoints
    (issue 16). Two 2-step runs of a tiny teacher: seconds."""
    from minidistil.train.ablate import ablate
    from minidistil.train.runs import MODEL_FILE, Data, DistillStageConfig, EvalConfig, quick_config
    import dataclasses
    cfg = dataclasses.replace(quick_config(), distill=DistillStageConfig(steps=2, batch_size=8, ckpt_every=1),
                              eval=EvalConfig(batch_size=8, n_masks=1, timing_repeats=1))
    seqs = synthetic_sequences(16)
    data = Data(TOK, seqs, seqs[:4], np.ones(V))
    ablate(cfg, str(tmp_path), data, tiny_teacher(), [0, 1], steps=2, progress=False, log=lambda m: None,
           variants=["triple"], keep_checkpoints=keep)
    for seed in (0, 1):
        folder = tmp_path / "ablate" / "triple" / f"seed{seed}"
        assert (folder / MODEL_FILE).is_file()
        assert (folder / CKPT_FILE).is_file() == keep, sorted(p.name for p in folder.iterdir())


def test_demo_draws_no_accuracy_curves_beside_a_teacher_without_mlm_head(tmp_path, monkeypatch):
    # a BertModel teacher (no MLM head) has no accuracy line: controls.png would show the students'
    # untrained heads against a 0% teacher, so it is not drawn at all
    from minidistil.train import controls, demo, plots, plots_claims
    drawn = []
    monkeypatch.setattr(plots, "plot_run", lambda out, report: [])
    monkeypatch.setattr(controls, "read_curve", lambda folder: {"rows": [{"step": 0, "acc": 0.1}], "n_masked": 5})
    monkeypatch.setattr(plots_claims, "plot_controls", lambda *a, **k: drawn.append(a))
    assert demo.write_plots(str(tmp_path), {"teacher_has_mlm_head": False}, None, None, None) == []
    assert drawn == []
    monkeypatch.setattr("minidistil.train.evaluate.predict", lambda model, ev: {"accuracy": 0.5})
    monkeypatch.setattr(demo, "curve_set", lambda data, cfg: None)
    paths = demo.write_plots(str(tmp_path), {"teacher_has_mlm_head": True}, None, None, None)
    assert len(drawn) == 1 and paths[-1].endswith("controls.png")
