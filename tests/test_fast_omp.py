"""fast/omp.py: Numba's idle threads sleep also when an OpenMP runtime was loaded first (torch's).

Each case runs in a fresh interpreter: the threading layer and libgomp's wait policy are
process-wide and fixed once Numba's pool starts. An OpenMP runtime "loaded first" is the system
libgomp opened with ctypes, which is what ``import torch`` does with its own copy.
"""
import ctypes.util
import json
import os
import subprocess
import sys

import pytest

from minidistil import fast
from minidistil.fast import omp

LIBGOMP = ctypes.util.find_library("gomp")
needs_libgomp = pytest.mark.skipif(LIBGOMP is None, reason="no libgomp to load first")
jit_on = pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="needs Numba's threads")

_PROBE = """
import ctypes, json, os, sys
if sys.argv[1] != "-":
    ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)  # an OpenMP runtime before minidistil
import numpy as np
import minidistil.fast as fast
info = fast.enable()
from minidistil.kernels import softmax_forward
softmax_forward(np.ones((64, 8)), 2.0)  # a parallel kernel: Numba's pool starts here
import numba
print(json.dumps({"layer": numba.threading_layer(), "on": info["on"], "off": info["off"],
                  "policy": os.environ.get("OMP_WAIT_POLICY"), "spin": os.environ.get("GOMP_SPINCOUNT"),
                  "warnings": info["warnings"]}))
"""


def _probe(lib, **env):
    full = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NUMBA_THREADING_LAYER")}
    full.update(env)
    p = subprocess.run([sys.executable, "-c", _PROBE, lib or "-"], capture_output=True, text=True,
                       env=full, timeout=600)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


@jit_on
def test_without_a_runtime_first_the_wait_policy_does_it():
    r = _probe(None)
    assert r["layer"] == "omp" and r["policy"] == "PASSIVE"
    assert r["on"]["idle_threads_sleep"].startswith("OMP_WAIT_POLICY=PASSIVE")
    # a short spin before sleeping (an idle vCPU is slow to wake), stated in info()
    assert r["spin"] == omp.SPINCOUNT and f"GOMP_SPINCOUNT={omp.SPINCOUNT}" in r["on"]["idle_threads_sleep"]


@jit_on
def test_the_users_spin_count_stands():
    r = _probe(None, GOMP_SPINCOUNT="0")
    assert r["policy"] == "PASSIVE" and r["spin"] == "0"
    assert "GOMP_SPINCOUNT=0, the user's" in r["on"]["idle_threads_sleep"]


@jit_on
@needs_libgomp
def test_a_runtime_loaded_first_gets_numba_the_workqueue_layer():
    r = _probe(LIBGOMP)
    assert r["layer"] == "workqueue"
    assert "workqueue" in r["on"]["idle_threads_sleep"] and "libgomp" in r["on"]["idle_threads_sleep"]
    assert r["policy"] is None and r["spin"] is None  # nothing set that could no longer act


@jit_on
@needs_libgomp
def test_the_users_threading_layer_is_kept_and_the_reason_given():
    r = _probe(LIBGOMP, NUMBA_THREADING_LAYER="omp")
    assert r["layer"] == "omp" and "idle_threads_sleep" not in r["on"]
    assert "the user chose Numba's threading layer (omp)" in r["off"]["idle_threads_sleep"]


def test_the_torch_warning_only_when_the_threads_could_not_be_quieted(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert fast.torch_warning() is None
    monkeypatch.setitem(sys.modules, "torch", object())
    assert fast.torch_warning(idle_threads_sleep=True) is None
    assert "fast.enable() before any kernel runs" in fast.torch_warning(idle_threads_sleep=False)
