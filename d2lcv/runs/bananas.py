"""Section run 13.6: read the banana detection data set and show ten labelled images."""
import os

from . import pos_int

__all__ = ['NAME', 'SECTION', 'TITLE', 'OPTIONS', 'run']

NAME = 'bananas'
SECTION = '13.6'
TITLE = 'The Object Detection Dataset (bananas)'

OPTIONS = {
    'batch_size': (pos_int, 'batch size of the shown batch (32)'),
    'edge_size': (pos_int, 'image side in pixels (256)'),
}


def run(run):
    from ..bananas import load_data_bananas, read_data_bananas
    from ..hub import data_dir, synth_twin
    from ..plot import show_images
    from ..bbox import show_bboxes

    batch_size = int(run.options.get('batch_size', 32))
    edge_size = int(run.options.get('edge_size', 256))
    train_iter, val_iter = load_data_bananas(batch_size, edge_size, tiny=run.tiny or None)
    batch = train_iter.next()
    X, Y = batch.data[0], batch.label[0]
    run.report.metric('batch_data_shape', str(tuple(X.shape)))
    run.report.metric('batch_label_shape', str(tuple(Y.shape)))
    run.report.metric('num_train_images', train_iter.num_image)

    imgs = (X[0:10].transpose(0, 2, 3, 1)) / 255
    axes = show_images(imgs, 2, 5, scale=2)
    for ax, label in zip(axes, Y[0:10]):
        show_bboxes(ax, [label[0][1:5] * edge_size], colors=['w'])
    run.report.figure('bananas', axes[0].figure,
                      'Ten randomly cropped training images with their boxes (RecordIO '
                      'layout, ImageDetIter)')

    # the newer CSV layout, with several bananas per image to show the -1 label padding
    if run.tiny:
        root = os.path.join(data_dir(), 'tiny', 'banana-detection-multi')
        csv_dir = synth_twin('banana-detection', root=root, num_train=64, num_val=16,
                             max_objects=3)
        images, labels = read_data_bananas(True, csv_dir)
    else:
        images, labels = read_data_bananas(True)
    run.report.metric('csv_num_train_images', len(images))
    run.report.metric('csv_label_shape', str(tuple(labels.shape)))
    run.report.note('Data: ' + ('the synthetic banana twin (drawn bananas on generated '
                                'backgrounds; d2lcv.synth.bananas), 1000 train / 100 val images '
                                'at 256x256 in the RecordIO layout, and a 64-image twin with '
                                'up to 3 bananas per image in the CSV layout.' if run.tiny else
                                'the real bananas.zip and banana-detection.zip.'))
