"""Finite-difference checks of every layer (float64, random dy, non-trivial parameters).

Bound: 1e-7 relative (minidistil.gradcheck.rel_error, central differences h = 1e-5) for these
smooth ops, and |exact - numerical| <= 1e-9 + 1e-7 |numerical| entrywise: the scalar checked,
sum(y * dy), is ~10 here, so float64 rounding alone moves a difference quotient by
~1e-15 * 10 / 1e-5 = 1e-9 (entries whose gradient is ~0 can only be held to that). Plus: backward never mutates dy or the cache, dtype is preserved, bad input is caught.
"""
import numpy as np
import pytest

from minidistil.gradcheck import compare, numerical_grad
from minidistil.layers import (
    BLOCK_KEYS, block_backward, block_forward, embedding_backward, embedding_forward,
    feedforward_backward, feedforward_forward, layernorm_layer_backward, layernorm_layer_forward,
    linear_backward, linear_forward, self_attention_backward, self_attention_forward,
)

TOL = 1e-7  # relative, smooth ops in float64
ATOL = 1e-9  # absolute floor: float64 rounding of the finite differences (see the module docstring)


def check_layer(forward, backward, inputs, rng, tol=TOL, verbose=True):
    """minidistil.gradcheck.check_layer with the absolute floor ATOL: f = sum(forward(**inputs)[0] * dy)."""
    y, cache = forward(**inputs)
    dy = rng.standard_normal(y.shape)  # random upstream gradient
    grads = backward(dy, cache)

    def f():
        return float(np.sum(forward(**inputs)[0] * dy))

    pairs = {name: (g, numerical_grad(f, inputs[name], h=1e-5)) for name, g in grads.items()}
    return compare(pairs, tol=tol, atol=ATOL, verbose=verbose)
B, T, C, NH, F = 2, 5, 8, 2, 12


def _mask():
    m = np.ones((B, T), dtype=np.int64)  # (B, T)
    m[1, 3:] = 0  # second sequence padded
    return m


def _block_params(rng, dtype=np.float64):
    p = {}
    for n in "qkvo":
        p[f"{n}.weight"] = rng.normal(0, 0.3, (C, C)).astype(dtype)  # (C, C)
        p[f"{n}.bias"] = rng.normal(0, 0.1, C).astype(dtype)  # (C,)
    p["ff1.weight"] = rng.normal(0, 0.3, (F, C)).astype(dtype)  # (F, C)
    p["ff1.bias"] = rng.normal(0, 0.1, F).astype(dtype)  # (F,)
    p["ff2.weight"] = rng.normal(0, 0.3, (C, F)).astype(dtype)  # (C, F)
    p["ff2.bias"] = rng.normal(0, 0.1, C).astype(dtype)  # (C,)
    for n in ("ln1", "ln2"):
        p[f"{n}.weight"] = (1.0 + rng.normal(0, 0.2, C)).astype(dtype)  # (C,) gain not 1
        p[f"{n}.bias"] = rng.normal(0, 0.2, C).astype(dtype)  # (C,) shift not 0
    return p


def _check_dict_layer(fwd, bwd, x, p, rng):
    """check_layer wants one flat dict of inputs; split it back into x and p for the layer."""
    names = list(p)

    def forward(x, **kw):
        return fwd(x, {n: kw[n] for n in names})

    def backward(dy, cache):
        dx, grads = bwd(dy, cache)
        return {"x": dx, **grads}

    return check_layer(forward, backward, {"x": x, **p}, rng, tol=TOL, verbose=True)


def _passes(verdict, zero_grads=("k.bias",)):
    """All rows within TOL, except the key bias: its true gradient is exactly 0 (adding one
    vector to every key adds q.bk to a whole row of scores, which softmax ignores), so its
    relative error is pure finite-difference noise; there both sides must be ~0 instead."""
    for r in verdict.rows:
        if r.name in zero_grads:
            if not r.max_abs < 1e-9:
                return False
        elif not r.ok:
            return False
    return bool(verdict.rows)


def test_linear_gradcheck():
    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal((B, T, C)), "weight": rng.standard_normal((F, C)),
              "bias": rng.standard_normal(F)}

    def backward(dy, cache):
        dx, g = linear_backward(dy, cache)
        return {"x": dx, **g}

    assert check_layer(linear_forward, backward, inputs, rng, tol=TOL, verbose=True)


def test_linear_without_bias_and_2d_input():
    rng = np.random.default_rng(1)
    x, W = rng.standard_normal((4, C)), rng.standard_normal((3, C))
    y, cache = linear_forward(x, W, None)
    np.testing.assert_allclose(y, x @ W.T)
    dx, g = linear_backward(np.ones_like(y), cache)
    assert set(g) == {"weight"} and dx.shape == x.shape


def test_embedding_forward_and_scatter_add_with_repeats():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((7, C))  # (V, C)
    ids = np.array([[1, 3, 1, 0], [6, 1, 3, 3]])  # repeated ids must accumulate
    y, cache = embedding_forward(ids, W)
    np.testing.assert_array_equal(y, W[ids])
    dy = rng.standard_normal(y.shape)
    dy_before = dy.copy()
    dW = embedding_backward(dy, cache)
    ref = np.zeros_like(W)
    for (b, t), i in np.ndenumerate(ids):
        ref[i] += dy[b, t]
    np.testing.assert_allclose(dW, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(dy, dy_before)
    assert np.all(dW[[2, 4, 5]] == 0)


def test_embedding_gradcheck():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 6, size=(B, T))
    W = rng.standard_normal((6, C))
    inputs = {"weight": W}
    assert check_layer(lambda weight: embedding_forward(ids, weight),
                       lambda dy, cache: {"weight": embedding_backward(dy, cache)},
                       inputs, rng, tol=TOL, verbose=True)


@pytest.mark.parametrize("bad, err", [(np.array([[0, 7]]), ValueError), (np.array([[-1, 0]]), ValueError),
                                      (np.array([[0.0, 1.0]]), TypeError), ([[0, 1]], TypeError)])
def test_embedding_bad_ids(bad, err):
    with pytest.raises(err, match="ids"):
        embedding_forward(bad, np.zeros((7, 3)))


def test_layernorm_layer_gradcheck():
    rng = np.random.default_rng(4)
    inputs = {"x": rng.standard_normal((B, T, C)) * 2 + 0.5,
              "weight": 1.0 + 0.3 * rng.standard_normal(C), "bias": 0.3 * rng.standard_normal(C)}

    def backward(dy, cache):
        dx, g = layernorm_layer_backward(dy, cache)
        return {"x": dx, **g}

    assert check_layer(lambda x, weight, bias: layernorm_layer_forward(x, weight, bias, 1e-12),
                       backward, inputs, rng, tol=TOL, verbose=True)


@pytest.mark.parametrize("use_mask", [False, True])
def test_self_attention_gradcheck(use_mask):
    rng = np.random.default_rng(5)
    p = {k: v for k, v in _block_params(rng).items() if k[0] in "qkvo"}
    x = rng.standard_normal((B, T, C))
    mask = _mask() if use_mask else None
    v = _check_dict_layer(lambda x, p: self_attention_forward(x, mask, p, NH), self_attention_backward, x, p, rng)
    assert _passes(v)
    _, cache = self_attention_forward(x, mask, p, NH)
    assert np.abs(self_attention_backward(rng.standard_normal((B, T, C)), cache)[1]["k.bias"]).max() < 1e-12


def test_attention_padding_keys_are_ignored():
    """Changing the embedding of a padded position changes nothing at real positions."""
    rng = np.random.default_rng(6)
    p = {k: v for k, v in _block_params(rng).items() if k[0] in "qkvo"}
    x = rng.standard_normal((B, T, C))
    mask = _mask()
    y1, _ = self_attention_forward(x, mask, p, NH)
    x2 = x.copy()
    x2[1, 4] += 10.0  # a padded position of sequence 1
    y2, _ = self_attention_forward(x2, mask, p, NH)
    np.testing.assert_allclose(y1[1, :3], y2[1, :3], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y1[0], y2[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act", ["gelu", "gelu_new"])
def test_feedforward_gradcheck(act):
    rng = np.random.default_rng(7)
    p = {k: v for k, v in _block_params(rng).items() if k.startswith("ff")}
    x = rng.standard_normal((B, T, C))
    assert _check_dict_layer(lambda x, p: feedforward_forward(x, p, act), feedforward_backward, x, p, rng)


def test_block_gradcheck_with_padding():
    rng = np.random.default_rng(8)
    p = _block_params(rng)
    x = rng.standard_normal((B, T, C))
    mask = _mask()
    v = _check_dict_layer(lambda x, p: block_forward(x, mask, p, NH, 1e-12, "gelu"), block_backward, x, p, rng)
    assert _passes(v)
    assert {r.name for r in v.rows} == {"x", *BLOCK_KEYS}


def test_block_backward_does_not_mutate_dy_or_cache():
    rng = np.random.default_rng(9)
    p = _block_params(rng)
    x = rng.standard_normal((B, T, C))
    y, cache = block_forward(x, _mask(), p, NH)
    dy = rng.standard_normal(y.shape)
    snapshot = [a.copy() for a in _arrays(cache)]
    dy0 = dy.copy()
    dx1, g1 = block_backward(dy, cache)
    dx2, g2 = block_backward(dy, cache)
    np.testing.assert_array_equal(dy, dy0)
    for a, b in zip(_arrays(cache), snapshot):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dx1, dx2)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


def _arrays(obj):
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, tuple):
        for o in obj:
            yield from _arrays(o)


def test_float32_stays_float32():
    rng = np.random.default_rng(10)
    p = _block_params(rng, np.float32)
    x = rng.standard_normal((B, T, C)).astype(np.float32)
    y, cache = block_forward(x, _mask(), p, NH)
    assert y.dtype == np.float32
    dx, g = block_backward(np.ones_like(y), cache)
    assert dx.dtype == np.float32 and all(v.dtype == np.float32 for v in g.values())


def test_bad_layer_inputs():
    rng = np.random.default_rng(11)
    p = _block_params(rng)
    x = rng.standard_normal((B, T, C))
    with pytest.raises(ValueError, match="num_heads"):
        self_attention_forward(x, None, p, 3)  # 8 % 3 != 0
    with pytest.raises(ValueError, match="ln2.bias"):
        block_forward(x, None, {k: v for k, v in p.items() if k != "ln2.bias"}, NH)
    with pytest.raises(ValueError, match="mask"):
        block_forward(x, np.ones((B, T + 1)), p, NH)
    with pytest.raises(ValueError, match="mask"):
        block_forward(x, np.full((B, T), 2), p, NH)
    with pytest.raises(ValueError, match="x must have last dimension"):
        linear_forward(x, np.zeros((3, C + 1)), None)
    with pytest.raises(TypeError, match="dtype"):
        linear_forward(x.astype(np.float32), p["q.weight"], p["q.bias"])
    with pytest.raises(ValueError, match="hidden_act"):
        feedforward_forward(x, p, "relu6")
