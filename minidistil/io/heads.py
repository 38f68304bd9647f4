"""Hugging Face folders for the sequence-classification models (``BertForSequenceClassification``,
``DistilBertForSequenceClassification``): what :func:`~minidistil.io.pretrained.save_pretrained`
and :func:`~minidistil.io.pretrained.load_pretrained` call for these architectures.

The file holds the encoder under its prefix (``bert.`` with the pooler, or ``distilbert.``), the
head's own ``classifier.*`` (and DistilBERT's ``pre_classifier.*``), and no MLM head. The config
carries ``architectures``, ``id2label``/``label2id`` (their length is ``num_labels``),
``problem_type`` and the head's dropout (``classifier_dropout`` or ``seq_classif_dropout``).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..models.heads import (BertForSequenceClassification, DistilBertForSequenceClassification, HeadConfig,
                            SequenceClassifier, classifier_for)

HEAD_PREFIXES = ("classifier.", "pre_classifier.")


def is_classifier_config(raw: dict) -> bool:
    archs = raw.get("architectures") or []
    return any(isinstance(a, str) and a.endswith("ForSequenceClassification") for a in archs)


def checkpoint_num_labels(raw: dict) -> int:
    if isinstance(raw.get("id2label"), dict) and raw["id2label"]:
        return len(raw["id2label"])
    return int(raw.get("num_labels", 2))


def head_config_from(raw: dict, family: str) -> HeadConfig:
    kw = dict(num_labels=checkpoint_num_labels(raw), problem_type=raw.get("problem_type"))
    if family == "bert":
        kw.update(classifier_dropout=raw.get("classifier_dropout"),
                  hidden_dropout_prob=float(raw.get("hidden_dropout_prob", 0.1)))
    else:
        kw["seq_classif_dropout"] = float(raw.get("seq_classif_dropout", 0.2))
    return HeadConfig(**kw)


def classifier_hf_config(model: SequenceClassifier, base: dict, label_names=None) -> dict:
    """``base`` (the encoder's Hugging Face config) turned into the classifier's."""
    K = model.num_labels
    names = list(label_names) if label_names is not None else [f"LABEL_{i}" for i in range(K)]
    if len(names) != K:
        raise ValueError(f"label_names has {len(names)} names for num_labels={K}")
    cfg = dict(base, architectures=[model.architecture], problem_type=model.head.problem_type,
               id2label={str(i): n for i, n in enumerate(names)}, label2id={n: i for i, n in enumerate(names)})
    if isinstance(model, BertForSequenceClassification):
        cfg["classifier_dropout"] = model.head.classifier_dropout
        cfg["hidden_dropout_prob"] = model.head.hidden_dropout_prob
    else:
        cfg["seq_classif_dropout"] = model.head.seq_classif_dropout
    return cfg


def save_classifier(model: SequenceClassifier, folder: Path, dtype, write_rest, hf_config, save_file,
                    label_names=None) -> None:
    """Write ``model.safetensors`` and ``config.json``; ``write_rest`` writes the tokenizer files."""
    config = classifier_hf_config(model, hf_config(model.encoder), label_names)
    arrays = {k: np.asarray(v, dtype=dtype) for k, v in model.params.items()}
    save_file(arrays, folder / "model.safetensors", metadata={"format": "pt", "written_by": "minidistil"})
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    write_rest()


def load_classifier(tensors, family, config, raw, where, num_labels, dtype, seed, map_state_dict, error):
    """Build the classifier of ``family`` from a classification checkpoint's ``tensors``."""
    head_cfg = head_config_from(raw, family)
    if num_labels is not None and num_labels != head_cfg.num_labels:
        raise error(f"{where}: the checkpoint's classifier has {head_cfg.num_labels} labels but "
                    f"num_labels={num_labels} was asked; load it with num_labels={head_cfg.num_labels} "
                    "or fine-tune a fresh head from the encoder")
    head = {k: v for k, v in tensors.items() if k.startswith(HEAD_PREFIXES)}
    body = {k: v for k, v in tensors.items() if not k.startswith(HEAD_PREFIXES)}
    state, _, _ = map_state_dict(body, family, config, where)
    cls = BertForSequenceClassification if family == "bert" else DistilBertForSequenceClassification
    model = cls(config, head_cfg, dtype=dtype, seed=seed)
    expected = set(model.head_params)
    problems = [f"missing {sorted(expected - set(head))}"] if expected - set(head) else []
    problems += [f"unexpected {sorted(set(head) - expected)}"] if set(head) - expected else []
    problems += [f"{k} has shape {tuple(head[k].shape)}, expected {model.head_params[k].shape} "
                 f"(num_labels={head_cfg.num_labels} from id2label)"
                 for k in expected & set(head) if tuple(head[k].shape) != model.head_params[k].shape]
    if family == "bert" and model.encoder.naming.pooler + ".weight" not in state:
        problems.append("missing the pooler (bert.pooler.dense.*), which the head reads")
    if problems:
        raise error(f"{where} does not fit a {cls.__name__}: " + ", ".join(problems))
    for k, v in state.items():
        if k in model.params:
            model.params[k][...] = v
    for k, v in head.items():
        model.params[k][...] = v
    return model


def fresh_head(encoder, num_labels: int, seed: int, where: str) -> SequenceClassifier:
    """A masked-LM checkpoint asked for with ``num_labels``: its encoder under a fresh head."""
    model = classifier_for(encoder, seed=seed, num_labels=num_labels)
    warnings.warn(f"{where} is a masked-LM checkpoint: {', '.join(model.head_params)} freshly initialised "
                  f"(seed {seed}) for num_labels={num_labels}; fine-tune before using the logits",
                  UserWarning, stacklevel=3)
    return model
