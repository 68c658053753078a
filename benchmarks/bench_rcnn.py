"""Benchmark TinyFasterRCNN (section 13.8) against TinySSD (13.7) on the same banana twin, CPU.

Part 1, detection: both models from random init (Xavier), trained on the same twin
(RecordIO layout, ``load_data_bananas``: random crops, shuffling) for the same number of
epochs with the same optimizer (Adam, lr 1e-3); TinySSD with the recipe of
``bench_ssd.py`` (smooth L1, 3:1 hard negatives, normalised by positives). Printed side by
side: validation mAP@0.5 and mAP@0.5:0.95 (COCO 101-point), training examples/sec, and
inference ms per image (forward + decoding + NMS on a batch of the validation set, after
a warm-up; the two models timed alternately in the same run). The gate of issue 17:
Faster R-CNN's mAP@0.5 is at least TinySSD's minus 0.05. The trivial baseline: one box
per image, the mean training box placed at the image centre, scored 1.

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


def detection(args):
    root = d2l.synth_twin('bananas', root=os.path.join(
        d2l.hub.data_dir(), 'bench', f'bananas-rcnn-{args.edge}-{args.num_train}'),
        num_train=args.num_train, num_val=args.num_val, edge=args.edge)
    train_iter, val_iter = load_data_bananas(args.batch_size, args.edge, data_dir=root)
    dev = [mx.cpu()]
    mx.random.seed(0)
    onp.random.seed(0)
    ssd_net = ssd.TinySSD(1)
    tik = time.time()
    r_ssd = ssd.train_ssd(ssd_net, train_iter, args.epochs, devices=dev, lr=args.lr,
                          optimizer='adam', progress=False, verbose=False,
                          loss=ssd.SSDLoss(box='smooth_l1', negative_ratio=3,
                                           normalize='positives'))
    min_ssd = (time.time() - tik) / 60
    mx.random.seed(0)
    frcnn = rcnn.TinyFasterRCNN(1, roi=args.roi)
    tik = time.time()
    r_rcnn = rcnn.train_faster_rcnn(frcnn, train_iter, args.epochs, devices=dev, lr=args.lr,
                                    verbose=False)
    min_rcnn = (time.time() - tik) / 60
    m_ssd = ssd.evaluate_ssd_map(ssd_net, val_iter, devices=dev)
    m_rcnn = rcnn.evaluate_rcnn(frcnn, val_iter, devices=dev)
    Xs, Ys = _val_arrays(val_iter)
    base = _baseline_map(train_iter, Ys)
    ms = _ms_per_image({'ssd': lambda X: ssd.detect(ssd_net, X).asnumpy(),
                        'rcnn': lambda X: rcnn.detect(frcnn, X)}, Xs[0], args.repeats)
    print(f'[det] bananas twin (RecordIO layout) {args.num_train} train / {args.num_val} val '
          f'at {args.edge}x{args.edge}, batch {args.batch_size}, Adam lr {args.lr}, '
          f'{args.epochs} epochs each, OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS")}')
    print(f'  {"":26s}{"mAP@0.5":>9s}{"mAP@.5:.95":>11s}{"train ex/s":>11s}'
          f'{"infer ms/img":>13s}{"train min":>10s}')
    for name, m, r, t, mins in (('TinySSD', m_ssd, r_ssd, ms['ssd'], min_ssd),
                                (f'TinyFasterRCNN ({args.roi})', m_rcnn, r_rcnn, ms['rcnn'],
                                 min_rcnn)):
        print(f'  {name:26s}{m["map50"]:9.3f}{m["map"]:11.3f}'
              f'{r["examples_per_sec"]:11.1f}{t:13.2f}{mins:10.2f}')
    print(f'  {"trivial (centred mean box)":26s}{base["map50"]:9.3f}{base["map"]:11.3f}')
    diff = m_rcnn['map50'] - m_ssd['map50']
    print(f'  Faster R-CNN - TinySSD: mAP@0.5 {diff:+.3f}, mAP@.5:.95 '
          f'{m_rcnn["map"] - m_ssd["map"]:+.3f}; training speed ratio '
          f'{r_rcnn["examples_per_sec"] / r_ssd["examples_per_sec"]:.2f}x, inference time '
          f'ratio {ms["rcnn"] / ms["ssd"]:.2f}x')
    print(f'  gate (mAP@0.5 within 0.05 of TinySSD or better): '
          f'{"PASS" if diff >= -0.05 else "FAIL"}')
    return diff


def masks(args):
    train_iter, val_iter = rcnn.load_data_banana_masks(
        args.batch_size, num_train=args.num_train, num_val=args.num_val, edge=args.edge)
    mx.random.seed(0)
    net = rcnn.TinyFasterRCNN(1, mask=True, roi=args.roi)
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
    p.add_argument('--repeats', type=int, default=5, help='timed inference batches')
    args = p.parse_args(argv)
    if args.part in ('det', 'both'):
        detection(args)
    if args.part in ('mask', 'both'):
        masks(args)


if __name__ == '__main__':
    main()
