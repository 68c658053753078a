"""The ``d2lcv`` command: run reports, data listing and twins."""
import glob
import json
import os
import re
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
    def boom(run):
        run.report.metric('before', 1)
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
        run=lambda run: seen.update(tiny=os.environ.get('D2LCV_TINY')))
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


# --- the command line is checked before any work (issue 13 item 7, issue 16) ---------------
# Each test names the failure it guards against on the code before the fix.

def _spy_section(monkeypatch, options=None, name='fake', number='13.97'):
    """A section that records what it was called with; ``sections()`` returns only it."""
    calls = []
    fake = types.SimpleNamespace(NAME=name, SECTION=number, TITLE='Fake',
                                 OPTIONS=options or {}, run=lambda run: calls.append(run))
    monkeypatch.setattr(runs, 'sections', lambda: {name: fake})
    return calls


def _train_options():
    return {'num_epochs': (runs.pos_int, 'epochs'), 'batch_size': (runs.pos_int, 'batch'),
            'lr': (runs.pos_float, 'learning rate')}


def test_unknown_set_key_fails_naming_the_valid_ones(tmp_path, capsys, monkeypatch):
    # before: `--set batchsize=7` was ignored, exit 0
    calls = _spy_section(monkeypatch, _train_options())
    assert cli.main(['run', 'fake', '--set', 'batchsize=7', '--out', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no option 'batchsize'; did you mean batch_size?" in err
    assert 'Valid options: batch_size, lr, num_epochs.' in err
    assert calls == [] and os.listdir(tmp_path) == []  # nothing ran, no report folder


def test_empty_set_key_fails(tmp_path, capsys, monkeypatch):
    # before: `--set =5` was ignored, exit 0
    calls = _spy_section(monkeypatch, _train_options())
    assert cli.main(['run', 'fake', '--set', '=5', '--out', str(tmp_path)]) == 2
    assert "--set expects KEY=VALUE, got '=5'" in capsys.readouterr().err
    assert calls == []


@pytest.mark.parametrize('pair, message', [
    ('num_epochs=abc', "'abc' is not an integer"),     # before: TypeError deep in training
    ('num_epochs=0', 'must be at least 1, got 0'),      # before: KeyError: 'train_loss'
    ('batch_size=0', 'must be at least 1, got 0'),      # before: reported "ok"
    ('lr=-1', 'must be > 0'),
    ('num_epochs=1.5', "'1.5' is not an integer"),
])
def test_wrong_type_or_range_fails_before_any_work(pair, message, tmp_path, capsys,
                                                   monkeypatch):
    calls = _spy_section(monkeypatch, _train_options())
    assert cli.main(['run', 'fake', '--set', pair, '--out', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and 'section 13.97 fake expects' in err
    assert calls == []


def test_real_sections_reject_bad_values(tmp_path, capsys):
    # the defects as reported, on the real sections: nothing starts
    for args in (['augment', '--set', 'num_epochs=abc'], ['augment', '--set', 'num_epochs=0'],
                 ['bananas', '--set', 'batch_size=0'], ['bbox', '--set', 'batchsize=7']):
        assert cli.main(['run', *args, '--tiny', '--out', str(tmp_path)]) == 2, args
    assert os.listdir(tmp_path) == []
    assert 'It takes no --set options' in capsys.readouterr().err  # bbox has none


def test_set_values_arrive_typed(tmp_path, monkeypatch):
    calls = _spy_section(monkeypatch, _train_options())
    assert cli.main(['run', 'fake', '--set', 'num_epochs=2', '--set', 'lr=0.5',
                     '--out', str(tmp_path)]) == 0
    assert calls[0].options == {'num_epochs': 2, 'lr': 0.5}


def test_set_key_goes_only_to_the_sections_that_declare_it(tmp_path, capsys, monkeypatch):
    got = {}
    mk = lambda name, num, opts: types.SimpleNamespace(  # noqa: E731
        NAME=name, SECTION=num, TITLE=name, OPTIONS=opts,
        run=lambda run: got.setdefault(name, run.options))
    secs = {'a': mk('a', '13.1', _train_options()), 'b': mk('b', '13.2', {})}
    monkeypatch.setattr(runs, 'sections', lambda: secs)
    assert cli.main(['run', 'a', 'b', '--set', 'num_epochs=1', '--out', str(tmp_path)]) == 0
    assert got == {'a': {'num_epochs': 1}, 'b': {}}
    assert 'not an option of b' in capsys.readouterr().err
    assert cli.main(['run', 'a', 'b', '--set', 'epochz=1', '--out', str(tmp_path)]) == 2


def test_devices_checked_once_up_front(tmp_path, capsys, monkeypatch):
    # before: gpu:7 failed in every section ("GPU is not enabled"); cpu:0,cpu:0 gave
    # "Check failed: type_ != nullptr: The any container is empty" from autograd
    calls = _spy_section(monkeypatch)
    assert cli.main(['run', 'fake', '--devices', 'gpu:7', '--out', str(tmp_path)]) == 2
    assert 'asks for gpu:7 but MXNet sees 0 GPU(s)' in capsys.readouterr().err
    assert cli.main(['run', 'fake', '--devices', 'cpu:0,cpu:0', '--out', str(tmp_path)]) == 2
    assert 'device cpu(0) is listed twice' in capsys.readouterr().err
    assert cli.main(['run', 'fake', '--devices', 'cpu:x', '--out', str(tmp_path)]) == 2
    assert calls == []


def test_weights_import_error_is_one_line(tmp_path, capsys):
    # before: an uncaught FileNotFoundError traceback
    assert cli.main(['weights', 'import', str(tmp_path / 'missing.params')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('d2lcv weights import: ') and 'no such file' in err
    assert 'Traceback' not in err and err.count('\n') == 1
    junk = tmp_path / 'junk.params'
    junk.write_bytes(b'not weights')
    assert cli.main(['weights', 'import', str(junk)]) == 2
    assert 'matches no model zoo file' in capsys.readouterr().err


def test_section_numbers_are_accepted(tmp_path, monkeypatch):
    calls = _spy_section(monkeypatch, number='13.4', name='anchors')
    assert cli.main(['run', '13.4', '--out', str(tmp_path)]) == 0
    assert len(calls) == 1 and glob.glob(str(tmp_path / '*-anchors'))


def test_run_13_4_on_the_real_section(tmp_path):
    assert cli.main(['run', '13.4', '--out', str(tmp_path)]) == 0
    (run_dir,) = glob.glob(str(tmp_path / '*-anchors'))
    metrics = json.load(open(os.path.join(run_dir, 'metrics.json')))
    assert metrics['13.4']['num_anchors'] == 2042040


@pytest.mark.parametrize('typo, suggestion', [('anchor', 'anchors'), ('agument', 'augment'),
                                              ('kaggle', 'kaggle-dog or kaggle-cifar10'),
                                              ('13.40', '13.4 or 13.14 or 13.10'),
                                              ('kaggle_dog', None)])
def test_typo_gets_a_suggestion(typo, suggestion, capsys):
    if suggestion is None:  # underscores for dashes are simply accepted
        assert runs.find_section(typo, runs.sections()) == 'kaggle-dog'
        return
    assert cli.main(['run', typo]) == 2
    assert f'did you mean {suggestion}?' in capsys.readouterr().err


def test_run_section_help_lists_its_options(capsys):
    assert cli.main(['run', 'fcn', '--help']) == 0
    out = capsys.readouterr().out
    assert 'options of 13.11 fcn' in out
    assert 'num_epochs' in out and 'integer >= 1' in out and 'crop' in out
    assert 'options of 13.1 augment' not in out


def test_top_level_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        cli.main(['--help'])
    out = capsys.readouterr().out
    assert 'examples:' in out and 'd2lcv run 13.4' in out and 'd2lcv run all --tiny' in out
    assert '``' not in out


def test_offline_failure_is_one_line_naming_tiny(tmp_path, capsys, monkeypatch):
    from d2lcv import hub
    monkeypatch.setattr(hub, 'DATA_URL', 'http://127.0.0.1:9/')
    monkeypatch.setitem(hub.DATA_HUB, 'nowhere', ('http://127.0.0.1:9/x.zip', 'a' * 40))

    def needs_download(run):
        hub.download_extract('nowhere')
    fake = types.SimpleNamespace(NAME='fake', SECTION='13.96', TITLE='Fake',
                                 run=needs_download)
    monkeypatch.setattr(runs, 'sections', lambda: {'fake': fake})
    assert cli.main(['run', 'fake', '--out', str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    assert '[13.96] cannot download its data (offline?)' in err
    assert '`d2lcv run fake --tiny`' in err


def test_data_list_is_a_table_with_a_cached_column(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path))
    (tmp_path / 'hotdog.zip').write_bytes(b'x')
    (tmp_path / 'tiny' / 'bananas').mkdir(parents=True)  # where synth_twin puts it
    assert cli.main(['data', 'list']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ['name', 'twin', 'cached', 'sha1', 'url']
    rows = {ln.split()[0]: ln.split() for ln in lines[1:-1]}
    assert rows['hotdog'][2] == 'download' and rows['bananas'][2] == 'twin'
    assert rows['voc2012'][2] == '-'
    assert lines[-1] == f'(cache folder: {tmp_path})'


def test_every_option_a_section_reads_is_declared():
    """A section reading ``opts.get('x')`` (or ``_opt(opts, 'x', ...)``) must declare 'x'.

    Otherwise `--set x=...` would be refused while the code reads it: the declaration and
    the code drift apart in a merge. Reads the sources, so it also covers full-data paths.
    """
    import inspect
    import re
    pattern = re.compile(r"(?:opts?|options)(?:\.get\(|\[)\s*'(\w+)'|_opt\(\w+, '(\w+)'")
    for name, mod in runs.sections().items():
        read = {a or b for a, b in pattern.findall(inspect.getsource(mod))}
        declared = set(runs.options_of(mod))
        assert read <= declared, (name, sorted(read - declared))


def test_one_type_per_option_name_across_sections():
    """One name per meaning: an option several sections declare has one type in all of them
    (``num_epochs`` is a positive integer everywhere, ``lr`` a positive number...); a name
    chosen from a section's own list (``backbone``) is one kind whatever the list."""
    kinds = {}
    for name, mod in runs.sections().items():
        for key, (cast, _) in runs.options_of(mod).items():
            kind = 'a name' if hasattr(cast, 'choices') or cast is runs.text else cast.kind
            kinds.setdefault(key, {}).setdefault(kind, []).append(name)
    mixed = {k: v for k, v in kinds.items() if len(v) > 1}
    assert not mixed, mixed
    assert runs.pos_int('3') == 3 and runs.fraction('0.25') == 0.25
    for cast, bad, message in [(runs.pos_int, '0', 'must be at least 1, got 0'),
                               (runs.nonneg_float, '-1', 'must be >= 0, got -1.0'),
                               (runs.pos_float, 'nan', 'must be > 0, got nan'),
                               (runs.fraction, '1', 'strictly between 0 and 1, got 1.0'),
                               (runs.nonneg_int, '2.5', "'2.5' is not an integer")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            cast(bad)


def test_runs_call_the_run_context_run_not_ctx():
    """In d2lcv/runs/ ``ctx`` means nothing but MXNet's device keyword (``ctx=``): the run
    context is ``run``. A merge that brings back ``ctx.tiny`` would fail only when that line
    runs (a full-data path, say); this reads every section's source instead."""
    import ast
    import inspect
    for name, mod in list(runs.sections().items()) + [('runs', runs)]:
        tree = ast.parse(inspect.getsource(mod))
        used = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == 'ctx'
                or isinstance(n, ast.arg) and n.arg == 'ctx']
        assert not used, (name, used)
