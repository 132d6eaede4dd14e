"""Tiny hostile files cannot exhaust the machine: each loads or fails within a time and memory bound.

Every file is crafted here, at run time, from raw pickle opcodes (nothing binary is committed).
One row per attack class of the "Hardening" issue (section 1): exponential time through nested
`_load_from_bytes` blobs, memory amplification through strided views, decompression bombs,
memo-index bombs, and recursion through nested or self-referential containers and modules.
Each row is loaded by `torch_pickle.load` under `tracemalloc`, and must finish in under
`TIME_BOUND` seconds and allocate at most its memory bound, and, if it fails, fail with a
CheckpointError that names the file.
"""

import io
import os
import pickle
import re
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from latentjax.io import torch_pickle
from latentjax.io.torch_pickle import CheckpointError, load

TIME_BOUND = 2.0  # seconds per file (untraced)
MIB = 1 << 20


# ---------------------------------------------------------------------------------------------
# Opcode assembler.

def _frag(value) -> bytes:
    """Opcodes that push `value` (a protocol-2 pickle without its PROTO header and STOP)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _global(qualname: str) -> bytes:
    module, name = qualname.rsplit(".", 1)
    return f"c{module}\n{name}\n".encode()


def _bytes(data: bytes) -> bytes:
    """BINBYTES: raw bytes without protocol 2's latin1 round trip (which doubles bytes >= 0x80)."""
    return b"B" + struct.pack("<I", len(data)) + data


def _text(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def _pickle(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def _call(qualname: str, *arg_ops: bytes) -> bytes:
    """REDUCE: the global called with arguments given as opcode fragments."""
    return _global(qualname) + b"(" + b"".join(arg_ops) + b"tR"


def _dict(*item_ops: bytes) -> bytes:
    """A dict from alternating key and value opcode fragments."""
    return b"}(" + b"".join(item_ops) + b"u"


def _pid(key: str, numel: int, legacy: bool, storage_type="torch.FloatStorage") -> bytes:
    """A storage persistent id (zip records have 5 fields, legacy ones a sixth: view_metadata None)."""
    fields = _frag("storage") + _global(storage_type) + _frag(key) + _frag("cpu") + _frag(numel)
    return b"(" + fields + (b"N" if legacy else b"") + b"tQ"


def _tensor(pid: bytes, size, stride, offset=0) -> bytes:
    return _call("torch._utils._rebuild_tensor_v2", pid, _frag(offset), _frag(tuple(size)), _frag(tuple(stride)),
                 b"\x89")


def _legacy(object_ops: bytes, storages=()) -> bytes:
    """A legacy torch.save stream: header pickles, the object, the key list, then (numel, raw bytes) per storage."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    head = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, sys_info))
    keys = pickle.dumps([key for key, _, _ in storages], protocol=2)
    return head + _pickle(object_ops) + keys + b"".join(struct.pack("<q", n) + raw for _, raw, n in storages)


def _zip(entries: dict, deflate=True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _zip_streamed(name: str, head: bytes, zeros: int, tail: bytes, others: dict) -> bytes:
    """A deflated zip whose entry `name` is head + `zeros` zero bytes + tail, written without holding it whole."""
    buffer, chunk = io.BytesIO(), bytes(MIB)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for other, data in others.items():
            archive.writestr(other, data)
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as stream:
            stream.write(head)
            for _ in range(zeros // MIB):
                stream.write(chunk)
            stream.write(bytes(zeros % MIB) + tail)
    return buffer.getvalue()


def _torch_zip(pickle_body: bytes, storages: dict, deflate=True) -> bytes:
    return _zip({"archive/data.pkl": _pickle(pickle_body), "archive/byteorder": b"little",
                 **{f"archive/data/{key}": raw for key, raw in storages.items()}}, deflate)


# ---------------------------------------------------------------------------------------------
# Crafted files, one builder per row.

def _nested_blobs(depth: int) -> bytes:
    """A legacy stream of one storage whose object pickle first loads (and POPs) a blob nested `depth` deep."""
    empty = [("0", b"", 0)]
    blob = _legacy(_pid("0", 0, legacy=True), empty)
    for _ in range(depth):
        blob = _legacy(_call("torch.storage._load_from_bytes", _bytes(blob)) + b"0" + _pid("0", 0, legacy=True), empty)
    return blob


def _blob_snapshot(depth: int) -> bytes:
    """An NVIDIA-snapshot-shaped pickle: G and G_ema each hold a storage blob with `depth` nested blobs inside."""
    blob = _call("torch.storage._load_from_bytes", _bytes(_nested_blobs(depth)))
    return _pickle(_dict(_text("G"), blob, _text("G_ema"), blob))


def _stride0_zip(size) -> bytes:
    return _torch_zip(_tensor(_pid("0", 1, legacy=False), size, [0] * len(size)), {"0": bytes(4)}, deflate=False)


def _stride0_legacy(size) -> bytes:
    return _legacy(_tensor(_pid("0", 1, legacy=True), size, [0] * len(size)), [("0", bytes(4), 1)])


def _many_views(count: int, numel=10**6) -> bytes:
    """`count` full-size views of one 4 MB storage of zeros (deflated to a few KB)."""
    pid = _pid("0", numel, legacy=False)
    views = b"]q\x00(" + b"".join(_tensor(pid, [numel], [1]) for _ in range(count)) + b"e"
    return _torch_zip(views, {"0": bytes(4 * numel)})


def _pickle_bomb(inflated: int) -> bytes:
    """data.pkl: one BINBYTES8 of `inflated` zero bytes, deflated about 1000:1."""
    return _zip_streamed("archive/data.pkl", b"\x80\x02\x8e" + struct.pack("<Q", inflated), inflated, b".",
                         {"archive/byteorder": b"little"})


def _storage_bomb(inflated: int) -> bytes:
    """A contiguous tensor over a storage entry of `inflated` zero bytes, deflated about 1000:1."""
    numel = inflated // 4
    data_pkl = _pickle(_tensor(_pid("0", numel, legacy=False), [numel], [1]))
    return _zip_streamed("archive/data/0", b"", inflated, b"", {"archive/data.pkl": data_pkl})


def _snapshot(state_ops: bytes, extra: bytes = b"") -> bytes:
    """{'G_ema': persistent object 'Generator' with the given state}; `extra` runs after it is built (memo 2)."""
    meta = _dict(_text("type"), _text("class"), _text("class_name"), _text("Generator"), _text("state"), state_ops)
    obj = _call("torch_utils.persistence._reconstruct_persistent_obj", meta) + b"q\x02"
    return _pickle(_dict(_text("G_ema"), obj + extra))


def _deep_kwargs(depth: int) -> bytes:
    """init_kwargs = {'a': {'a': ... {} ...}} nested `depth` deep (built bottom-up on the stack)."""
    nested = (b"}" + _text("a")) * depth + b"}" + b"s" * depth
    return _snapshot(_dict(_text("_init_kwargs"), nested))


def _self_kwargs() -> bytes:
    """init_kwargs = d where d['self'] is d (through the memo)."""
    return _snapshot(_dict(_text("_init_kwargs"), b"}q\x01" + _text("self") + b"h\x01s"))


def _get(index: int) -> bytes:
    return b"h" + bytes([index])


def _put(index: int) -> bytes:
    return b"q" + bytes([index])


def _dag_kwargs(depth: int) -> bytes:
    """init_kwargs: level k is {'a': level k-1, 'b': level k-1}; 2**depth paths through `depth` + 1 dicts."""
    base = 3  # memo entries 3 .. depth + 3 (1 and 2 are _snapshot's)
    ops = b"}" + _put(base) + b"0"
    for level in range(base + 1, base + depth + 1):
        ops += _dict(_text("a"), _get(level - 1), _text("b"), _get(level - 1)) + _put(level) + b"0"
    return _snapshot(_dict(_text("_init_kwargs"), ops + _get(base + depth)))


def _self_module() -> bytes:
    """A snapshot whose Generator lists itself in _modules (the dict is filled after the object exists)."""
    state = _dict(_text("_modules"), b"}" + _put(1))
    return _snapshot(state, _get(1) + _text("me") + _get(2) + b"s0")


_MODULE_LIST = _global("torch.nn.modules.container.ModuleList") + b")\x81"


def _self_torch_module() -> bytes:
    """A torch ModuleList whose BUILD state lists the module itself in _modules."""
    return _pickle(_MODULE_LIST + _put(1) + _dict(_text("_modules"), _dict(_text("0"), _get(1))) + b"b")


def _dag_modules(depth: int) -> bytes:
    """Torch modules where level k lists level k-1 twice: 2**depth module paths through `depth` + 1 objects."""
    ops = _MODULE_LIST + _put(0) + _dict(_text("_modules"), b"}") + b"b0"
    for level in range(1, depth + 1):
        children = _dict(_text("a"), _get(level - 1), _text("b"), _get(level - 1))
        ops += _MODULE_LIST + _put(level) + _dict(_text("_modules"), children) + b"b0"
    return _pickle(ops + _get(depth))


def _deep_list(depth: int) -> bytes:
    return _pickle(b"]" * depth + b"a" * (depth - 1))


CASES = {
    # name: (builder, expected error regex or None when the file loads, memory bound in MiB)
    "nested_blobs_depth18": (lambda: _pickle(_call("torch.storage._load_from_bytes", _bytes(_nested_blobs(18)))),
                             "blob inside another blob", 8),
    "snapshot_blobs_depth30": (lambda: _blob_snapshot(30), "blob inside another blob", 8),
    "stride0_1e8_zip": (lambda: _stride0_zip([10**8]), "memory bound", 8),
    "stride0_1e5x1e5_zip": (lambda: _stride0_zip([10**5, 10**5]), "memory bound", 8),
    "stride0_3e4x1e5_legacy": (lambda: _stride0_legacy([3 * 10**4, 10**5]), "memory bound", 8),
    "stride0_2e40_zip": (lambda: _stride0_zip([2**40, 2**40]), "memory bound", 8),
    "views_100_of_4MB": (lambda: _many_views(100), None, 16),
    "views_1000_of_4MB": (lambda: _many_views(1000), None, 16),
    "zip_bomb_data_pkl_300MB": (lambda: _pickle_bomb(300 * MIB), "memory bound", 8),
    "zip_bomb_storage_100MB": (lambda: _storage_bomb(100 * MIB), "memory bound", 8),
    "storage_1e12_elements": (lambda: _torch_zip(_tensor(_pid("0", 10**12, legacy=False), [4], [1]),
                                                 {"0": bytes(16)}), "points past the end of its data", 8),
    "memo_long_binput_2e26": (lambda: b"\x80\x02Nr" + struct.pack("<I", 2**26) + b".", "memo index 67108864", 8),
    "memo_long_binput_2e31_zip": (lambda: _zip({"archive/data.pkl": b"\x80\x02Nr" + struct.pack("<I", 2**31) + b"."}),
                                  "memo index 2147483648", 8),
    "memo_put_text_legacy": (lambda: _legacy(b"Np99999999999\n"), "memo index 99999999999", 8),
    "binbytes8_2e40": (lambda: b"\x80\x02\x8e" + struct.pack("<Q", 2**40) + b"x.", "truncated or corrupt", 8),
    "deep_list_200000": (lambda: _deep_list(200_000), None, 48),
}

# Files that load, but whose networks must then be refused by init_kwargs / state_dict() (as a CheckpointError
# naming the file), or must convert in time: name -> (builder, accessor, expected error regex or None).
NETWORK_CASES = {
    "init_kwargs_5000_deep": (lambda: _deep_kwargs(5000), "init_kwargs", "nests deeper than 100 levels"),
    "init_kwargs_100000_deep": (lambda: _deep_kwargs(100_000), "init_kwargs", "nests deeper than 100 levels"),
    "init_kwargs_contains_itself": (_self_kwargs, "init_kwargs", "contains itself"),
    "init_kwargs_dag_2e60_paths": (lambda: _dag_kwargs(60), "init_kwargs", None),
    "module_lists_itself": (_self_module, "state_dict", "module 'me' contains itself"),
    "torch_module_lists_itself": (_self_torch_module, "state_dict", "module '0' contains itself"),
    "modules_dag_2e60_paths": (lambda: _dag_modules(60), "state_dict", "module tree expands to more than"),
}


def _measure(fn):
    """(result or raised exception, seconds, peak traced bytes) of fn().

    fn runs twice: timed without tracing (tracemalloc slows Python code several times over),
    then under tracemalloc for its peak allocation.
    """
    def call():
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - the caller checks which
            return e

    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    try:
        result = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, seconds, peak


def _check_bounds(name, seconds, peak, mib):
    assert seconds < TIME_BOUND, f"{name}: {seconds:.2f} s"
    assert peak < mib * MIB, f"{name}: peak {peak / MIB:.1f} MiB"


def _check_refusal(result, path, pattern):
    assert isinstance(result, CheckpointError), repr(result)
    assert str(path) in str(result) and re.search(pattern, str(result)), str(result)


# ---------------------------------------------------------------------------------------------
# The table.

@pytest.mark.parametrize("name", sorted(CASES))
def test_crafted_file_is_bounded(tmp_path, name):
    build, pattern, mib = CASES[name]
    path = tmp_path / f"{name}.pt"
    path.write_bytes(build())
    assert path.stat().st_size < 500_000  # every attack is a small file
    result, seconds, peak = _measure(lambda: load(path))
    _check_bounds(name, seconds, peak, mib)
    if pattern is None:
        assert not isinstance(result, Exception), repr(result)
    else:
        _check_refusal(result, path, pattern)


@pytest.mark.parametrize("name", sorted(NETWORK_CASES))
def test_crafted_network_is_bounded(tmp_path, name):
    build, accessor, pattern = NETWORK_CASES[name]
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(build())
    network = load(path)
    network = network["G_ema"] if isinstance(network, dict) else network
    result, seconds, peak = _measure(lambda: getattr(network, accessor)() if accessor == "state_dict"
                                     else getattr(network, accessor))
    _check_bounds(name, seconds, peak, 16)
    if pattern is None:
        assert not isinstance(result, Exception), repr(result)
    else:
        _check_refusal(result, path, pattern)


@pytest.mark.parametrize("name", ["init_kwargs_5000_deep", "init_kwargs_contains_itself", "module_lists_itself"])
def test_load_generator_names_the_file(tmp_path, name):
    from latentjax.load import load_generator

    path = tmp_path / f"{name}.pkl"
    path.write_bytes(NETWORK_CASES[name][0]())
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    assert str(path) in str(info.value) and re.search(NETWORK_CASES[name][2], str(info.value))


# ---------------------------------------------------------------------------------------------
# The mechanisms behind the rows, checked without their caps.

def test_nested_blobs_are_read_once_each(tmp_path, monkeypatch):
    """With the nesting cap lifted, 40 nested blobs cost linear time (the old two-pass reader: 2**40)."""
    monkeypatch.setattr(torch_pickle, "_MAX_BLOB_DEPTH", 64)
    path = tmp_path / "blobs.pt"
    path.write_bytes(_pickle(_call("torch.storage._load_from_bytes", _bytes(_nested_blobs(40)))))
    result, seconds, peak = _measure(lambda: load(path))
    _check_bounds("blobs", seconds, peak, 8)
    assert isinstance(result, torch_pickle._Storage) and len(result.data) == 0


def test_views_share_their_storage(tmp_path):
    path = tmp_path / "views.pt"
    path.write_bytes(_many_views(3, numel=1000))
    views = load(path)
    assert all(type(v) is np.ndarray and v.flags.c_contiguous and v.flags.writeable for v in views)
    assert np.shares_memory(views[0], views[2])  # as torch tensors of one storage do


def test_strided_views_are_copied_within_the_budget(tmp_path, monkeypatch):
    """A stride-0 view whose copy fits the budget loads as an ordinary array; past it, it is refused."""
    path = tmp_path / "expand.pt"
    path.write_bytes(_torch_zip(_tensor(_pid("0", 1, legacy=False), [1000], [0]), {"0": struct.pack("<f", 2.5)}))
    expanded = load(path)
    assert expanded.shape == (1000,) and expanded.flags.c_contiguous and expanded.flags.owndata
    np.testing.assert_array_equal(expanded, 2.5)
    monkeypatch.setattr(torch_pickle, "_BUDGET_FLOOR", 3000)
    with pytest.raises(CheckpointError, match="memory bound of 3000 bytes"):
        load(path)


def test_legacy_strided_views_are_filled_after_the_pickle(tmp_path):
    """Legacy storages follow the object pickle: copied views are filled once their bytes are read."""
    raw = np.arange(6, dtype=np.float32).tobytes()
    pid = _pid("0", 6, legacy=True)
    body = b"(" + _tensor(pid, [3, 2], [1, 3]) + _tensor(pid, [6], [1]) + b"t"
    path = tmp_path / "legacy.pt"
    path.write_bytes(_legacy(body, [("0", raw, 6)]))
    transposed, flat = load(path)
    np.testing.assert_array_equal(transposed, np.arange(6, dtype=np.float32).reshape(2, 3).T)
    assert transposed.flags.c_contiguous and not np.shares_memory(transposed, flat)


def test_legacy_storage_named_with_two_layouts(tmp_path):
    pids = _pid("0", 2, legacy=True) + _pid("0", 2, legacy=True, storage_type="torch.HalfStorage")
    path = tmp_path / "two.pt"
    path.write_bytes(_legacy(b"(" + pids + b"t", [("0", bytes(8), 2)]))
    with pytest.raises(CheckpointError, match="storage '0' is named as 2 float32 and as 2 float16") as info:
        load(path)
    assert str(path) in str(info.value)


def test_memo_indices_a_pickler_writes_are_accepted(tmp_path):
    value = {"shared": [1, 2], "list": [[i] for i in range(300)]}  # > 256 memo entries: LONG_BINPUT
    value["again"] = value["shared"]
    path = tmp_path / "memo.pkl"
    path.write_bytes(pickle.dumps(value, protocol=2))
    loaded = load(path)
    assert loaded == value and loaded["again"] is loaded["shared"]


def test_budget_scales_with_the_file(tmp_path, monkeypatch):
    """The bound is max(floor, ratio x file size): a larger file may inflate proportionally more."""
    monkeypatch.setattr(torch_pickle, "_BUDGET_FLOOR", 1000)
    data = _many_views(1, numel=1000)  # 4000-byte storage, deflated
    path = tmp_path / "small.pt"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="memory bound"):
        load(path)
    padded = _zip({"archive/data.pkl": _pickle(b"]q\x00(" + _tensor(_pid("0", 1000, legacy=False), [1000], [1])
                                               + b"e"), "archive/data/0": bytes(4000),
                   "archive/padding": os.urandom(2000)}, deflate=True)
    path.write_bytes(padded)
    assert load(path)[0].shape == (1000,)
