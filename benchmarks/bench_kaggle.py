"""Validation accuracy of the 13.13 / 13.14 pipelines on the Kaggle twins, against baselines
measured in the same run.

CIFAR-10 (13.13): the chapter's ResNet-18 from scratch on the 1000-image ``cifar10_tiny`` twin
(the size of the chapter's demo set), ``valid_ratio`` 0.1, SGD momentum 0.9, wd 5e-4. Dogs
(13.14): frozen *random-initialised* small features (no ImageNet weights offline) + the
chapter's ``output_new`` on the ``dog_tiny`` twin. Each prints the validation accuracy per
epoch and its ratio to two references from the same validation set: chance (1/q) and the
majority-class rule learned from the training split.

    python benchmarks/bench_kaggle.py [--epochs 6] [--batch-size 32] [--lr 0.05]
        [--dog-epochs 10] [--devices cpu] [--data /tmp/bench-kaggle]

ResNet-18 trains at ~20-40 examples/s on a 2-core CPU: the CIFAR part takes a few minutes.
"""
import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('OMP_WAIT_POLICY', 'passive')
os.environ.setdefault('MPLBACKEND', 'Agg')

from d2lcv import hub, kaggle as K  # noqa: E402
from d2lcv.devices import parse_devices  # noqa: E402
from d2lcv.plot import Animator  # noqa: E402


def majority_acc(train_ds, valid_ds):
    """Accuracy on ``valid_ds`` of always predicting ``train_ds``'s most common class."""
    top = collections.Counter(lab for _, lab in train_ds.items).most_common(1)[0][0]
    return sum(lab == top for _, lab in valid_ds.items) / len(valid_ds)


class EpochPrinter(Animator):
    """An Animator that prints the validation figure of each epoch."""

    def add(self, x, y):
        super().add(x, y)
        if y[-1] is not None and float(x) == int(x):
            print(f'  epoch {int(x)}: valid {self.legend[-1].split()[-1]} {y[-1]:.3f}',
                  flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--epochs', type=int, default=6)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--lr', type=float, default=0.05)
    p.add_argument('--dog-epochs', type=int, default=10)
    p.add_argument('--devices', default='cpu')
    p.add_argument('--data', default=os.path.join('/tmp', 'bench-kaggle'))
    p.add_argument('--skip-cifar', action='store_true')
    args = p.parse_args()
    devices = parse_devices(args.devices)
    os.environ['D2LCV_DATA_DIR'] = args.data
    fig_dir = os.path.join(args.data, 'figs')
    os.makedirs(fig_dir, exist_ok=True)

    if not args.skip_cifar:
        d = hub.synth_twin('cifar10_tiny')
        K.reorg_cifar10_data(d, 0.1)
        ds = K.read_image_folders(d)
        train_iter, valid_iter, _, _ = K.kaggle_loaders(
            ds, args.batch_size, K.transform_train_cifar10(), K.transform_test_cifar10())
        print(f'CIFAR-10 twin: {len(ds[0])} train, {len(ds[1])} valid images; ResNet-18, '
              f'batch {args.batch_size}, lr {args.lr}, {args.epochs} epochs on {devices}')
        net = K.get_net_cifar10(devices)
        net.hybridize()
        tik = time.time()
        anim = EpochPrinter(xlabel='epoch', legend=['train loss', 'train acc', 'valid acc'],
                            save_path=os.path.join(fig_dir, 'cifar10.png'))
        r = K.train_cifar10(net, train_iter, valid_iter, args.epochs, args.lr, 5e-4, devices,
                            lr_period=max(1, args.epochs - 2), lr_decay=0.1, animator=anim)
        chance, major = 0.1, majority_acc(ds[0], ds[1])
        print(f'CIFAR-10 valid acc {r["valid_acc"]:.3f}  chance {chance:.3f} '
              f'(ratio {r["valid_acc"] / chance:.2f})  majority class {major:.3f} '
              f'(ratio {r["valid_acc"] / major:.2f})  {time.time() - tik:.0f} s, '
              f'{r["examples_per_sec"]:.1f} examples/s')

    d = hub.synth_twin('dog_tiny')
    K.reorg_dog_data(d, 0.1)
    ds = K.read_image_folders(d)
    train_iter, valid_iter, _, _ = K.kaggle_loaders(ds, 16, K.transform_train_dog(64),
                                                    K.transform_test_dog(64))
    q = len(ds[2].synsets)
    print(f'dog twin: {len(ds[0])} train, {len(ds[1])} valid images, {q} breeds; RANDOM-init '
          f'frozen small features + output_new, 64x64, {args.dog_epochs} epochs')
    net = K.get_net_dog(devices, q, features=K.small_features(), pretrained=False)
    net.hybridize()
    tik = time.time()
    anim = EpochPrinter(xlabel='epoch', legend=['train loss', 'valid loss'],
                        save_path=os.path.join(fig_dir, 'dog.png'))
    r = K.train_dog(net, train_iter, valid_iter, args.dog_epochs, 0.1, 1e-4, devices,
                    lr_period=10, lr_decay=0.1, animator=anim)
    acc = K.evaluate_accuracy_gpus(net, valid_iter)
    chance, major = 1 / q, majority_acc(ds[0], ds[1])
    print(f'dog valid acc {acc:.3f}  chance {chance:.3f} (ratio {acc / chance:.2f})  '
          f'majority class {major:.3f} (ratio {acc / major:.2f})  valid loss '
          f'{r["valid_loss"]:.3f} vs chance log(q) {__import__("math").log(q):.3f}  '
          f'{time.time() - tik:.0f} s')


if __name__ == '__main__':
    main()
