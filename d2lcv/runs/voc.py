"""``d2lcv run voc``: section 13.9, the Pascal VOC2012 semantic segmentation data set.

Shows the first five training images with their label images, one label's class indices
next to the palette indices stored in its PNG, five random 200x300 crops of one image and
label, and how many examples the 320x480 crop keeps in each split (the chapter prints
1114 / 1078 for the real data). With ``--tiny`` everything runs on the synthetic twin.
"""
import os

import numpy as onp

__all__ = ['NAME', 'SECTION', 'TITLE', 'run']

NAME = 'voc'
SECTION = '13.9'
TITLE = 'Semantic segmentation and the Pascal VOC2012 data set'


def run(run):
    from .. import segmentation as seg
    from ..hub import download_extract
    from ..plot import show_images

    rep = run.report
    voc_dir = download_extract('voc2012', os.path.join('VOCdevkit', 'VOC2012'), tiny=run.tiny)
    rep.note(('Data: the synthetic VOC2012 twin (palette PNGs, VOC layout), not the real '
              'data set.' if run.tiny else 'Data: Pascal VOC2012 (VOCtrainval_11-May-2012).')
             + f' Folder: {voc_dir}.')
    train_features, train_labels = seg.read_voc_images(voc_dir, True)
    n = 5
    axes = show_images(train_features[:n] + train_labels[:n], 2, n)
    rep.figure('images_labels', axes[0].figure,
               'First five training images (top) and their label images (bottom); the '
               'light band around objects is the void label 255.')

    y = seg.voc_label_indices(train_labels[0], seg.build_colormap2label()).asnumpy()
    name = seg.voc_split_names(voc_dir, True)[0]
    direct = seg.read_voc_label(os.path.join(voc_dir, 'SegmentationClass', name + '.png'))
    rep.metric('label_indices_equal_palette_png', bool((y == direct).all()))
    present = [int(c) for c in onp.unique(direct)]
    rep.metric('first_label_classes', ', '.join(
        'void(255)' if c == 255 else f'{seg.VOC_CLASSES[c]}({c})' for c in present))
    rep.metric('first_label_void_fraction', float((direct == 255).mean()))

    imgs = []
    h, w = (200, 300) if min(train_features[0].shape[:2]) >= 200 else (32, 48)
    for _ in range(n):
        imgs += seg.voc_rand_crop(train_features[0], train_labels[0], h, w)
    axes = show_images(imgs[::2] + imgs[1::2], 2, n)
    rep.figure('random_crops', axes[0].figure,
               f'Five random {h}x{w} crops of the same image and label (same window).')

    crop_size = (320, 480)
    voc_train = seg.VOCSegDataset(True, crop_size, voc_dir, verbose=False)
    voc_test = seg.VOCSegDataset(False, crop_size, voc_dir, verbose=False)
    rep.metric('train_images', len(seg.voc_split_names(voc_dir, True)))
    rep.metric('val_images', len(seg.voc_split_names(voc_dir, False)))
    rep.metric('train_examples_320x480', len(voc_train))
    rep.metric('val_examples_320x480', len(voc_test))
    if len(voc_train):
        batch = min(4, len(voc_train))
        train_iter, _ = seg.load_data_voc(batch, crop_size, voc_dir=voc_dir, num_workers=0,
                                          verbose=False)
        X, Y = next(iter(train_iter))
        rep.metric('batch_X_shape', str(X.shape))
        rep.metric('batch_Y_shape', str(Y.shape))
