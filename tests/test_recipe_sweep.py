"""The recipe sweep: its variant syntax, and a two-step sweep scored paired against the demo."""
import json

import numpy as np
import pytest

from minidistil.commands import recipe_sweep as cmd
from minidistil.train import recipe_sweep as rs


def test_a_variant_is_fields_joined_by_plus():
    assert rs.parse_variant("init_layers=top+alpha_mlm=0") == {"init_layers": "top", "alpha_mlm": 0.0}
    assert rs.parse_variant("init_layers=0,2,5+batch_size=16") == {"init_layers": "0,2,5", "batch_size": 16}
    assert rs.folder_name("init_layers=0,2,5+lr=5e-3") == "init_layers-0.2.5_lr-5e-3"


@pytest.mark.parametrize("bad, words", [
    ("alpha_mlm", "not field=value"), ("steps=3", "not field=value"), ("lr=fast", "needs a float"),
    ("batch_size=1.5", "needs a int"),
])
def test_a_bad_variant_names_the_part(bad, words):
    with pytest.raises(ValueError, match=words):
        rs.parse_variant(bad)


def test_the_command_line_refuses_bad_input_in_one_line(capsys):
    for argv, words in ((["lr=fast"], "needs a float"), (["--steps", "0"], "--steps must be >= 1")):
        with pytest.raises(SystemExit) as e:
            cmd.main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and words in err[-1]
    assert cmd.main(["--no-fast", "--steps", "1", "--out", "/nonexistent/never-made", "init_layers=9,10,11"]) == 2
    assert "the teacher has 6 layers" in capsys.readouterr().err


def test_a_two_step_sweep_is_paired_and_reuses_its_students(tmp_path):
    out = str(tmp_path / "sweep")
    lines = []
    table = rs.sweep(["init_layers=top"], steps=2, n_masks=1, out=out, log=lines.append)
    base, top = table["rows"]
    assert base["variant"] == rs.BASE and "minus_demo" not in base
    assert top["changes"] == {"init_layers": "top"}
    # the paired difference is the difference of the two accuracies on the same tokens
    assert top["minus_demo"] == pytest.approx(top["accuracy"] - base["accuracy"], abs=1e-12)
    lo, hi = top["minus_demo_ci95"]
    assert lo < top["minus_demo"] < hi and top["minus_demo_se"] > 0
    assert top["minus_demo"] != 0  # another start gives other predictions
    assert 0 < base["retention"] < 1.5 and len(lines) == 2
    with open(f"{out}/sweep.json", encoding="utf-8") as f:
        assert json.load(f)["rows"][1]["variant"] == "init_layers=top"
    again = rs.sweep(["init_layers=top"], steps=2, n_masks=1, out=out, log=lambda m: None)
    assert [r["accuracy"] for r in again["rows"]] == [base["accuracy"], top["accuracy"]]
    assert np.isfinite(again["teacher_accuracy"])
