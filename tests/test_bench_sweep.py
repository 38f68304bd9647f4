"""The roofline sweep (``minidistil bench --shapes a,b``) and the FLOP model of bench/flops.py.
No timing is asserted: only that every figure is measured and consistent."""
import json
import math

import pytest

from minidistil import bench
from minidistil.bench import flops as F, steps as S
from minidistil.bench.shapes import PRESETS, preset_list
from minidistil.bench.sweep import matmul_roofline


def test_flop_model_by_hand():
    s = PRESETS["base"]  # N = 1024, C = 768, F = 3072, V = 30522, 2 -> 1 layers
    N, C, FF, V, B, T = 1024, 768, 3072, 30522, 8, 128
    block = 2 * N * C * 3 * C + 2 * N * C * C + 2 * 2 * N * C * FF + 2 * 2 * B * T * T * C
    head = 2 * N * C * C + 2 * N * C * V
    assert F.total(F.distill_terms(s)) == (2 * block + head) + 3 * (1 * block + head)
    P = 0.15 * B * (T - 2)
    assert F.total(F.teacher_terms(s)) == pytest.approx(3 * (2 * block + 2 * P * C * C + 2 * P * C * V), rel=1e-15)
    # the same model as the single-shape benchmark's step_flops
    for name in ("demo", "small", "minilm", "base"):
        p = PRESETS[name]
        old = S.step_flops(p, F.expected_masked(p), p.tokens)
        assert F.total(F.distill_terms(p)) == pytest.approx(old["distill_step"], rel=1e-12)
        assert F.total(F.teacher_terms(p)) == pytest.approx(old["teacher_mlm_step"], rel=1e-12)
    m = F.step_flop_model(PRESETS["minilm"])
    assert 0.5 < m["distill_vocab_head_share"] < 1  # V = 30522 dominates at C = 384
    assert F.achieved(2e9, 0.5, 8.0) == {"gflops": 4.0, "fraction_of_peak": 0.5}


def test_issue_table_shapes():
    assert (PRESETS["minilm"].batch, PRESETS["minilm"].hidden, PRESETS["minilm"].heads,
            PRESETS["minilm"].ff, PRESETS["minilm"].vocab) == (16, 384, 12, 1536, 30522)
    b = PRESETS["base"]
    assert (b.batch, b.hidden, b.heads, b.ff, b.vocab, b.teacher_layers, b.student_layers) == (8, 768, 12, 3072, 30522, 2, 1)
    assert preset_list("demo, small,minilm,base") == ["demo", "small", "minilm", "base"]
    for bad in ("demo,huge", "demo,demo", ","):
        with pytest.raises(ValueError):
            preset_list(bad)
    # "wide" is another name of "small": accepted, the same shapes, not a second run of them
    assert preset_list("wide") == ["wide"] and PRESETS["wide"] is PRESETS["small"]
    with pytest.raises(ValueError, match="wide is another name of small"):
        preset_list("small,wide")


def test_matmul_roofline_measures():
    r = matmul_roofline(64, 2, threads=1)
    assert r["n"] == 64 and len(r["times_s"]) == 2
    assert 0 < r["median_gflops"] <= r["best_gflops"] and math.isfinite(r["best_gflops"])


def test_sweep_cli_runs_each_step_in_a_child(tmp_path, capsys):
    out = tmp_path / "sweep.json"
    rc = bench.main(["--shapes", "quick,", "--repeats", "1", "--warmup", "1", "--skip", "torch",
                     "--head-chunk", "4", "--peak-n", "64", "--json", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    rows = r["rows"]
    assert [(x["step"], x["head"]) for x in rows] == [("teacher_mlm_step", "reference"),
                                                      ("distill_step", "reference"), ("distill_step", "fused 4")]
    for x in rows:
        assert x["median_s"] > 0 and x["peak_gflops"] > 0 and x["vmhwm_mb"] > x["rss_before_step_mb"] * 0.5
        assert x["fraction_of_peak"] == pytest.approx(x["flop"] / x["median_s"] / 1e9 / x["peak_gflops"])
    assert "| quick | distill_step | fused 4 |" in capsys.readouterr().out


def test_sweep_bad_options(capsys):
    for argv, what in ((["--shapes", "demo,huge"], "unknown shapes 'huge'"),
                       (["--shapes", "demo,base", "--head-chunk", "-1"], "--head-chunk")):
        assert bench.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("minidistil bench: error:") and what in err and len(err.splitlines()) == 1


def test_head_memory_and_timing_helpers():
    from minidistil.bench.head_memory import head_memory
    from minidistil.bench.head_timing import head_timing
    s = PRESETS["quick"].replace(batch=4, seq=64, vocab=2048)  # P = 256 rows of V = 2048
    m = head_memory(s, chunks=(16,))
    assert m["P"] == 256 and m["reference_mb"] > 4 * m["one_PxV_array_mb"]  # several (P, V) arrays
    assert m["gradients_mb"] < m["fused_16_mb"] < m["reference_mb"] / 4
    t = head_timing("quick", chunk=4, pairs=2, backend="numpy")
    lo, hi = t["ratio_95ci"]
    assert len(t["times_s"]["fused"]) == 2 and lo <= t["ratio_fused_over_reference"] <= hi
    with pytest.raises(ValueError, match="pairs must be >= 2"):
        head_timing("quick", pairs=1)
