"""Benchmark TinySSD (section 13.7) on the synthetic banana twin, CPU.

Part 1, speed: examples/sec of d2lcv's training step (hybridized TinySSD with cached anchors,
metrics summed on the device, no host sync per batch) against the chapter's loop
(non-hybridized ``nn.Block``, ``npx.multibox_prior`` on every forward, ``npx.multibox_target``,
``cls_eval``/``bbox_eval`` read as floats every batch), measured in the same run on the same
in-memory batches, after one warm-up batch each, alternating the two to share the machine's
load fairly.

Part 2, accuracy: train d2lcv's TinySSD on the twin for a fixed budget of epochs and report
the validation mAP@0.5 (COCO 101-point and VOC all-point interpolation) and the minutes.
The chapter trains on 256x256 images; on a CPU the default here is a proportionally smaller
twin rendered at 64x64 (``--edge``), which TinySSD sees as 8x8, 4x4, 2x2, 1x1, 1x1 maps.
The default recipe uses two of the chapter's exercises and Adam: smooth-L1 boxes, 3:1 hard
negative mining, losses normalised by the number of positive anchors, Adam at lr 1e-3 (the
chapter's SGD at lr 0.2 with its mean-over-anchors loss learns far slower on this budget;
``--optimizer sgd --lr 0.2 --loss chapter`` runs it).

    python benchmarks/bench_ssd.py                        # both parts, defaults below
    python benchmarks/bench_ssd.py --part speed --speed-edge 64 --batches 10
    python benchmarks/bench_ssd.py --part map --edge 64 --epochs 30

Environment: run with ``OMP_NUM_THREADS`` set to the cores you can use; the twin is
generated under ``$D2LCV_DATA_DIR`` (default ``./data``).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mxnet as mx  # noqa: E402
from mxnet import autograd, gluon, init, np, npx  # noqa: E402
from mxnet.gluon import nn  # noqa: E402

import d2lcv as d2l  # noqa: E402
from d2lcv import ssd  # noqa: E402
from d2lcv.bananas import load_data_bananas  # noqa: E402


class ChapterTinySSD(nn.Block):
    """The chapter's TinySSD as printed: an ``nn.Block``, anchors recomputed every call."""

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        for i in range(5):
            setattr(self, f'blk_{i}', ssd.get_blk(i))
            setattr(self, f'cls_{i}', ssd.cls_predictor(4, num_classes))
            setattr(self, f'bbox_{i}', ssd.bbox_predictor(4))

    def forward(self, X):
        anchors, cls_preds, bbox_preds = [None] * 5, [None] * 5, [None] * 5
        for i in range(5):
            X, anchors[i], cls_preds[i], bbox_preds[i] = ssd.blk_forward(
                X, getattr(self, f'blk_{i}'), ssd.SSD_SIZES[i], ssd.SSD_RATIOS[i],
                getattr(self, f'cls_{i}'), getattr(self, f'bbox_{i}'), impl='npx')
        anchors = np.concatenate(anchors, axis=1)
        cls_preds = ssd.concat_preds(cls_preds)
        cls_preds = cls_preds.reshape(cls_preds.shape[0], -1, self.num_classes + 1)
        return anchors, cls_preds, ssd.concat_preds(bbox_preds)


def chapter_step(net, trainer, X, Y, batch_size):
    """The body of the chapter's training loop, one batch (with its per-batch float reads)."""
    with autograd.record():
        anchors, cls_preds, bbox_preds = net(X)
        bbox_labels, bbox_masks, cls_labels = npx.multibox_target(
            anchors, Y, cls_preds.transpose(0, 2, 1))
        l = ssd.calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
    l.backward()
    trainer.step(batch_size)
    return (ssd.cls_eval(cls_preds, cls_labels), cls_labels.size,
            ssd.bbox_eval(bbox_preds, bbox_labels, bbox_masks), bbox_labels.size)


def make_trainer(net):
    return gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.2, 'wd': 5e-4})


def speed(args):
    bs = args.batch_size
    n_img = bs * (args.batches + 1)
    root = d2l.hub.synth_twin('bananas', root=os.path.join(
        d2l.hub.data_dir(), 'bench', f'bananas-speed-{args.speed_edge}-{n_img}'),
        num_train=n_img, num_val=8, edge=args.speed_edge)
    train_iter, _ = load_data_bananas(bs, args.speed_edge, data_dir=root)
    data = list(ssd.batches(train_iter))
    device = mx.cpu()
    ref = ChapterTinySSD(1)
    ref.initialize(init=init.Xavier(), ctx=device)
    ref_trainer = make_trainer(ref)
    names = ['npx', 'd2lcv']
    if args.impl:
        names = [args.impl]
    nets = {}
    for name in names:
        net = ssd.TinySSD(1, impl=name)
        net.initialize(init=init.Xavier(), ctx=device)
        net.hybridize(static_alloc=True, static_shape=True)
        nets[name] = (net, make_trainer(net), ssd.detection_ops(name))
    # warm-up (graph building, memory planning, anchors cache)
    chapter_step(ref, ref_trainer, *data[0], bs)
    for net, trainer, ops in nets.values():
        ssd._train_step(net, *data[0], ssd.calc_loss, trainer, [device], ops)
    npx.waitall()
    t_ref, t_new = 0.0, dict.fromkeys(nets, 0.0)
    for X, Y in data[1:]:  # alternate, so that load changes hit every contender alike
        tik = time.time()
        chapter_step(ref, ref_trainer, X, Y, bs)
        npx.waitall()
        t_ref += time.time() - tik
        for name, (net, trainer, ops) in nets.items():
            tik = time.time()
            ssd._train_step(net, X, Y, ssd.calc_loss, trainer, [device], ops)
            npx.waitall()
            t_new[name] += time.time() - tik
    n = bs * (len(data) - 1)
    print(f'[speed] edge {args.speed_edge}, batch {bs}, {len(data) - 1} timed batches, '
          f'OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS")}')
    print(f'  chapter loop (nn.Block, npx ops, sync per batch): {n / t_ref:8.1f} examples/sec')
    for name, t in t_new.items():
        print(f'  d2lcv TinySSD, {name:5s} ops: {n / t:8.1f} examples/sec, '
              f'speed-up {t_ref / t:5.2f}x')
    return {name: t_ref / t for name, t in t_new.items()}


def accuracy(args):
    root = d2l.hub.synth_twin('bananas', root=os.path.join(
        d2l.hub.data_dir(), 'bench', f'bananas-map-{args.edge}-{args.num_train}'),
        num_train=args.num_train, num_val=args.num_val, edge=args.edge)
    train_iter, val_iter = load_data_bananas(args.batch_size, args.edge, data_dir=root)
    net = ssd.TinySSD(1, impl=args.impl)
    loss = None
    if args.loss == 'ssd':
        loss = ssd.SSDLoss(box='smooth_l1', negative_ratio=3, normalize='positives')
    tik = time.time()
    result = ssd.train_ssd(net, train_iter, args.epochs, val_iter=val_iter, loss=loss,
                           map_every=args.map_every, devices=[mx.cpu()],
                           lr=args.lr, optimizer=args.optimizer, save_path=args.save_path,
                           progress=False)
    minutes = (time.time() - tik) / 60
    final = ssd.evaluate_ssd_map(net, val_iter, devices=[mx.cpu()])
    voc = ssd.evaluate_ssd_map(net, val_iter, devices=[mx.cpu()], interpolation='voc')
    print(f'[map] twin {args.num_train} train / {args.num_val} val images at '
          f'{args.edge}x{args.edge}, batch {args.batch_size}, {args.optimizer} lr {args.lr}, '
          f'loss {args.loss}, {ssd.detection_ops(args.impl).name} ops: {args.epochs} epochs '
          f'in {minutes:.1f} min ({result["examples_per_sec"]:.1f} examples/sec training)')
    for epoch, m in result['map_history']:
        print(f'  epoch {epoch:3d}: val mAP@0.5 {m:.3f}')
    print(f'  final val mAP@0.5 (COCO 101-pt) {final["map50"]:.3f}, '
          f'mAP@0.5:0.95 {final["map"]:.3f}; VOC all-point mAP@0.5 {voc["map50"]:.3f}')
    first = next((e for e, m in result['map_history'] if m >= 0.9), None)
    print(f'  first epoch with mAP@0.5 >= 0.9: {first}')
    return final


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--part', choices=['speed', 'map', 'both'], default='both')
    p.add_argument('--edge', type=int, default=64, help='image size of the mAP run')
    p.add_argument('--speed-edge', type=int, default=256, help='image size of the speed run')
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--batches', type=int, default=5, help='timed batches (speed)')
    p.add_argument('--num-train', type=int, default=1000)
    p.add_argument('--num-val', type=int, default=100)
    p.add_argument('--epochs', type=int, default=30)
    p.add_argument('--map-every', type=int, default=5)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--loss', choices=['chapter', 'ssd'], default='ssd',
                   help="'chapter': calc_loss; 'ssd': smooth L1, 3:1 hard negatives, "
                        'normalised by the positives')
    p.add_argument('--optimizer', default='adam', help="'adam' (default) or the chapter's 'sgd'")
    p.add_argument('--impl', default=None,
                   help="'npx' or 'd2lcv' (default: d2lcv.anchors' default)")
    p.add_argument('--save-path', default=None, help='PNG of the training curves')
    args = p.parse_args(argv)
    if args.part in ('speed', 'both'):
        speed(args)
    if args.part in ('map', 'both'):
        accuracy(args)


if __name__ == '__main__':
    main()
