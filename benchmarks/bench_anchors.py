"""Benchmark: d2lcv's multibox_target / multibox_detection against MXNet's operators and a
per-image, per-box loop version of the chapter's algorithm, on the TinySSD workload.

Workload: batch 32; 5,444 anchors from feature maps 32, 16, 8, 4, 1 with the chapter's sizes
and ratios; 1-3 objects per image (padded with -1 rows to 3); two classes (background +
banana), so ``cls_probs`` is (32, 2, 5444). Detection uses softmax(randn) probabilities, so
nearly every anchor clears the 0.01 score threshold and enters NMS (the worst case; a trained
model sends far fewer boxes to NMS). The loop versions are timed on a few images and scaled to
the batch (they are linear in the number of images), which is stated in the output. Times are
medians of wall-clock and of this process's CPU time: on a shared machine the CPU time is the
steadier figure (all three run on one thread: set OMP_NUM_THREADS=1).

    OMP_NUM_THREADS=1 python benchmarks/bench_anchors.py [--repeat 7] [--loop-images 2]
"""
import argparse
import math
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


def workload(batch=32, seed=0, background_bias=0.0):
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
    logits[:, 0] += background_bias           # > 0: mostly background, as a trained model
    cls_probs = onp.exp(logits) / onp.exp(logits).sum(axis=1, keepdims=True)
    offsets = (0.1 * rng.randn(batch, 4 * n_anc)).astype('float32')
    return anchors, labels, cls_probs, offsets


def timeit(fn, repeat):
    """Median wall and CPU (this process) seconds of ``repeat`` calls after one warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        npx.waitall()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


# Plain-Python loop versions of the chapter's algorithms (lists and floats, one anchor, box and
# pair at a time): what a direct transcription of the text runs like. d2lcv.anchors_ref has
# the same loops on float32 NumPy scalars (the tests' oracle; slower still).
def _iou_py(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return 0.0 if union <= 0 else inter / union


def target_loop_py(anchors, labels, threshold=0.5):
    anchors, labels = anchors[0].tolist(), labels.tolist()
    out = []
    for lab in labels:
        gts = []
        for row in lab:
            if row[0] == -1:
                break
            gts.append(row)
        A = len(anchors)
        offsets, mask, cls = [0.0] * (4 * A), [0.0] * (4 * A), [0.0] * A
        if not gts:
            out.append((offsets, mask, [-1.0] * A))
            continue
        table = [[_iou_py(a, g[1:]) for g in gts] for a in anchors]
        match, done = [-1] * A, [False] * len(gts)
        while not all(done):
            best, bi, bj = 1e-6, -1, -1
            for i in range(A):
                if match[i] < 0:
                    for j in range(len(gts)):
                        if not done[j] and table[i][j] > best:
                            best, bi, bj = table[i][j], i, j
            if bi < 0:
                break
            match[bi], done[bj] = bj, True
        for i in range(A):
            if match[i] < 0:
                j = max(range(len(gts)), key=lambda j: table[i][j])
                if table[i][j] > threshold:
                    match[i] = j
        for i, a in enumerate(anchors):
            if match[i] >= 0:
                g = gts[match[i]]
                aw, ah = a[2] - a[0], a[3] - a[1]
                offsets[4 * i:4 * i + 4] = [
                    ((g[1] + g[3]) / 2 - (a[0] + a[2]) / 2) / aw / 0.1,
                    ((g[2] + g[4]) / 2 - (a[1] + a[3]) / 2) / ah / 0.1,
                    math.log((g[3] - g[1]) / aw) / 0.2, math.log((g[4] - g[2]) / ah) / 0.2]
                mask[4 * i:4 * i + 4] = [1.0] * 4
                cls[i] = g[0] + 1
        out.append((offsets, mask, cls))
    return out


def detection_loop_py(cls_probs, offset_preds, anchors, nms_threshold=0.5, threshold=0.01):
    anchors = anchors[0].tolist()
    out = []
    for probs, offs in zip(cls_probs.tolist(), offset_preds.tolist()):
        rows = []
        for i, a in enumerate(anchors):
            c = max(range(1, len(probs)), key=lambda j: probs[j][i])
            score = probs[c][i]
            if score < threshold:
                continue
            p = offs[4 * i:4 * i + 4]
            aw, ah = a[2] - a[0], a[3] - a[1]
            x, y = p[0] * 0.1 * aw + (a[0] + a[2]) / 2, p[1] * 0.1 * ah + (a[1] + a[3]) / 2
            w, h = math.exp(p[2] * 0.2) * aw / 2, math.exp(p[3] * 0.2) * ah / 2
            box = [min(max(v, 0.0), 1.0) for v in (x - w, y - h, x + w, y + h)]
            rows.append([c - 1, score] + box)
        rows.sort(key=lambda r: -r[1])
        for p, r in enumerate(rows):
            if r[0] < 0:
                continue
            for q in rows[p + 1:]:
                if q[0] == r[0] and _iou_py(r[2:], q[2:]) >= nms_threshold:
                    q[0] = -1
        out.append(rows)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeat', type=int, default=7)
    ap.add_argument('--loop-images', type=int, default=2,
                    help='images the loop versions run on (their time is scaled to the batch)')
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--background-bias', type=float, default=0.0,
                    help='added to the background logit: 0 sends ~all anchors to NMS (the '
                         'default, worst case); 8 sends ~1%%, more like a trained detector')
    args = ap.parse_args(argv)
    anchors, labels, cls_probs, offsets = workload(args.batch,
                                                   background_bias=args.background_bias)
    to_nms = int((cls_probs[:, 1] >= 0.01).sum())
    B, n_anc = labels.shape[0], anchors.shape[1]
    print(f'workload: batch {B}, {n_anc} anchors, {int((labels[..., 0] >= 0).sum())} objects, '
          f'OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "unset")}, median of '
          f'{args.repeat}; loops timed once on {args.loop_images} image(s), scaled to {B}; '
          f'{to_nms / B:.0f} boxes per image score >= 0.01 and enter NMS')
    # The operator works on MXNet arrays; d2lcv is given the same MXNet arrays (its time
    # includes the copies to and from the host).
    m_anc, m_lab = np.array(anchors), np.array(labels)
    m_cls, m_off, m_zero = np.array(cls_probs), np.array(offsets), np.zeros((B, 2, n_anc))

    def sync(outs):
        for o in (outs if isinstance(outs, (tuple, list)) else [outs]):
            o.wait_to_read()

    k = args.loop_images
    scale = B / k
    res = {
        ('target', 'd2lcv'): timeit(lambda: sync(A.multibox_target(m_anc, m_lab, m_zero)),
                                    args.repeat),
        ('target', 'npx'): timeit(lambda: sync(npx.multibox_target(m_anc, m_lab, m_zero)),
                                  args.repeat),
        ('target', 'loop (Python floats)'): tuple(
            t * scale for t in timeit(lambda: target_loop_py(anchors, labels[:k]), 1)),
        ('target', 'loop (float32 oracle)'): tuple(
            t * scale for t in timeit(lambda: R.multibox_target_ref(anchors, labels[:k]), 1)),
        ('detection', 'd2lcv'): timeit(
            lambda: sync(A.multibox_detection(m_cls, m_off, m_anc)), args.repeat),
        ('detection', 'npx'): timeit(
            lambda: sync(npx.multibox_detection(m_cls, m_off, m_anc, nms_threshold=0.5)),
            args.repeat),
        ('detection', 'loop (Python floats)'): tuple(t * scale for t in timeit(
            lambda: detection_loop_py(cls_probs[:k], offsets[:k], anchors), 1)),
        ('detection', 'loop (float32 oracle)'): tuple(t * scale for t in timeit(
            lambda: R.multibox_detection_ref(cls_probs[:k], offsets[:k], anchors), 1)),
    }
    for what in ('target', 'detection'):
        print(f'multibox_{what}:')
        d_wall, d_cpu = res[what, 'd2lcv']
        for impl in ('d2lcv', 'npx', 'loop (Python floats)', 'loop (float32 oracle)'):
            wall, cpu = res[what, impl]
            ratio = '' if impl == 'd2lcv' else (f'   {impl} / d2lcv: wall {wall / d_wall:8.2f}x'
                                                f'  cpu {cpu / d_cpu:8.2f}x')
            print(f'  {impl:22s} wall {1e3 * wall:10.1f} ms   cpu {1e3 * cpu:10.1f} ms{ratio}')
    return res


if __name__ == '__main__':
    main()
