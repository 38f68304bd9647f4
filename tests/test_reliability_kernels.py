"""Freshly compiled and cache-loaded Numba kernels give the same bits (issue 20, item 2).

Before the fix, LLVM's ``reassoc`` flag let each compilation choose the order of a row sum, and
Numba compiles a parallel kernel's body twice (alone, then inside its caller; only the second
copy is cached): the first process, which compiles, and every later one, which loads, differed
in the last bits of softmax, log-softmax, LayerNorm and the soft-target kernel.
"""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _digests(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, os.path.join(HERE, "_kernel_bits.py")], env=env,
                         capture_output=True, text=True, timeout=1200, check=True).stdout
    return dict(line.split() for line in out.splitlines())


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="needs compiled kernels")
def test_fresh_compile_and_cache_load_give_the_same_bits(tmp_path):
    compiled = _digests(tmp_path / "cache")  # compiles every kernel and fills the cache
    assert os.listdir(tmp_path / "cache"), "the kernels were not cached"
    loaded = _digests(tmp_path / "cache")  # loads every kernel from that cache
    assert len(compiled) == 18
    differ = sorted(k for k in compiled if compiled[k] != loaded[k])
    assert not differ, f"fresh and cached kernels differ: {differ}"
