"""``train_ch13``'s checkpoint as one unit (issue 13, item 4): a kill at any moment of a save
leaves the old or the new checkpoint, never a mix; bad checkpoints raise ``CheckpointError``
naming the file; an unwritable folder fails before any training."""
import json
import os
import pathlib
import subprocess
import sys
import threading

import mxnet as mx
import numpy as onp
import pytest
from mxnet import gluon

import d2lcv
from d2lcv import train as T

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ckpt_kill_worker as W  # noqa: E402


def _run_worker(path, kill_at, out):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, os.path.join(HERE, 'ckpt_kill_worker.py'),
                           str(path), str(kill_at), str(out)], env=env, timeout=120,
                          capture_output=True)


def _params(net):
    return {k: v.data().asnumpy() for k, v in net._collect_params_with_prefix().items()}


def _kill_points(names):
    """1-based call indices to kill at: just before and just after every call that moves,
    writes or removes a checkpoint file, plus a few evenly spread ones."""
    fs = {'replace', 'rename', 'renameat2', '_exchange', 'replace_dir', 'remove', 'unlink',
          'rmtree', 'dump', 'save_parameters', 'save_states', 'close', 'mkdtemp'}
    points = set()
    for i, n in enumerate(names, 1):
        if n in fs:
            points.update((i, i + 1))
    picked = sorted(p for p in points if p < len(names))  # the last call ends the profile
    if len(picked) > 7:  # keep the test's time bounded (one process start per point)
        picked = [picked[int(j)] for j in onp.linspace(0, len(picked) - 1, 7)]
    return sorted(set(picked) | {1, len(names) // 2})


@pytest.mark.slow
def test_sigkill_at_each_step_of_a_save_leaves_old_or_new(tmp_path):
    ref = tmp_path / 'ref'
    ref.mkdir()
    r = _run_worker(ref / 'c', -1, ref)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    names = json.loads((ref / 'names.json').read_text())
    refs = {}
    for e in (1, 2):
        net = W.build()
        net.load_parameters(str(ref / f'ref{e}.params'))
        refs[e] = _params(net)
    assert not onp.allclose(refs[1]['0.weight'], refs[2]['0.weight'])
    seen = set()
    for k in _kill_points(names):
        d = tmp_path / f'k{k}'
        d.mkdir()
        r = _run_worker(d / 'c', k, d)
        assert r.returncode == -9, (k, r.stderr.decode()[-2000:])
        net = W.build()
        trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.05})
        state = T._Checkpoint(str(d / 'c')).load(net, trainer, [mx.cpu()])
        got = _params(net)
        for name in got:
            onp.testing.assert_allclose(got[name], refs[state['epoch']][name], rtol=1e-6,
                                        atol=1e-7, err_msg=f'kill at call {k} '
                                        f'({names[k - 1]}): epoch {state["epoch"]} record '
                                        f'with other weights ({name})')
        seen.add(state['epoch'])
        # resuming runs exactly the epochs that are missing
        res = d2lcv.train_ch13(net, W.data(), None, gluon.loss.SoftmaxCrossEntropyLoss(),
                               trainer, 2, [mx.cpu()], progress=False, verbose=False,
                               checkpoint=str(d / 'c'), save_path=str(d / 'b.png'))
        assert res['epochs_run'] == 2 - state['epoch']
    assert seen == {1, 2}  # kills before and after the swap were both exercised


def _fit(tmp_path, num_epochs, checkpoint, net=None, data=None):
    net = net or W.build()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.05})
    res = d2lcv.train_ch13(net, data or W.data(), None, gluon.loss.SoftmaxCrossEntropyLoss(),
                           trainer, num_epochs, [mx.cpu()], progress=False, verbose=False,
                           checkpoint=checkpoint, save_path=str(tmp_path / 'a.png'))
    return net, trainer, res


def _ckpt_file(tmp_path, suffix):
    """The checkpoint's file ending in ``suffix`` (whatever the layout)."""
    found = [p for p in pathlib.Path(tmp_path).rglob('c*') if p.is_file()] + \
        [p for p in pathlib.Path(tmp_path).rglob('*') if p.parent.name.startswith('c')]
    found = sorted({p for p in found if p.name.endswith(suffix) and 'manifest' not in p.name
                    and not p.name.endswith('.png')})
    assert len(found) == 1, found
    return found[0]


def _expect_checkpoint_error(fn, *words):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the type is what is checked
        assert type(e).__name__ == 'CheckpointError', f'{type(e).__name__}: {e}'
        for w in words:
            assert str(w) in str(e), (w, str(e))
        return e
    raise AssertionError('no error raised')


@pytest.mark.parametrize('suffix,damage', [
    ('.params', lambda b: b[:len(b) // 2]), ('.params', lambda b: bytes(len(b))),
    ('.json', lambda b: b'{"epoch": 1, '), ('.states', lambda b: b'not a pickle')])
def test_corrupt_checkpoint_file_is_named(tmp_path, suffix, damage):
    _fit(tmp_path, 1, str(tmp_path / 'c'))
    f = _ckpt_file(tmp_path, suffix)
    f.write_bytes(damage(f.read_bytes()))
    _expect_checkpoint_error(lambda: _fit(tmp_path, 2, str(tmp_path / 'c')), f)


def test_checkpoint_of_another_model_is_named(tmp_path):
    _fit(tmp_path, 1, str(tmp_path / 'c'))
    other = gluon.nn.HybridSequential()
    other.add(gluon.nn.Conv2D(5, 3), gluon.nn.Activation('relu'), gluon.nn.Dense(3))
    other.initialize(ctx=mx.cpu())
    other(mx.np.zeros((1, 1, 6, 6)))
    e = _expect_checkpoint_error(lambda: _fit(tmp_path, 2, str(tmp_path / 'c'), net=other),
                                 _ckpt_file(tmp_path, '.params'))
    assert 'model' in str(e)


def test_fewer_epochs_than_saved_runs_none(tmp_path):
    _fit(tmp_path, 3, str(tmp_path / 'c'))
    _, _, res = _fit(tmp_path, 1, str(tmp_path / 'c'))
    assert res['epochs_run'] == 0


class _Counting:
    """A loader that counts the batches drawn from it."""

    def __init__(self, loader):
        self.loader, self.drawn = loader, 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for b in self.loader:
            self.drawn += 1
            yield b


def test_unwritable_checkpoint_folder_fails_before_training(tmp_path):
    (tmp_path / 'afile').write_text('x')  # a file where the folder should be
    data = _Counting(W.data())
    _expect_checkpoint_error(lambda: _fit(tmp_path, 2, str(tmp_path / 'afile' / 'c'),
                                          data=data), tmp_path / 'afile')
    assert data.drawn == 0


def test_concurrent_saves_do_not_collide(tmp_path):
    net, trainer, _ = _fit(tmp_path, 1, None)
    errors = []

    def saver(i):
        mx.npx.set_np()  # thread-local in MXNet
        try:
            for j in range(15):
                T._Checkpoint(str(tmp_path / 'c')).save(
                    net, trainer, {'epoch': i, 'train_seconds': 0.0, 'examples': 0,
                                   'result': {}, 'points': []})
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=saver, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    again = W.build()
    state = T._Checkpoint(str(tmp_path / 'c')).load(again, trainer, [mx.cpu()])
    assert state['epoch'] in (1, 2)
    for k, v in _params(again).items():
        onp.testing.assert_array_equal(v, _params(net)[k])
