"""Devices: ``try_gpu``, ``try_all_gpus`` and ``split_batch`` (chapters 5.6 and 12.6).

Every function that trains or predicts takes ``devices`` and resolves the default when it is
called, never at import: ``devices=None`` means ``try_all_gpus()``. ``[mx.cpu(0), mx.cpu(1)]``
is a legal device list (MXNet treats them as two devices), which is how the tests exercise
the multi-device code without GPUs.
"""
import mxnet as mx
from mxnet import gluon

__all__ = ['try_gpu', 'try_all_gpus', 'resolve_devices', 'split_batch', 'parse_devices']


def _num_gpus():
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:  # CPU build, or a CUDA build without a driver
        return 0


def try_gpu(i=0):
    """Return ``gpu(i)`` if it exists, otherwise ``cpu()``."""
    return mx.gpu(i) if _num_gpus() >= i + 1 else mx.cpu()


def try_all_gpus():
    """Return all available GPUs, or ``[cpu()]`` if there is none."""
    devices = [mx.gpu(i) for i in range(_num_gpus())]
    return devices if devices else [mx.cpu()]


def resolve_devices(devices=None):
    """``None`` -> ``try_all_gpus()``; a single context -> a one-element list."""
    if devices is None:
        return try_all_gpus()
    if isinstance(devices, mx.Context):
        return [devices]
    devices = list(devices)
    if not devices:
        raise ValueError('devices is an empty list')
    return devices


def parse_devices(spec):
    """Parse ``'cpu'``, ``'cpu:0,cpu:1'``, ``'gpu'`` (all GPUs) or ``'gpu:0,gpu:1'``."""
    if spec in (None, '', 'auto'):
        return try_all_gpus()
    if spec == 'gpu':
        return [mx.gpu(i) for i in range(_num_gpus())] or [mx.cpu()]
    out = []
    for part in spec.split(','):
        kind, _, idx = part.strip().partition(':')
        if kind not in ('cpu', 'gpu') or (idx and not idx.isdigit()):
            raise ValueError(f'bad device {part!r} in {spec!r}: use cpu, cpu:N, gpu or gpu:N')
        out.append(getattr(mx, kind)(int(idx) if idx else 0))
    # checked here, once, rather than by MXNet inside every section: a missing GPU gives
    # "GPU is not enabled" per section, a repeated device a cryptic autograd error
    seen = set()
    for dev in out:
        if dev in seen:
            raise ValueError(f'device {dev} is listed twice in {spec!r}; list each once '
                             '(cpu:0,cpu:1 for two CPU devices)')
        seen.add(dev)
    gpus = [d.device_id for d in out if d.device_type == 'gpu']
    if gpus and max(gpus) >= _num_gpus():
        have = _num_gpus()
        raise ValueError(f'{spec!r} asks for gpu:{max(gpus)} but MXNet sees {have} GPU(s)'
                         + (' (a CPU build of MXNet, or no CUDA driver)' if not have else '')
                         + "; use --devices cpu, or leave it out to take what there is")
    return out


def split_batch(X, y, devices):
    """Split ``X`` and ``y`` into shards, one per device (the chapter's helper).

    Shapes: ``X (B, ...)``, ``y (B, ...)`` -> two lists of ``len(devices)`` shards. The batch
    need not divide evenly (batch 5 on 2 devices gives shards of 2 and 3); a batch smaller
    than the number of devices uses only the first ``B`` devices.
    """
    devices = resolve_devices(devices)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f'split_batch: X has {X.shape[0]} examples but y has {y.shape[0]}')
    devices = devices[:max(1, min(len(devices), X.shape[0]))]
    return (gluon.utils.split_and_load(X, devices, even_split=False),
            gluon.utils.split_and_load(y, devices, even_split=False))
