"""Examples/sec of ``d2lcv.train_ch13`` against the chapter's loop, in one run.

The chapter's loop (13.1) reads the loss and accuracy back to the host after every batch
(``float(l.sum())``), which waits for the device each time; ``train_ch13`` sums them on the
device and reads them five times an epoch. Both train the same ResNet-18 (13.13 variant) on
the same CIFAR-10 twin batches, with the same optimiser, after one warm-up epoch each.

    python benchmarks/bench_train.py [--examples 384] [--batch-size 32] [--epochs 2]
        [--devices cpu:0,cpu:1]

On a CPU the device is the host, so the saving is small; on GPUs it grows with the number of
devices. The figure printed is measured here, in this run.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('OMP_WAIT_POLICY', 'passive')

import mxnet as mx  # noqa: E402
from mxnet import gluon, init  # noqa: E402

import d2lcv as d2l  # noqa: E402
from d2lcv import augment  # noqa: E402
from d2lcv.devices import parse_devices  # noqa: E402


def chapter_loop(net, train_iter, loss, trainer, num_epochs, devices, out):
    """The chapter's train_ch13 loop (13.1) without evaluation.

    As printed: ``train_batch_ch13`` reads loss and accuracy back to the host after every
    batch, and the Animator is updated (here: redrawn and saved as a PNG, as a script must)
    every ``num_batches // 5`` batches. Timed like train_ch13: wall time of the whole loop,
    data loading included, so the two figures compare the same thing.
    """
    num_batches = len(train_iter)
    animator = d2l.Animator(xlabel='epoch', xlim=[0, num_epochs], ylim=[0, 1],
                            legend=['train loss', 'train acc'], save_path=out,
                            min_save_interval=0)
    examples, tik = 0, time.time()
    for epoch in range(num_epochs):
        metric = d2l.Accumulator(4)
        for i, (features, labels) in enumerate(train_iter):
            l, acc = d2l.train_batch_ch13(net, features, labels, loss, trainer, devices)
            metric.add(l, acc, labels.shape[0], labels.size)
            if (i + 1) % max(1, num_batches // 5) == 0:
                animator.add(epoch + i / num_batches,
                             (metric[0] / metric[2], metric[1] / metric[3]))
        examples += metric[2]
    animator.close()
    return examples / (time.time() - tik)


def d2lcv_loop(net, train_iter, loss, trainer, num_epochs, devices, out):
    result = d2l.train_ch13(net, train_iter, None, loss, trainer, num_epochs, devices,
                            save_path=out, verbose=False, progress=False)
    return result['examples_per_sec']


def make(devices, seed=0):
    mx.random.seed(seed)
    net = d2l.resnet18(10)
    net.initialize(init.Xavier(), ctx=devices)
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.001})
    return net, trainer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--examples', type=int, default=640)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--devices', default='cpu')
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    devices = parse_devices(args.devices)
    os.environ['D2LCV_NUM_WORKERS'] = '0'
    train_iter = augment.load_cifar10(True, augment.train_augs(), args.batch_size, tiny=True,
                                      limit=args.examples)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    out = os.path.join('runs', 'bench_train_animator.png')
    runners = {'chapter loop (sync every batch)': chapter_loop, 'd2lcv.train_ch13': d2lcv_loop}
    state = {name: make(devices) for name in runners}
    for name, fn in runners.items():  # warm-up epoch: hybridization, allocation
        fn(*state[name][:1], train_iter, loss, state[name][1], 1, devices, out)
    # interleaved repeats, so that load from other processes hits both alike
    samples = {name: [] for name in runners}
    for rep in range(args.repeats):
        for name, fn in runners.items():
            net, trainer = state[name]
            samples[name].append(fn(net, train_iter, loss, trainer, args.epochs, devices, out))
            print(f'  repeat {rep + 1}: {name:<34} {samples[name][-1]:8.1f} examples/sec',
                  flush=True)
    results = {name: statistics.median(v) for name, v in samples.items()}
    for name, eps in results.items():
        print(f'{name:<34} median {eps:8.1f} examples/sec over {args.repeats} repeats')
    ref, ours = results['chapter loop (sync every batch)'], results['d2lcv.train_ch13']
    print(f'ratio d2lcv / chapter: {ours / ref:.2f}x on {devices}, ResNet-18, '
          f'{args.examples} CIFAR-10-twin images, batch {args.batch_size}, {args.epochs} epochs')
    print('both figures: wall time of the training loop, data loading included')


if __name__ == '__main__':
    main()
