"""The models: the BERT teacher and the DistilBERT student, their config and parameter bookkeeping.

    from minidistil.models import Bert, BertConfig, DistilBert
    teacher = Bert(BertConfig.demo(vocab_size=4096), dtype=np.float32, seed=0)
    student = DistilBert.from_teacher(teacher)            # layers 0, 2, 4, ...
"""
from .config import BertConfig
from .params import (BERT_NAMING, DISTILBERT_NAMING, PARAMETER_KINDS, Naming, count_parameters,
                     param_shapes)
from .base import EncoderMLM, HeadCache, ModelCache, ModelOutput
from .bert import Bert
from .distilbert import DistilBert, student_depth, student_layers

__all__ = [
    "BertConfig", "Bert", "DistilBert", "student_depth", "student_layers", "ModelOutput", "ModelCache", "HeadCache", "EncoderMLM",
    "count_parameters", "param_shapes", "PARAMETER_KINDS", "Naming", "BERT_NAMING", "DISTILBERT_NAMING",
]
