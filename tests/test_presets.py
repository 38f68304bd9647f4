"""Named recipes (`pretrain --preset`) and the validation curve the training loop records."""
import dataclasses
import os

import numpy as np
import pytest

from minidistil.cli import build_parser, main
from minidistil.train.loop import METRICS_FILE, read_metrics, train_loop
from minidistil.train.pretrain import make_mlm_step
from minidistil.train.runs import PRESETS, RunConfig, demo_config, teacher_config

from test_pipeline import STAGE, TOK, synthetic_sequences, tiny_teacher


def test_every_preset_round_trips_through_its_json_form():
    for name, make in PRESETS.items():
        cfg = make(3)
        assert cfg.seed == 3, name
        assert RunConfig.from_dict(cfg.to_dict()) == cfg, name


def test_the_teacher_preset_keeps_the_demo_split_and_records_a_curve():
    t, d = teacher_config(), demo_config()
    # the shipped teacher must never have seen the demo's validation documents
    assert (t.data.val_fraction, t.data.split_seed, t.data.corpus, t.data.max_docs) == \
           (d.data.val_fraction, d.data.split_seed, d.data.corpus, d.data.max_docs)
    assert t.pretrain.eval_every > 0
    assert t.model.student_layers * 2 == t.model.num_hidden_layers


def test_the_cli_accepts_the_preset_and_refuses_two_recipes(capsys, tmp_path):
    args = build_parser().parse_args(["pretrain", "--preset", "teacher", "--out", str(tmp_path)])
    assert args.preset == "teacher"
    assert main(["pretrain", "--quick", "--preset", "teacher", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--quick" in err and "--preset teacher" in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "x")


def test_the_loop_adds_validation_figures_every_eval_every_steps(tmp_path):
    model = tiny_teacher()
    calls = []

    def evaluate():
        calls.append(1)
        return {"val_loss": 1.0 + len(calls)}

    stage = dataclasses.replace(STAGE, steps=7, eval_every=3)
    train_loop("pretrain", model, make_mlm_step(model, TOK, stage), synthetic_sequences(), TOK.pad_id,
               stage, seed=5, folder=str(tmp_path), progress=False, evaluate=evaluate)
    rows = read_metrics(os.path.join(tmp_path, METRICS_FILE))
    assert [r["step"] for r in rows if "val_loss" in r] == [3, 6, 7]   # every 3 steps and the last
    assert [r["val_loss"] for r in rows if "val_loss" in r] == [2.0, 3.0, 4.0]
