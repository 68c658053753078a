"""``d2lcv run twins``: one sample grid per synthetic twin and its trivial baseline.

The twins stand in for the chapter's data sets offline. A figure trained on a twin only
means something if a rule without learned features scores low on it, so this section
draws each twin (small copies, made here in a few seconds) and scores its trivial baseline
(:mod:`d2lcv.synth.baselines`) on held-out twin data; the sections that train on a twin
report the same baseline next to their model (``baseline_*`` metrics). Issue 12's floors:
bananas mAP@0.5 <= 0.25, VOC mIoU <= 0.25, CIFAR-10 accuracy <= 0.35, hot dog <= 0.65,
dog breeds <= chance + 0.15.
"""
import os

import numpy as onp

__all__ = ['NAME', 'SECTION', 'TITLE', 'bananas', 'cifar', 'voc', 'hotdog', 'dogs', 'run']

NAME = 'twins'
SECTION = '13.99'  # not a chapter section: after 13.14, in every 'run all'
TITLE = 'The synthetic twins and their trivial baselines'


def bananas(rep, root):
    from ..plot import plt
    from ..synth.bananas import render_bananas
    from ..synth.baselines import ColourBoxBaseline
    edge = 64
    tr, tb = render_bananas(300, edge, seed=21)
    va, vb = render_bananas(100, edge, seed=22)

    def labels(boxes):
        out = -onp.ones((len(boxes), 1, 5))
        out[:, 0, 0] = 0
        out[:, 0, 1:] = onp.concatenate(boxes) / edge
        return out
    base = ColourBoxBaseline().fit(tr, labels(tb))
    score = base.score(va, labels(vb))
    det = base.predict(va[:16])
    fig, axes = plt.subplots(2, 8, figsize=(12, 3.2))
    for ax, img, box, d in zip(axes.flat, va[:16], vb[:16], det):
        ax.imshow(img)
        for (x1, y1, x2, y2), colour in [(box[0], 'w')] + \
                [(d[0, 2:] * edge, 'r')] * (d[0, 0] >= 0):
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour))
        ax.axis('off')
    rep.figure('bananas', fig, 'bananas twin (64x64 as the benchmark): ground truth in white, '
               'the colour-threshold baseline\'s top box in red')
    rep.metric('bananas_baseline_map50', round(score['map50'], 4))
    rep.metric('bananas_baseline_map', round(score['map'], 4))


def cifar(rep, root):
    from ..plot import show_images
    from ..synth.baselines import HistogramNN
    from ..synth.cifar import CLASSES, make_images
    rng = onp.random.default_rng(31)
    ty = onp.arange(1000) % 10
    tx = make_images(ty, rng)
    vy = onp.arange(300) % 10
    vx = make_images(vy, rng)
    axes = show_images(vx[:20], 2, 10, titles=[CLASSES[k] for k in vy[:20]], scale=1.2)
    rep.figure('cifar10', axes[0].figure, 'CIFAR-10 twin (also the Kaggle CIFAR-10 layout\'s '
               'images): classes differ in shape, never in colour')
    rep.metric('cifar10_baseline_acc', round(HistogramNN().fit(tx, ty).score(vx, vy), 4))


def voc(rep, root):
    from ..plot import plt
    from ..segmentation import mean_iou, segmentation_confusion
    from ..synth.baselines import NearestColourSegmenter, read_voc_split
    from ..segmentation import voc_palette
    from ..synth.voc import make_voc2012
    voc_dir = make_voc2012(os.path.join(root, 'voc'), seed=41, num_train=24, num_val=16,
                           scale=0.5)
    tx, ty = read_voc_split(voc_dir, True)
    vx, vy = read_voc_split(voc_dir, False)
    seg = NearestColourSegmenter().fit(tx, ty)
    pred = seg.predict(vx)
    conf = sum(segmentation_confusion(p, y) for p, y in zip(pred, vy))
    rep.metric('voc_baseline_miou', round(float(mean_iou(conf)), 4))
    pal = voc_palette()
    fig, axes = plt.subplots(3, 6, figsize=(12, 5))
    for j in range(6):
        for ax, img in zip(axes[:, j], (vx[j], pal[vy[j]], pal[pred[j]])):
            ax.imshow(img)
            ax.axis('off')
    rep.figure('voc2012', fig, 'VOC2012 twin: images, labels (void in cream), the '
               'nearest-colour baseline\'s prediction')


def hotdog(rep, root):
    from ..hub import synth_twin
    from ..plot import show_images
    from ..synth.baselines import HistogramNN, read_image_folder
    d = synth_twin('hotdog', root=os.path.join(root, 'hotdog'), num_train=60, num_test=60)
    tx, ty, classes = read_image_folder(os.path.join(d, 'train'))
    vx, vy, _ = read_image_folder(os.path.join(d, 'test'))
    pick = list(range(8)) + list(range(len(vx) - 8, len(vx)))
    axes = show_images([vx[i] for i in pick], 2, 8, titles=[classes[vy[i]] for i in pick],
                       scale=1.4)
    rep.figure('hotdog', axes[0].figure, 'hot dog twin: photo-textured foods on photos')
    rep.metric('hotdog_baseline_acc', round(HistogramNN().fit(tx, ty).score(vx, vy), 4))


def dogs(rep, root):
    from ..plot import show_images
    from ..synth.baselines import HistogramNN
    from ..synth.cifar import make_images
    from ..synth.kaggle import DOG_BREEDS
    rng = onp.random.default_rng(51)
    q = 5
    ty, vy = onp.arange(300) % q, onp.arange(100) % q
    tx, vx = make_images(ty, rng, size=96), make_images(vy, rng, size=96)
    breeds = sorted(DOG_BREEDS[:q])
    axes = show_images(vx[:10], 1, 10, titles=[breeds[k][:10] for k in vy[:10]], scale=1.3)
    rep.figure('dog', axes[0].figure, f'Kaggle dog twin ({q} breeds, shown at 96x96)')
    rep.metric('dog_baseline_acc', round(HistogramNN().fit(tx, ty).score(vx, vy), 4))
    rep.metric('dog_chance', 1 / q)


def run(run):
    import tempfile
    rep = run.report
    with tempfile.TemporaryDirectory() as root:
        for f in (bananas, cifar, voc, hotdog, dogs):
            f(rep, root)
    rep.note('Each twin takes its backgrounds and object textures from the photographs that '
             'ship with scikit-image, so colour and brightness carry no label; the baselines '
             '(colour threshold + connected components, per-pixel nearest class colour, '
             'colour-histogram nearest neighbour) are fitted on one sample of the twin and '
             'scored on another. python benchmarks/bench_twins.py prints them next to the '
             'trained models.')
