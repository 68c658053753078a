"""The section runs of 13.3, 13.4, 13.5 and 13.8 (``d2lcv run bbox|anchors|multiscale|rcnn``):
they need no data set, draw the chapter's figures and check d2lcv against the operators."""
import json
import os

import mxnet as mx
import pytest

from d2lcv.report import Report
from d2lcv.runs import RunContext, sections


@pytest.fixture
def run_section(tmp_path):
    def run(name, **options):
        module = sections()[name]
        rep = Report(str(tmp_path / 'run'))
        rep.section(module.SECTION, module.TITLE)
        module.run(RunContext(report=rep, devices=[mx.cpu()], tiny=True, options=options))
        rep.write()
        with open(rep.path('metrics.json')) as f:
            metrics = json.load(f)[module.SECTION]
        files = [f['file'] for f in rep.current['figures']]
        for f in files:
            assert os.path.getsize(rep.path(f)) > 0
        return metrics, files
    return run


def test_registered_in_chapter_order():
    found = sections()
    assert [found[n].SECTION for n in ('bbox', 'anchors', 'multiscale', 'rcnn')] == \
        ['13.3', '13.4', '13.5', '13.8']


def test_run_bbox(run_section):
    m, files = run_section('bbox')
    assert (m['image_height'], m['image_width']) == (561, 728)
    assert m['corner_center_roundtrip_max_err'] == 0 and len(files) == 1


def test_run_anchors(run_section):
    m, files = run_section('anchors')
    assert m['num_anchors'] == 2042040
    assert m['anchor_250_250_0'] == [0.06, 0.07, 0.63, 0.82]
    assert m['target_class_labels'] == [0, 1, 2, 0, 2]
    assert [r[0] for r in m['detection_rows']] == [0, 1, -1, -1]
    for key in ('prior_max_abs_diff_vs_npx', 'target_max_abs_diff_vs_npx',
                'detection_max_abs_diff_vs_npx'):
        assert m[key] < 1e-5, key
    assert len(files) == 4


def test_run_multiscale_and_rcnn(run_section):
    m, files = run_section('multiscale')
    assert (m['num_anchors_4x4'], m['num_anchors_2x2'], m['num_anchors_1x1']) == (48, 12, 3)
    assert len(files) == 3
    # the training part on a few images, one epoch (the full tiny run takes a minute)
    m, files = run_section('rcnn', num_train=16, num_val=8, num_epochs=1, batch_size=8)
    assert m['roi_pool'] == [[[5, 6], [9, 10]], [[9, 11], [13, 15]]]
    assert m['roi_pool_max_abs_diff_vs_npx'] == 0
    assert m['roi_align_max_abs_diff_vs_mxnet'] < 1e-5
    assert files == ['13_8_roi_pooling.png', '13_8_training.png', '13_8_rcnn_curves.png',
                     '13_8_rcnn_predictions.png']
    assert {'val_map50', 'val_mask_iou', 'val_mask_iou_filled_boxes'} <= set(m)
