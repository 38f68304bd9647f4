"""The sweep's inference rows (bench/inference.py) and its torch.compile peer (bench/sweep.py,
bench/torch_compile_peer.py). No timing is asserted: only that every figure is measured and the
ratios are computed from the figures. torch.compile itself runs only with MINIDISTIL_TEST_COMPILE=1
(it takes minutes)."""
import importlib.util
import json
import os

import pytest

from minidistil import bench
from minidistil.bench import measure as measure_mod
from minidistil.bench import sweep
from minidistil.bench.inference import PAPER_SPEEDUP, inference_lines, ratio_ci, run_inference
from minidistil.bench.shapes import PRESETS
from minidistil.bench.steps import peer_recipe


def _quiet(_msg):
    pass


def test_inference_child_times_both_models():
    (row,) = run_inference(["quick"], repeats=5, warmup=1, threads=1, with_torch=False, log=_quiet, seq=32)
    assert (row["shape"], row["batch"], row["seq"], row["paper_speedup"]) == ("quick", 1, 32, PAPER_SPEEDUP)
    assert row["teacher_ms"] > 0 and row["student_ms"] > 0
    assert len(row["teacher_times_s"]) == len(row["student_times_s"]) == 5
    assert row["student_speedup"] == pytest.approx(row["teacher_ms"] / row["student_ms"], rel=1e-12)
    lo, hi = row["student_speedup_95ci"]
    assert 0 < lo <= hi
    assert row["torch_teacher_ms"] is None and row["teacher_vs_torch"] is None
    text = "\n".join(inference_lines([row], 5))
    assert "| quick |" in text and "batch 1 x T=32" in text and "paper 1.63x" in text


def test_inference_against_torch_eager():
    pytest.importorskip("torch")
    (row,) = run_inference(["quick"], repeats=3, warmup=1, threads=1, with_torch=True, log=_quiet, seq=32)
    for m in ("teacher", "student"):
        assert row[f"torch_{m}_ms"] > 0
        assert row[f"{m}_vs_torch"] == pytest.approx(row[f"{m}_ms"] / row[f"torch_{m}_ms"], rel=1e-12)
    assert row["torch_error"] is None


def test_ratio_ci_brackets_separated_samples():
    lo, hi = ratio_ci([2.0, 2.1, 1.9, 2.05, 1.95], [1.0, 1.02, 0.98, 1.01, 0.99])
    assert 1.8 < lo <= 2.0 <= hi < 2.2


def _child_result(median):
    return {"step": {"median_s": median, "min_s": median * 0.9, "times_s": [median], "cpu_over_wall": 1.0},
            "peak_gflops": 10.0, "memory": {"VmHWM_mb": 100.0}, "rss_before_step": {"VmRSS_mb": 50.0}}


def test_row_assembly_divides_by_each_peer():
    tor = {"distill_step": {"median_s": 2.0}, "memory": {"VmHWM_mb": 300.0}}
    comp = {"distill_step": {"median_s": 4.0, "compile_s": 95.0}, "teacher_mlm_step": {"error": "X: no compiler"}}
    row = sweep.assemble_row("demo", "distill_step", 0, 1e9, _child_result(1.0), tor, comp, 3.0)
    assert row["vs_torch_eager"] == 0.5 and row["vs_torch_compile"] == 0.25
    assert row["torch_compile_s"] == 4.0 and row["torch_compile_warmup_s"] == 95.0
    assert row["torch_compile_error"] is None and row["torch_vmhwm_mb"] == 300.0
    failed = sweep.assemble_row("demo", "teacher_mlm_step", 0, 1e9, _child_result(1.0), tor, comp, 3.0)
    assert failed["vs_torch_compile"] is None and failed["torch_compile_error"] == "X: no compiler"
    whole = sweep.assemble_row("demo", "distill_step", 0, 1e9, _child_result(1.0), None,
                               {"error": "torch.compile child timed out after 60 s"}, 3.0)
    assert whole["torch_compile_s"] is None and "timed out" in whole["torch_compile_error"]
    r = {"conditions": {"date_utc": "d", "cpu": "c", "cpu_count": 2, "threads": 2, "repeats": 1, "warmup": 1,
                        "peak_n": 64, "loadavg_start": [0.0], "loadavg_end": [0.0]},
         "rows": [row, failed], "skipped": {}}
    text = "\n".join(sweep.sweep_lines(r))
    assert "| 4.000 s | 0.25 | 95 |" in text and "torch.compile failed at demo teacher_mlm_step: X: no compiler" in text


def _fake_sweep(monkeypatch, skip):
    """run_sweep with the children replaced: which steps would have run in their own process."""
    seen = []

    def fake(script, args, threads, timeout):
        p = json.loads(args[0])
        seen.append(p.get("step") or "inference " + p["framework"])
        if p.get("step") in ("torch", "torch_compile"):  # the peers compute with our config's settings
            assert p["recipe"] == peer_recipe()
        if p.get("step") == "torch":
            return {"teacher_mlm_step": {"median_s": 2.0}, "distill_step": {"median_s": 2.0}, "memory": {}}
        if p.get("step") == "torch_compile":
            return {"teacher_mlm_step": {"median_s": 4.0, "compile_s": 1.0},
                    "distill_step": {"median_s": 4.0, "compile_s": 1.0}}
        if "framework" in p:
            t = {"median_s": 0.01, "times_s": [0.01, 0.011], "cpu_over_wall": 1.0}
            return {"teacher": t, "student": t}
        return _child_result(1.0)
    monkeypatch.setattr(measure_mod, "run_script", fake)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "torch" else None)
    return sweep.run_sweep(["quick"], 1, 1, 1, 0, 64, skip=skip, log=_quiet), seen


def test_skip_compile_leaves_the_compile_peer_out(monkeypatch):
    r, seen = _fake_sweep(monkeypatch, ())
    assert seen == ["torch", "torch_compile", "teacher_mlm_step", "distill_step", "inference minidistil",
                    "inference torch"]
    assert [x["vs_torch_compile"] for x in r["rows"]] == [0.25, 0.25]
    r, seen = _fake_sweep(monkeypatch, ("compile",))
    assert "torch_compile" not in seen and "torch" in seen
    assert all(x["torch_compile_s"] is None and x["vs_torch_eager"] == 0.5 for x in r["rows"])
    assert r["skipped"] == {"torch_compile": "skipped by --skip"}
    r, seen = _fake_sweep(monkeypatch, ("torch", "inference"))
    assert seen == ["teacher_mlm_step", "distill_step"] and r["inference"] == []


def test_sweep_cli_skip_compile_and_bad_skip(tmp_path, capsys):
    out = tmp_path / "sweep.json"
    rc = bench.main(["--shapes", "quick,", "--repeats", "1", "--warmup", "1", "--skip", "compile,torch",
                     "--head-chunk", "0", "--peak-n", "64", "--threads", "1", "--json", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert all(x["torch_compile_s"] is None and x["vs_torch_compile"] is None for x in r["rows"])
    (inf,) = r["inference"]
    assert inf["seq"] == 128 and inf["teacher_ms"] > 0 and inf["student_ms"] > 0
    printed = capsys.readouterr().out
    assert "not measured: torch_compile (skipped by --skip)" in printed and "Inference at batch 1 x T=128" in printed
    assert bench.main(["--shapes", "quick,demo", "--skip", "nonsense"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minidistil bench: error: --skip") and "compile" in err and len(err.splitlines()) == 1


def test_compile_peer_machinery_without_compiling():
    pytest.importorskip("torch")
    from minidistil.bench import torch_compile_peer as C
    r = C.time_steps(PRESETS["quick"], repeats=2, warmup=0, threads=1, compile_fn=lambda f: f, recipe=peer_recipe())
    for name in ("teacher_mlm_step", "distill_step"):
        assert len(r[name]["warmup_s"]) == C.MIN_WARMUP and r[name]["compile_s"] > 0  # at least 2 warm-ups
        assert len(r[name]["times_s"]) == 2 and r[name]["median_s"] > 0

    def broken(_f):
        raise RuntimeError("no C++ compiler found\nmore detail")
    r = C.time_steps(PRESETS["quick"], repeats=1, warmup=2, threads=1, compile_fn=broken, recipe=peer_recipe())
    assert r["distill_step"] == {"error": "RuntimeError: no C++ compiler found"}

    def buggy(_f):  # not a compile failure: a bug in the peer is raised, not reported as a row
        raise TypeError("bad argument")
    with pytest.raises(TypeError, match="bad argument"):
        C.time_steps(PRESETS["quick"], repeats=1, warmup=2, threads=1, compile_fn=buggy, recipe=peer_recipe())


def test_compiled_loss_is_the_eager_loss():
    torch = pytest.importorskip("torch")
    from minidistil.bench.torch_compile_peer import masked_distill_loss
    from minidistil.bench.torch_peer import as_recipe, distill_loss
    g = torch.Generator().manual_seed(0)
    B, T, V, C = 3, 7, 11, 5
    s_logits, t_logits = (torch.randn(B, T, V, generator=g, dtype=torch.float64) * 3 for _ in range(2))  # (B, T, V)
    s_hidden, t_hidden = (torch.randn(B, T, C, generator=g, dtype=torch.float64) for _ in range(2))  # (B, T, C)
    mask = torch.ones(B, T, dtype=torch.int64)  # (B, T)
    mask[1, 5:] = 0
    r = as_recipe(peer_recipe())
    labels = torch.full((B, T), r.ignore_index, dtype=torch.int64)  # (B, T)
    labels[:, 1] = torch.tensor([3, 7, 1])
    a = distill_loss(s_logits, t_logits, s_hidden, t_hidden, mask, labels, r)
    b = masked_distill_loss(s_logits, t_logits, s_hidden, t_hidden, mask, labels, r)
    assert float(a) > 0 and float(b) == pytest.approx(float(a), rel=1e-10)


@pytest.mark.skipif(os.environ.get("MINIDISTIL_TEST_COMPILE") != "1", reason="torch.compile takes minutes; "
                    "set MINIDISTIL_TEST_COMPILE=1")
def test_torch_compile_for_real():
    pytest.importorskip("torch")
    from minidistil.bench.torch_compile_peer import time_steps
    r = time_steps(PRESETS["quick"], repeats=2, warmup=2, threads=1, recipe=peer_recipe())
    for name in ("teacher_mlm_step", "distill_step"):
        assert "error" not in r[name], r[name]
        assert r[name]["median_s"] > 0 and r[name]["compile_s"] > r[name]["median_s"]
