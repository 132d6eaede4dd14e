"""Read PyTorch checkpoints and NVIDIA network pickles without torch and without running their code.

Supported files: `torch.save` zip archives (torch >= 1.6) and legacy streams, and plain pickles
such as NVIDIA network snapshots. Every global a pickle names is looked up in `_ALLOWED`, a table of
our own data-only builders; any other global raises `UnsafeGlobalError`. Nothing from the file is
imported or executed, and NVIDIA `module_src` is never read. Tensors become C-contiguous numpy
arrays. Hostile files are bounded in time and memory by their size (see `_Context`).
Details: docs/networks.md#latentjaxiotorch_pickle
"""

from __future__ import annotations

import _compat_pickle  # pickle's own Python 2 -> 3 name map for protocol < 3 streams
import collections
import contextlib
import contextvars
import dataclasses
import functools
import io
import math
import mmap
import os
import pickle
import pickletools
import reprlib
import struct
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np

from latentjax.errors import CheckpointError, UnsafeGlobalError

__all__ = ["CheckpointError", "EasyDict", "PersistentObject", "Record", "TorchModule", "UnsafeGlobalError", "load"]


# ----------------------------------------------------------------------------------------------
# Resource bounds for one `load`.

_BUDGET_FLOOR = 32 << 20  # bytes any file may materialise (inflated zip entries, storages, copied views) ...
_BUDGET_RATIO = 4  # ... or this many times the file's size, whichever is larger
_MAX_BLOB_DEPTH = 1  # a _load_from_bytes blob holds one storage, never another blob
_MAX_NESTING = 100  # depth of init_kwargs containers and of module trees
_MAX_MODULE_WORK = 1_000_000  # modules plus entries one state_dict() may expand to (shared submodules repeat)


@dataclasses.dataclass(eq=False)
class _Context:
    """The file being loaded and what it has cost so far."""

    source: str = ""
    limit: int = _BUDGET_FLOOR
    spent: int = 0
    blob_depth: int = 0

    def spend(self, nbytes: int, what: str) -> None:
        """Charge `nbytes` about to be allocated; refuse once the file's total passes its limit."""
        self.spent += nbytes
        if self.spent > self.limit:
            raise CheckpointError(f"{what} needs {nbytes} bytes, which takes this file past its memory bound of "
                                  f"{self.limit} bytes (max({_BUDGET_FLOOR}, {_BUDGET_RATIO} x the file size)); "
                                  f"the file is too small to hold that much data")


_CONTEXT: contextvars.ContextVar[_Context | None] = contextvars.ContextVar("latentjax_torch_pickle", default=None)


def _context() -> _Context:
    """The current load's context, or a fresh one with the floor budget (builders called directly)."""
    return _CONTEXT.get() or _Context()


_brief = reprlib.Repr()
_brief.maxlevel, _brief.maxstring, _brief.maxother, _brief.maxlong = 3, 60, 60, 60


def _where(source: str) -> str:
    return f"{source}: " if source else ""


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

    @reprlib.recursive_repr()
    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class _ModuleData:
    """`state_dict()` over a torch Module `__dict__` held in `self.state`."""

    source = ""  # the file the module was read from, for error messages

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and persistent buffers under flat torch names ('mapping.fc0.weight'), in torch's order.

        The module tree is measured first, once per module object: a module that contains itself,
        a tree deeper than `_MAX_NESTING` and shared submodules that would repeat into more than
        `_MAX_MODULE_WORK` entries are refused (CheckpointError) before any name is built.
        """
        where = _where(self.source)
        entries = self._measure("", set(), {}, where)
        if entries > _MAX_MODULE_WORK:
            raise CheckpointError(f"{where}module tree expands to more than {_MAX_MODULE_WORK} entries "
                                  f"(submodules shared many times over)")
        tensors: dict[str, np.ndarray] = {}
        self._collect("", tensors)
        return tensors

    def _measure(self, prefix: str, path: set, sizes: dict, where: str) -> int:
        """Modules plus entries the walk from here visits; checks the structure `_collect` relies on."""
        key = id(self)
        if key in sizes:
            return sizes[key]
        if key in path:
            raise CheckpointError(f"{where}module '{prefix[:-1][:200]}' contains itself")
        if len(path) >= _MAX_NESTING:
            raise CheckpointError(f"{where}modules nest deeper than {_MAX_NESTING} levels (at '{prefix[:200]}')")
        parts = [self.state.get(part, {}) for part in ("_parameters", "_buffers", "_modules")]
        if not all(isinstance(part, dict) and all(isinstance(name, str) for name in part) for part in parts):
            raise CheckpointError(f"{where}module '{prefix[:-1][:200]}': _parameters, _buffers and _modules "
                                  f"must be dicts keyed by name")
        total = 1 + len(parts[0]) + len(parts[1])
        path.add(key)
        for name, child in parts[2].items():
            if child is None:
                continue
            if not isinstance(child, _ModuleData):
                raise CheckpointError(f"{where}submodule '{prefix}{name}' is a {type(child).__name__}, "
                                      f"not a rebuilt module")
            total += child._measure(f"{prefix}{name}.", path, sizes, where)
        path.discard(key)
        sizes[key] = total
        return total

    def _collect(self, prefix: str, tensors: dict) -> None:
        non_persistent = self.state.get("_non_persistent_buffers_set", ())
        non_persistent = {name for name in non_persistent if isinstance(name, str)} if isinstance(
            non_persistent, (set, frozenset, list, tuple)) else ()  # a set: one lookup per buffer
        for name, value in self.state.get("_parameters", {}).items():
            if value is not None:
                tensors[prefix + name] = value
        for name, value in self.state.get("_buffers", {}).items():
            if value is not None and name not in non_persistent:
                tensors[prefix + name] = value
        for name, child in self.state.get("_modules", {}).items():
            if child is not None:
                child._collect(f"{prefix}{name}.", tensors)


@dataclasses.dataclass(repr=False)
class PersistentObject(_ModuleData):
    """An NVIDIA `torch_utils.persistence` object rebuilt from its class name and state only."""

    class_name: str  # the bare class name NVIDIA pickles store, e.g. 'Generator'
    state: dict  # the module __dict__ as unpickled
    source: str = dataclasses.field(default="", compare=False)  # the file it was read from

    @property
    def init_kwargs(self) -> dict:
        """The constructor kwargs (`state['_init_kwargs']`) as plain nested dicts; {} if absent."""
        return _plain(self.state.get("_init_kwargs") or {}, f"{_where(self.source)}{self.class_name} init_kwargs")

    def __repr__(self):
        return f"PersistentObject({self.class_name!r}, {len(self.state)} state entries)"


class TorchModule(_ModuleData):
    """A plain torch.nn container (ModuleList, Sequential, ModuleDict) pickled by class reference, kept as data."""

    def __new__(cls):
        module = super().__new__(cls)
        module.state = {}
        module.source = _context().source
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


def _plain(value, what: str = "value"):
    """Nested dict subclasses (EasyDict, OrderedDict) as plain dicts.

    Each container is converted once (shared ones stay shared, so a DAG costs its size, not its
    number of paths); a container inside itself or nesting deeper than `_MAX_NESTING` is refused.
    """
    done: dict[int, object] = {}
    path: set[int] = set()

    def convert(value, depth):
        if not isinstance(value, (dict, list, tuple)):
            return value
        key = id(value)
        if key in done:
            return done[key]
        if key in path:
            raise CheckpointError(f"{what} contains itself")
        if depth >= _MAX_NESTING:
            raise CheckpointError(f"{what} nests deeper than {_MAX_NESTING} levels")
        path.add(key)
        if isinstance(value, dict):
            result = {name: convert(item, depth + 1) for name, item in value.items()}
        else:
            result = type(value)(convert(item, depth + 1) for item in value)
        path.discard(key)
        done[key] = result
        return result

    return convert(value, 0)


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
    """The raw bytes of one torch storage.

    The legacy reader creates a storage when the object pickle first names it, before its bytes
    (which follow the pickle) are read: `filled` is False until then, and views that must be copied
    wait in `pending` as (preallocated array, view) pairs.
    """

    dtype: np.dtype
    data: object  # a bytes-like buffer (a uint8 array when we read it)
    filled: bool = True
    pending: list = dataclasses.field(default_factory=list)

    def fill(self) -> None:
        """Mark the buffer as read and copy the views that waited for it."""
        self.filled = True
        for out, view in self.pending:
            np.copyto(out, view)
        self.pending.clear()


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
            raise CheckpointError(f"numpy dtype {_brief.repr(spec)} is not a plain numeric type")
        self.dtype = dtype

    def __setstate__(self, state):
        byteorder = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        if byteorder not in ("<", ">", "=", "|"):
            raise CheckpointError(f"malformed numpy dtype state {_brief.repr(state)}")
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


def _is_c_contiguous(size, stride) -> bool:
    expected = 1
    for n, step in zip(reversed(size), reversed(stride)):
        if n != 1 and step != expected:
            return False
        expected *= n
    return True


def _tensor(storage, offset, size, stride, dtype):
    """A storage's strided view as a C-contiguous array, checked to lie inside the storage.

    A contiguous view shares the storage's buffer (as torch tensors do); any other view is copied,
    and the copy is charged to the load's memory budget before it is allocated, so a stride-0
    expansion of a tiny storage is refused rather than materialised.
    """
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"a tensor's storage is a {type(storage).__name__}, expected a torch storage")
    if not (_is_count(offset) and _is_counts(size) and _is_counts(stride) and len(size) == len(stride)):
        raise CheckpointError(f"malformed tensor layout: offset={_brief.repr(offset)} size={_brief.repr(size)} "
                              f"stride={_brief.repr(stride)}")
    size, stride = tuple(size), tuple(stride)
    numel = math.prod(size)
    if numel == 0:
        return np.zeros(size, dtype)
    count = len(storage.data) // dtype.itemsize
    last = offset + sum((n - 1) * step for n, step in zip(size, stride))
    if last >= count:
        raise CheckpointError(f"tensor (offset {offset}, size {size}, stride {stride}) points past "
                              f"the end of its storage ({count} elements)")
    contiguous = _is_c_contiguous(size, stride)
    if not contiguous:
        _context().spend(numel * dtype.itemsize, f"copying a tensor of size {size} and stride {stride} out of a "
                                                 f"{len(storage.data)}-byte storage")
    view = np.ndarray(size, dtype, buffer=storage.data, offset=offset * dtype.itemsize,
                      strides=tuple(step * dtype.itemsize for step in stride))
    if contiguous:
        return view
    out = np.empty(size, dtype)
    if storage.filled:
        np.copyto(out, view)
    else:
        storage.pending.append((out, view))
    return out


@_builds("torch._utils._rebuild_tensor_v2")
def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """A tensor whose dtype is its (typed) storage's."""
    return _tensor(storage, offset, size, stride, getattr(storage, "dtype", None))


@_builds("torch._utils._rebuild_tensor_v3")
def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    """A tensor over an untyped storage, with its dtype given as a torch dtype global."""
    if not isinstance(dtype, _Token) or dtype.dtype is None:
        raise CheckpointError(f"tensor dtype {_brief.repr(dtype)} is not a torch dtype")
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
    context = _context()
    if context.blob_depth >= _MAX_BLOB_DEPTH:
        raise CheckpointError("a _load_from_bytes blob inside another blob (a blob holds one storage)")
    context.blob_depth += 1
    try:
        storage = _read_legacy(io.BytesIO(blob), blob, frozenset())
    finally:
        context.blob_depth -= 1
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"a _load_from_bytes blob holds a {type(storage).__name__}, expected one storage")
    return storage


@_builds("torch.device")
def _torch_device(kind, index=None):
    """torch.device -> its string form ('cpu', 'cuda:1')."""
    if not isinstance(kind, str) or not (index is None or _is_count(index)):
        raise CheckpointError(f"malformed torch.device({_brief.repr(kind)}, {_brief.repr(index)})")
    return kind if index is None else f"{kind}:{index}"


@_builds("torch.Size")
def _torch_size(dims):
    """torch.Size -> a tuple of ints."""
    if not _is_counts(dims):
        raise CheckpointError(f"malformed torch.Size({_brief.repr(dims)})")
    return tuple(dims)


@_builds("_codecs.encode")
def _encode(text, encoding):
    """Protocol 2 pickles bytes as _codecs.encode(str, 'latin1'); no other codec is looked up."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError(f"_codecs.encode is allowed only for latin1 text, got encoding {_brief.repr(encoding)}")
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
    return PersistentObject(meta["class_name"], meta["state"], _context().source)


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
        raise CheckpointError(f"unknown persistent id kind {_brief.repr(kind)}; expected ('storage', ...) records")
    if len(pid) != length:
        raise CheckpointError(f"storage record has {len(pid)} fields, expected {length}")
    _, storage_type, key, _location, numel = pid[:5]
    if not (isinstance(storage_type, _Token) and storage_type.dtype is not None and isinstance(key, str)
            and _is_count(numel)):
        raise CheckpointError(f"malformed storage record {_brief.repr(pid)}")
    if length == 6 and pid[5] is not None:
        raise CheckpointError("storage views (view_metadata, written by PyTorch < 0.4) are not supported")
    return key, storage_type.dtype, numel


# Opcode walk: how each opcode's argument is laid out (pickletools describes every opcode).
_LINE, _TWO_LINES, _FIXED, _COUNTED = range(4)
_COUNT_WIDTHS = {pickletools.TAKEN_FROM_ARGUMENT1: (1, False), pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
                 pickletools.TAKEN_FROM_ARGUMENT4U: (4, False), pickletools.TAKEN_FROM_ARGUMENT8U: (8, False)}


def _opcode_layouts() -> dict:
    layouts = {}
    for op in pickletools.opcodes:
        arg = op.arg
        if arg is None:
            layout = (_FIXED, 0, False)
        elif op.name in ("GLOBAL", "INST"):  # module and name, one line each
            layout = (_TWO_LINES, 0, False)
        elif arg.n == pickletools.UP_TO_NEWLINE:
            layout = (_LINE, 0, False)
        elif arg.n >= 0:
            layout = (_FIXED, arg.n, False)
        else:
            layout = (_COUNTED, *_COUNT_WIDTHS[arg.n])
        layouts[op.code.encode("latin-1")[0]] = layout
    return layouts


_OPCODES = _opcode_layouts()
_PUT, _BINPUT, _LONG_BINPUT, _STOP = b"pqr."


def _check_pickle(buf, pos: int) -> int:
    """Walk one pickle's opcodes in `buf` from `pos` without building anything; the position after its STOP.

    Refuses what CPython's unpickler would turn into a large allocation from a few bytes: a memo
    index (PUT, BINPUT, LONG_BINPUT) beyond the number of opcodes read so far, which a pickler never
    writes and which sizes the unpickler's memo table. Lengths running past the data are refused
    before the unpickler asks for that much memory. Costs one pass, skipping over bytes payloads.
    """
    end, ops, start = len(buf), 0, pos
    layouts, find = _OPCODES, buf.find
    while True:
        if pos >= end:
            raise CheckpointError("truncated or corrupt checkpoint: pickle data ends before its STOP opcode")
        code = buf[pos]
        layout = layouts.get(code)
        if layout is None:
            raise CheckpointError(f"truncated or corrupt checkpoint: unknown pickle opcode {code:#04x} at byte {pos}")
        kind, width, signed = layout
        arg, pos, ops = pos + 1, pos + 1, ops + 1
        if kind == _FIXED:
            pos += width
        elif kind == _COUNTED:
            length = int.from_bytes(buf[pos:pos + width], "little", signed=signed)
            if length < 0:
                raise CheckpointError(f"truncated or corrupt checkpoint: negative length at byte {pos}")
            pos += width + length
        else:
            for _ in range(2 if kind == _TWO_LINES else 1):
                newline = find(b"\n", pos)
                if newline < 0:
                    pos = end + 1
                    break
                pos = newline + 1
        if pos > end:
            raise CheckpointError(f"truncated or corrupt checkpoint: pickle data was truncated (an argument at byte "
                                  f"{arg} runs past the end of the {end - start}-byte pickle)")
        if code == _STOP:
            return pos
        if code in (_PUT, _BINPUT, _LONG_BINPUT):
            index = int(buf[arg:pos - 1]) if code == _PUT else int.from_bytes(buf[arg:pos], "little")
            if not 0 <= index < ops:
                raise CheckpointError(f"pickle memo index {index} at byte {arg - 1} is out of range: only {ops - 1} "
                                      f"opcodes come before it (a pickler numbers its memo entries in order)")


def _load_pickle(file, buf, extra_records, load_storage=None):
    """The pickle at the file's position (`buf` holds the same bytes), checked by `_check_pickle` first."""
    end = _check_pickle(buf, file.tell())
    obj = _Unpickler(file, extra_records, load_storage).load()
    file.seek(end)
    return obj


def _read_into(stream, buffer: np.ndarray) -> int:
    """Fill `buffer` from `stream` in bounded chunks; the number of bytes read."""
    view, got = memoryview(buffer).cast("B"), 0
    while got < len(view):
        chunk = stream.read(min(len(view) - got, 1 << 22))
        if not chunk:
            break
        view[got:got + len(chunk)] = chunk
        got += len(chunk)
    return got


def _read_zip(file, extra_records):
    """torch.save zip: '<prefix>/data.pkl' plus one raw entry '<prefix>/data/<key>' per storage.

    Sizes come from each entry's header (`ZipInfo.file_size`, which also bounds what zipfile
    inflates) and are charged to the load's budget before anything is read.
    """
    context = _context()
    with zipfile.ZipFile(file) as archive:
        names = set(archive.namelist())
        pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(f"zip is not a torch.save archive: expected one '<prefix>/data.pkl', "
                                  f"found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        if prefix + "byteorder" in names:
            with archive.open(prefix + "byteorder") as stream:
                if stream.read(16) != b"little":
                    raise CheckpointError("big-endian checkpoints are not supported")
        storages = {}

        def load_storage(pid):
            key, dtype, numel = _storage_record(pid, 5)
            if key not in storages:
                entry = f"{prefix}data/{key}"
                if entry not in names:
                    raise CheckpointError(f"storage {key!r} has no entry {entry!r}")
                nbytes, info = numel * dtype.itemsize, archive.getinfo(entry)
                if nbytes > info.file_size:
                    raise CheckpointError(f"storage {key!r} of {numel} elements points past the end of its data "
                                          f"({info.file_size} bytes)")
                context.spend(nbytes, f"storage {key!r} ({info.compress_size} bytes in the zip)")
                data = np.empty(nbytes, np.uint8)
                with archive.open(info) as stream:
                    got = _read_into(stream, data)
                if got < nbytes:
                    raise CheckpointError(f"storage {key!r} of {numel} elements points past the end of its data "
                                          f"({got} bytes)")
                storages[key] = _Storage(dtype, data)
            return storages[key]

        info = archive.getinfo(pickles[0])
        context.spend(info.file_size, f"{pickles[0]!r} ({info.compress_size} bytes in the zip)")
        data = archive.read(info)
        return _load_pickle(io.BytesIO(data), data, extra_records, load_storage)


def _read_legacy(file, buf, extra_records):
    """Legacy torch.save: pickles of magic, version, sys_info, the object and the storage keys, then raw storages.

    `buf` holds the stream's bytes (for `_check_pickle`). The object is unpickled once: a storage is
    created, unfilled, when the pickle first names it (its record gives dtype and size), and filled
    when the raw storages that follow the pickle are read.
    """
    context = _context()

    def next_pickle(load_storage=None):
        return _load_pickle(file, buf, extra_records, load_storage)

    if next_pickle() != _LEGACY_MAGIC:
        raise CheckpointError("legacy torch.save stream with a wrong magic number")
    version = next_pickle()
    if version != _LEGACY_VERSION:
        raise CheckpointError(f"legacy torch.save protocol version {_brief.repr(version)}, expected {_LEGACY_VERSION}")
    sys_info = next_pickle()
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise CheckpointError("legacy checkpoint not marked little-endian in its sys_info; big-endian is not supported")
    file_end = len(buf)
    storages = {}
    declared = [0]  # bytes of all storages named so far: the raw data after the pickle must hold them

    def load_storage(pid):
        key, dtype, numel = _storage_record(pid, 6)
        storage = storages.get(key)
        if storage is None:
            nbytes = numel * dtype.itemsize
            declared[0] += 8 + nbytes
            if declared[0] > file_end - file.tell():
                raise CheckpointError(f"storage {key!r} of {numel} elements points past the end of the data "
                                      f"(truncated or corrupt)")
            context.spend(nbytes, f"storage {key!r}")
            storage = storages[key] = _Storage(dtype, np.empty(nbytes, np.uint8), filled=False)
        elif storage.dtype != dtype or len(storage.data) != numel * dtype.itemsize:
            raise CheckpointError(f"storage {key!r} is named as {len(storage.data) // storage.dtype.itemsize} "
                                  f"{storage.dtype} and as {numel} {dtype} elements")
        return storage

    obj = next_pickle(load_storage)
    keys = next_pickle()
    if not isinstance(keys, list) or len(keys) != len(storages) or set(keys) != set(storages):
        raise CheckpointError("legacy storage key list does not match the storages the object references")
    for key in keys:
        storage = storages[key]
        (numel,) = struct.unpack("<q", file.read(8).ljust(8, b"\xff"))
        nbytes = len(storage.data)
        if numel < 0 or numel * storage.dtype.itemsize > file_end - file.tell():
            raise CheckpointError(f"storage {key!r} of {numel} elements points past the end of the data "
                                  f"(truncated or corrupt)")
        if numel * storage.dtype.itemsize != nbytes:
            raise CheckpointError(f"storage {key!r} holds {numel} elements, but the object pickle declares "
                                  f"{nbytes // storage.dtype.itemsize}")
        if _read_into(file, storage.data) != nbytes:
            raise CheckpointError(f"storage {key!r} points past the end of the data (truncated or corrupt)")
        storage.fill()
    return obj


@contextlib.contextmanager
def _mapped(file):
    """The file's bytes as a read-only mmap (a bytes copy where the file cannot be mapped)."""
    try:
        buf = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        position = file.tell()
        file.seek(0)
        yield file.read()
        file.seek(position)
        return
    try:
        yield buf
    finally:
        buf.close()


def _read(file, extra_records):
    """Dispatch on the leading bytes."""
    head = file.read(512)
    file.seek(0)
    if not head:
        raise CheckpointError("empty file")
    if head.startswith(_ZIP_HEAD):
        return _read_zip(file, extra_records)
    if head[257:262] == b"ustar":
        raise CheckpointError("tar-format checkpoints (PyTorch < 0.4) are not supported")
    if head[:1] != b"\x80":
        raise CheckpointError("not a PyTorch checkpoint or pickle (expected a zip archive or a pickle of protocol >= 2)")
    with _mapped(file) as buf:
        if head.startswith(_LEGACY_HEAD):
            return _read_legacy(file, buf, extra_records)
        return _load_pickle(file, buf, extra_records)


def load(path, *, extra_records=()) -> object:
    """Read a checkpoint or pickle; tensors become numpy arrays, containers stay Python containers.

    NVIDIA persistent objects come back as PersistentObject, torch.nn containers as TorchModule,
    argparse.Namespace as a Record. `extra_records` names further classes ('config.BaseConfig')
    to rebuild as Record from their pickled attributes. Every failure is a CheckpointError, and
    time and memory are bounded by the file's size (see the module docstring).

    Contiguous tensors that share a torch storage share its memory here too; strided views are copies.
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
            size = os.fstat(file.fileno()).st_size
        except OSError as e:
            raise CheckpointError(f"{path}: cannot open checkpoint ({e.strerror or e})") from e
        token = _CONTEXT.set(_Context(str(path), max(_BUDGET_FLOOR, _BUDGET_RATIO * size)))
        try:
            return _read(file, frozenset(extra_records))
        except CheckpointError as e:
            raise type(e)(f"{path}: {e}") from e
        except Exception as e:  # untrusted bytes: any other failure means a damaged file
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({type(e).__name__}: {e})") from e
        finally:
            _CONTEXT.reset(token)
