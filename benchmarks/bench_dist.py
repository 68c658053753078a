"""Examples/sec of data-parallel training on MXNet's parameter server, against one process.

Trains the same small CNN on the CIFAR-10 twin with the same global batch, the same number
of steps and Adam: once in this process (``train_ch13``, one device), then as ``-n`` workers
+ ``-s`` servers started by ``d2lcv launch`` on this machine (``dist_sync``, each worker on its
shard with batch ``global / n``). Prints both rates (the dist one aggregated over workers, as
``train_ch13`` reports it) and their ratio, all measured in this run.

    python benchmarks/bench_dist.py [-n 2] [-s 1] [--batch-size 50] [--epochs 3]

On one machine the workers share its cores and every step sends the gradients and weights
through the loopback interface, so the ratio measures the parameter server's overhead; the
speed-up it exists for needs one machine (or GPU set) per worker.
"""
import argparse
import io
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault('OMP_WAIT_POLICY', 'passive')
os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ.setdefault('D2LCV_NUM_WORKERS', '0')

import mxnet as mx  # noqa: E402
from mxnet import gluon, init  # noqa: E402

import d2lcv  # noqa: E402
from d2lcv import augment  # noqa: E402
from d2lcv.dist.launch import launch  # noqa: E402

WORKER = os.path.join(os.path.dirname(HERE), 'tests', 'dist_worker.py')


def one_process(batch_size, epochs, out):
    sys.path.insert(0, os.path.dirname(WORKER))
    from dist_worker import small_cnn
    net = small_cnn()
    net.initialize(init.Xavier(), ctx=mx.cpu())
    net.hybridize()
    train_iter = augment.load_cifar10(True, augment.test_augs(), batch_size, tiny=True)
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.01})
    result = d2lcv.train_ch13(net, train_iter, None, gluon.loss.SoftmaxCrossEntropyLoss(),
                              trainer, epochs, [mx.cpu()], progress=False, verbose=False,
                              save_path=os.path.join(out, 'one.png'))
    return result['examples_per_sec'], result['train_loss']


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('-n', '--num-workers', type=int, default=2)
    p.add_argument('-s', '--num-servers', type=int, default=1)
    p.add_argument('--batch-size', type=int, default=50, help='global batch')
    p.add_argument('--epochs', type=int, default=3)
    args = p.parse_args()
    d2lcv.hub.synth_twin('cifar10')  # made once, before the workers start
    with tempfile.TemporaryDirectory() as out:
        ref, ref_loss = one_process(args.batch_size, args.epochs, out)
        log = io.StringIO()
        code = launch(args.num_workers, args.num_servers,
                      [sys.executable, WORKER, out, '--epochs', str(args.epochs),
                       '--batch-size', str(args.batch_size // args.num_workers)],
                      timeout=600, out=log)
        if code:
            print(log.getvalue())
            raise SystemExit(f'the dist run failed (exit code {code})')
        with open(os.path.join(out, 'rank0.json')) as f:
            rank0 = json.load(f)
    print(f'one process, 1 device      : {ref:8.1f} examples/s (final loss {ref_loss:.3f})')
    print(f'dist_sync {args.num_workers} workers, {args.num_servers} server(s): '
          f'{rank0["examples_per_sec"]:8.1f} examples/s aggregate '
          f'(rank 0 final loss {rank0["train_loss"]:.3f})')
    print(f'ratio dist / one process   : {rank0["examples_per_sec"] / ref:.2f}')


if __name__ == '__main__':
    main()
