"""Read PyTorch checkpoints and NVIDIA network pickles without torch and without running their code.

Supported files:
- `torch.save` zip archives (torch >= 1.6; any entry prefix, typed or untyped storages);
- legacy `torch.save` streams (`_use_new_zipfile_serialization=False`);
- plain pickles, such as NVIDIA network snapshots (`torch_utils.persistence` objects, whose
  storages are `torch.storage._load_from_bytes` blobs).

Every global a pickle names is looked up in `_ALLOWED`, a table of our own data-only builders;
any other global raises `UnsafeGlobalError`. Nothing from the file is imported or executed, and
NVIDIA `module_src` is never read. Tensors become C-contiguous numpy arrays (bfloat16 and float8
use `ml_dtypes`). Byte layout: little-endian files, read on a little-endian host.
"""

from __future__ import annotations

import _compat_pickle  # pickle's own Python 2 -> 3 name map for protocol < 3 streams
import collections
import dataclasses
import functools
import io
import math
import pickle
import struct
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np

from latentjax.errors import CheckpointError, UnsafeGlobalError

__all__ = ["CheckpointError", "EasyDict", "PersistentObject", "Record", "TorchModule", "UnsafeGlobalError", "load"]


# ----------------------------------------------------------------------------------------------
# Objects a checkpoint is rebuilt into. The classes a pickle can name (EasyDict, Record, TorchModule)
# define __setstate__, which also stops BUILD from setting attributes on the class object itself.

class EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict`: a plain dict subclass, filled by the pickle's SETITEMS."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise CheckpointError(f"EasyDict state must be a dict, got {type(state).__name__}")
        vars(self).update(state)


class Record:
    """Attribute bag for an allow-listed plain object (argparse.Namespace, a config class): data only.

    `type(record).__name__` is the pickled class's full name, e.g. 'argparse.Namespace'.
    """

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__ state, __slots__ state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
            raise CheckpointError(f"{type(self).__name__}: expected a dict of attributes as state")
        vars(self).update(state)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class _ModuleData:
    """`state_dict()` over a torch Module `__dict__` held in `self.state`."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and persistent buffers under flat torch names ('mapping.fc0.weight'), in torch's order."""
        tensors: dict[str, np.ndarray] = {}
        self._collect("", tensors)
        return tensors

    def _collect(self, prefix: str, tensors: dict) -> None:
        non_persistent = self.state.get("_non_persistent_buffers_set", ())
        for name, value in self.state.get("_parameters", {}).items():
            if value is not None:
                tensors[prefix + name] = value
        for name, value in self.state.get("_buffers", {}).items():
            if value is not None and name not in non_persistent:
                tensors[prefix + name] = value
        for name, child in self.state.get("_modules", {}).items():
            if child is None:
                continue
            if not isinstance(child, _ModuleData):
                raise CheckpointError(f"submodule '{prefix}{name}' is a {type(child).__name__}, not a rebuilt module")
            child._collect(f"{prefix}{name}.", tensors)


@dataclasses.dataclass(repr=False)
class PersistentObject(_ModuleData):
    """An NVIDIA `torch_utils.persistence` object rebuilt from its class name and state only."""

    class_name: str  # the bare class name NVIDIA pickles store, e.g. 'Generator'
    state: dict  # the module __dict__ as unpickled

    @property
    def init_kwargs(self) -> dict:
        """The constructor kwargs (`state['_init_kwargs']`) as plain nested dicts; {} if absent."""
        return _plain(self.state.get("_init_kwargs") or {})

    def __repr__(self):
        return f"PersistentObject({self.class_name!r}, {len(self.state)} state entries)"


class TorchModule(_ModuleData):
    """A plain torch.nn container (ModuleList, Sequential, ModuleDict) pickled by class reference, kept as data."""

    def __new__(cls):
        module = super().__new__(cls)
        module.state = {}
        return module

    @property
    def class_name(self) -> str:
        return type(self).__name__

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise CheckpointError(f"{self.class_name}: expected the module __dict__ as state")
        self.state = state

    def __repr__(self):
        return f"TorchModule({self.class_name!r}, {len(self.state.get('_modules', {}))} children)"


def _plain(value):
    """Nested dict subclasses (EasyDict, OrderedDict) as plain dicts."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value


@functools.cache
def _named_type(base: type, qualname: str) -> type:
    """A subclass of `base` named after the pickled class it stands for."""
    return type(qualname, (base,), {"__module__": __name__, "__qualname__": qualname})


# ----------------------------------------------------------------------------------------------
# Internal objects the pickle stream may hold but never modify.

class _Sealed:
    """Refuses the pickle's BUILD, so a stream cannot alter our builders or markers."""

    def __setstate__(self, state):
        raise CheckpointError(f"the pickle tries to modify internal object {self!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class _Token(_Sealed):
    """A torch storage class or torch dtype named by the pickle, standing for a numpy dtype (or a bare marker)."""

    name: str
    dtype: np.dtype | None = None


@dataclasses.dataclass(eq=False)
class _Storage(_Sealed):
    """The raw bytes of one torch storage; `data` is None during the legacy reader's first pass."""

    dtype: np.dtype
    data: bytes | None


class _Builder(_Sealed):
    """One of our builder functions, callable by the pickle (REDUCE) but not modifiable by it."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)

    def __repr__(self):
        return f"<builder {self.fn.__name__}>"


class _DtypeSpec:
    """`numpy.dtype(spec)` limited to plain numeric kinds; BUILD may set only the byte order.

    A real np.dtype would let BUILD forge its flags (e.g. claim to hold object pointers).
    """

    def __init__(self, spec):
        dtype = np.dtype(spec) if isinstance(spec, str) else None
        if dtype is None or dtype.kind not in "biufc":
            raise CheckpointError(f"numpy dtype {spec!r:.40} is not a plain numeric type")
        self.dtype = dtype

    def __setstate__(self, state):
        byteorder = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        if byteorder not in ("<", ">", "=", "|"):
            raise CheckpointError(f"malformed numpy dtype state {state!r:.80}")
        self.dtype = self.dtype.newbyteorder(byteorder)


class _PickledArray(np.ndarray):
    """A pickled numpy array; its __setstate__ checks version, shape, dtype and buffer size before numpy's."""

    def __setstate__(self, state):
        version, shape, spec, fortran_order, raw = state
        if not (version == 1 and _is_counts(shape) and isinstance(spec, _DtypeSpec) and isinstance(fortran_order, bool)
                and isinstance(raw, bytes) and len(raw) == math.prod(shape) * spec.dtype.itemsize):
            raise CheckpointError("malformed pickled numpy array")
        super().__setstate__((version, tuple(shape), spec.dtype, fortran_order, raw))


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_counts(values) -> bool:
    return isinstance(values, (tuple, list)) and all(_is_count(value) for value in values)


# ----------------------------------------------------------------------------------------------
# The allow-list: fully qualified global name -> what the pickle gets instead.

_ALLOWED: dict[str, object] = {}


def _builds(*names):
    """Decorator: register the function as the builder for the named globals."""
    def register(fn):
        _ALLOWED.update(dict.fromkeys(names, _Builder(fn)))
        return fn
    return register


_STORAGE_DTYPES = {
    "Double": np.float64, "Float": np.float32, "Half": np.float16, "BFloat16": ml_dtypes.bfloat16,
    "Long": np.int64, "Int": np.int32, "Short": np.int16, "Char": np.int8, "Byte": np.uint8, "Bool": np.bool_,
    "ComplexFloat": np.complex64, "ComplexDouble": np.complex128,
}
# torch >= 2.1 writes these dtypes as an UntypedStorage plus a torch dtype global (_rebuild_tensor_v3).
_TORCH_DTYPES = {
    "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
    "float8_e4m3fn": ml_dtypes.float8_e4m3fn, "float8_e5m2": ml_dtypes.float8_e5m2,
}
_NDARRAY = _Token("numpy.ndarray")

_ALLOWED.update({
    # typed storages; torch < 1.13 names CUDA ones torch.cuda.*Storage
    **{f"{module}.{kind}Storage": _Token(f"{module}.{kind}Storage", np.dtype(dtype))
       for module in ("torch", "torch.cuda") for kind, dtype in _STORAGE_DTYPES.items()},
    "torch.storage.UntypedStorage": _Token("torch.storage.UntypedStorage", np.dtype(np.uint8)),
    **{f"torch.{name}": _Token(f"torch.{name}", np.dtype(dtype)) for name, dtype in _TORCH_DTYPES.items()},
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set,
    "numpy.ndarray": _NDARRAY,
    "dnnlib.util.EasyDict": EasyDict,
    "argparse.Namespace": _named_type(Record, "argparse.Namespace"),
    **{f"torch.nn.modules.container.{name}": _named_type(TorchModule, f"torch.nn.modules.container.{name}")
       for name in ("ModuleList", "Sequential", "ModuleDict")},
})


def _tensor(storage, offset, size, stride, dtype):
    """The strided view of a storage as a C-contiguous array, checked to lie inside the storage."""
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"a tensor's storage is a {type(storage).__name__}, expected a torch storage")
    if not (_is_count(offset) and _is_counts(size) and _is_counts(stride) and len(size) == len(stride)):
        raise CheckpointError(f"malformed tensor layout: offset={offset!r:.40} size={size!r:.80} stride={stride!r:.80}")
    if storage.data is None:  # legacy first pass: only the storages' dtypes are being collected
        return None
    if math.prod(size) == 0:
        return np.zeros(size, dtype)
    count = len(storage.data) // dtype.itemsize
    last = offset + sum((n - 1) * step for n, step in zip(size, stride))
    if last >= count:
        raise CheckpointError(f"tensor (offset {offset}, size {tuple(size)}, stride {tuple(stride)}) points past "
                              f"the end of its storage ({count} elements)")
    view = np.ndarray(tuple(size), dtype, buffer=storage.data, offset=offset * dtype.itemsize,
                      strides=tuple(step * dtype.itemsize for step in stride))
    return view.copy()


@_builds("torch._utils._rebuild_tensor_v2")
def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """A tensor whose dtype is its (typed) storage's."""
    return _tensor(storage, offset, size, stride, getattr(storage, "dtype", None))


@_builds("torch._utils._rebuild_tensor_v3")
def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    """A tensor over an untyped storage, with its dtype given as a torch dtype global."""
    if not isinstance(dtype, _Token) or dtype.dtype is None:
        raise CheckpointError(f"tensor dtype {dtype!r:.40} is not a torch dtype")
    return _tensor(storage, offset, size, stride, dtype.dtype)


@_builds("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state")
def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    """nn.Parameter -> its array (Python attributes set on a parameter, `state`, are dropped)."""
    return data


@_builds("torch.storage._load_from_bytes")
def _load_from_bytes(blob):
    """A storage pickled on its own (e.g. inside NVIDIA snapshots): a legacy torch.save stream of one storage."""
    if not isinstance(blob, bytes) or not blob.startswith(_LEGACY_HEAD):
        raise CheckpointError("a _load_from_bytes argument is not a legacy torch.save stream")
    storage = _read_legacy(io.BytesIO(blob), frozenset())
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"a _load_from_bytes blob holds a {type(storage).__name__}, expected one storage")
    return storage


@_builds("torch.device")
def _torch_device(kind, index=None):
    """torch.device -> its string form ('cpu', 'cuda:1')."""
    if not isinstance(kind, str) or not (index is None or _is_count(index)):
        raise CheckpointError(f"malformed torch.device({kind!r:.40}, {index!r:.40})")
    return kind if index is None else f"{kind}:{index}"


@_builds("torch.Size")
def _torch_size(dims):
    """torch.Size -> a tuple of ints."""
    if not _is_counts(dims):
        raise CheckpointError(f"malformed torch.Size({dims!r:.80})")
    return tuple(dims)


@_builds("_codecs.encode")
def _encode(text, encoding):
    """Protocol 2 pickles bytes as _codecs.encode(str, 'latin1'); no other codec is looked up."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError(f"_codecs.encode is allowed only for latin1 text, got encoding {encoding!r:.40}")
    return text.encode("latin1")


@_builds("builtins.bytes")
def _empty_bytes():
    """Protocol 2 pickles b'' as bytes()."""
    return b""


@_builds("numpy.dtype")
def _numpy_dtype(spec, align=False, copy=False):
    return _DtypeSpec(spec)


@_builds("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar")
def _numpy_scalar(spec, data):
    """A numpy scalar from its dtype and raw bytes (numpy 1.x and 2.x module names)."""
    if not isinstance(spec, _DtypeSpec) or not isinstance(data, bytes) or len(data) != spec.dtype.itemsize:
        raise CheckpointError("malformed numpy scalar: expected a numeric dtype and its raw bytes")
    return np.frombuffer(data, spec.dtype)[0]


@_builds("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct")
def _numpy_array(cls, shape, typecode):
    """The empty array numpy's pickles create before BUILD fills it (see _PickledArray)."""
    if cls is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise CheckpointError("unexpected numpy _reconstruct arguments")
    return _PickledArray((0,), np.int8)


@_builds("torch_utils.persistence._reconstruct_persistent_obj")
def _persistent_obj(meta):
    """An NVIDIA persistent object from class_name and state; module_src is never looked at."""
    if not (isinstance(meta, dict) and meta.get("type") == "class" and isinstance(meta.get("class_name"), str)
            and isinstance(meta.get("state"), dict)):
        raise CheckpointError("persistent object meta must be a dict with type='class', class_name and state")
    return PersistentObject(meta["class_name"], meta["state"])


# ----------------------------------------------------------------------------------------------
# Readers.

_ZIP_HEAD = b"PK\x03\x04"
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_HEAD = b"\x80\x02\x8a\x0a"  # PROTO 2, then LONG1 with the 10 bytes of the magic number
_LEGACY_VERSION = 1001


class _Unpickler(pickle.Unpickler):
    """Resolves globals only through the allow-list and persistent ids through `load_storage`."""

    def __init__(self, file, extra_records: frozenset, load_storage=None):
        super().__init__(file, encoding="utf-8")
        self._extra_records = extra_records
        self._load_storage = load_storage

    def find_class(self, module, name):
        qualname = _python3_name(module, name)
        if qualname in _ALLOWED:
            return _ALLOWED[qualname]
        if qualname in self._extra_records:
            return _named_type(Record, qualname)
        raise UnsafeGlobalError(f"refused global '{qualname}': it is not on the allow-list of data-only builders")

    def persistent_load(self, pid):
        if self._load_storage is None:
            raise CheckpointError("persistent id in a plain pickle; only torch.save files reference storages")
        return self._load_storage(pid)


def _python3_name(module: str, name: str) -> str:
    """'module.name' as Python 3 reads it (protocol 2 writes e.g. __builtin__.set, commands.Popen)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


def _storage_record(pid, length: int):
    """(key, dtype, numel) of a persistent id ('storage', storage_type, key, location, numel[, view_metadata])."""
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
        kind = pid[0] if isinstance(pid, tuple) and pid else type(pid).__name__
        raise CheckpointError(f"unknown persistent id kind {kind!r:.40}; expected ('storage', ...) records")
    if len(pid) != length:
        raise CheckpointError(f"storage record has {len(pid)} fields, expected {length}")
    _, storage_type, key, _location, numel = pid[:5]
    if not (isinstance(storage_type, _Token) and storage_type.dtype is not None and isinstance(key, str)
            and _is_count(numel)):
        raise CheckpointError(f"malformed storage record {pid!r:.200}")
    if length == 6 and pid[5] is not None:
        raise CheckpointError("storage views (view_metadata, written by PyTorch < 0.4) are not supported")
    return key, storage_type.dtype, numel


def _read_zip(file, extra_records):
    """torch.save zip: '<prefix>/data.pkl' plus one raw entry '<prefix>/data/<key>' per storage."""
    with zipfile.ZipFile(file) as archive:
        names = set(archive.namelist())
        pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(f"zip is not a torch.save archive: expected one '<prefix>/data.pkl', "
                                  f"found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        if prefix + "byteorder" in names and archive.read(prefix + "byteorder") != b"little":
            raise CheckpointError("big-endian checkpoints are not supported")
        storages = {}

        def load_storage(pid):
            key, dtype, numel = _storage_record(pid, 5)
            if key not in storages:
                entry = f"{prefix}data/{key}"
                if entry not in names:
                    raise CheckpointError(f"storage {key!r} has no entry {entry!r}")
                with archive.open(entry) as stream:
                    data = stream.read(numel * dtype.itemsize)
                if len(data) < numel * dtype.itemsize:
                    raise CheckpointError(f"storage {key!r} of {numel} elements points past the end of its data "
                                          f"({len(data)} bytes)")
                storages[key] = _Storage(dtype, data)
            return storages[key]

        return _Unpickler(io.BytesIO(archive.read(pickles[0])), extra_records, load_storage).load()


def _read_legacy(file, extra_records):
    """Legacy torch.save: pickles of magic, version, sys_info, the object and the storage keys, then raw storages.

    The object is unpickled twice: first to learn each storage's dtype (needed to find where the
    raw storages start and end), then with the storages' data.
    """
    def next_pickle(load_storage=None):
        return _Unpickler(file, extra_records, load_storage).load()

    if next_pickle() != _LEGACY_MAGIC:
        raise CheckpointError("legacy torch.save stream with a wrong magic number")
    version = next_pickle()
    if version != _LEGACY_VERSION:
        raise CheckpointError(f"legacy torch.save protocol version {version!r:.40}, expected {_LEGACY_VERSION}")
    sys_info = next_pickle()
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise CheckpointError("legacy checkpoint not marked little-endian in its sys_info; big-endian is not supported")
    object_start = file.tell()
    dtypes = {}

    def note_dtype(pid):
        key, dtype, _ = _storage_record(pid, 6)
        dtypes[key] = dtype
        return _Storage(dtype, None)

    next_pickle(note_dtype)
    keys = next_pickle()
    if not isinstance(keys, list) or set(keys) != set(dtypes):
        raise CheckpointError("legacy storage key list does not match the storages the object references")
    data_start = file.tell()
    file_end = file.seek(0, io.SEEK_END)
    file.seek(data_start)
    storages = {}
    for key in keys:
        (numel,) = struct.unpack("<q", file.read(8))
        nbytes = numel * dtypes[key].itemsize
        if numel < 0 or nbytes > file_end - file.tell():
            raise CheckpointError(f"storage {key!r} of {numel} elements points past the end of the data "
                                  f"(truncated or corrupt)")
        storages[key] = _Storage(dtypes[key], file.read(nbytes))
    file.seek(object_start)
    return next_pickle(lambda pid: storages[_storage_record(pid, 6)[0]])


def _read(file, extra_records):
    """Dispatch on the leading bytes."""
    head = file.read(512)
    file.seek(0)
    if not head:
        raise CheckpointError("empty file")
    if head.startswith(_ZIP_HEAD):
        return _read_zip(file, extra_records)
    if head.startswith(_LEGACY_HEAD):
        return _read_legacy(file, extra_records)
    if head[257:262] == b"ustar":
        raise CheckpointError("tar-format checkpoints (PyTorch < 0.4) are not supported")
    if head[:1] == b"\x80":
        return _Unpickler(file, extra_records).load()
    raise CheckpointError("not a PyTorch checkpoint or pickle (expected a zip archive or a pickle of protocol >= 2)")


def load(path, *, extra_records=()) -> object:
    """Read a checkpoint or pickle; tensors become numpy arrays, containers stay Python containers.

    NVIDIA persistent objects come back as PersistentObject, torch.nn containers as TorchModule,
    argparse.Namespace as a Record. `extra_records` names further classes ('config.BaseConfig')
    to rebuild as Record from their pickled attributes. Every failure is a CheckpointError.
    """
    if isinstance(extra_records, str):
        raise TypeError("extra_records must be a collection of 'module.Class' names, not one string")
    path = Path(path)
    try:
        file = path.open("rb")
    except OSError as e:
        raise CheckpointError(f"{path}: cannot open checkpoint ({e.strerror or e})") from e
    with file:
        try:
            return _read(file, frozenset(extra_records))
        except CheckpointError as e:
            raise type(e)(f"{path}: {e}") from e
        except Exception as e:  # untrusted bytes: any other failure means a damaged file
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({type(e).__name__}: {e})") from e
