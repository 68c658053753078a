"""Benchmark TinyFasterRCNN (section 13.8) against TinySSD (13.7) on the same banana twin, CPU.

Part 1, detection: both models from random init (Xavier), trained on the same twin
(RecordIO layout, ``load_data_bananas``: random crops, shuffling) for the same number of
epochs with the same optimizer (Adam, lr 1e-3); TinySSD with the recipe of
``bench_ssd.py`` (smooth L1, 3:1 hard negatives, normalised by positives). Printed side by
side: validation mAP@0.5 and mAP@0.5:0.95 (COCO 101-point), training examples/sec, and
inference ms per image (forward + decoding + NMS on a batch of the validation set, after
a warm-up; the two models timed alternately in the same run), for each of ``--seeds``
seeds (both models start from the same seed; Python's, NumPy's and MXNet's generators are
all seeded, since ``ImageDetIter`` shuffles and crops with Python's ``random``; runs are
still not bit-reproducible, a seed's mAP@0.5 moved by up to 0.08 between two runs), then
the means. The gate of issue 17: Faster R-CNN's mean mAP@0.5 is at least TinySSD's minus 0.05
(one run is not enough: TinySSD's mAP@0.5 moved by 0.1 between unseeded runs on this
budget). The trivial baseline: one box per image, the mean training box placed at the
image centre, scored 1.

Part 2, masks: ``TinyFasterRCNN(mask=True)`` on the bananas-with-masks twin
(``d2lcv.synth.banana_masks``), the same epochs: mAP@0.5 and the mask IoU per true
instance (its best detection's mask, 0 if missed) next to the trivial baseline that uses
the same detections' filled boxes as masks.

    python benchmarks/bench_rcnn.py                       # both parts, defaults below
    python benchmarks/bench_rcnn.py --part det --epochs 10 --num-train 512

Timings on a shared machine are noisy: compare the ratios, measured in the same run.
"""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mxnet as mx  # noqa: E402
import numpy as onp  # noqa: E402
from mxnet import npx  # noqa: E402

import d2lcv as d2l  # noqa: E402
from d2lcv import rcnn, ssd  # noqa: E402
from d2lcv.bananas import load_data_bananas  # noqa: E402
from d2lcv.detection_metrics import mean_average_precision  # noqa: E402

npx.set_np()


def _seed(seed):
    """Seed every generator a run draws from (``ImageDetIter`` shuffles and crops with
    Python's ``random``)."""
    random.seed(seed)
    onp.random.seed(seed)
    mx.random.seed(seed)


def _val_arrays(val_iter):
    Xs, Ys = [], []
    val_iter.reset()
    for batch in val_iter:
        keep = batch.data[0].shape[0] - (batch.pad or 0)
        Xs.append(batch.data[0][:keep])
        Ys.append(batch.label[0].asnumpy()[:keep])
    return Xs, Ys


def _ms_per_image(fns, X, repeats):
    """Alternate the contenders ``{name: f(X)}``; ms per image of each (after a warm-up)."""
    for f in fns.values():
        f(X)
    npx.waitall()
    total = dict.fromkeys(fns, 0.0)
    for _ in range(repeats):
        for name, f in fns.items():
            tik = time.time()
            f(X)
            npx.waitall()
            total[name] += time.time() - tik
    return {name: 1000 * t / (repeats * X.shape[0]) for name, t in total.items()}


def _baseline_map(train_iter, val_labels):
    """mAP of the trivial detector: the mean training box, centred, one per image."""
    train_iter.reset()
    boxes = []
    for batch in train_iter:
        lab = batch.label[0].asnumpy().reshape(-1, 5)
        boxes.append(lab[lab[:, 0] >= 0, 1:])
    wh = onp.concatenate(boxes)
    w, h = (wh[:, 2] - wh[:, 0]).mean(), (wh[:, 3] - wh[:, 1]).mean()
    labels = onp.concatenate(val_labels)
    det = onp.tile(onp.array([[[0, 1, .5 - w / 2, .5 - h / 2, .5 + w / 2, .5 + h / 2]]],
                             onp.float32), (len(labels), 1, 1))
    return mean_average_precision(det, labels)


def _train_pair(args, train_iter, seed):
    """TinySSD and TinyFasterRCNN from the same seed: ``{name: (net, result, minutes)}``."""
    dev = [mx.cpu()]
    out = {}
    _seed(seed)
    net = ssd.TinySSD(1)
    tik = time.time()
    r = ssd.train_ssd(net, train_iter, args.epochs, devices=dev, lr=args.lr, optimizer='adam',
                      progress=False, verbose=False,
                      loss=ssd.SSDLoss(box='smooth_l1', negative_ratio=3, normalize='positives'))
    out['ssd'] = (net, r, (time.time() - tik) / 60)
    _seed(seed)
    net = rcnn.TinyFasterRCNN(1, roi=args.roi, box_map=args.box_map)
    tik = time.time()
    r = rcnn.train_faster_rcnn(net, train_iter, args.epochs, devices=dev, lr=args.lr,
                               verbose=False, seed=seed)
    out['rcnn'] = (net, r, (time.time() - tik) / 60)
    return out


def detection(args):
    root = d2l.hub.synth_twin('bananas', root=os.path.join(
        d2l.hub.data_dir(), 'bench', f'bananas-rcnn-{args.edge}-{args.num_train}'),
        num_train=args.num_train, num_val=args.num_val, edge=args.edge)
    train_iter, val_iter = load_data_bananas(args.batch_size, args.edge, data_dir=root)
    dev = [mx.cpu()]
    name_rcnn = f'TinyFasterRCNN ({args.roi}, {args.box_map})'
    print(f'[det] bananas twin (RecordIO layout) {args.num_train} train / {args.num_val} val '
          f'at {args.edge}x{args.edge}, batch {args.batch_size}, Adam lr {args.lr}, '
          f'{args.epochs} epochs each, seeds {list(range(args.seeds))}, '
          f'OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS")}')
    print(f'  {"":34s}{"mAP@0.5":>9s}{"mAP@.5:.95":>11s}{"train ex/s":>11s}'
          f'{"infer ms/img":>13s}{"train min":>10s}')
    rows = {'ssd': [], 'rcnn': []}
    Xs, Ys = _val_arrays(val_iter)
    for seed in range(args.seeds):
        trained = _train_pair(args, train_iter, seed)
        ssd_net, rcnn_net = trained['ssd'][0], trained['rcnn'][0]
        ms = _ms_per_image({'ssd': lambda X: ssd.detect(ssd_net, X).asnumpy(),
                            'rcnn': lambda X: rcnn.detect(rcnn_net, X)}, Xs[0], args.repeats)
        for key, name, evaluate in (('ssd', 'TinySSD', ssd.evaluate_ssd_map),
                                    ('rcnn', name_rcnn, rcnn.evaluate_rcnn)):
            net, r, mins = trained[key]
            m = evaluate(net, val_iter, devices=dev)
            row = (m['map50'], m['map'], r['examples_per_sec'], ms[key], mins)
            rows[key].append(row)
            print(f'  {name + f" seed {seed}":34s}{row[0]:9.3f}{row[1]:11.3f}{row[2]:11.1f}'
                  f'{row[3]:13.2f}{row[4]:10.2f}')
    base = _baseline_map(train_iter, Ys)
    mean = {k: onp.mean(v, axis=0) for k, v in rows.items()}
    spread = {k: onp.ptp(onp.array(v)[:, 0]) for k, v in rows.items()}
    for key, name in (('ssd', 'TinySSD'), ('rcnn', name_rcnn)):
        row = mean[key]
        print(f'  {name + " mean":34s}{row[0]:9.3f}{row[1]:11.3f}{row[2]:11.1f}{row[3]:13.2f}'
              f'{row[4]:10.2f}   (mAP@0.5 range over seeds {spread[key]:.3f})')
    print(f'  {"trivial (centred mean box)":34s}{base["map50"]:9.3f}{base["map"]:11.3f}')
    diff = mean['rcnn'][0] - mean['ssd'][0]
    print(f'  Faster R-CNN - TinySSD (means): mAP@0.5 {diff:+.3f}, mAP@.5:.95 '
          f'{mean["rcnn"][1] - mean["ssd"][1]:+.3f}; training speed ratio '
          f'{mean["rcnn"][2] / mean["ssd"][2]:.2f}x, inference time ratio '
          f'{mean["rcnn"][3] / mean["ssd"][3]:.2f}x')
    print(f'  gate (mean mAP@0.5 within 0.05 of TinySSD or better): '
          f'{"PASS" if diff >= -0.05 else "FAIL"}')
    return diff


def masks(args):
    train_iter, val_iter = rcnn.load_data_banana_masks(
        args.batch_size, num_train=args.num_train, num_val=args.num_val, edge=args.edge)
    _seed(0)
    net = rcnn.TinyFasterRCNN(1, mask=True, roi=args.roi, box_map=args.box_map)
    r = rcnn.train_faster_rcnn(net, train_iter, args.epochs, devices=[mx.cpu()], lr=args.lr,
                               verbose=False)
    m = rcnn.evaluate_rcnn(net, val_iter, devices=[mx.cpu()])
    print(f'[mask] bananas-with-masks twin {args.num_train} train / {args.num_val} val at '
          f'{args.edge}x{args.edge} (1-2 bananas per image), {args.epochs} epochs: '
          f'{r["examples_per_sec"]:.1f} examples/sec')
    print(f'  mAP@0.5 {m["map50"]:.3f}, mAP@.5:.95 {m["map"]:.3f}; mask IoU per instance '
          f'{m["mask_iou"]:.3f} vs {m["mask_iou_box"]:.3f} for the same detections\' filled '
          f'boxes (ratio {m["mask_iou"] / max(m["mask_iou_box"], 1e-9):.2f}x)')
    return m


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--part', choices=['det', 'mask', 'both'], default='both')
    p.add_argument('--edge', type=int, default=64)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--num-train', type=int, default=512)
    p.add_argument('--num-val', type=int, default=100)
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--roi', choices=['align', 'pool'], default='align')
    p.add_argument('--box-map', choices=['coarse', 'fine'], default='fine',
                   help="the map the box head samples (TinyFasterRCNN's box_map)")
    p.add_argument('--seeds', type=int, default=3, help='training runs per model (det)')
    p.add_argument('--repeats', type=int, default=5, help='timed inference batches')
    args = p.parse_args(argv)
    if args.part in ('det', 'both'):
        detection(args)
    if args.part in ('mask', 'both'):
        masks(args)


if __name__ == '__main__':
    main()
