"""Quality on the synthetic twins: each twin's trivial baseline next to the trained model.

Issue 12's table: a twin only shows that a model learned something if a rule without
learned features scores low on it. Per twin, this prints the trivial baseline
(:mod:`d2lcv.synth.baselines`) and the trained model on the same held-out twin data, and the
floor each must meet:

    twin       metric                    baseline at most      model at least
    bananas    TinySSD mAP@0.5 (64x64)   0.25                  0.80 (and mAP@.5:.95 >= 0.40)
    cifar10    ResNet-18 accuracy        0.35                  0.75
    voc2012    FCN mIoU, whole images    0.25                  0.55 (ImageNet backbone)
    hotdog     accuracy                  0.65                  fine-tuned >= scratch + 0.10
    dog_tiny   accuracy                  chance + 0.15         baseline + 0.25

    python benchmarks/bench_twins.py                   # every row (tens of CPU minutes)
    python benchmarks/bench_twins.py --twins bananas cifar10 --quick

``--quick`` runs a small fraction of each budget (a smoke test of the script, not the
table). Twins are generated under ``$D2LCV_DATA_DIR/bench``. Run with ``OMP_NUM_THREADS``
set to the cores you can use.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as onp  # noqa: E402

import d2lcv as d2l  # noqa: E402
from d2lcv.synth import baselines  # noqa: E402

ROWS = []


def row(twin, metric, base, model, base_max, model_min, minutes, extra=''):
    ok = base <= base_max and model >= model_min
    ROWS.append((twin, metric, base, model, base_max, model_min, ok, minutes, extra))
    print(f'[{twin}] {metric}: baseline {base:.3f} (<= {base_max:.2f}), model {model:.3f} '
          f'(>= {model_min:.2f}) {"OK" if ok else "MISSED"}  {minutes:.1f} min {extra}',
          flush=True)


def _bench_root(name):
    return os.path.join(d2l.hub.data_dir(), 'bench', name)


# ----------------------------------------------------------------------------------------
# bananas: colour threshold + components vs TinySSD
# ----------------------------------------------------------------------------------------

def bench_bananas(args):
    import mxnet as mx
    from mxnet import gluon
    from d2lcv import ssd
    from d2lcv.bananas import load_data_bananas
    edge, n_train, epochs = 64, args.bananas_train, args.bananas_epochs
    if args.quick:
        n_train, epochs = 200, 2
    root = d2l.synth_twin('bananas', root=_bench_root(f'bananas-{edge}-{n_train}'),
                          num_train=n_train, num_val=200, edge=edge)
    train_iter, val_iter = load_data_bananas(32, edge, data_dir=root)
    tik = time.time()
    # the baseline fits on the uncropped training images, read back from train.rec
    base = baselines.bananas_baseline(root, edge, val_iter)
    base_min = (time.time() - tik) / 60
    print(f'[bananas] baseline mAP@0.5 {base["map50"]:.3f}, mAP@.5:.95 {base["map"]:.3f}',
          flush=True)
    mx.random.seed(0)
    onp.random.seed(0)
    net = ssd.TinySSD(1)
    net.initialize(init=mx.init.Xavier(), ctx=mx.cpu())
    steps = epochs * (n_train // 32)
    sched = mx.lr_scheduler.CosineScheduler(max_update=steps, base_lr=args.bananas_lr,
                                            final_lr=args.bananas_lr / 100)
    trainer = gluon.Trainer(net.collect_params(), 'adam',
                            {'learning_rate': args.bananas_lr, 'wd': 5e-4,
                             'lr_scheduler': sched})
    loss = ssd.SSDLoss(box='smooth_l1', negative_ratio=3, normalize='positives')
    tik = time.time()
    r = ssd.train_ssd(net, train_iter, epochs, trainer=trainer, loss=loss, val_iter=val_iter,
                      map_every=max(epochs // 6, 1), devices=[mx.cpu()], progress=False,
                      verbose=False)
    final = ssd.evaluate_ssd_map(net, val_iter, devices=[mx.cpu()])
    hist = ' '.join(f'{e}:{m:.2f}' for e, m in r['map_history'])
    row('bananas', 'mAP@0.5 (64x64)', base['map50'], final['map50'], 0.25, 0.80,
        (time.time() - tik) / 60, f'[baseline {base_min:.1f} min; {n_train} train images, '
        f'{epochs} epochs; history {hist}]')
    row('bananas', 'mAP@0.5:0.95 (64x64)', base['map'], final['map'], 1.0, 0.40, 0.0)


BENCHES = {'bananas': bench_bananas}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--twins', nargs='*', default=list(BENCHES), choices=list(BENCHES))
    p.add_argument('--quick', action='store_true', help='tiny budgets: a smoke test')
    p.add_argument('--bananas-train', type=int, default=1000)
    p.add_argument('--bananas-epochs', type=int, default=60)
    p.add_argument('--bananas-lr', type=float, default=2e-3)
    args = p.parse_args(argv)
    for name in args.twins:
        BENCHES[name](args)
    print('\n| twin | metric | trivial baseline | trained model | table | minutes |')
    print('|---|---|---|---|---|---|')
    for twin, metric, base, model, bmax, mmin, ok, minutes, _ in ROWS:
        print(f'| {twin} | {metric} | {base:.3f} (<= {bmax:.2f}) | {model:.3f} (>= {mmin:.2f}) '
              f'| {"met" if ok else "MISSED"} | {minutes:.1f} |')
    return all(r[6] for r in ROWS)


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
