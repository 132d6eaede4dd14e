"""latentjax.io.torch_pickle: torch-free, code-free reading of PyTorch checkpoints and NVIDIA pickles.

Fixtures in fixtures/io were written by torch 2.13 (see fixtures/io/README.md); expected.npz holds
torch's own `.numpy()` values. Hostile pickles are built here by hand from raw opcodes.
"""

import collections
import io
import json
import os
import pickle
import pickletools
import re
import subprocess
import sys
import tarfile
import types
import zipfile

import ml_dtypes
import numpy as np
import pytest

from latentjax.io import torch_pickle
from latentjax.io.torch_pickle import (CheckpointError, EasyDict, PersistentObject, Record, TorchModule,
                                       UnsafeGlobalError, load)

from support import FIXTURES

IO = os.path.join(FIXTURES, "io")
SG2 = os.path.join(FIXTURES, "stylegan2")
EXPECTED = dict(np.load(os.path.join(IO, "expected.npz")))
TENSOR_FILES = ["tensors.pt", "tensors_legacy.pt", "tensors_archive.pt"]


# ---------------------------------------------------------------------------------------------
# Hand-made protocol-2 pickles.

def _frag(value) -> bytes:
    """Opcodes that push `value` (a pickle without its PROTO header and STOP)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _global(qualname: str) -> bytes:
    module, name = qualname.rsplit(".", 1)
    return f"c{module}\n{name}\n".encode()


def _call(qualname: str, *args) -> bytes:
    """Opcodes that call the global with args (REDUCE)."""
    return _global(qualname) + _frag(args) + b"R"


def _pickle(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def _legacy_stream(main_pickle: bytes) -> bytes:
    """A legacy torch.save stream with the given object pickle and no storages."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    head = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, sys_info))
    return head + main_pickle + pickle.dumps([], protocol=2)


def _zip_checkpoint(entries: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _rewrite_zip(path, edit) -> bytes:
    """The zip at `path` with every entry passed through edit(name, data) (None drops the entry)."""
    with zipfile.ZipFile(path) as archive:
        entries = {name: edit(name, archive.read(name)) for name in archive.namelist()}
    return _zip_checkpoint({name: data for name, data in entries.items() if data is not None})


def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _read(name, folder=IO) -> bytes:
    with open(os.path.join(folder, name), "rb") as f:
        return f.read()


def _numpy_pickle(value, module: str) -> bytes:
    """A numpy scalar or array pickled with its builders under `module` (numpy 1.x or 2.x name)."""
    return re.sub(rb"cnumpy\.(_core|core)\.multiarray\n", f"c{module}\n".encode(), pickle.dumps(value, protocol=2))


def _cuda_checkpoint() -> bytes:
    """tensors.pt as torch < 1.13 wrote CUDA tensors: storages named torch.cuda.*Storage."""
    return _rewrite_zip(os.path.join(IO, "tensors.pt"), lambda name, data: re.sub(
        rb"ctorch\n(\w+Storage)\n", rb"ctorch.cuda\n\1\n", data) if name.endswith("data.pkl") else data)


# Pickles that exercise allow-list entries no torch-written fixture reaches.
HANDMADE = {
    "numpy1_scalar.pkl": _numpy_pickle(np.float32(1.5), "numpy.core.multiarray"),
    "numpy2_scalar.pkl": _numpy_pickle(np.float32(1.5), "numpy._core.multiarray"),
    "numpy1_array.pkl": _numpy_pickle(np.arange(6.0).reshape(2, 3), "numpy.core.multiarray"),
    "numpy2_array.pkl": _numpy_pickle(np.arange(6.0).reshape(2, 3), "numpy._core.multiarray"),
    "builtins_names.pkl": pickle.dumps({"set": {1, 2}, "empty": b""}, protocol=2, fix_imports=False),
    "cuda.pt": _cuda_checkpoint(),
}


# ---------------------------------------------------------------------------------------------
# Tensors: dtypes, layouts, containers.

def _as_expected(array):
    """Our array in expected.npz's encoding: bfloat16 as float32, float8 as its bytes."""
    if array.dtype == ml_dtypes.bfloat16:
        return array.astype(np.float32)
    if array.dtype in (np.dtype(ml_dtypes.float8_e4m3fn), np.dtype(ml_dtypes.float8_e5m2)):
        return array.view(np.uint8)
    return array


@pytest.mark.parametrize("name", TENSOR_FILES)
def test_tensors_equal_torch_values_and_dtypes(name):
    loaded = load(os.path.join(IO, name))
    paths = {"nested.list.0": loaded["nested"]["list"][0], "nested.tuple.0": loaded["nested"]["tuple"][0],
             "nested.od.b": loaded["nested"]["od"]["b"]}
    keys = [k.split("|", 1)[1] for k in EXPECTED if k.startswith("tensors|")]
    assert len(keys) == 28
    for key in keys:
        array = paths[key] if key in paths else loaded[key]
        expected = EXPECTED[f"tensors|{key}"]
        assert type(array) is np.ndarray and array.flags.c_contiguous and array.flags.writeable, key
        assert _as_expected(array).dtype == expected.dtype and array.shape == expected.shape, key
        np.testing.assert_array_equal(_as_expected(array), expected, err_msg=key)
    assert loaded["bfloat16"].dtype == ml_dtypes.bfloat16
    assert loaded["float8_e5m2"].dtype == ml_dtypes.float8_e5m2
    assert loaded["uint64"][1] == 2**64 - 1


@pytest.mark.parametrize("name", TENSOR_FILES)
def test_views_shared_storage_and_scalars(name):
    loaded = load(os.path.join(IO, name))
    np.testing.assert_array_equal(loaded["shared_a"], [1.0, 1.5, 2.0])
    np.testing.assert_array_equal(loaded["shared_b"], [[3.0, 3.5], [4.0, 4.5], [5.0, 5.5]])
    assert not np.shares_memory(loaded["shared_a"], loaded["shared_b"])
    np.testing.assert_array_equal(loaded["transposed"].T[1::2, 1::3], loaded["strided"])
    assert loaded["scalar0d"].shape == () and loaded["scalar0d"] == 3.25 and isinstance(loaded["scalar0d"], np.ndarray)
    assert loaded["empty"].shape == (0, 3)


@pytest.mark.parametrize("name", TENSOR_FILES)
def test_plain_values_and_containers(name):
    loaded = load(os.path.join(IO, name))
    assert (loaded["device_cpu"], loaded["device_cuda"], loaded["size"]) == ("cpu", "cuda:1", (2, 3))
    assert loaded["set"] == {1, 2, 3} and loaded["bytes"] == b"\x00\xffab" and loaded["empty_bytes"] == b""
    assert type(loaded["np_float64"]) is np.float64 and loaded["np_float64"] == 0.25
    assert type(loaded["np_int64"]) is np.int64 and loaded["np_int64"] == -7
    nested = loaded["nested"]
    assert type(nested["list"]) is list and nested["list"][1:] == [1, "a"]
    assert type(nested["tuple"]) is tuple and nested["tuple"][1] == 2.5
    assert type(nested["od"]) is collections.OrderedDict and list(nested["od"]) == ["b", "a"]


def test_cuda_storage_names_load_like_cpu(tmp_path):
    cuda = load(_write(tmp_path, "cuda.pt", HANDMADE["cuda.pt"]))
    cpu = load(os.path.join(IO, "tensors.pt"))
    for key, value in cpu.items():
        if isinstance(value, np.ndarray):
            assert cuda[key].dtype == value.dtype
            np.testing.assert_array_equal(_as_expected(cuda[key]), _as_expected(value))


@pytest.mark.parametrize("name", ["namespace.pt", "namespace_legacy.pt"])
def test_namespace_becomes_record(name):
    loaded = load(os.path.join(IO, name))
    args = loaded["args"]
    assert isinstance(args, Record) and type(args).__name__ == "argparse.Namespace"
    assert (args.size, args.lr, args.name, args.channels) == (32, 0.002, "run", [1, 2])
    np.testing.assert_array_equal(args.mean, EXPECTED["namespace|args.mean"])
    np.testing.assert_array_equal(loaded["weight"], EXPECTED["namespace|weight"])
    assert repr(args).startswith("argparse.Namespace(size=32")


def test_extra_records_are_opt_in(tmp_path):
    path = _write(tmp_path, "config.pt", _pickle(_global("config.BaseConfig") + b")\x81" + _frag({"size": 32}) + b"b"))
    with pytest.raises(UnsafeGlobalError, match="config.BaseConfig"):
        load(path)
    config = load(path, extra_records=["config.BaseConfig"])
    assert isinstance(config, Record) and type(config).__name__ == "config.BaseConfig" and config.size == 32
    with pytest.raises(TypeError):
        load(path, extra_records="config.BaseConfig")


@pytest.mark.parametrize("module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_numpy_scalars_and_arrays_under_both_module_names(tmp_path, module):
    scalars = (np.float64(-2.5), np.float32(1.25), np.int16(-3), np.uint8(200), np.bool_(True), np.complex64(1 - 2j))
    for value in scalars:
        loaded = load(_write(tmp_path, "s.pkl", _numpy_pickle(value, module)))
        assert type(loaded) is type(value) and loaded == value
    for array in (np.arange(6.0).reshape(2, 3), np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3)),
                  np.array(7, np.int64), np.zeros((0, 2), np.float32)):
        loaded = load(_write(tmp_path, "a.pkl", _numpy_pickle(array, module)))
        assert isinstance(loaded, np.ndarray) and loaded.shape == array.shape
        assert loaded.dtype == array.dtype.newbyteorder("=")  # numpy itself converts to native order
        np.testing.assert_array_equal(loaded, array)


# ---------------------------------------------------------------------------------------------
# NVIDIA snapshots and real generator checkpoints.

@pytest.fixture(scope="module")
def snapshot():
    return load(os.path.join(SG2, "ada_s32_snapshot.pkl"))


def _persistent_objects(obj):
    if isinstance(obj, (PersistentObject, TorchModule)):
        yield obj
        for child in obj.state.get("_modules", {}).values():
            yield from _persistent_objects(child)
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _persistent_objects(value)


def test_snapshot_g_ema_equals_state_dict_file(snapshot):
    g_ema = snapshot["G_ema"]
    assert isinstance(g_ema, PersistentObject) and g_ema.class_name == "Generator"  # NVIDIA stores the bare name
    ours, reference = g_ema.state_dict(), load(os.path.join(SG2, "ada_s32.pt"))
    assert len(ours) == 87 and list(ours) == list(reference)
    for key, value in reference.items():
        assert ours[key].dtype == value.dtype and ours[key].shape == value.shape, key
        np.testing.assert_array_equal(ours[key], value, err_msg=key)


def test_snapshot_init_kwargs_and_other_networks(snapshot):
    with open(os.path.join(SG2, "ada_s32.json")) as f:
        assert snapshot["G_ema"].init_kwargs == json.load(f)["init_kwargs"]
    assert type(snapshot["G_ema"].init_kwargs["mapping_kwargs"]) is dict
    assert type(snapshot["G_ema"].state["_init_kwargs"]["mapping_kwargs"]) is EasyDict
    g, g_ema = snapshot["G"].state_dict(), snapshot["G_ema"].state_dict()
    assert list(g) == list(g_ema) and not all(np.array_equal(g[k], g_ema[k]) for k in g)
    assert snapshot["D"].class_name == "Discriminator" and snapshot["D"].state_dict()
    assert snapshot["augment_pipe"].class_name == "AugmentPipe"
    assert snapshot["augment_pipe"].init_kwargs["xflip"] == 1
    assert snapshot["training_set_kwargs"]["resolution"] == 32
    counts = collections.Counter(obj.class_name for obj in _persistent_objects(snapshot))
    assert counts == {"Generator": 2, "MappingNetwork": 2, "SynthesisNetwork": 2, "SynthesisBlock": 8,
                      "SynthesisLayer": 14, "ToRGBLayer": 8, "FullyConnectedLayer": 40, "Discriminator": 1,
                      "DiscriminatorBlock": 3, "Conv2dLayer": 11, "DiscriminatorEpilogue": 1,
                      "MinibatchStdLayer": 1, "AugmentPipe": 1}


def test_snapshot_numpy_scalars_stay_numpy(snapshot):
    fc0 = snapshot["G_ema"].state["_modules"]["mapping"].state["_modules"]["fc0"]
    assert type(fc0.state["weight_gain"]) is np.float64
    gains = [obj.state["weight_gain"] for obj in _persistent_objects(snapshot) if "weight_gain" in obj.state]
    assert len(gains) > 50 and all(type(gain) is np.float64 for gain in gains)


def test_toy_snapshot_with_torch_containers():
    net = load(os.path.join(IO, "toy_snapshot.pkl"))["net"]
    expected = {k.split("|", 1)[1]: v for k, v in EXPECTED.items() if k.startswith("toy|")}
    ours = net.state_dict()
    assert list(ours) == list(expected)  # torch's order; non-persistent 'scratch' and None 'unused' left out
    for key, value in expected.items():
        np.testing.assert_array_equal(ours[key], value, err_msg=key)
    blocks = net.state["_modules"]["blocks"]
    assert isinstance(blocks, TorchModule) and blocks.class_name == "torch.nn.modules.container.ModuleList"
    assert blocks.state["_modules"]["1"].class_name == "torch.nn.modules.container.Sequential"
    assert net.state["_modules"]["heads"].class_name == "torch.nn.modules.container.ModuleDict"
    leaf = blocks.state["_modules"]["0"]
    assert "scratch" in leaf.state["_buffers"] and type(leaf.state["gain"]) is np.float32


def test_rosinality_checkpoints():
    convert = load(os.path.join(SG2, "rosinality_s32.pt"))
    assert len(convert["g_ema"]) == 81 and convert["latent_avg"].shape == (64,)
    train = load(os.path.join(SG2, "rosinality_train_s64.pt"))  # legacy format with an argparse.Namespace
    assert len(train["g_ema"]) == 89 and len(train["d"]) == 36 and train["ada_aug_p"] == 0.1
    assert type(train["args"]).__name__ == "argparse.Namespace" and train["args"].size == 64
    step = train["g_optim"]["state"][0]["step"]
    assert step.shape == () and step.dtype == np.float32


# ---------------------------------------------------------------------------------------------
# Security: nothing from the file runs.

class _Payload:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _payloads(marker):
    return {
        "system": _Payload(os.system, (f"touch {marker}",)),
        "eval": _Payload(eval, (f"open({str(marker)!r}, 'w').close()",)),
        "getattr": _Payload(getattr, ("text", "upper")),
        "popen": _Payload(subprocess.Popen, (["touch", str(marker)],)),
    }


REFUSED_NAME = {"system": r"(posix|os)\.system", "eval": r"builtins\.eval", "getattr": r"builtins\.getattr",
                "popen": r"subprocess\.Popen"}


def _hide(payload_pickle: bytes, where: str) -> bytes:
    """The payload as a whole file of the given kind."""
    if where == "plain":
        return payload_pickle
    if where == "zip":
        return _zip_checkpoint({"evil/data.pkl": payload_pickle, "evil/version": b"3\n"})
    if where == "legacy":
        return _legacy_stream(payload_pickle)
    return _pickle(_call("torch.storage._load_from_bytes", _legacy_stream(payload_pickle)))  # blob


def test_payload_is_live_under_plain_pickle(tmp_path):
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_payloads(marker)["eval"], protocol=2))
    assert marker.exists()


@pytest.mark.parametrize("where", ["plain", "zip", "legacy", "blob"])
@pytest.mark.parametrize("kind", sorted(REFUSED_NAME))
def test_code_globals_are_refused(tmp_path, kind, where):
    marker = tmp_path / "pwned"
    path = _write(tmp_path, "evil.pt", _hide(pickle.dumps(_payloads(marker)[kind], protocol=2), where))
    with pytest.raises(UnsafeGlobalError, match=REFUSED_NAME[kind]) as info:
        load(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("qualname", ["builtins.exec", "builtins.__import__", "functools.partial", "os.popen",
                                      "torch.load", "pickle.loads", "copyreg._reconstructor",
                                      "torch._tensor._rebuild_from_type_v2", "torch.nn.modules.linear.Linear"])
def test_other_globals_are_refused(tmp_path, qualname):
    with pytest.raises(UnsafeGlobalError, match=re.escape(qualname)):
        load(_write(tmp_path, "g.pkl", _pickle(_call(qualname, "x"))))


def test_module_src_is_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("stand-in, never called")

    persistence = types.ModuleType("torch_utils.persistence")
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", persistence)
    source = f"import os\nopen({str(marker)!r}, 'w').close()\nclass Net:\n    pass\n"
    meta = dict(type="class", version=6, module_src=source, class_name="evil.Net", state={"_parameters": {}})
    data = pickle.dumps({"G_ema": _Payload(_reconstruct_persistent_obj, (meta,))}, protocol=4)
    monkeypatch.undo()
    net = load(_write(tmp_path, "snap.pkl", data))["G_ema"]
    assert net == PersistentObject("evil.Net", {"_parameters": {}}) and net.state_dict() == {}
    assert not marker.exists() and source not in repr(vars(net))


@pytest.mark.parametrize("target", ["torch.Size", "torch.FloatStorage", "argparse.Namespace", "dnnlib.util.EasyDict",
                                    "torch.nn.modules.container.ModuleList"])
@pytest.mark.parametrize("state", [{"evil": 1}, (None, {"evil": 1})], ids=["dict", "slots"])
def test_pickle_cannot_modify_allow_listed_objects(tmp_path, target, state):
    with pytest.raises(CheckpointError):
        load(_write(tmp_path, "b.pkl", _pickle(_global(target) + _frag(state) + b"b")))
    assert not hasattr(torch_pickle._ALLOWED[target], "evil")


def test_numpy_dtype_state_cannot_forge_flags_or_touch_globals(tmp_path):
    forged = (3, ">", None, None, None, -1, -1, 63)  # 63: "holds object pointers"
    spec = _call("numpy.dtype", "f8", False, False) + _frag(forged) + b"b"
    data = _pickle(_global("numpy.core.multiarray.scalar") + spec + _frag(b"\x40\x09" + bytes(6)) + b"\x86R")
    value = load(_write(tmp_path, "d.pkl", data))
    assert type(value) is np.float64 and value == 3.125  # big-endian bytes read as big-endian
    assert np.dtype("f8").byteorder == "=" and not np.dtype("f8").hasobject
    for bad in ("O", "V8", "f8,i4", "M8"):
        with pytest.raises(CheckpointError, match="not a plain numeric type"):
            load(_write(tmp_path, "d.pkl", _pickle(_call("numpy.dtype", bad, False, True))))
    for bad_state in ((3, "x"), {"byteorder": ">"}):
        with pytest.raises(CheckpointError, match="malformed numpy dtype state"):
            load(_write(tmp_path, "d.pkl", _pickle(_call("numpy.dtype", "f8", False, True) + _frag(bad_state) + b"b")))


def test_malformed_numpy_array_state_is_refused(tmp_path):
    data = _numpy_pickle(np.arange(4.0), "numpy._core.multiarray").replace(b"\x04\x85", b"\x05\x85")  # shape 4 -> 5
    with pytest.raises(CheckpointError, match="malformed pickled numpy array"):
        load(_write(tmp_path, "a.pkl", data))


# ---------------------------------------------------------------------------------------------
# Errors.

def test_missing_empty_random_directory(tmp_path):
    cases = {tmp_path / "missing.pt": "cannot open", _write(tmp_path, "empty.pt", b""): "empty file",
             _write(tmp_path, "random.pt", np.random.default_rng(0).bytes(4096)): "not a PyTorch checkpoint or pickle",
             tmp_path: "cannot open"}
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as info:
            load(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["tensors.pt", "tensors_legacy.pt", "namespace_legacy.pt", "toy_snapshot.pkl",
                                  "stylegan2/ada_s32_snapshot.pkl"])
def test_truncated_files(tmp_path, name):
    data = _read(name, IO if "/" not in name else FIXTURES)
    for cut in (5, len(data) // 10, len(data) // 2, len(data) * 9 // 10, len(data) - 1):
        path = _write(tmp_path, f"cut{cut}.pt", data[:cut])
        with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
            load(path)
        assert type(info.value) is CheckpointError and str(path) in str(info.value)


LEGACY = _read("tensors_legacy.pt")
VIEW_RECORD = re.search(rb"Nt(?:q.|r....)Q", LEGACY, re.S).start()


@pytest.mark.parametrize("data, message", [
    (LEGACY[:6] + bytes([LEGACY[6] ^ 1]) + LEGACY[7:], "wrong magic number"),
    (LEGACY.replace(b"M\xe9\x03", b"M\xea\x03", 1), "protocol version 1002, expected 1001"),
    (LEGACY.replace(b"little_endianq\x02\x88", b"little_endianq\x02\x89"), "big-endian"),
    (LEGACY[:VIEW_RECORD] + b"K\x01" + LEGACY[VIEW_RECORD + 1:], "storage views"),
    (pickle.dumps(12345678901234567890123, protocol=2), "wrong magic number"),
], ids=["magic", "version", "endian", "view", "other-int"])
def test_bad_legacy_headers(tmp_path, data, message):
    path = _write(tmp_path, "bad.pt", data)
    with pytest.raises(CheckpointError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def _legacy_data_start(data: bytes) -> int:
    """Offset of the first raw storage record: just after the fifth pickle."""
    stream = io.BytesIO(data)
    for _ in range(5):
        for _ in pickletools.genops(stream):  # stops after STOP
            pass
    return stream.tell()


def test_legacy_storage_past_end(tmp_path):
    data = bytearray(LEGACY)
    at = _legacy_data_start(LEGACY)
    data[at:at + 8] = (10**6).to_bytes(8, "little")  # the first storage claims a million elements
    path = _write(tmp_path, "long.pt", bytes(data))
    with pytest.raises(CheckpointError, match="points past the end of the data") as info:
        load(path)
    assert str(path) in str(info.value)


def _edit_data_pkl(old: bytes, new: bytes):
    return lambda name, data: data.replace(old, new) if name.endswith("data.pkl") else data


@pytest.mark.parametrize("edit, message", [
    (lambda name, data: data[:-4] if name.endswith("data/0") else data, "points past the end of its data"),
    (lambda name, data: b"big" if name.endswith("byteorder") else data, "big-endian"),
    (_edit_data_pkl(b"X\x07\x00\x00\x00storage", b"X\x07\x00\x00\x00modules"), "unknown persistent id kind 'modules'"),
    (lambda name, data: None if name.endswith("data/1") else data, "has no entry"),
    (lambda name, data: None if name.endswith("data.pkl") else data, "expected one '<prefix>/data.pkl', found 0"),
], ids=["short-entry", "byteorder", "pid-kind", "missing-entry", "no-data-pkl"])
def test_bad_zip_checkpoints(tmp_path, edit, message):
    path = _write(tmp_path, "bad.pt", _rewrite_zip(os.path.join(IO, "tensors.pt"), edit))
    with pytest.raises(CheckpointError, match=re.escape(message)) as info:
        load(path)
    assert str(path) in str(info.value)


def test_other_refusals(tmp_path):
    class WithPid(pickle.Pickler):
        def persistent_id(self, obj):
            return "ref" if obj == "x" else None

    buffer = io.BytesIO()
    WithPid(buffer, protocol=2).dump(["x"])
    with pytest.raises(CheckpointError, match="persistent id in a plain pickle"):
        load(_write(tmp_path, "pid.pkl", buffer.getvalue()))
    tar_path = tmp_path / "old.tar"
    with tarfile.open(tar_path, "w") as archive:
        archive.add(os.path.join(IO, "tensors_legacy.pt"), arcname="pickle")
    with pytest.raises(CheckpointError, match="tar-format"):
        load(tar_path)
    with pytest.raises(CheckpointError, match="points past the end of its storage"):
        torch_pickle._rebuild_tensor_v2(torch_pickle._Storage(np.dtype(np.float32), bytes(8)), 1, (2,), (1,))
    with pytest.raises(CheckpointError, match="not a legacy torch.save stream"):
        load(_write(tmp_path, "blob.pkl", _pickle(_call("torch.storage._load_from_bytes", b"\x80\x02K\x01."))))


# ---------------------------------------------------------------------------------------------
# Every allow-listed global is reached by some fixture or hand-made pickle.

def test_every_allow_listed_global_is_exercised(tmp_path, monkeypatch):
    seen = set()
    find_class = torch_pickle._Unpickler.find_class

    def recording_find_class(self, module, name):
        seen.add(torch_pickle._python3_name(module, name))
        return find_class(self, module, name)

    monkeypatch.setattr(torch_pickle._Unpickler, "find_class", recording_find_class)
    files = [os.path.join(IO, name) for name in sorted(os.listdir(IO)) if name.endswith((".pt", ".pkl"))]
    files += [os.path.join(SG2, "ada_s32_snapshot.pkl")]
    files += [_write(tmp_path, name, data) for name, data in HANDMADE.items()]
    for path in files:
        load(path)
    assert set(torch_pickle._ALLOWED) - seen == set()
