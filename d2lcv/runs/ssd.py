"""Section run 13.7: train TinySSD on the bananas, report curves, mAP and detections.

Full run: the chapter's configuration (256x256, batch 32, 20 epochs, SGD lr 0.2, its loss)
on the real data. ``--tiny``: a 256-image twin rendered at 64x64 and a few epochs with the
faster recipe of ``benchmarks/bench_ssd.py`` (Adam 1e-3, smooth L1, 3:1 hard negatives,
normalised by positives), to fit a minute on a CPU; the mAP then is far from converged (the
benchmark's long run reaches >= 0.9). Options (``--set``): ``num_epochs``, ``edge_size``,
``batch_size``, ``lr``, ``num_train``, ``recipe`` (``chapter`` or ``fast``).
"""
import os
import time

from . import choice, pos_float, pos_int

__all__ = ['NAME', 'SECTION', 'TITLE', 'OPTIONS', 'run']

NAME = 'ssd'
SECTION = '13.7'
TITLE = 'Single Shot Multibox Detection (SSD)'

OPTIONS = {
    'num_epochs': (pos_int, 'epochs (tiny 8, full 20)'),
    'edge_size': (pos_int, 'image side in pixels (tiny 64, full 256)'),
    'batch_size': (pos_int, 'batch size (32)'),
    'lr': (pos_float, 'learning rate (fast 1e-3, chapter 0.2)'),
    'num_train': (pos_int, 'tiny only: training images in the twin (384)'),
    'recipe': (choice('fast', 'chapter'), "loss and optimizer (tiny 'fast', full 'chapter')"),
}


def run(run):
    import numpy as onp

    from ..bananas import load_data_bananas
    from ..hub import data_dir, synth_twin
    from ..plot import plt
    from ..ssd import SSDLoss, TinySSD, detect, display, evaluate_ssd_map, train_ssd

    opt = run.options
    tiny = bool(run.tiny)
    edge = int(opt.get('edge_size', 64 if tiny else 256))
    batch_size = int(opt.get('batch_size', 32))
    num_epochs = int(opt.get('num_epochs', 8 if tiny else 20))
    recipe = opt.get('recipe', 'fast' if tiny else 'chapter')
    if recipe not in ('fast', 'chapter'):
        raise ValueError(f"recipe must be 'fast' or 'chapter', got {recipe!r}")
    fast = recipe == 'fast'
    lr = float(opt.get('lr', 1e-3 if fast else 0.2))
    loss = SSDLoss(box='smooth_l1', negative_ratio=3, normalize='positives') if fast else None
    if tiny:
        num_train = int(opt.get('num_train', 384))
        root = os.path.join(data_dir(), 'tiny', f'bananas-{num_train}-{edge}')
        folder = synth_twin('bananas', root=root, num_train=num_train, num_val=64, edge=edge)
        train_iter, val_iter = load_data_bananas(batch_size, edge, data_dir=folder)
    else:
        train_iter, val_iter = load_data_bananas(batch_size, edge, tiny=False)

    net = TinySSD(num_classes=1)
    tik = time.time()
    result = train_ssd(net, train_iter, num_epochs, devices=run.devices[:1], lr=lr, loss=loss,
                       optimizer='adam' if fast else 'sgd',
                       val_iter=val_iter, map_every=max(1, num_epochs // 4),
                       save_path=run.report.path('13_7_training.png'), progress=False)
    minutes = (time.time() - tik) / 60
    hist = result['history']
    fig, ax = plt.subplots(1, 3, figsize=(12, 3))
    for x, y, name in zip(hist['x'][:2], hist['y'][:2], hist['legend'][:2]):
        ax[0].plot(x, y, label=name)
    ax[0].set_xlabel('epoch')
    ax[0].set_yscale('log')
    ax[0].legend()
    ax[0].set_title('training')
    e, m = zip(*result['map_history']) if result['map_history'] else ((), ())
    ax[1].plot(e, m, 'o-')
    ax[1].set_xlabel('epoch')
    ax[1].set_ylabel('val mAP@0.5')
    ax[1].set_ylim(0, 1)
    ax[2].plot(range(1, num_epochs + 1), result['loss_history'], 'o-')
    ax[2].set_xlabel('epoch')
    ax[2].set_ylabel('training loss per image')
    run.report.figure('curves', fig, 'Class error and bbox MAE (training), validation '
                      'mAP@0.5, training loss per epoch')

    final = evaluate_ssd_map(net, val_iter, devices=run.devices[:1])
    voc = evaluate_ssd_map(net, val_iter, devices=run.devices[:1], interpolation='voc')
    for key in ('class_err', 'bbox_mae', 'examples_per_sec'):
        run.report.metric(key, round(float(result[key]), 5))
    run.report.metric('val_map50', round(final['map50'], 4))
    run.report.metric('val_map50_voc', round(voc['map50'], 4))
    run.report.metric('val_map_0.5:0.95', round(final['map'], 4))
    run.report.metric('epochs', num_epochs)
    if tiny:  # the rule without learned features the model must beat (issue 12)
        from ..synth.baselines import bananas_baseline
        base = bananas_baseline(folder, edge, val_iter)
        run.report.metric('baseline_val_map50', round(base['map50'], 4))
        run.report.note(f'Trivial baseline (colour threshold + connected components, fitted '
                        f'on the training images): val mAP@0.5 {base["map50"]:.3f} against '
                        f'the model\'s {final["map50"]:.3f}.')
    run.report.metric('first_loss', round(result['loss_history'][0], 5))
    run.report.metric('last_loss', round(result['loss_history'][-1], 5))
    run.report.metric('train_minutes', round(minutes, 2))

    # detections on eight validation images
    val_iter.reset()
    batch = val_iter.next()
    X = batch.data[0][:8]
    out = detect(net, X).asnumpy()
    fig, axes = plt.subplots(2, 4, figsize=(10, 5))
    for ax, img, rows in zip(axes.ravel(), X.transpose(0, 2, 3, 1).asnumpy() / 255, out):
        rows = rows[rows[:, 0] >= 0]
        display(onp.clip(img, 0, 1), rows[:1], threshold=0.0, ax=ax)
        ax.axis('off')
    run.report.figure('detections', fig, 'Validation images with their highest-scoring '
                      'detection and its score')
    run.report.note(
        f'TinySSD, random init (Xavier), trained {num_epochs} epochs at {edge}x{edge} '
        + ('(Adam 1e-3, smooth L1, 3:1 hard negatives) ' if fast else
           "(the chapter's SGD 0.2 and loss) ") + 'on '
        + (f'the synthetic banana twin ({num_train} train / 64 val images)' if tiny else
           'the real banana data set') + f' in {minutes:.1f} min on {run.devices[:1]}. '
        'mAP: COCO-style 101-point AP at IoU 0.5 (checked against pycocotools) and VOC '
        'all-point AP, on the validation split.')
