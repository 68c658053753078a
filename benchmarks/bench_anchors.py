"""Benchmark: d2lcv's multibox_target / multibox_detection against MXNet's operators and a
per-image, per-box loop version of the chapter's algorithm, on the TinySSD workload.

Workload: batch 32; 5,444 anchors from feature maps 32, 16, 8, 4, 1 with the chapter's sizes
and ratios; 1-3 objects per image (padded with -1 rows to 3); two classes (background +
banana), so ``cls_probs`` is (32, 2, 5444). Detection uses softmax(randn) probabilities, so
nearly every anchor clears the 0.01 score threshold and enters NMS (the worst case; a trained
model sends far fewer boxes to NMS). The loop versions are timed on a few images and scaled to
the batch (they are linear in the number of images), which is stated in the output.

    OMP_NUM_THREADS=1 python benchmarks/bench_anchors.py [--repeat 7] [--loop-images 2]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as onp  # noqa: E402
from mxnet import np, npx  # noqa: E402

import d2lcv  # noqa: E402,F401
from d2lcv import anchors as A  # noqa: E402
from d2lcv import anchors_ref as R  # noqa: E402

SIZES = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
RATIOS = [[1, 2, 0.5]] * 5
FMAPS = [32, 16, 8, 4, 1]


def workload(batch=32, seed=0):
    rng = onp.random.RandomState(seed)
    anchors = onp.concatenate([A.multibox_prior(onp.zeros((1, 8, s, s)), SIZES[i], RATIOS[i])
                               for i, s in enumerate(FMAPS)], axis=1)
    n_anc = anchors.shape[1]
    labels = -onp.ones((batch, 3, 5), 'float32')
    for b in range(batch):
        for k in range(rng.randint(1, 4)):
            x1, y1 = rng.uniform(0, 0.7, 2)
            w, h = rng.uniform(0.1, 0.3, 2)
            labels[b, k] = [0, x1, y1, x1 + w, y1 + h]
    logits = rng.randn(batch, 2, n_anc).astype('float32')
    cls_probs = onp.exp(logits) / onp.exp(logits).sum(axis=1, keepdims=True)
    offsets = (0.1 * rng.randn(batch, 4 * n_anc)).astype('float32')
    return anchors, labels, cls_probs, offsets


def timeit(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        npx.waitall()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeat', type=int, default=7)
    ap.add_argument('--loop-images', type=int, default=2,
                    help='images the loop versions run on (their time is scaled to the batch)')
    ap.add_argument('--batch', type=int, default=32)
    args = ap.parse_args(argv)
    anchors, labels, cls_probs, offsets = workload(args.batch)
    B, n_anc = labels.shape[0], anchors.shape[1]
    print(f'workload: batch {B}, {n_anc} anchors, {int((labels[..., 0] >= 0).sum())} objects, '
          f'OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "unset")}, '
          f'median of {args.repeat}')
    # The operator works on MXNet arrays; d2lcv is given the same MXNet arrays (its time
    # includes the copies to and from the host).
    m_anc, m_lab, m_cls = np.array(anchors), np.array(labels), np.array(cls_probs)
    m_off, m_zero = np.array(offsets), np.zeros((B, 2, n_anc))

    def sync(outs):
        for o in (outs if isinstance(outs, (tuple, list)) else [outs]):
            o.wait_to_read()

    res = {}
    res['target', 'd2lcv'] = timeit(lambda: sync(A.multibox_target(m_anc, m_lab, m_zero)),
                                    args.repeat)
    res['target', 'npx'] = timeit(lambda: sync(npx.multibox_target(m_anc, m_lab, m_zero)),
                                  args.repeat)
    k = args.loop_images
    res['target', 'loop'] = timeit(lambda: R.multibox_target_ref(anchors, labels[:k]),
                                   1) * B / k
    res['detection', 'd2lcv'] = timeit(
        lambda: sync(A.multibox_detection(m_cls, m_off, m_anc)), args.repeat)
    res['detection', 'npx'] = timeit(
        lambda: sync(npx.multibox_detection(m_cls, m_off, m_anc, nms_threshold=0.5)),
        args.repeat)
    res['detection', 'loop'] = timeit(
        lambda: R.multibox_detection_ref(cls_probs[:k], offsets[:k], anchors), 1) * B / k
    for what in ('target', 'detection'):
        d, n, lp = res[what, 'd2lcv'], res[what, 'npx'], res[what, 'loop']
        print(f'multibox_{what:9s}  d2lcv {1e3 * d:9.1f} ms   npx {1e3 * n:9.1f} ms   '
              f'loop {lp:8.2f} s (timed on {k} of {B} images, scaled)')
        print(f'    npx / d2lcv = {n / d:6.2f}x    loop / d2lcv = {lp / d:8.0f}x')
    return res


if __name__ == '__main__':
    main()
