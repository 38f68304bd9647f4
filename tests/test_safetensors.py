"""The pure-NumPy safetensors reader/writer: round trips, byte layout, bfloat16 rounding, and a
strict reader that answers every corrupted or truncated file with SafetensorsError (fuzzed with
hypothesis) and never with any other exception or an out-of-bounds read."""
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from minidistil.io.safetensors import (DTYPES, MAX_HEADER_BYTES, SafetensorsError, SafetensorsFile,
                                       bf16_bits_to_float32, float32_to_bf16_bits, load_file,
                                       read_header, save_file)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _sample(dtype, shape, rng):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return (rng.standard_normal(shape) * 100).astype(dtype)


def _write_raw(path, header, buffer=b"", header_len=None):
    """Write a file byte by byte, bypassing the writer (header: a dict or raw bytes)."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if header_len is None else header_len
    with open(path, "wb") as f:
        f.write(n.to_bytes(8, "little") + raw + buffer)
    return path


def _valid_file(path, rng=None):
    rng = rng or np.random.default_rng(0)
    tensors = {"a.weight": _sample(np.float32, (3, 2), rng), "b": _sample(np.int64, (4,), rng),
               "c.mask": _sample(bool, (2, 3), rng), "d.half": _sample(np.float16, (5,), rng),
               "e.empty": np.zeros((0, 3), np.float32)}
    save_file(tensors, path, metadata={"format": "np"}, bf16=["a.weight"])
    return tensors


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                   np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.bool_])
@pytest.mark.parametrize("use_mmap", [True, False])
def test_round_trip_every_numpy_dtype(tmp_path, dtype, use_mmap):
    rng = np.random.default_rng(1)
    tensors = {"m": _sample(dtype, (3, 4), rng), "s": _sample(dtype, (), rng),
               "e": _sample(dtype, (2, 0, 5), rng), "v": _sample(dtype, (7,), rng)}
    save_file(tensors, tmp_path / "t.safetensors")
    back = load_file(tmp_path / "t.safetensors", use_mmap=use_mmap)
    assert sorted(back) == sorted(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == np.dtype(dtype).newbyteorder("<") and back[k].shape == v.shape, k
        np.testing.assert_array_equal(back[k], v)


def test_round_trip_bf16_is_exact_for_representable_values(tmp_path):
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2 ** 16, size=(64,), dtype=np.uint16)
    bits = bits[~np.isnan(bf16_bits_to_float32(bits))]  # NaN payloads are kept NaN, not bit-exact
    x = bf16_bits_to_float32(bits)  # every value here is exactly a bfloat16
    save_file({"x": x}, tmp_path / "b.safetensors", bf16=True)
    f = SafetensorsFile(tmp_path / "b.safetensors")
    assert f.dtype_name("x") == "BF16"
    back = f.get("x")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.view(np.uint32), x.view(np.uint32))
    np.testing.assert_array_equal(f.get("x", bf16_as="bits"), bits)


def test_bf16_rounds_to_nearest_ties_to_even():
    ulp = 2.0 ** -7  # bfloat16 keeps 7 mantissa bits: the spacing just above 1.0
    x = np.array([1.0 + ulp / 2, 1.0 + 1.5 * ulp, 1.0 + 0.51 * ulp, -(1.0 + 0.49 * ulp)], np.float32)
    got = bf16_bits_to_float32(float32_to_bf16_bits(x))
    np.testing.assert_array_equal(got, [1.0, 1.0 + 2 * ulp, 1.0 + ulp, -1.0])
    special = np.array([np.inf, -np.inf, np.nan, np.finfo(np.float32).max, 0.0, -0.0], np.float32)
    got = bf16_bits_to_float32(float32_to_bf16_bits(special))
    assert got[0] == np.inf and got[1] == -np.inf and np.isnan(got[2])
    assert got[3] == np.inf  # float32 max lies past bfloat16 max + half an ulp: rounds to inf
    assert got[4] == 0 and not np.signbit(got[4]) and np.signbit(got[5])


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
@settings(max_examples=100, deadline=None)
def test_bf16_rounding_picks_a_nearest_neighbour(values):
    x = np.array(values, np.float32)
    r = bf16_bits_to_float32(float32_to_bf16_bits(x)).astype(np.float64)
    # neighbours of x in bfloat16: truncation toward zero and one bf16 ulp further out
    trunc = bf16_bits_to_float32((x.view(np.uint32) >> 16).astype(np.uint16)).astype(np.float64)
    up = bf16_bits_to_float32(((x.view(np.uint32) >> 16) + 1).astype(np.uint16)).astype(np.float64)
    x64 = x.astype(np.float64)
    assert np.all((r == trunc) | (r == up))
    # Past bfloat16's largest finite value the next step up is inf, which IEEE rounding treats as
    # the value 2**128 when measuring distances (so max + half an ulp rounds to inf).
    r, up = (np.where(np.isinf(v), np.sign(v) * 2.0 ** 128, v) for v in (r, up))
    assert np.all(np.abs(r - x64) <= np.minimum(np.abs(trunc - x64), np.abs(up - x64)))


def test_byte_layout_matches_the_format(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, -2], dtype=np.int64)
    save_file({"zeta": b, "alpha": a}, tmp_path / "x.safetensors", metadata={"k": "v"})
    raw = (tmp_path / "x.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert (8 + n) % 8 == 0  # data buffer starts 8-byte aligned
    header_text = raw[8:8 + n].decode()
    assert header_text == header_text.rstrip() + " " * (len(header_text) - len(header_text.rstrip()))
    header = json.loads(header_text)
    assert header["__metadata__"] == {"k": "v"}
    assert header["alpha"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    assert header["zeta"] == {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]}
    assert raw[8 + n:] == a.astype("<f4").tobytes() + b.astype("<i8").tobytes()
    assert list(json.loads(header_text)) == ["__metadata__", "alpha", "zeta"]  # sorted keys


def test_writer_converts_big_endian_and_non_contiguous_input(tmp_path):
    x = np.arange(12, dtype=">f8").reshape(3, 4)[:, ::2]  # (3, 2) strided, big-endian
    save_file({"x": x}, tmp_path / "x.safetensors")
    back = load_file(tmp_path / "x.safetensors")["x"]
    np.testing.assert_array_equal(back, x)
    assert back.dtype == np.dtype("<f8")


def test_mmap_views_are_read_only_and_copy_is_writeable(tmp_path):
    save_file({"x": np.ones((4, 4), np.float32)}, tmp_path / "x.safetensors")
    view = load_file(tmp_path / "x.safetensors")["x"]
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0, 0] = 2.0
    own = load_file(tmp_path / "x.safetensors", copy=True)["x"]
    own[0, 0] = 2.0
    assert load_file(tmp_path / "x.safetensors")["x"][0, 0] == 1.0


def test_metadata_and_unicode_names_survive(tmp_path):
    save_file({"héllo.wörld": np.zeros(2, np.uint8)}, tmp_path / "u.safetensors",
              metadata={"format": "pt", "note": "ünïcode"})
    entries, meta, start = read_header(tmp_path / "u.safetensors")
    assert meta == {"format": "pt", "note": "ünïcode"} and "héllo.wörld" in entries and start % 8 == 0


def test_writer_is_atomic_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_file({"x": np.ones(3, np.float32)}, path)
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        save_file({"x": np.zeros(5, np.float32)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]


@pytest.mark.parametrize("tensors, kw, err", [
    ({"x": np.array(["a"])}, {}, SafetensorsError),               # strings have no safetensors dtype
    ({"x": np.zeros(2, np.complex64)}, {}, SafetensorsError),
    ({"__metadata__": np.zeros(2)}, {}, SafetensorsError),
    ({"x": np.zeros(2, np.int32)}, {"bf16": ["x"]}, SafetensorsError),  # BF16 only for floats
    ({"x": np.zeros(2)}, {"bf16": ["y"]}, ValueError),
    ({"x": np.zeros(2)}, {"metadata": {"a": 1}}, TypeError),
    ([np.zeros(2)], {}, TypeError),
])
def test_writer_rejects_bad_input(tmp_path, tensors, kw, err):
    with pytest.raises(err):
        save_file(tensors, tmp_path / "bad.safetensors", **kw)
    assert not os.listdir(tmp_path)


def test_matches_the_reference_library_when_installed(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(3)
    tensors = {"w": _sample(np.float32, (3, 5), rng), "i": _sample(np.int64, (4,), rng),
               "h": _sample(np.float16, (2, 2), rng)}
    save_file(tensors, tmp_path / "mine.safetensors")
    theirs = st_numpy.load_file(str(tmp_path / "mine.safetensors"))
    st_numpy.save_file(tensors, str(tmp_path / "theirs.safetensors"))
    mine = load_file(tmp_path / "theirs.safetensors")
    for k in tensors:
        np.testing.assert_array_equal(theirs[k], tensors[k])
        np.testing.assert_array_equal(mine[k], tensors[k])


# ---------------------------------------------------------------- strict validation, by hand

BUF = np.arange(6, dtype="<f4").tobytes()  # 24 bytes


@pytest.mark.parametrize("header, buffer, header_len, message", [
    (b"", b"", 0, "must start with"),
    (b"\xff\xfe{}", b"", None, "UTF-8"),
    (b"{not json}", b"", None, "not valid JSON"),
    (b"[1, 2]", b"", None, "must start with"),
    (b'{"a": 1, "a": 2}', b"", None, "twice"),
    ({"x": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}, BUF, MAX_HEADER_BYTES + 1, "exceeds the limit"),
    ({"x": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}, BUF, 10 ** 6, "past the end"),
    ({"x": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}, BUF, 2 ** 64 - 1, "exceeds the limit"),
    ({"__metadata__": {"a": 1}}, b"", None, "__metadata__"),
    ({"__metadata__": ["a"]}, b"", None, "__metadata__"),
    ({"x": [1, 2]}, b"", None, "must be an object"),
    ({"x": {"dtype": "F32", "shape": [6]}}, BUF, None, "exactly the keys"),
    ({"x": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24], "extra": 1}}, BUF, None, "exactly the keys"),
    ({"x": {"dtype": "F8_E4M3", "shape": [6], "data_offsets": [0, 6]}}, BUF[:6], None, "unknown dtype"),
    ({"x": {"dtype": 4, "shape": [6], "data_offsets": [0, 24]}}, BUF, None, "unknown dtype"),
    ({"x": {"dtype": "F32", "shape": [-6], "data_offsets": [0, 24]}}, BUF, None, "non-negative integers"),
    ({"x": {"dtype": "F32", "shape": [6.0], "data_offsets": [0, 24]}}, BUF, None, "non-negative integers"),
    ({"x": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, BUF[:4], None, "non-negative integers"),
    ({"x": {"dtype": "F32", "shape": 6, "data_offsets": [0, 24]}}, BUF, None, "non-negative integers"),
    ({"x": {"dtype": "F32", "shape": [6], "data_offsets": [0, 48]}}, BUF, None, "data_offsets"),
    ({"x": {"dtype": "F32", "shape": [6], "data_offsets": [-24, 0]}}, BUF, None, "data_offsets"),
    ({"x": {"dtype": "F32", "shape": [6], "data_offsets": [24, 0]}}, BUF, None, "data_offsets"),
    ({"x": {"dtype": "F32", "shape": [6], "data_offsets": [0]}}, BUF, None, "data_offsets"),
    ({"x": {"dtype": "F32", "shape": [5], "data_offsets": [0, 24]}}, BUF, None, "need 20"),
    ({"x": {"dtype": "F32", "shape": [2 ** 62, 2 ** 62], "data_offsets": [0, 24]}}, BUF, None, "need"),
    ({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
      "y": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}}, BUF[:20], None, "overlaps"),
    ({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
      "y": {"dtype": "F32", "shape": [1], "data_offsets": [20, 24]}}, BUF, None, "gap"),
    ({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, BUF, None, "cover 16 bytes"),
    ({"x": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x07", None, "BOOL bytes"),
])
def test_reader_rejects_each_violation_clearly(tmp_path, header, buffer, header_len, message):
    path = _write_raw(tmp_path / "bad.safetensors", header, buffer, header_len)
    with pytest.raises(SafetensorsError, match=message):
        load_file(path)
    assert issubclass(SafetensorsError, ValueError)


def test_reader_rejects_short_and_missing_files(tmp_path):
    for size in range(8):
        (tmp_path / "s").write_bytes(b"\x00" * size)
        with pytest.raises(SafetensorsError, match="fewer than"):
            load_file(tmp_path / "s")
    with pytest.raises(SafetensorsError, match="cannot read"):
        load_file(tmp_path / "missing.safetensors")


def test_empty_file_with_no_tensors_is_valid(tmp_path):
    save_file({}, tmp_path / "e.safetensors")
    assert load_file(tmp_path / "e.safetensors") == {}
    save_file({"z": np.zeros((0,), np.float64)}, tmp_path / "z.safetensors")
    assert load_file(tmp_path / "z.safetensors")["z"].shape == (0,)


# ---------------------------------------------------------------- fuzzing: only SafetensorsError, ever

def _load_or_error(path):
    """Load ``path``; return the tensors, None on SafetensorsError; anything else fails the test."""
    try:
        tensors = load_file(path, copy=True)  # touches every byte of every tensor
    except SafetensorsError:
        return None
    entries, _, start = read_header(path)
    size = os.path.getsize(path)
    for name, arr in tensors.items():  # whatever loaded is consistent with the header and the file
        dtype_name, shape, begin, end = entries[name]
        assert arr.shape == shape and start + end <= size
    return tensors


@given(cut=st.integers(min_value=0, max_value=10 ** 4))
@FUZZ
def test_truncation_at_any_point_is_an_error(tmp_path, cut):
    path = tmp_path / "t.safetensors"
    _valid_file(path)
    raw = path.read_bytes()
    path.write_bytes(raw[:cut % len(raw)])  # every strict prefix
    assert _load_or_error(path) is None


@given(flips=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(1, 255)), min_size=1, max_size=4))
@FUZZ
def test_byte_flips_anywhere_load_or_raise(tmp_path, flips):
    path = tmp_path / "f.safetensors"
    _valid_file(path)
    raw = bytearray(path.read_bytes())
    for pos, mask in flips:
        raw[pos % len(raw)] ^= mask
    path.write_bytes(bytes(raw))
    _load_or_error(path)


@given(junk=st.binary(max_size=200), header_len=st.one_of(st.none(), st.integers(0, 2 ** 64 - 1)))
@FUZZ
def test_random_headers_load_or_raise(tmp_path, junk, header_len):
    path = _write_raw(tmp_path / "r.safetensors", junk, BUF, header_len)
    _load_or_error(path)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=12)


@given(data=st.data())
@FUZZ
def test_header_field_mutations_load_or_raise(tmp_path, data):
    """Replace one field of one entry of a valid header with arbitrary JSON, keeping the buffer."""
    path = tmp_path / "m.safetensors"
    _valid_file(path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header, buffer = json.loads(raw[8:8 + n]), raw[8 + n:]
    name = data.draw(st.sampled_from(sorted(header)))
    if name == "__metadata__" or data.draw(st.booleans()):
        header[name] = data.draw(_json_values)
    else:
        field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        choices = [_json_values, st.sampled_from(sorted(DTYPES)),
                   st.lists(st.integers(-3, 40), max_size=3)]
        header[name][field] = data.draw(st.one_of(*choices))
    _write_raw(path, json.dumps(header).encode(), buffer)
    _load_or_error(path)
