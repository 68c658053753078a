"""The ``d2lcv`` command: run reports, data listing and twins."""
import glob
import json
import os
import types

import pytest

from d2lcv import cli, runs


@pytest.fixture(autouse=True)
def _keep_env(monkeypatch):
    # `run --tiny` sets D2LCV_TINY for the sections it runs; keep that inside each test
    monkeypatch.delenv('D2LCV_TINY', raising=False)


def test_run_list(capsys):
    assert cli.main(['run', '--list']) == 0
    out = capsys.readouterr().out
    assert 'augment' in out and '13.1' in out


def test_sections_are_in_chapter_order():
    keys = [tuple(int(p) for p in m.SECTION.split('.')) for m in runs.sections().values()]
    assert keys == sorted(keys) and keys[0] == (13, 1)


def test_run_augment_tiny_writes_report(tmp_path, capsys):
    code = cli.main(['run', 'augment', '--tiny', '--devices', 'cpu:0,cpu:1', '--out',
                     str(tmp_path), '--set', 'num_train=48', '--set', 'num_test=20',
                     '--set', 'num_epochs=1', '--set', 'batch_size=16'])
    assert code == 0
    (run_dir,) = glob.glob(str(tmp_path / '*-augment'))
    metrics = json.load(open(os.path.join(run_dir, 'metrics.json')))
    sec = metrics['13.1']
    assert sec['status'] == 'ok' and sec['examples_per_sec'] > 0
    # an accuracy over 20 test images is a whole number of twentieths
    assert sec['test_acc'] * 20 == pytest.approx(round(sec['test_acc'] * 20), abs=1e-6)
    assert sec['baseline_test_acc'] * 20 == pytest.approx(round(sec['baseline_test_acc'] * 20))
    html = open(os.path.join(run_dir, 'index.html')).read()
    pngs = sorted(os.path.basename(p) for p in glob.glob(os.path.join(run_dir, '*.png')))
    assert '13_1_aug_flip_left_right.png' in pngs and '13_1_training.png' in pngs
    assert '13_1_cifar10_first32.png' in pngs
    for png in pngs:
        assert png in html
    assert 'examples/sec on [cpu(0), cpu(1)]' in capsys.readouterr().out


def test_failing_section_is_reported_and_exit_code_is_1(tmp_path, monkeypatch):
    def boom(ctx):
        ctx.report.metric('before', 1)
        raise RuntimeError('twin missing')
    fake = types.SimpleNamespace(NAME='fake', SECTION='13.99', TITLE='Fake', run=boom)
    monkeypatch.setattr(runs, 'sections', lambda: {'fake': fake})
    assert cli.main(['run', 'fake', '--out', str(tmp_path)]) == 1
    (run_dir,) = glob.glob(str(tmp_path / '*-fake'))
    metrics = json.load(open(os.path.join(run_dir, 'metrics.json')))
    assert metrics['13.99']['status'] == 'failed'
    assert 'twin missing' in open(os.path.join(run_dir, 'index.html')).read()


def test_run_does_not_leak_environment(tmp_path, monkeypatch):
    seen = {}
    fake = types.SimpleNamespace(
        NAME='fake', SECTION='13.98', TITLE='Fake',
        run=lambda ctx: seen.update(tiny=os.environ.get('D2LCV_TINY')))
    monkeypatch.setattr(runs, 'sections', lambda: {'fake': fake})
    monkeypatch.delenv('D2LCV_FIG_DIR', raising=False)
    assert cli.main(['run', 'fake', '--tiny', '--out', str(tmp_path)]) == 0
    assert seen == {'tiny': '1'}
    assert 'D2LCV_TINY' not in os.environ and 'D2LCV_FIG_DIR' not in os.environ


def test_unknown_section(capsys):
    assert cli.main(['run', 'no-such-section']) == 2
    assert 'unknown section' in capsys.readouterr().err


def test_data_list_and_synth(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path))
    assert cli.main(['data', 'list']) == 0
    out = capsys.readouterr().out
    assert 'bananas' in out and 'aadfd1c4c5d7178616799dd1801c9a234ccdaf19' in out
    assert cli.main(['data', 'synth', 'cifar10']) == 0
    folder = capsys.readouterr().out.strip()
    assert folder.endswith('cifar-10-batches-bin') and os.path.exists(
        os.path.join(folder, 'data_batch_5.bin'))


def test_set_options_are_typed():
    assert cli._parse_options(['a=3', 'b=0.5', 'c=x']) == {'a': 3, 'b': 0.5, 'c': 'x'}
    with pytest.raises(SystemExit):
        cli._parse_options(['novalue'])
