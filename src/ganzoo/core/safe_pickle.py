"""A restricted unpickler for StyleGAN2-ADA network pickles: tensors and plain state, no code.

NVlabs/stylegan2-ada-pytorch saves its networks with `pickle.dump` of modules whose classes
are wrapped by `torch_utils.persistence`: each object pickles as a call of
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, where `meta` holds the *source
code* of the module that defines the class, the class name and the object's `__dict__`.
Unpickling such a file normally imports and runs that embedded source. Here nothing from the
file is imported or executed: `find_class` answers a short allow-list of globals with inert
stand-ins and refuses every other global with one line naming it.

- `_reconstruct_persistent_obj` -> a `PersistentObject` record of the class name, the object's
  attributes (parameters, buffers, child modules, constructor kwargs) and the SHA-256 of the
  embedded source (recorded, never executed);
- `dnnlib.EasyDict` -> `EasyDictRecord` (a plain dict); `collections.OrderedDict`, set;
- tensors: `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter` (argument types checked),
  storages through `torch.load(weights_only=True)` of their bytes (the `_load_from_bytes` the
  official pickles name would otherwise unpickle them without restriction);
- numpy scalars and dtypes (e.g. an equalized-lr gain stored as np.float64), object dtype
  refused.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganzoo.core.errors import GanzooError

__all__ = ["EasyDictRecord", "PersistentObject", "UnsafePickleError", "load_safe_pickle"]


class UnsafePickleError(GanzooError):
    """A pickle names a global that is not tensors or plain state, or cannot be read."""


class EasyDictRecord(dict):  # type: ignore[type-arg]
    """What a pickled `dnnlib.EasyDict` becomes: a dict (its keys are its attributes)."""


@dataclass
class PersistentObject:
    """An object of a `torch_utils.persistence` class, as a record of its state.

    For an `nn.Module` (every network class of stylegan2-ada-pytorch) `state` is its
    `__dict__`: `_parameters`, `_buffers`, `_modules` (more PersistentObjects),
    `_non_persistent_buffers_set`, `_init_kwargs` (the constructor's keyword arguments) and
    the attributes its constructor set (`z_dim`, `img_resolution`, ...).
    """

    class_name: str  # e.g. "Generator", "SynthesisLayer"
    state: dict[str, Any]  # the object's attributes
    source_sha256: str  # SHA-256 of the module source embedded in the pickle (never executed)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The keyword arguments the object was constructed with ({} when not recorded)."""
        value = self.state.get("_init_kwargs")
        return dict(value) if isinstance(value, dict) else {}

    def children(self) -> dict[str, PersistentObject]:
        """Child modules by attribute name."""
        modules = self.state.get("_modules") or {}
        return {k: v for k, v in modules.items() if isinstance(v, PersistentObject)}

    def state_dict(self, prefix: str = "") -> dict[str, Tensor]:
        """Parameters and persistent buffers, named as `nn.Module.state_dict()` names them."""
        out: dict[str, Tensor] = {}
        skip = set(self.state.get("_non_persistent_buffers_set") or ())
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if value is not None and name not in skip:
                    out[prefix + name] = value.detach()
        for name, child in self.children().items():
            out.update(child.state_dict(f"{prefix}{name}."))
        return out


def _persistent_object(meta: Any) -> PersistentObject:
    """Stand-in for torch_utils.persistence._reconstruct_persistent_obj: records, never execs."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise UnsafePickleError("a persistent object without the expected metadata")
    name, state, src = meta.get("class_name"), meta.get("state"), meta.get("module_src", "")
    if not isinstance(name, str) or not isinstance(state, dict) or not isinstance(src, str):
        raise UnsafePickleError("a persistent object with malformed metadata")
    return PersistentObject(name, dict(state), hashlib.sha256(src.encode()).hexdigest())


def _storage_from_bytes(data: Any) -> Any:
    """Stand-in for torch.storage._load_from_bytes: the bytes are a torch.save of one storage."""
    if not isinstance(data, bytes):
        raise UnsafePickleError("a storage whose payload is not bytes")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        line = str(err).strip().splitlines()[0] if str(err).strip() else "refused"
        raise UnsafePickleError(f"a storage that is not plain data ({line})") from None
    except Exception as err:  # torch's own checks of a corrupt storage record
        line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnsafePickleError(f"a storage that cannot be read ({line})") from None


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> Tensor:
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"a tensor built from {type(storage).__name__}, not a storage")
    if not (isinstance(offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)):
        raise UnsafePickleError("a tensor with malformed offset, size or stride")
    requires_grad = bool(rest[0]) if rest else False
    hooks = rest[1] if len(rest) > 1 else None
    if hooks:
        raise UnsafePickleError("a tensor with backward hooks")
    tensor: Tensor = torch._utils._rebuild_tensor(storage, offset, size, stride)
    return tensor.requires_grad_(requires_grad)


def _rebuild_parameter(data: Any, requires_grad: Any, hooks: Any, *state: Any) -> Tensor:
    if not isinstance(data, Tensor):
        raise UnsafePickleError(f"a parameter built from {type(data).__name__}, not a tensor")
    if hooks or any(state):
        raise UnsafePickleError("a parameter with hooks or extra state")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


def _rebuild_from_type(func: Any, kind: Any, args: Any, state: Any) -> Tensor:
    if func not in (_rebuild_tensor, _rebuild_parameter) or kind not in (Tensor,):
        raise UnsafePickleError(f"a tensor of type {getattr(kind, '__name__', kind)}")
    if state:
        raise UnsafePickleError("a tensor with extra Python state")
    result: Tensor = func(*args)
    return result


def _dtype(*args: Any) -> np.dtype[Any]:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise UnsafePickleError("a numpy object dtype")
    return dtype


def _scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise UnsafePickleError("a numpy scalar that is not plain data")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_object,
    ("dnnlib.util", "EasyDict"): EasyDictRecord,
    ("dnnlib", "EasyDict"): EasyDictRecord,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "Tensor"): Tensor,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        why = "only tensors and plain network state are read"
        if module.startswith("dnnlib.tflib"):
            why = "a TensorFlow StyleGAN2 pickle; turn it into a PyTorch one with the official "
            why += "stylegan2-ada-pytorch legacy.py first"
        raise UnsafePickleError(f"refused global {module}.{name}: {why}")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused a persistent id: not a network pickle")


def load_safe_pickle(path: Path) -> Any:
    """The contents of a stylegan2-ada-pytorch pickle (e.g. {"G": ..., "D": ..., "G_ema": ...,
    "augment_pipe": ...}) with modules as PersistentObjects; UnsafePickleError (one line)
    naming the first global outside the allow-list, or why the file is unreadable."""
    try:
        data = Path(path).read_bytes()  # read() of a corrupt length gets the rest, no more
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except (
        pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError,
        IndexError, RuntimeError, OverflowError, MemoryError,
    ) as err:  # fmt: skip
        line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnsafePickleError(f"{path}: unreadable or truncated pickle ({line})") from None
