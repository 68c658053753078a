"""The engine's distributed path, numerically (tests/test_train_dist.py).

    python dist_fit_worker.py OUT_DIR BATCH     (under d2lcv.dist.launch, a dist_sync worker)

Trains :func:`net` through ``d2lcv.train.fit`` with plain SGD and a step-decay schedule on
this worker's part of :func:`examples`: at step ``k`` worker ``r`` takes examples
``[2Bk + rB, 2Bk + rB + B)``, so both workers together take exactly the batch ``k`` of a
one-process run with batch ``2B`` (``train(2 * B)``). Writes ``OUT_DIR/rank<r>.npz`` (final parameters by
name). The test runs the one-process side with :func:`train` too.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as onp  # noqa: E402
import mxnet as mx  # noqa: E402
from mxnet import autograd, gluon, init, np  # noqa: E402
from mxnet.gluon import nn  # noqa: E402

from d2lcv import dist  # noqa: E402
from d2lcv.train import fit, step_decay  # noqa: E402

STEPS, EPOCHS, FEATURES, CLASSES = 3, 2, 6, 3


def examples(global_batch):
    """``STEPS * global_batch`` examples ``(X (n, 6), y (n,))``, the same every call."""
    rng = onp.random.RandomState(7)
    n = STEPS * global_batch
    X = rng.normal(size=(n, FEATURES)).astype('float32')
    y = rng.randint(0, CLASSES, size=n).astype('float32')
    return X, y


def net():
    """No BatchNorm: two Dense layers with fixed (seeded) weights, the same everywhere."""
    block = nn.HybridSequential()
    block.add(nn.Dense(8, activation='tanh', in_units=FEATURES), nn.Dense(CLASSES, in_units=8))
    block.initialize(init.Zero(), ctx=mx.cpu())
    rng = onp.random.RandomState(3)
    for name, p in sorted(block.collect_params().items()):
        p.set_data(np.array(rng.normal(scale=0.5, size=p.shape).astype('float32')))
    return block


def train(batch, part=0, parts=1, kvstore='device'):
    """``fit`` with batch ``batch`` per process: step ``k`` of part ``part`` (of ``parts``)
    takes examples ``[G k + part * batch, G k + (part + 1) * batch)``, ``G = batch * parts``
    the global batch. Returns ``(net, fit's result)``."""
    G = batch * parts
    X, y = examples(G)
    starts = [G * k + part * batch for k in range(STEPS)]
    data = [(np.array(X[s:s + batch]), np.array(y[s:s + batch])) for s in starts]
    block = net()
    kv = dist.create_kvstore(kvstore)
    trainer = gluon.Trainer(block.collect_params(), 'sgd', {'learning_rate': 0.5}, kvstore=kv)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()

    def step(batch, trainer):
        Xb, yb = batch
        with autograd.record():
            l = loss(block(Xb), yb)
        l.backward()
        trainer.step(Xb.shape[0])
        return l.sum(), Xb.shape[0]

    result = fit(block, data, step, trainer, epochs=EPOCHS, devices=[mx.cpu()], kvstore=kv,
                 metrics=lambda s: {'loss': s[0] / s[1]}, curves={'loss': 'loss'},
                 lr_schedule=step_decay(0.5, 1, 0.2), progress=False, verbose=False)
    return block, result


def params(block):
    return {name: p.data().asnumpy() for name, p in
            block._collect_params_with_prefix().items()}


def main():
    out, batch = sys.argv[1], int(sys.argv[2])
    kv = dist.create_kvstore('dist_sync')
    block, result = train(batch, kv.rank, kv.num_workers, kv)
    tmp = os.path.join(out, f'.rank{kv.rank}.npz')
    onp.savez(tmp, **params(block))
    os.replace(tmp, os.path.join(out, f'rank{kv.rank}.npz'))


if __name__ == '__main__':
    main()
