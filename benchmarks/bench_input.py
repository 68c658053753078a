"""Benchmark: images/s of the chapter's input path (``ImageFolderDataset`` + Gluon transforms
+ ``DataLoader``) against the fast path (:mod:`d2lcv.imagerec`: RecordIO + MXNet's threaded
``ImageRecordIter``), on the synthetic twins, with the chapter's training augmentations.

Workloads:

* 224x224: the hot dog twin drawn at the size of real photos (sides 300-500 px, JPEG
  quality 90; ``--hotdog-sides 40,80`` is the tiny runs' twin, on which decoding costs
  nothing and the benchmark would measure the wrong thing) with 13.2's ``train_augs``
  (random resized crop, flip, normalisation) and, as ``--dog-augs``, 13.14's (plus colour
  jitter and lighting noise). The fast path packs it as the presets say: shorter side
  shrunk to 256 px (the ImageNet convention), JPEG quality 90 (packing is timed and
  printed, once, outside the epochs);
* 32x32: the Kaggle CIFAR-10 PNG twin with 13.13's ``transform_train_cifar10`` (resize to
  40, random crop of 64-100 %, flip, normalisation); packed as the files are.

Contenders: the chapter's path with 0 and 2 ``DataLoader`` workers; the fast path with 1
and 2 decoding threads (normalised floats from the host), and with 2 threads handing over
uint8 pixels normalised by :func:`d2lcv.imagerec.normalize` inside the timed loop (on a GPU
the step does that on the device; here the device is this CPU). Every contender gives the
same number of images per epoch (checked: the last partial batch is dropped). All run in
the same interleaved rounds (one epoch each per round, rotating order, after one warm-up
epoch); medians of images/s by wall clock, and by this process's CPU time (which for the
chapter's path with workers leaves out the workers). The summary line per workload is the
best fast contender against the best chapter's contender: a user picks the faster setting
of each. ``OMP_NUM_THREADS`` is pinned by the script (default 2, the cores of the machine
this was written on). On a shared machine absolute figures are loaded: compare the ratios.
A figure shows the augmentations of both paths side by side.

    python benchmarks/bench_input.py [--rounds 3] [--batch 32] [--hotdog-format jpg|png]
        [--hotdog-sides 300,500] [--dog-augs] [--skip-32] [--data DIR] [--fig PATH]
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


def datasets(root, num_hotdog, sides, fmt):
    """The two twins' training folders as ``ImageFolderDataset``s."""
    hot = d2lcv.hub.synth_twin('hotdog', root=os.path.join(root, f'hotdog-{sides[0]}-'
                                                           f'{sides[1]}-{fmt}'),
                               num_train=num_hotdog, num_test=1, min_size=sides[0],
                               max_size=sides[1], fmt=fmt)
    hot = os.path.join(hot, 'hotdog') if os.path.isdir(os.path.join(hot, 'hotdog')) else hot
    train_hot, _ = finetune.hotdog_datasets(hot)
    cifar = d2lcv.hub.synth_twin('cifar10_tiny', root=os.path.join(root, 'cifar'))
    for sub in ('', 'kaggle_cifar10_tiny'):
        if os.path.exists(os.path.join(cifar, sub, 'trainLabels.csv')):
            cifar = os.path.join(cifar, sub)
            break
    if not os.path.isdir(os.path.join(cifar, 'train_valid_test')):
        kaggle.reorg_cifar10_data(cifar, 0.1)
    train_cifar = kaggle.read_image_folders(cifar, ('train_valid',))[0]
    return train_hot, train_cifar


class Chapter:
    """The chapter's path: ``ImageFolderDataset.transform_first(transform)`` in a
    ``DataLoader`` with ``workers`` worker processes."""

    def __init__(self, ds, transform, batch, workers):
        self.name, self.kind = f'chapter, {workers} workers', 'chapter'
        self.loader = gluon.data.DataLoader(ds.transform_first(transform), batch,
                                            shuffle=True, last_batch='discard',
                                            num_workers=workers)

    def __iter__(self):
        return iter(self.loader)


class Fast:
    """The fast path: :class:`d2lcv.imagerec.RecordLoader` with ``threads`` decoding
    threads; ``dtype='uint8'`` batches are normalised by :func:`d2lcv.imagerec.normalize`
    inside the timed loop (what a training step does on its device; here the CPU)."""

    def __init__(self, ds, transform, batch, threads, cache, dtype='float32'):
        where = 'normalised on the device' if dtype == 'uint8' else 'normalised on the host'
        self.name = f'fast, {threads} thread{"s" if threads > 1 else ""}, {dtype} ({where})'
        self.kind = 'fast'
        self.loader = imagerec.RecordLoader(ds, transform.fast_spec, batch, threads=threads,
                                            cache_dir=cache, dtype=dtype)
        self.uint8 = dtype == 'uint8'

    def __iter__(self):
        for X, y in self.loader:
            yield (self.loader.normalize(X) if self.uint8 else X), y


def cpu_seconds(loader):
    """CPU seconds used so far by this process and by ``loader``'s worker processes (read
    from /proc: they are alive, so ``RUSAGE_CHILDREN`` would not count them)."""
    total = time.process_time()
    pool = getattr(getattr(loader, 'loader', None), '_worker_pool', None)
    for proc in getattr(pool, '_pool', None) or []:
        try:
            with open(f'/proc/{proc.pid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
        except (OSError, IndexError, ValueError):
            pass
    return total


def epoch(loader):
    n, shape = 0, None
    for X, _ in loader:
        X.wait_to_read()          # the batch is ready, as a training step would need it
        n += X.shape[0]
        shape = (tuple(X.shape[1:]), str(X.dtype))
    return n, shape


def measure(loaders, rounds):
    """Median images/s (by wall clock, and per CPU-second of this process and the loader's
    worker processes) of one epoch per round, in rotating order, after one warm-up epoch
    each (worker start, first decode)."""
    counts = {}
    for i, loader in enumerate(loaders):
        counts[i] = epoch(loader)
    wall, cpu = {i: [] for i in counts}, {i: [] for i in counts}
    order = list(counts)
    for r in range(rounds):
        for i in order[r % len(order):] + order[:r % len(order)]:
            t, c = time.perf_counter(), cpu_seconds(loaders[i])
            n, _ = epoch(loaders[i])
            wall[i].append(n / (time.perf_counter() - t))
            cpu[i].append(n / max(cpu_seconds(loaders[i]) - c, 1e-9))
    return [(statistics.median(wall[i]), statistics.median(cpu[i]), counts[i])
            for i in order]


def run_workload(title, ds, transform, batch, rounds, cache, threads=(1, 2)):
    """All contenders of one workload in the same interleaved rounds; prints each one's
    images/s and the summary line: the best fast path against the best chapter's path."""
    t = time.perf_counter()
    imagerec.pack_images(ds, cache, resize=transform.fast_spec['pack_resize'],
                         quality=transform.fast_spec['pack_quality'])
    pack_s = time.perf_counter() - t
    spec = transform.fast_spec
    packed = ('files as they are' if spec['pack_resize'] is None else
              f"shorter side > {spec['pack_resize']} px shrunk to it, "
              f"JPEG quality {spec['pack_quality']}")
    print(f'{title}: {len(ds)} images, batch {batch}; pack ({packed}) ready in '
          f'{pack_s:.1f} s (made once, reused while the folder is unchanged)')
    loaders = [Chapter(ds, transform, batch, w) for w in (0, 2)]
    loaders += [Fast(ds, transform, batch, t, cache) for t in threads]
    loaders += [Fast(ds, transform, batch, max(threads), cache, 'uint8')]
    res = measure(loaders, rounds)
    counts = {(n, shape[0]) for _, _, (n, shape) in res}
    assert len(counts) == 1, f'images per epoch or shapes differ: {counts}'
    for loader, (wall, cpu, (n, shape)) in zip(loaders, res):
        print(f'  {loader.name:55s} {wall:7.0f} img/s   {cpu:6.0f} img per CPU-second '
              '(all its processes)')
    best = {k: max(((w, l.name) for l, (w, _, _) in zip(loaders, res) if l.kind == k))
            for k in ('chapter', 'fast')}
    thrift = {k: max(c for l, (_, c, _) in zip(loaders, res) if l.kind == k)
              for k in ('chapter', 'fast')}
    (fw, fname), (cw, cname) = best['fast'], best['chapter']
    n = counts.pop()[0]
    print(f'SUMMARY {title}: best fast {fw:.0f} img/s ({fname}) / best chapter {cw:.0f} '
          f'img/s ({cname}) = {fw / cw:.2f}x best against best; {n} images per epoch each; '
          f'CPU per image: {thrift["fast"] / thrift["chapter"]:.2f}x less (best of each)')
    return dict(fast=fw, chapter=cw, ratio=fw / cw, images=n,
                cpu_ratio=thrift['fast'] / thrift['chapter'],
                all={l.name: w for l, (w, _, _) in zip(loaders, res)})


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
        where = {int(i): j for j, i in enumerate(fast.order)}
        fig, axes = plt.subplots(n_images, 1 + 2 * n_draws,
                                 figsize=(1.6 * (1 + 2 * n_draws), 1.7 * n_images))
        for r, i in enumerate(order):
            img, _ = small[i]
            axes[r, 0].imshow(img.asnumpy())
            for d in range(n_draws):
                axes[r, 1 + d].imshow(show(transform(img).asnumpy()))
                # the loader yields the pack's order: row j is image fast.order[j]
                axes[r, 1 + n_draws + d].imshow(show(fast_draws[d][where[i]]))
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, 0].set_title('original')
        axes[0, 1].set_title("chapter's path")
        spec = transform.fast_spec
        axes[0, 1 + n_draws].set_title(
            'fast path (RecordIO' + ('' if spec['pack_resize'] is None else
                                     f", packed at {spec['pack_resize']} px, JPEG "
                                     f"q{spec['pack_quality']}") + ')')
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
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--hotdog-images', type=int, default=1000,
                    help='training images of the hot dog twin (half per class)')
    ap.add_argument('--hotdog-sides', default='300,500',
                    help='range of the hot dog twin images\' sides in pixels (the real '
                         'photos: a few hundred; the tiny runs\' twin: 40,80)')
    ap.add_argument('--hotdog-format', default='jpg', choices=('jpg', 'png'))
    ap.add_argument('--threads', default='2', help='OMP_NUM_THREADS (set by the script)')
    ap.add_argument('--dog-augs', action='store_true',
                    help="also 13.14's augmentations (colour jitter, lighting) at 224")
    ap.add_argument('--skip-32', action='store_true', help='only the 224x224 workload')
    ap.add_argument('--fig', default=os.path.join('runs', 'bench_input_augmentations.png'))
    ap.add_argument('--data', default=None,
                    help='folder for the twins and packs (default: temporary; pass one to '
                         'keep the twins between runs)')
    args = ap.parse_args(argv)
    print(f'OMP_NUM_THREADS={os.environ["OMP_NUM_THREADS"]}, median of {args.rounds} '
          'interleaved epochs per contender; on a shared machine the absolute figures are '
          'loaded: compare the ratios')
    root = args.data or tempfile.mkdtemp(prefix='bench_input_')
    cache = os.path.join(root, 'recordio')
    sides = tuple(int(v) for v in args.hotdog_sides.split(','))
    t = time.perf_counter()
    hot, cifar = datasets(root, args.hotdog_images // 2, sides, args.hotdog_format)
    print(f'twins ready in {time.perf_counter() - t:.0f} s (hot dog: {len(hot)} '
          f'{args.hotdog_format.upper()} images, sides {sides[0]}-{sides[1]} px)')
    threads = (1, int(os.environ['OMP_NUM_THREADS']))
    hot_title = (f'224x224, hot dog twin ({args.hotdog_format.upper()}, sides '
                 f'{sides[0]}-{sides[1]} px)')
    res = {'224': run_workload(f"{hot_title}, 13.2's train_augs", hot, finetune.train_augs(),
                               args.batch, args.rounds, cache, threads)}
    if args.dog_augs:
        res['224 dog'] = run_workload(f"{hot_title}, 13.14's transform_train_dog", hot,
                                      kaggle.transform_train_dog(), args.batch, args.rounds,
                                      cache, threads)
    if not args.skip_32:
        res['32'] = run_workload("32x32, Kaggle CIFAR-10 PNG twin, 13.13's "
                                 "transform_train_cifar10", cifar,
                                 kaggle.transform_train_cifar10(), args.batch, args.rounds,
                                 cache, threads)
    if args.fig:
        figure(hot, kaggle.transform_train_dog(), args.fig, cache)
    print('summary: ' + '; '.join(f'{k}: {r["ratio"]:.2f}x best against best '
                                  f'({r["cpu_ratio"]:.2f}x less CPU per image)'
                                  for k, r in res.items()))
    return res


if __name__ == '__main__':
    main()
