"""The two bench parts that write their own section of docs/performance.md: the PyTorch
co-existence ratios (bench/coexist.py) and the demo's fast-vs-plain accuracies (bench/fast_parity.py).
Their measurements take minutes; here their arithmetic and the doc update, on made-up figures."""
import json

import pytest

from minidistil.bench import coexist, fast_parity


def _child(times, cpu, layer):
    return {"times_s": times, "cpu_s": cpu, "median_s": sorted(times)[len(times) // 2], "threading_layer": layer}


def test_ratios_divide_by_the_run_without_torch_round_by_round():
    runs = {"without_torch": [_child([1.0, 1.0, 1.2], [0.9] * 3, "omp"), _child([2.0, 2.0, 2.0], [0.9] * 3, "omp")],
            "with_torch": [_child([1.1, 1.1, 1.1], [1.0] * 3, "workqueue"), _child([2.2, 2.2, 2.2], [1.0] * 3, "workqueue")],
            "with_torch_unfixed": [_child([3.0] * 3, [2.0] * 3, "omp"), _child([4.0] * 3, [2.0] * 3, "omp")]}
    s = coexist.summarise(runs)
    assert s["median_s"]["without_torch"] == 1.6  # over all six steps: 1, 1, 1.2, 2, 2, 2
    assert s["ratios"]["with_torch"] == pytest.approx(1.65 / 1.6)
    assert s["ratios_per_round"]["with_torch"] == pytest.approx([1.1, 1.1])
    assert s["ratios_per_round"]["with_torch_unfixed"] == pytest.approx([3.0, 2.0])
    assert s["cpu_median_s"]["with_torch_unfixed"] == 2.0
    assert s["threading_layers"]["with_torch"] == ["workqueue"]
    text = "\n".join(coexist.coexist_lines({"rounds": 2, "threads": 2, "shapes": {}, **s}))
    assert "| with_torch | workqueue | 1.650 s | 1.000 s | 1.03x (rounds: 1.10, 1.10) |" in text


def test_the_doc_section_is_replaced_in_place_or_inserted_before_the_results(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nintro\n\n## Results\n\ntables\n", encoding="utf-8")
    coexist.update_doc(str(doc), [coexist.BEGIN, "first", coexist.END])
    assert doc.read_text() == f"# Performance\n\nintro\n\n{coexist.BEGIN}\nfirst\n{coexist.END}\n\n## Results\n\ntables\n"
    coexist.update_doc(str(doc), [coexist.BEGIN, "second", coexist.END])
    text = doc.read_text()
    assert "second" in text and "first" not in text and text.count(coexist.BEGIN) == 1
    assert text.endswith("## Results\n\ntables\n")
    fast_parity_lines = [fast_parity.BEGIN, "parity", fast_parity.END]
    coexist.update_doc(str(doc), fast_parity_lines, fast_parity.BEGIN, fast_parity.END)
    assert "second" in doc.read_text() and "parity" in doc.read_text()


def test_parity_verdicts():
    plain = {"a": (0.40, 0.01), "b": (0.40, 0.01), "c": (0.40, 0.01)}
    fast = {"a": (0.40, 0.01), "b": (0.42, 0.01), "c": (0.45, 0.01)}  # 0.02 < 1.96 * 0.0141 < 0.05
    verdicts = {r["model"]: r["verdict"] for r in fast_parity.compare(plain, fast)}
    assert verdicts == {"a": "identical", "b": "within noise", "c": "differs beyond noise"}


def test_parity_reads_a_demo_eval_json_and_rejects_an_unfinished_run(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    fig = {"accuracy": 0.5, "se": 0.02}
    (run / "eval.json").write_text(json.dumps({"teacher": fig, "student": fig, "controls": {"control-mlm-teacher-init": fig}}))
    assert fast_parity.accuracies(str(run)) == {"teacher": (0.5, 0.02), "student": (0.5, 0.02),
                                                "control-mlm-teacher-init": (0.5, 0.02)}
    assert fast_parity.main(["--runs", str(run), str(tmp_path / "missing")]) == 2
    assert "no eval.json" in capsys.readouterr().err


def test_parity_of_the_whole_demo_has_its_own_section(tmp_path, capsys):
    runs = []
    for name, acc in (("plain", 0.5), ("fast", 0.5)):
        d = tmp_path / name
        d.mkdir()
        fig = {"accuracy": acc, "se": 0.02}
        (d / "eval.json").write_text(json.dumps({"teacher": fig, "student": fig}))
        runs.append(str(d))
    doc = tmp_path / "performance.md"
    doc.write_text(f"# P\n\n{fast_parity.BEGIN}\nquick rows\n{fast_parity.END}\n\n## Results\n", encoding="utf-8")
    assert fast_parity.main(["--full", "--runs", *runs, "--conditions", "here", "--write-doc", str(doc)]) == 0
    text = doc.read_text()
    begin, end = fast_parity.MARKERS[True]
    assert "quick rows" in text and text.count(begin) == 1  # the quick demo's section stays
    section = text.split(begin, 1)[1].split(end, 1)[0]
    assert "`minidistil demo` run twice" in section and "--quick" not in section
    assert "| teacher | 50.00% +/- 2.00 | 50.00% +/- 2.00 |" in section and "identical" in section
    capsys.readouterr()
