"""What the book prints, per section, for the report's "book vs this run" tables.

Each entry of :data:`BOOK` names a metric a section records (``report.metric(key, ...)``),
the value the book prints for it (D2L, chapter 13, MXNet edition: real data sets on GPUs),
a label and a unit, and how to compare:

* ``exact=True``: the section computes the book's own example (13.4's anchors and NMS rows,
  13.8's RoI pooling, 13.10's transposed convolutions): the report marks "matches the book"
  or "DIFFERS from the book".
* ``exact='real'``: exact on the real data set, not on the synthetic twins (13.9's 1114 /
  1078 examples): marked only for runs without ``--tiny``.
* ``exact=False``: a trained model; the twins, budgets and devices differ, so the two numbers
  are shown side by side without a mark.

``d2lcv run`` calls :func:`compare_section` after each section; a section can also call
``run.report.compare(label, book=..., this_run=..., unit=..., exact=...)`` itself for a value
it does not record as a metric.
"""
import ast

__all__ = ['BOOK', 'compare_section']

#: section -> [(metric key, label, book value, unit, exact, tolerance)]
BOOK = {
    '13.1': [
        ('test_acc', 'test accuracy, ResNet-18 with flips (10 epochs)', 0.856, 'fraction',
         False, 0),
        ('train_acc', 'training accuracy', 0.943, 'fraction', False, 0),
        ('train_loss', 'training loss', 0.166, 'per example', False, 0),
        ('examples_per_sec', 'training speed (the book: two GPUs)', 3897.5, 'examples/s',
         False, 0),
    ],
    '13.2': [
        ('finetune_test_acc', 'test accuracy, fine-tuned ResNet-18 (5 epochs)', 0.920,
         'fraction', False, 0),
        ('scratch_test_acc', 'test accuracy, ResNet-18 from scratch (5 epochs)', 0.841,
         'fraction', False, 0),
    ],
    '13.4': [
        ('num_anchors', 'anchors for the 561x728 image (Y.shape[1])', 2042040, 'boxes', True,
         0),
        ('anchor_250_250_0', 'first anchor centred on (250, 250)', [0.06, 0.07, 0.63, 0.82],
         'image fraction', True, 0.005),
        ('target_class_labels', 'class labels of anchors A0-A4', [0, 1, 2, 0, 2],
         'class index', True, 0),
        ('detection_rows', 'multibox_detection output after NMS',
         [[0, 0.9, 0.1, 0.08, 0.52, 0.92], [1, 0.9, 0.55, 0.2, 0.9, 0.88],
          [-1, 0.8, 0.08, 0.2, 0.56, 0.95], [-1, 0.7, 0.15, 0.3, 0.62, 0.91]],
         'class, score, box', True, 0.005),
    ],
    '13.6': [
        ('batch_data_shape', 'image batch shape', '(32, 3, 256, 256)', '', True, 0),
        ('batch_label_shape', 'label batch shape', '(32, 1, 5)', '', True, 0),
        ('num_train_images', 'training images read', 1000, 'images', True, 0),
    ],
    '13.7': [
        ('class_err', 'class error after 20 epochs', 5.07e-3, 'fraction', False, 0),
        ('bbox_mae', 'bounding box MAE after 20 epochs', 5.42e-3, 'image fraction', False, 0),
        ('examples_per_sec', 'training speed (the book: one GPU, last batch only)', 4496.9,
         'examples/s', False, 0),
    ],
    '13.8': [
        ('roi_pool', 'RoI pooling of the 4x4 map, two regions',
         [[[5, 6], [9, 10]], [[9, 11], [13, 15]]], '', True, 0),
    ],
    '13.9': [
        ('train_examples_320x480', 'training examples kept by the 320x480 crop', 1114,
         'examples', 'real', 0),
        ('val_examples_320x480', 'validation examples kept', 1078, 'examples', 'real', 0),
    ],
    '13.10': [
        ('basic_output', 'trans_conv(X, K)', [[0, 0, 1], [0, 4, 6], [4, 12, 9]], '', True, 0),
        ('padding1_output', 'Conv2DTranspose, padding 1', [[4]], '', True, 0),
        ('stride2_output', 'Conv2DTranspose, stride 2',
         [[0, 0, 0, 1], [0, 0, 2, 3], [0, 2, 0, 3], [4, 6, 6, 9]], '', True, 0),
        ('tconv_conv_shape_equal', 'tconv(conv(X)).shape == X.shape', True, '', True, 0),
        ('kernel2matrix', 'kernel2matrix(K)',
         [[0, 1, 0, 2, 3, 0, 0, 0, 0], [0, 0, 1, 0, 2, 3, 0, 0, 0],
          [0, 0, 0, 0, 1, 0, 2, 3, 0], [0, 0, 0, 0, 0, 1, 0, 2, 3]], '', True, 0),
    ],
    '13.11': [
        ('test_acc', 'test pixel accuracy (5 epochs)', 0.835, 'fraction', False, 0),
        ('train_acc', 'training pixel accuracy', 0.889, 'fraction', False, 0),
    ],
    '13.13': [
        ('valid_acc', 'validation accuracy (kaggle tiny data, 5 epochs)', 0.150, 'fraction',
         False, 0),
    ],
    '13.14': [
        ('valid_loss', 'validation loss (kaggle tiny data, 5 epochs)', 2.153, 'per example',
         False, 0),
        ('train_loss', 'training loss', 2.080, 'per example', False, 0),
    ],
}


def _value(v):
    """Metrics stored as printed strings ("[[0.0, 1.0], ...]") back to lists."""
    if isinstance(v, str) and v[:1] in '[(':
        try:
            parsed = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            return v
        return list(parsed) if isinstance(parsed, list) else v
    return v


def compare_section(report, sec_id, tiny):
    """Add the :data:`BOOK` rows of ``sec_id`` whose metric the section recorded."""
    metrics = report.current['metrics']
    for key, label, book, unit, exact, tol in BOOK.get(sec_id, []):
        if key not in metrics:
            continue
        report.compare(label, book=book, this_run=_value(metrics[key]), unit=unit,
                       exact=exact is True or (exact == 'real' and not tiny),
                       tol=tol or 1e-6,
                       note=('the book uses the real data set' if exact == 'real' else
                             'synthetic twin and a small budget: not comparable'
                             if tiny and not exact else ''))
