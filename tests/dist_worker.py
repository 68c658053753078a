"""A parameter-server worker for tests/test_dist.py (run under ``d2lcv.dist.launch``).

    python dist_worker.py OUT_DIR [--kvstore dist_sync] [--epochs 2] [--stall-rank R]

Trains a small CNN on this worker's shard of the CIFAR-10 twin with ``train_ch13`` and a
dist kvstore, then writes ``OUT_DIR/rank<r>.params`` (its final parameters) and
``OUT_DIR/rank<r>.json`` (rank, shard size, losses). ``--stall-rank R``: worker ``R``
writes ``OUT_DIR/stall<R>.pid`` after its third step and then trains on slowly, so a test
can kill it midway. ``--fail-rank R``: worker ``R`` raises an exception at its fourth step.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mxnet as mx  # noqa: E402
from mxnet import gluon, init  # noqa: E402
from mxnet.gluon import nn  # noqa: E402

import d2lcv  # noqa: E402
from d2lcv import augment, dist  # noqa: E402


def small_cnn():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, kernel_size=3, padding=1, strides=2), nn.BatchNorm(),
            nn.Activation('relu'), nn.MaxPool2D(2), nn.Dense(10))
    return net


class Stall:
    """A training iterator that, on the stalling rank, announces itself and slows down."""

    def __init__(self, it, pid_path, fail=False):
        self.it, self.pid_path, self.fail = it, pid_path, fail

    def __len__(self):
        return len(self.it)

    def __iter__(self):
        for i, batch in enumerate(self.it):
            if i == 3 and self.fail:
                raise RuntimeError('dist_worker: failing on purpose at step 3')
            if i == 3 and self.pid_path:
                tmp = self.pid_path + '.tmp'
                with open(tmp, 'w') as f:
                    f.write(str(os.getpid()))
                os.replace(tmp, self.pid_path)
            if i >= 3 and self.pid_path:
                time.sleep(0.5)
            yield batch


def main():
    p = argparse.ArgumentParser()
    p.add_argument('out')
    p.add_argument('--kvstore', default='dist_sync')
    p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--batch-size', type=int, default=25)
    p.add_argument('--stall-rank', type=int, default=-1)
    p.add_argument('--fail-rank', type=int, default=-1, help='this rank raises at step 3')
    p.add_argument('--devices', type=int, default=1, help='CPU contexts per worker')
    p.add_argument('--by-name', action='store_true',
                   help="give the Trainer the kvstore's name and train_ch13 none (inferred)")
    args = p.parse_args()

    kv = dist.create_kvstore(args.kvstore)
    rank, workers = dist.kv_rank(kv), dist.kv_num_workers(kv)
    # a different initialisation on every worker: the kvstore must make them agree
    mx.random.seed(100 + rank)
    net = small_cnn()
    devices = [mx.cpu(i) for i in range(args.devices)]
    net.initialize(init.Xavier(), ctx=devices)
    net.hybridize()
    train_iter = augment.load_cifar10(True, augment.test_augs(), args.batch_size, tiny=True,
                                      num_parts=workers, part_index=rank)
    test_iter = augment.load_cifar10(False, augment.test_augs(), 100, tiny=True)
    stall = os.path.join(args.out, f'stall{rank}.pid') if rank == args.stall_rank else None
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.01},
                            kvstore=args.kvstore if args.by_name else kv)
    result = d2lcv.train_ch13(net, Stall(train_iter, stall, rank == args.fail_rank),
                              test_iter, loss, trainer,
                              args.epochs, devices, kvstore=None if args.by_name else kv,
                              save_path=os.path.join(args.out, 'animator.png'),
                              progress=False, checkpoint=os.path.join(args.out, 'ckpt'))
    net.save_parameters(os.path.join(args.out, f'rank{rank}.params'))
    info = {'rank': rank, 'num_workers': workers, 'shard': len(train_iter._dataset),
            'batches': len(train_iter), 'first_loss': result['history']['y'][0][0],
            'train_loss': result['train_loss'], 'test_acc': result.get('test_acc'),
            'examples_per_sec': result['examples_per_sec'],
            'launch_rank': os.environ.get('D2LCV_LAUNCH_RANK')}
    with open(os.path.join(args.out, f'rank{rank}.json'), 'w') as f:
        json.dump(info, f)


if __name__ == '__main__':
    main()
