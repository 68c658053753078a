"""Resuming ``train_ch13`` from a checkpoint when the rebuilt model's Trainer numbers its
parameters differently (Gluon numbers them by sorted prefixed names, which depend on
process-wide block counters)."""
import mxnet as mx
import numpy as onp
import pytest
from mxnet import gluon, init

import d2lcv


def _net(prefixes):
    """Conv -> Dense with the given block prefixes: same structure, different Trainer order."""
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(6, 3, prefix=prefixes[0]), gluon.nn.Activation('relu'),
            gluon.nn.Dense(4, prefix=prefixes[1]))
    return net


def _data():
    rng = onp.random.default_rng(0)
    X = rng.normal(size=(48, 1, 6, 6)).astype('float32')
    y = (X.mean(axis=(1, 2, 3)) > 0).astype('float32') + 2 * (X[:, 0, 0, 0] > 0)
    return gluon.data.DataLoader(gluon.data.ArrayDataset(X, y), 12, shuffle=False)


def _fit(net, num_epochs, tmp_path, **kw):
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.05})
    d2lcv.train_ch13(net, _data(), None, gluon.loss.SoftmaxCrossEntropyLoss(), trainer,
                     num_epochs, [mx.cpu()], progress=False, verbose=False,
                     save_path=str(tmp_path / 'a.png'), **kw)
    return {k: v.data().asnumpy() for k, v in net._collect_params_with_prefix().items()}


@pytest.mark.parametrize('second', [('a_', 'b_'), ('b_', 'a_')])
def test_resume_matches_an_uninterrupted_run(tmp_path, second):
    mx.random.seed(1)
    net = _net(('a_', 'b_'))
    net.initialize(init.Xavier(), ctx=mx.cpu())
    net(mx.np.zeros((1, 1, 6, 6)))
    start = {k: v.data().copy() for k, v in net._collect_params_with_prefix().items()}
    straight = _fit(net, 3, tmp_path)

    ckpt = str(tmp_path / 'ckpt')
    first = _net(('a_', 'b_'))
    first.initialize(ctx=mx.cpu())
    first(mx.np.zeros((1, 1, 6, 6)))
    for k, v in first._collect_params_with_prefix().items():
        v.set_data(start[k])
    _fit(first, 1, tmp_path, checkpoint=ckpt)       # "interrupted" after one epoch
    # rebuilt with ('b_', 'a_'): the Trainer now numbers the Dense parameters first
    again = _net(second)
    again.initialize(ctx=mx.cpu())
    resumed = _fit(again, 3, tmp_path, checkpoint=ckpt)
    for k in straight:
        onp.testing.assert_allclose(resumed[k], straight[k], rtol=1e-5, atol=1e-6,
                                    err_msg=k)
