"""Benchmark: d2lcv's multibox_target / multibox_detection against MXNet's operators (what
the chapter calls), on the TinySSD workload, with the outputs checked equal in the same run.

Workload: batch 32; 5,444 anchors from feature maps 32, 16, 8, 4, 1 with the chapter's sizes
and ratios; 1-3 objects per image (padded with -1 rows to 3); two classes (background +
banana), so ``cls_probs`` is (32, 2, 5444). Two detection workloads:

* worst case: softmax(randn) probabilities, so ~all 5,441 boxes per image clear the 0.01
  score threshold and enter NMS;
* realistic: the background logit raised by 8 (as a trained detector: ~1% of the anchors
  enter NMS).

Contenders, all given the same inputs:

* ``multibox_target``: d2lcv on MXNet arrays (MXNet array operations on their device, the
  training path), d2lcv on NumPy arrays (the NumPy implementation), ``npx.multibox_target``;
* ``multibox_detection``: d2lcv (NumPy + the Numba-compiled loops; given MXNet arrays, so its
  time includes the copies to and from the host), ``npx.multibox_detection``.

Every contender runs once per round, in a rotating order, for ``--repeat`` rounds after a
warm-up (which also compiles the Numba kernel): medians of wall-clock and of this process's
CPU time (the steadier figure on a shared machine), and ratios within the run. The script
pins ``OMP_NUM_THREADS`` itself (default 1: one thread for everyone) before MXNet starts.

    python benchmarks/bench_anchors.py [--repeat 9] [--threads 1]
"""
import argparse
import os
import statistics
import sys
import time

from _threads import pin_threads  # noqa: E402 (benchmarks/ is the script's folder)

pin_threads(sys.argv[1:], default=1)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as onp  # noqa: E402
from mxnet import np, npx  # noqa: E402

import d2lcv  # noqa: E402,F401
from d2lcv import anchors as A  # noqa: E402

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
    return anchors, labels, cls_probs.astype('float32'), offsets


def _sync(outs):
    for o in (outs if isinstance(outs, (tuple, list)) else [outs]):
        if hasattr(o, 'wait_to_read'):
            o.wait_to_read()


def interleaved(contenders, repeat):
    """Median wall and CPU seconds per contender; each round runs all, in a rotating order."""
    names = list(contenders)
    for name in names:                       # warm-up (and Numba's compilation)
        _sync(contenders[name]())
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            _sync(contenders[name]())
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    return {n: (statistics.median(wall[n]), statistics.median(cpu[n])) for n in names}


def _host(x):
    return x.asnumpy() if hasattr(x, 'asnumpy') else onp.asarray(x)


def check_target(outs, ref):
    """Classes and masks equal; offsets within 1e-5 (the last bits of log)."""
    for out in outs:
        for name, a, b in zip(('offsets', 'mask', 'classes'), out, ref):
            a, b = _host(a), _host(b)
            if name == 'offsets':
                onp.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
            else:
                onp.testing.assert_array_equal(a, b)


def report(title, res, ours, ref, note=''):
    print(f'{title}{note}')
    for name, (wall, cpu) in res.items():
        print(f'  {name:34s} wall {1e3 * wall:8.1f} ms   cpu {1e3 * cpu:8.1f} ms')
    for name in ours:
        w, c = res[ref][0] / res[name][0], res[ref][1] / res[name][1]
        print(f'  -> {ref} / {name}: wall {w:.2f}x, cpu {c:.2f}x '
              f'({"faster" if c >= 1 else "SLOWER"} by cpu time)')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeat', type=int, default=9)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--threads', default='1', help='OMP_NUM_THREADS (set by the script)')
    args = ap.parse_args(argv)
    print(f'OMP_NUM_THREADS={os.environ["OMP_NUM_THREADS"]}, median of {args.repeat} '
          'interleaved rounds; machine shared: prefer the ratios')
    results = {}

    anchors, labels, _, _ = workload(args.batch)
    B, n_anc = labels.shape[0], anchors.shape[1]
    m_anc, m_lab, m_zero = np.array(anchors), np.array(labels), np.zeros((B, 2, n_anc))
    target = {
        'd2lcv, MXNet arrays (on device)': lambda: A.multibox_target(m_anc, m_lab, m_zero),
        'd2lcv, NumPy arrays': lambda: A.multibox_target(anchors, labels),
        'npx.multibox_target': lambda: npx.multibox_target(m_anc, m_lab, m_zero),
    }
    check_target([target['d2lcv, MXNet arrays (on device)'](),
                  target['d2lcv, NumPy arrays']()], target['npx.multibox_target']())
    res = interleaved(target, args.repeat)
    report(f'multibox_target: batch {B}, {n_anc} anchors, '
           f'{int((labels[..., 0] >= 0).sum())} objects (outputs checked equal)', res,
           ['d2lcv, MXNet arrays (on device)', 'd2lcv, NumPy arrays'], 'npx.multibox_target')
    results['target'] = res

    for label, bias in (('worst case', 0.0), ('realistic', 8.0)):
        anchors, labels, cls_probs, offsets = workload(args.batch, background_bias=bias)
        m_anc, m_cls, m_off = np.array(anchors), np.array(cls_probs), np.array(offsets)
        det = {
            'd2lcv (Numba)': lambda: A.multibox_detection(m_cls, m_off, m_anc),
            'npx.multibox_detection': lambda: npx.multibox_detection(m_cls, m_off, m_anc,
                                                                     nms_threshold=0.5),
        }
        ours, theirs = _host(det['d2lcv (Numba)']()), _host(det['npx.multibox_detection']())
        onp.testing.assert_array_equal(ours, theirs)          # row for row, bit for bit
        to_nms = int((cls_probs[:, 1] >= 0.01).sum()) / B
        kept = int((ours[..., 0] >= 0).sum()) / B
        res = interleaved(det, args.repeat)
        report(f'multibox_detection, {label}: {to_nms:.0f} boxes per image enter NMS, '
               f'{kept:.0f} kept (outputs equal bit for bit)', res, ['d2lcv (Numba)'],
               'npx.multibox_detection')
        results[label] = res
    return results


if __name__ == '__main__':
    main()
