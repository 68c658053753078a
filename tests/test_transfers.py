"""No device->host copy in a training step of ``train_ssd`` (issue 15).

Every way MXNet has of bringing an array's values to the host is counted while ``train_ssd``
runs a few epochs on ``[cpu(0), cpu(1)]``: the Python methods (``asnumpy``, ``asscalar``,
``item``, ``tolist``, ``wait_to_read``, ``float()``/``int()``/``bool()``) and, underneath
them, the C calls they all end in (``MXNDArraySyncCopyToCPU``, ``MXNDArrayWaitToRead``,
``MXNDArrayWaitAll``). The metric reads (``ssd._read``: five times an epoch and at its
end) are allowed; any other read is a failure, reported with
the line of d2lcv that made it. On a GPU each of those reads is a device->host copy and a
full synchronisation of the step.

The gate is checked against itself: with operators that copy the labels to the host (the
old host path of ``d2lcv.anchors``) the same count is not zero.
"""
import collections
import contextlib
import traceback
import types

import numpy as onp
import pytest

import mxnet as mx
from mxnet import base, np

from d2lcv import anchors as A
from d2lcv import ssd

EPOCHS, BATCHES, BATCH = 2, 4, 4

# Python-level exits of both array kinds; each ends in one of the C calls below.
_METHODS = [(cls, name) for cls in (mx.nd.NDArray, np.ndarray)
            for name in ('asnumpy', 'asscalar', 'item', 'tolist', 'wait_to_read',
                         '__float__', '__int__', '__bool__', '__index__', '__array__')
            if name in vars(cls) or hasattr(cls, name)]
_C_CALLS = ('MXNDArraySyncCopyToCPU', 'MXNDArrayWaitToRead', 'MXNDArrayWaitAll')


class TransferCounter:
    """Counts device->host reads and syncs; ``allowed`` marks the metric reads."""

    def __init__(self):
        self.events = []            # (kind, allowed, where)
        self._allowed = 0
        self._depth = 0             # a method's own C call is not counted twice

    @contextlib.contextmanager
    def allowed(self):
        self._allowed += 1
        try:
            yield
        finally:
            self._allowed -= 1

    def _record(self, kind):
        stack = traceback.extract_stack()[:-2]
        where = next((f'{f.filename.split("/")[-1]}:{f.lineno} {f.name}'
                      for f in reversed(stack) if '/d2lcv/' in f.filename
                      and 'tests' not in f.filename), stack[-1].name)
        self.events.append((kind, self._allowed > 0, where))

    def wrap_method(self, fn, kind):
        counter = self

        def wrapper(*args, **kwargs):
            if counter._depth == 0:
                counter._record(kind)
            counter._depth += 1
            try:
                return fn(*args, **kwargs)
            finally:
                counter._depth -= 1
        return wrapper

    def wrap_c(self, fn, kind):
        counter = self

        def wrapper(*args):
            if counter._depth == 0:
                counter._record(kind)
            return fn(*args)
        return wrapper

    def unexpected(self):
        return collections.Counter((k, w) for k, ok, w in self.events if not ok)

    def expected(self):
        return sum(ok for _, ok, _ in self.events)


@contextlib.contextmanager
def count_transfers(monkeypatch):
    counter = TransferCounter()
    with monkeypatch.context() as m:
        for cls, name in _METHODS:
            m.setattr(cls, name, counter.wrap_method(getattr(cls, name),
                                                     f'{cls.__name__}.{name}'))
        for name in _C_CALLS:
            m.setattr(base._LIB, name, counter.wrap_c(getattr(base._LIB, name), name))
        real_read = ssd._read

        def read(value):
            with counter.allowed():
                return real_read(value)
        m.setattr(ssd, '_read', read)
        yield counter


def _batches(seed=0):
    """Bananas-like batches already in memory: the loader itself reads nothing."""
    rng = onp.random.RandomState(seed)
    out = []
    for _ in range(BATCHES):
        X = rng.uniform(0, 1, (BATCH, 3, 64, 64)).astype('float32')
        Y = -onp.ones((BATCH, 2, 5), 'float32')
        for b in range(BATCH):
            xy = rng.uniform(0, 0.6, 2)
            Y[b, 0] = [0, *xy, *(xy + rng.uniform(0.15, 0.35, 2))]
        out.append((np.array(X), np.array(Y)))
    return out


def _train(impl, monkeypatch):
    data = _batches()
    net = ssd.TinySSD(1, impl=impl)
    mx.random.seed(0)
    with count_transfers(monkeypatch) as counter:
        ssd.train_ssd(net, data, EPOCHS, devices=[mx.cpu(0), mx.cpu(1)], lr=0.05,
                      progress=False, verbose=False, animator=_NoAnimator())
    return counter


class _NoAnimator:
    history = []

    def add(self, *args):
        pass


def _host_copy_impl():
    """The old default: ``multibox_target`` on NumPy copies of the device's arrays."""
    def multibox_target(anchors, labels, cls_preds, **kw):
        out = A.multibox_target(anchors.asnumpy(), labels.asnumpy(), None, impl='d2lcv', **kw)
        return tuple(np.array(o, ctx=labels.ctx) for o in out)
    ops = ssd.detection_ops('d2lcv')
    return types.SimpleNamespace(name='host-copy', multibox_prior=ops.multibox_prior,
                                 multibox_target=multibox_target,
                                 multibox_detection=ops.multibox_detection)


@pytest.mark.parametrize('impl', ['d2lcv', 'npx', None])
def test_no_host_reads_in_training_steps(impl, monkeypatch):
    counter = _train(impl, monkeypatch)
    assert not counter.unexpected(), (
        f'device->host reads outside the metric reads: {dict(counter.unexpected())}')
    # the metric reads happened, and are few: 4 sums 5 times an epoch, 5 at its end
    assert 0 < counter.expected() <= EPOCHS * (5 * 4 + 5)


def test_the_gate_catches_a_host_copy(monkeypatch):
    counter = _train(_host_copy_impl(), monkeypatch)
    reads = counter.unexpected()
    # two shards per step, each copying anchors and labels
    assert sum(reads.values()) >= EPOCHS * BATCHES * 2 * 2, reads
    assert any('asnumpy' in kind for kind, _ in reads), reads
