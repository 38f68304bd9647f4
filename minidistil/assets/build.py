"""Rebuild ``minidistil/assets/teacher/`` from a finished ``pretrain --preset teacher`` run.

    python -m minidistil.assets.build RUN_DIR --command "minidistil pretrain --preset teacher ..."

It writes the Hugging Face folder with the weights in float16 (half the bytes; the accuracy
change is measured and recorded, and must stay under 0.1 points), ``recipe.json`` (the command,
the training time, the final validation figures in float32 and float16) and ``metrics.jsonl``
(every validation point and every 100th training step: the curve, small enough to ship).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

from . import RECIPE_FILE, TEACHER_DIR

MAX_ACCURACY_CHANGE = 0.001  # float16 storage may move validation accuracy by less than 0.1 points


def _curve(rows: list[dict], every: int = 100) -> list[dict]:
    return [r for r in rows if "val_loss" in r or r["step"] % every == 0 or r is rows[-1]]


def build(run_dir: str, command: str, out=TEACHER_DIR) -> dict:
    from ..io.pretrained import load_pretrained, save_pretrained
    from ..data.tokenizer import WordPieceTokenizer
    from ..train.evaluate import make_eval_set, predict
    from ..train.loop import read_metrics
    from ..train.runs import load_config, load_model, prepare_data
    cfg = load_config(run_dir)
    teacher, _ = load_model(os.path.join(run_dir, "pretrain", "model.npz"))
    tok = WordPieceTokenizer.from_file(os.path.join(run_dir, "vocab.txt"))
    data = prepare_data(cfg.data, tokenizer=tok)
    from ..train.demo import SHIPPED_EVAL  # the demo's evaluation, so both report one figure
    evalset = make_eval_set(data.val, tok, cfg.eval, n_masks=SHIPPED_EVAL.n_masks)
    full = predict(teacher, evalset)
    save_pretrained(teacher, tok, out, dtype=np.float16)
    with warnings.catch_warnings():  # a BertForMaskedLM folder has no pooler: expected here
        warnings.simplefilter("ignore")
        half, _ = load_pretrained(out)
    stored = predict(half, evalset)
    change = abs(stored["accuracy"] - full["accuracy"])
    if change >= MAX_ACCURACY_CHANGE:
        raise SystemExit(f"float16 storage moved validation accuracy by {100 * change:.3f} points "
                         f"(limit {100 * MAX_ACCURACY_CHANGE:.1f}); keep float32")
    rows = read_metrics(os.path.join(run_dir, "pretrain", "metrics.jsonl"))
    recipe = {
        "command": command,
        "config": cfg.to_dict(),
        "steps": rows[-1]["step"],
        "train_time_s": rows[-1]["time_s"],
        "n_val_sequences": len(data.val), "n_masks": SHIPPED_EVAL.n_masks, "n_masked": full["n_masked"],
        "val_accuracy_float32": full["accuracy"], "val_mlm_loss_float32": full["mlm_loss"],
        "val_accuracy": stored["accuracy"], "val_mlm_loss": stored["mlm_loss"],
        "parameters": int(teacher.num_parameters()),
    }
    from ..atomic import atomic_write_json, atomic_write_text
    atomic_write_json(os.path.join(out, RECIPE_FILE), recipe)
    atomic_write_text(os.path.join(out, "metrics.jsonl"),
                      "".join(json.dumps(r) + "\n" for r in _curve(rows)))
    return recipe


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m minidistil.assets.build", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a finished `minidistil pretrain --preset teacher` run directory")
    p.add_argument("--command", required=True, help="the exact command that trained it")
    args = p.parse_args(argv)
    recipe = build(args.run_dir, args.command)
    print(json.dumps({k: v for k, v in recipe.items() if k != "config"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
