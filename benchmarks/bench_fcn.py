"""FCN (section 13.11) on the synthetic VOC2012 twin, CPU: accuracy target and speed.

Trains the chapter's FCN (ResNet-18 v2 backbone, *random init*: no pretrained weights
offline) on the twin's train split with random crops, then predicts every validation image
whole (``predict_whole``, tiles of the crop size) and reports pixel accuracy and mean IoU
(void 255 ignored). Target: pixel accuracy >= 0.9 and mIoU >= 0.6.

The reference measured in the same run is the trivial "everything is background" predictor
on the same validation pixels; the script prints the FCN's figures, the reference's, and
their ratio. Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_fcn.py [--epochs 15]
        [--crop 160 224] [--scale 0.5] [--lr 0.001] [--batch-size 8]
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as onp  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=15)
    p.add_argument('--crop', type=int, nargs=2, default=(160, 224))
    p.add_argument('--scale', type=float, default=0.5, help='twin image size factor')
    p.add_argument('--num-train', type=int, default=64)
    p.add_argument('--num-val', type=int, default=48)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--wd', type=float, default=1e-4)
    p.add_argument('--optimizer', default='adam')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--data', default=None, help='twin folder (default: a temp folder)')
    args = p.parse_args(argv)

    import mxnet as mx
    import d2lcv as d2l
    from d2lcv.hub import synth_twin
    mx.random.seed(args.seed)
    onp.random.seed(args.seed)
    import random
    random.seed(args.seed)

    tmp = None if args.data else tempfile.TemporaryDirectory(prefix='bench_fcn-')
    root = args.data or os.path.join(tmp.name, 'voc2012')
    tik = time.time()
    voc_dir = synth_twin('voc2012', root=root, num_train=args.num_train,
                         num_val=args.num_val, scale=args.scale)
    print(f'twin: {voc_dir} ({time.time() - tik:.1f} s; scale {args.scale}, '
          f'{args.num_train} train / {args.num_val} val images)')
    crop = tuple(args.crop)
    train_iter, test_iter = d2l.load_data_voc(args.batch_size, crop, voc_dir=voc_dir,
                                              num_workers=0)
    devices = [mx.cpu()]
    net = d2l.fcn.fcn_net(pretrained=False, devices=devices)
    tik = time.time()
    res = d2l.fcn.train_fcn(net, train_iter, test_iter, args.epochs, lr=args.lr, wd=args.wd,
                        devices=devices, optimizer=args.optimizer,
                        save_path=os.path.join(root, 'fcn_train.png'), progress=False)
    train_min = (time.time() - tik) / 60
    tik = time.time()
    ev = d2l.fcn.evaluate_voc(net, voc_dir, is_train=False, tile=crop, devices=devices)
    eval_s = time.time() - tik
    # reference: predict background everywhere, on the same pixels
    names = d2l.segmentation.voc_split_names(voc_dir, False)
    conf = onp.zeros((21, 21), onp.int64)
    for n in names:
        lbl = d2l.segmentation.read_voc_label(os.path.join(voc_dir, 'SegmentationClass',
                                                           n + '.png'))
        conf += d2l.segmentation.segmentation_confusion(onp.zeros_like(lbl), lbl)
    ref_acc, ref_miou = d2l.segmentation.pixel_accuracy(conf), d2l.segmentation.mean_iou(conf)
    present = [f'{d2l.segmentation.VOC_CLASSES[i]} {v:.3f}' for i, v in enumerate(ev['iou'])
               if not onp.isnan(v)]
    print(f'crop {crop}, batch {args.batch_size}, {args.optimizer} lr {args.lr}, '
          f'{args.epochs} epochs, random-init backbone')
    print(f'training: {train_min:.1f} min, {res["examples_per_sec"]:.2f} examples/s; '
          f'whole-image evaluation of {ev["num_images"]} val images: {eval_s:.1f} s')
    print(f'FCN   val pixel acc {ev["pixel_acc"]:.4f}  mIoU {ev["miou"]:.4f}')
    print(f'bg-only reference  pixel acc {ref_acc:.4f}  mIoU {ref_miou:.4f}')
    print(f'ratio FCN/reference: pixel acc {ev["pixel_acc"] / ref_acc:.3f}, '
          f'mIoU {ev["miou"] / ref_miou:.3f}')
    print('per-class IoU: ' + ', '.join(present))
    ok = ev['pixel_acc'] >= 0.9 and ev['miou'] >= 0.6
    if tmp is not None:
        tmp.cleanup()
    print('target (pixel acc >= 0.9, mIoU >= 0.6):', 'MET' if ok else 'NOT MET')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
