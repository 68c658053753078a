"""Benchmark: images/s of the chapter's input path (``ImageFolderDataset`` + Gluon transforms
+ ``DataLoader``) against the fast path (:mod:`d2lcv.imagerec`: RecordIO + MXNet's threaded
``ImageRecordIter``), on the synthetic twins, with the chapter's training augmentations.

Workloads:

* 224x224: the hot dog twin (PNGs of 40-80 px) with 13.2's ``train_augs`` (random resized
  crop, flip, normalisation) and, as ``--dog-augs``, 13.14's (plus colour jitter and lighting
  noise);
* 32x32: the Kaggle CIFAR-10 PNG twin with 13.13's ``transform_train_cifar10`` (resize to
  40, random crop of 64-100 %, flip, normalisation).

Each path runs with 0 and 2 workers (``DataLoader(num_workers=...)``: worker processes; the
fast path's decoding threads, at least 1). Both drop the last partial batch, so they give
the same number of images per epoch (checked). The contenders run in interleaved rounds
(one epoch each per round, rotating order); medians of images/s by wall clock (and by this
process's CPU time, for the fast path and the chapter's path with 0 workers, whose work
all happens in this process). ``OMP_NUM_THREADS`` is pinned by the script (default 2, the
cores of the machine this was written on: the iterator uses at most that many threads).
A figure shows the augmentations of both paths side by side.

    python benchmarks/bench_input.py [--rounds 5] [--batch 32] [--fig PATH]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

from _threads import pin_threads  # noqa: E402 (benchmarks/ is the script's folder)

pin_threads(sys.argv[1:], default=2)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as onp  # noqa: E402
from mxnet import gluon  # noqa: E402

import d2lcv  # noqa: E402
from d2lcv import finetune, imagerec, kaggle  # noqa: E402


def datasets(root, num_hotdog):
    """The two twins' training folders as ``ImageFolderDataset``s."""
    hot = d2lcv.hub.synth_twin('hotdog', root=os.path.join(root, 'hotdog'), num_train=num_hotdog)
    hot = os.path.join(hot, 'hotdog') if os.path.isdir(os.path.join(hot, 'hotdog')) else hot
    train_hot, _ = finetune.hotdog_datasets(hot)
    cifar = d2lcv.hub.synth_twin('cifar10_tiny', root=os.path.join(root, 'cifar'))
    for sub in ('', 'kaggle_cifar10_tiny'):
        if os.path.exists(os.path.join(cifar, sub, 'trainLabels.csv')):
            cifar = os.path.join(cifar, sub)
            break
    kaggle.reorg_cifar10_data(cifar, 0.1)
    train_cifar = kaggle.read_image_folders(cifar, ('train_valid',))[0]
    return train_hot, train_cifar


def chapter_loader(ds, transform, batch, workers):
    return gluon.data.DataLoader(ds.transform_first(transform), batch, shuffle=True,
                                 last_batch='discard', num_workers=workers)


def fast_loader(ds, transform, batch, workers, cache):
    return imagerec.RecordLoader(ds, transform.fast_spec, batch, threads=max(1, workers),
                                 cache_dir=cache)


def epoch(loader):
    n, shape = 0, None
    for X, _ in loader:
        n += X.shape[0]
        shape = tuple(X.shape[1:])
    return n, shape


def measure(loaders, rounds):
    """Median images/s (wall, CPU) of one epoch per round, in rotating order."""
    names = list(loaders)
    counts = {}
    for name in names:                              # warm-up: packing, worker start
        counts[name] = epoch(loaders[name])
    wall, cpu = {n: [] for n in names}, {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            n, _ = epoch(loaders[name])
            wall[name].append(n / (time.perf_counter() - t))
            cpu[name].append(n / max(time.process_time() - c, 1e-9))
    return {n: (statistics.median(wall[n]), statistics.median(cpu[n]), counts[n])
            for n in names}


def run_workload(title, ds, transform, batch, rounds, cache):
    print(f'{title}: {len(ds)} images, batch {batch}')
    out = {}
    for workers in (0, 2):
        loaders = {'chapter': chapter_loader(ds, transform, batch, workers),
                   'fast': fast_loader(ds, transform, batch, workers, cache)}
        res = measure(loaders, rounds)
        (cw, cc, (cn, cs)), (fw, fc, (fn, fs)) = res['chapter'], res['fast']
        assert cn == fn and cs == fs, f'images per epoch differ: {cn} {cs} vs {fn} {fs}'
        threads = f'{max(1, workers)} thread{"s" if workers > 1 else ""}'
        print(f'  workers {workers}: chapter {cw:7.1f} img/s   fast ({threads}) {fw:7.1f} '
              f'img/s   ratio {fw / cw:5.2f}x   ({cn} images/epoch of shape {cs}; '
              f'per CPU-second in this process: chapter {cc:.0f}, fast {fc:.0f})')
        out[workers] = dict(chapter=cw, fast=fw, ratio=fw / cw, images=cn)
    return out


def figure(ds, transform, path, cache, n_images=3, n_draws=4):
    """Originals, then ``n_draws`` augmentations by each path, one row per image."""
    import shutil
    from d2lcv.plot import plt
    mean = onp.array(transform.fast_spec['mean'])[:, None, None]
    std = onp.array(transform.fast_spec['std'])[:, None, None]

    def show(x):
        return onp.clip(x.transpose(1, 2, 0) * std.transpose(1, 2, 0)
                        + mean.transpose(1, 2, 0), 0, 1)
    # a small folder of the chosen images, so the fast path reads exactly them, in order
    tmp = tempfile.mkdtemp(prefix='bench_input_fig_')
    try:
        picks = [ds.items[i] for i in onp.linspace(0, len(ds) - 1, n_images).astype(int)]
        for k, (p, label) in enumerate(picks):
            d = os.path.join(tmp, f'c{label}')
            os.makedirs(d, exist_ok=True)
            shutil.copy(p, os.path.join(d, f'{k:02d}{os.path.splitext(p)[1]}'))
        small = gluon.data.vision.ImageFolderDataset(tmp)
        order = [small.items.index(x) for x in sorted(small.items)]
        fast = imagerec.RecordLoader(small, transform.fast_spec, len(small), shuffle=False,
                                     threads=1, cache_dir=os.path.join(tmp, 'rec'))
        fast_draws = [next(iter(fast))[0].asnumpy() for _ in range(n_draws)]
        fig, axes = plt.subplots(n_images, 1 + 2 * n_draws,
                                 figsize=(1.6 * (1 + 2 * n_draws), 1.7 * n_images))
        for r, i in enumerate(order):
            img, _ = small[i]
            axes[r, 0].imshow(img.asnumpy())
            for d in range(n_draws):
                axes[r, 1 + d].imshow(show(transform(img).asnumpy()))
                axes[r, 1 + n_draws + d].imshow(show(fast_draws[d][i]))
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, 0].set_title('original')
        axes[0, 1].set_title("chapter's path")
        axes[0, 1 + n_draws].set_title('fast path (RecordIO)')
        fig.tight_layout()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp_png = path + '.tmp.png'
        fig.savefig(tmp_png, dpi=80)
        os.replace(tmp_png, path)
        plt.close(fig)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f'figure: {path}')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--hotdog-images', type=int, default=1000,
                    help='training images of the hot dog twin (half per class)')
    ap.add_argument('--threads', default='2', help='OMP_NUM_THREADS (set by the script)')
    ap.add_argument('--dog-augs', action='store_true',
                    help="also 13.14's augmentations (colour jitter, lighting) at 224")
    ap.add_argument('--fig', default=os.path.join('runs', 'bench_input_augmentations.png'))
    ap.add_argument('--data', default=None, help='folder for the twins (default: temporary)')
    args = ap.parse_args(argv)
    print(f'OMP_NUM_THREADS={os.environ["OMP_NUM_THREADS"]}, median of {args.rounds} '
          'interleaved epochs per contender; machine shared: prefer the ratios')
    root = args.data or tempfile.mkdtemp(prefix='bench_input_')
    cache = os.path.join(root, 'recordio')
    hot, cifar = datasets(root, args.hotdog_images // 2)
    res = {'224': run_workload("224x224, hot dog twin, 13.2's train_augs", hot,
                               finetune.train_augs(), args.batch, args.rounds, cache)}
    if args.dog_augs:
        res['224 dog'] = run_workload("224x224, hot dog twin, 13.14's transform_train_dog",
                                      hot, kaggle.transform_train_dog(), args.batch,
                                      args.rounds, cache)
    res['32'] = run_workload("32x32, Kaggle CIFAR-10 PNG twin, 13.13's transform_train_cifar10",
                             cifar, kaggle.transform_train_cifar10(), args.batch, args.rounds,
                             cache)
    if args.fig:
        figure(hot, kaggle.transform_train_dog(), args.fig, cache)
    return res


if __name__ == '__main__':
    main()
