"""The miniature GLUE: tasks (deterministic, split by document, balanced), user TSV tasks and
their errors, the metrics and baselines, and ``minidistil glue`` end to end on a tiny run."""
import json
import os

import numpy as np
import pytest

from minidistil.cli import main
from minidistil.data.tasks import TASK_NAMES, load_task, read_tsv_task, swap_two_words
from minidistil.data.task_sources import labelled_documents
from minidistil.data.corpus import load_default_corpus
from minidistil.train.baselines import bow_baseline, majority_baseline
from minidistil.train.task_metrics import matthews, pearson, spearman, task_score


def test_labelled_documents_are_the_embedded_corpus():
    assert [d.text for d in labelled_documents()] == load_default_corpus()


@pytest.mark.parametrize("name", TASK_NAMES)
def test_builtin_tasks_split_by_document_and_balanced(name):
    t = load_task(name)
    assert len(t.train) == 2000 and len(t.dev) >= (850 if name == "area" else 2000)
    assert not {ex.doc for ex in t.train} & {ex.doc for ex in t.dev}  # no document on both sides
    assert not {(ex.a, ex.b) for ex in t.train} & {(ex.a, ex.b) for ex in t.dev}
    for side in ("train", "dev"):
        counts = list(t.balance(side).values())
        assert max(counts) == min(counts), (side, t.balance(side))  # exactly balanced
    assert t.kind == ("pair" if name in ("samedoc", "related") else "single")
    again = load_task(name)
    assert again.train == t.train and again.dev == t.dev  # deterministic


def test_swap_keeps_the_words_and_moves_two():
    import random
    s = "Return the number of items in the container."
    t = swap_two_words(s, random.Random(0))
    assert t != s and sorted(t.split()) == sorted(s.split())
    assert sum(a != b for a, b in zip(s.split(), t.split())) == 2 and t.endswith("container.")


def test_metrics_against_hand_computations():
    # confusion tp=2, tn=1, fp=1, fn=0: (2*1 - 1*0) / sqrt(3 * 2 * 2 * 1) = 2 / sqrt(12)
    assert matthews([1, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(2 / np.sqrt(12))
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1])
    assert spearman([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(np.corrcoef([1.5, 1.5, 3], [1, 2, 3])[0, 1])
    assert task_score("pearson_spearman", [1, 2, 3], [1, 2, 3])["score"] == pytest.approx(100)


def _write(folder, name, rows):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("\n".join("\t".join(r) for r in rows) + "\n", encoding="utf-8")


def test_user_tsv_tasks(tmp_path):
    d = tmp_path / "mine"
    _write(d, "train.tsv", [["sentence1", "sentence2", "label"], ["a b", "c d", "yes"], ["e f", "g", "no"]])
    _write(d, "dev.tsv", [["sentence1", "sentence2", "label"], ["a", "b", "no"]])
    t = read_tsv_task(str(d))
    assert t.kind == "pair" and t.num_labels == 2 and t.label_names == ["no", "yes"] and t.dev[0].label == 0
    _write(d, "train.tsv", [["sentence", "label"], ["a b", "0.5"], ["c", "4.25"]])
    _write(d, "dev.tsv", [["sentence", "label"], ["a", "1"]])
    assert read_tsv_task(str(d)).is_regression
    _write(d, "dev.tsv", [["sentence", "label"], ["a", "1", "extra"]])
    with pytest.raises(ValueError, match=r"dev.tsv line 2: expected 2 tab-separated columns, got 3"):
        read_tsv_task(str(d))
    _write(d, "dev.tsv", [["sentence", "label"]])
    with pytest.raises(ValueError, match="needs a header row and at least one example"):
        read_tsv_task(str(d))
    with pytest.raises(ValueError, match="not the folder|not a file|give the folder"):
        read_tsv_task(str(d / "train.tsv"))
    with pytest.raises(ValueError, match="unknown task"):
        load_task("nosuchtask")


def test_baselines_bow_cannot_see_word_order():
    t = load_task("swap")
    t.train, t.dev = t.train[:400], t.dev[:200]
    assert majority_baseline(t)["score"] == 0.0  # MCC of a constant prediction
    assert abs(bow_baseline(t)["score"]) < 25  # near chance: the words are the same
    a = load_task("area")
    a.train, a.dev = a.train[:800], a.dev[:200]
    assert bow_baseline(a)["score"] > majority_baseline(a)["score"] + 15


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from minidistil.data.tokenizer import train_wordpiece
    from minidistil.models import Bert, BertConfig, DistilBert
    from minidistil.train.runs import save_model
    run = tmp_path_factory.mktemp("run")
    texts = [ex.a for ex in load_task("swap").train[:300]]
    tok = train_wordpiece(texts, 300)
    tok.save(str(run / "vocab.txt"))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    teacher = Bert(cfg, seed=0)
    for folder in ("pretrain", "distill", "control-mlm-teacher-init"):
        (run / folder).mkdir()
    save_model(str(run / "pretrain" / "model.npz"), teacher)
    save_model(str(run / "distill" / "model.npz"), DistilBert.from_teacher(teacher))
    save_model(str(run / "control-mlm-teacher-init" / "model.npz"), DistilBert.from_teacher(teacher, [1]))
    return run


def test_glue_command_end_to_end(tiny_run, tmp_path, capsys):
    user = tmp_path / "mytask"
    _write(user, "train.tsv", [["sentence", "label"]] + [[f"word{i % 7} text", str(i % 2)] for i in range(40)])
    _write(user, "dev.tsv", [["sentence", "label"]] + [[f"word{i % 7} text", str(i % 2)] for i in range(10)])
    code = main(["glue", "--out", str(tiny_run), "--quick", "--no-progress", "--tasks", "swap,related",
                 "--tasks", str(user)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Table 1 in miniature" in out and "Table 2 in miniature" in out and "paper: DistilBERT" in out
    assert "(a) Lmlm only, teacher init" in out
    report = json.loads((tiny_run / "glue" / "report.json").read_text())
    assert set(report["scores"]) == {"teacher", "student", "control_a"}
    assert set(report["tasks"]) == {"swap", "related", "mytask"}
    assert len(report["scores"]["student"]["swap"]["seeds"]) == 3
    assert report["table2"]["task"] == "swap" and len(report["table2"]["student_D"]["seeds"]) == 3
    assert os.path.getsize(tiny_run / "glue" / "glue.png") > 10_000
    for name in ("swap", "related", "mytask"):  # the macro difference, task by task, with its interval
        d = report["differences"][f"student - control_a ({name})"]
        assert d["ci95"][0] is None or d["ci95"][0] <= d["difference"] <= d["ci95"][1]
    assert "student minus (a) per task: swap " in out


def test_glue_command_errors(tmp_path, capsys):
    assert main(["glue", "--out", str(tmp_path / "none")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "pretrain").mkdir()
    assert main(["glue", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no teacher" in err and err.count("\n") == 1


def test_epoch_batches_group_by_length_cover_every_example_once():
    from minidistil.train.finetune import GROUP_SPAN, epoch_batches
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 64, 2 * GROUP_SPAN * 8 + 13)  # (N,): two full spans and a short one
    for group in (False, True):
        batches = epoch_batches(lengths, 8, np.random.default_rng(1), group)
        assert len(batches) == -(-len(lengths) // 8)  # ceil(N / B) either way: the progress bar's count
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
        assert sum(len(b) < 8 for b in batches) == 1  # only the very last batch of the epoch is short
    grouped = epoch_batches(lengths, 8, np.random.default_rng(1), True)
    plain = epoch_batches(lengths, 8, np.random.default_rng(1), False)
    padded = lambda bs: sum(len(b) * lengths[b].max() for b in bs)  # tokens after padding to each batch's longest
    assert padded(grouped) < 0.7 * padded(plain)
    spread = [np.ptp(lengths[b]) for b in grouped if len(b) == 8]
    assert np.median(spread) <= 3  # a batch holds examples of nearly one length
    # the batch order is shuffled: long and short batches alternate, not one sorted sweep
    means = [lengths[b].mean() for b in grouped]
    assert not (np.all(np.diff(means) <= 0) or np.all(np.diff(means) >= 0))


def test_paired_bootstrap_against_a_hand_computation():
    from types import SimpleNamespace as NS
    from minidistil.train.glue import bootstrap_scores, verdict
    gold = np.array([0, 1, 1, 0, 1])
    task = NS(name="t", metric="accuracy", dev=[NS(label=int(g)) for g in gold])
    right, wrong = gold.copy(), 1 - gold
    half = np.array([0, 1, 0, 1, 1])  # right on examples 0, 1, 4
    boot = bootstrap_scores([task], {"r": {"t": right}, "w": {"t": wrong}, "h": {"t": half},
                                     "none": {}}, n=50, seed=3)
    assert np.all(boot["r"] == 100) and np.all(boot["w"] == 0) and np.all(np.isnan(boot["none"]))
    rng = np.random.default_rng(3)  # the same resamples, by hand
    for b in range(50):
        i = rng.integers(0, 5, 5)
        assert boot["h"][b, 0] == 100 * np.mean(half[i] == gold[i])
    assert verdict([0.5, 3.0]) == "met" and verdict([-0.5, 3.0]) == "not resolved"
    assert verdict([-3.0, -0.5]) == "MISSED" and verdict([None, None]) == "not resolved"
