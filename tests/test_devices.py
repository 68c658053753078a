import mxnet as mx
import numpy as onp
import pytest
from mxnet import np

from d2lcv import devices


def test_try_gpu_falls_back_to_cpu_without_gpus():
    assert devices.try_gpu() == mx.cpu()
    assert devices.try_gpu(3) == mx.cpu()
    assert devices.try_all_gpus() == [mx.cpu()]


def test_resolve_devices():
    assert devices.resolve_devices(None) == devices.try_all_gpus()
    assert devices.resolve_devices(mx.cpu(1)) == [mx.cpu(1)]
    with pytest.raises(ValueError):
        devices.resolve_devices([])


def test_parse_devices():
    assert devices.parse_devices('cpu:0,cpu:1') == [mx.cpu(0), mx.cpu(1)]
    assert devices.parse_devices('cpu') == [mx.cpu(0)]
    assert devices.parse_devices('gpu') == [mx.cpu()]  # no GPU here
    with pytest.raises(ValueError, match='tpu'):
        devices.parse_devices('tpu:0')


@pytest.mark.parametrize('batch', [1, 2, 5, 8])
def test_split_batch_uneven(batch, two_cpus):
    X = np.arange(batch * 3).reshape(batch, 3)
    y = np.arange(batch)
    Xs, ys = devices.split_batch(X, y, two_cpus)
    assert len(Xs) == len(ys) == min(batch, 2)
    # shards cover the batch in order, each on its own device, sizes differ by at most one
    assert onp.array_equal(onp.concatenate([x.asnumpy() for x in Xs]), X.asnumpy())
    assert onp.array_equal(onp.concatenate([t.asnumpy() for t in ys]), y.asnumpy())
    assert [x.ctx for x in Xs] == two_cpus[:len(Xs)]
    sizes = [x.shape[0] for x in Xs]
    assert max(sizes) - min(sizes) <= 1


def test_split_batch_mismatched_lengths(two_cpus):
    with pytest.raises(ValueError, match='4 examples but y has 3'):
        devices.split_batch(np.zeros((4, 2)), np.zeros(3), two_cpus)
