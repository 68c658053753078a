"""Data-parallel training on MXNet's parameter server: sharding, kvstore plumbing in
``train_ch13``, and ``d2lcv launch`` on loopback (scheduler, servers and workers as local
processes)."""
import io
import json
import os
import signal
import sys
import threading
import time
from collections import Counter

import mxnet as mx
import numpy as onp
import pytest
from mxnet import gluon, init
from mxnet.gluon import nn

import d2lcv
from d2lcv import augment, dist
from d2lcv.dist.launch import LaunchError, free_ports, launch, read_hosts

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, 'dist_worker.py')
PY = sys.executable


# ---------------------------------------------------------------- sharding

def _shards_reference(n, parts):
    """Slow obvious reference: deal the examples out one by one, then cut to equal size."""
    shards = [[] for _ in range(parts)]
    for i in range(n):
        shards[i % parts].append(i)
    size = min(len(s) for s in shards)
    return [s[:size] for s in shards]


def test_shard_indices_exact():
    assert dist.shard_indices(10, 3, 0) == [0, 3, 6]
    assert dist.shard_indices(10, 3, 1) == [1, 4, 7]
    assert dist.shard_indices(10, 3, 2) == [2, 5, 8]   # example 9 is dropped: equal shards
    assert dist.shard_indices(4, 1, 0) == [0, 1, 2, 3]
    assert dist.shard_indices(2, 3, 2) == []            # fewer examples than workers
    assert dist.shard_indices(0, 2, 1) == []


@pytest.mark.parametrize('n', [0, 1, 7, 64, 101])
@pytest.mark.parametrize('parts', [1, 2, 3, 8])
def test_shard_indices_against_reference(n, parts):
    got = [dist.shard_indices(n, parts, k) for k in range(parts)]
    assert got == _shards_reference(n, parts)
    flat = sum(got, [])
    assert len(flat) == len(set(flat)) == parts * (n // parts)


@pytest.mark.parametrize('parts, index', [(2, 2), (2, -1), (0, 0)])
def test_shard_indices_bad_index(parts, index):
    with pytest.raises(ValueError, match='part_index'):
        dist.shard_indices(10, parts, index)


def test_load_cifar10_shards(tmp_path):
    root = d2lcv.hub.synth_twin('cifar10', root=str(tmp_path / 'c10'), num_train=53, num_test=10)
    whole = augment.cifar10_dataset(True, root=root)
    labels = onp.array([whole[i][1] for i in range(len(whole))])
    seen, batches = [], []
    for k in range(3):
        it = augment.load_cifar10(True, augment.test_augs(), 4, root=root, num_parts=3,
                                  part_index=k)
        shard_labels = onp.concatenate([y.asnumpy() for _, y in it])
        # 53 // 3 = 17 examples per worker, 4 full batches of 4 (the 17th is dropped)
        assert len(it) == 4 and len(shard_labels) == 16
        batches.append(len(it))
        seen.append(dist.shard_indices(53, 3, k))
        # the shard's labels, less the one example of the dropped partial batch
        missing = Counter(labels[seen[-1]].tolist()) - Counter(shard_labels.tolist())
        assert sum(missing.values()) == 1
        assert not Counter(shard_labels.tolist()) - Counter(labels[seen[-1]].tolist())
    assert len(set(batches)) == 1
    assert not set(seen[0]) & set(seen[1]) and not set(seen[1]) & set(seen[2])
    # one part: the chapter's loader, last partial batch kept
    it = augment.load_cifar10(True, augment.test_augs(), 4, root=root)
    assert len(it) == 14 and sum(len(y) for _, y in it) == 53


def test_sharded_dataset_reads_the_right_examples(tmp_path):
    root = d2lcv.hub.synth_twin('cifar10', root=str(tmp_path / 'c10'), num_train=20, num_test=10)
    whole = augment.cifar10_dataset(True, root=root)
    part = dist.shard_dataset(whole, 4, 3)
    assert len(part) == 5
    for j, i in enumerate(range(3, 20, 4)):
        onp.testing.assert_array_equal(part[j][0].asnumpy(), whole[i][0].asnumpy())
        assert part[j][1] == whole[i][1]
    assert dist.shard_dataset(whole) is whole


class _FakeDistKV:
    """Stands for a dist ``KVStore`` where only its rank and size matter."""
    type, rank, num_workers = 'dist_sync', 1, 3


def test_shard_loader():
    data = gluon.data.ArrayDataset(onp.arange(23, dtype='float32'), onp.arange(23))
    whole = dist.shard_loader(data, 5, 'device', shuffle=False)
    assert len(whole) == 5 and [len(y) for _, y in whole][-1] == 3   # last batch kept
    part = dist.shard_loader(data, 2, _FakeDistKV(), shuffle=False)
    got = onp.concatenate([y.asnumpy() for _, y in part])
    # shard 1 of 3 of 23 examples: 1, 4, ..., 19 (7 examples), last partial batch dropped
    assert got.tolist() == [1, 4, 7, 10, 13, 16] and len(part) == 3
    assert dist.kv_rank(_FakeDistKV()) == 1 and dist.kv_num_workers(_FakeDistKV()) == 3


# ---------------------------------------------------------------- kvstore helpers

def test_kvstore_names():
    assert dist.is_distributed('dist_sync') and dist.is_distributed('dist_async')
    assert not dist.is_distributed('device') and not dist.is_distributed(None)
    assert dist.create_kvstore('device') == 'device' and dist.create_kvstore(None) is None
    local = mx.kv.create('local')
    assert dist.create_kvstore(local) is local and not dist.is_distributed(local)
    assert (dist.kv_rank(local), dist.kv_num_workers(local)) == (0, 1)
    assert (dist.kv_rank('dist_sync'), dist.kv_num_workers('dist_sync')) == (0, 1)
    with pytest.raises(TypeError):
        dist.create_kvstore(3)


def test_dist_kvstore_needs_a_launcher(monkeypatch):
    monkeypatch.delenv('DMLC_ROLE', raising=False)
    with pytest.raises(RuntimeError, match='d2lcv launch'):
        dist.create_kvstore('dist_sync')


def _tiny_net(devices):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, kernel_size=3, strides=2), nn.Activation('relu'),
            nn.MaxPool2D(2), nn.Dense(10))
    net.initialize(init.Xavier(), ctx=devices)
    return net


@pytest.fixture
def two_cpus():
    return [mx.cpu(0), mx.cpu(1)]


def test_train_ch13_local_kvstore(tmp_path, two_cpus):
    """A non-dist kvstore changes nothing: same keys, loss falls, chapter's lines printed."""
    root = d2lcv.hub.synth_twin('cifar10', root=str(tmp_path / 'c10'), num_train=200,
                            num_test=40)
    mx.random.seed(0)
    net = _tiny_net(two_cpus)
    train_iter = augment.load_cifar10(True, augment.test_augs(), 20, root=root)
    test_iter = augment.load_cifar10(False, augment.test_augs(), 20, root=root)
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.01},
                            kvstore='local')
    result = d2lcv.train_ch13(net, train_iter, test_iter, gluon.loss.SoftmaxCrossEntropyLoss(),
                              trainer, 3, two_cpus, kvstore='local', progress=False,
                              verbose=False, save_path=str(tmp_path / 'a.png'))
    losses = result['history']['y'][0]
    assert losses[-1] < losses[0]
    assert 'num_workers' not in result
    assert result['test_acc'] == pytest.approx(d2lcv.evaluate_accuracy_gpus(net, test_iter))
    assert os.path.exists(tmp_path / 'a.png')


def test_train_with_data_aug_default_kvstore(tmp_path):
    root = d2lcv.hub.synth_twin('cifar10', root=str(tmp_path / 'c10'), num_train=60, num_test=20)
    net = _tiny_net([mx.cpu()])
    result = augment.train_with_data_aug(augment.test_augs(), augment.test_augs(), net,
                                         batch_size=20, num_epochs=1, devices=[mx.cpu()],
                                         root=root, progress=False, verbose=False,
                                         save_path=str(tmp_path / 'b.png'))
    assert result['epochs_run'] == 1 and 'test_acc' in result


def test_dist_batches_must_keep_their_size():
    from d2lcv.train import _check_batch
    assert _check_batch(None, 32, 0, 0) == 32
    assert _check_batch(32, 32, 0, 5) == 32
    with pytest.raises(ValueError, match='batch 7 of epoch 2 has 8 examples but the first '
                                         'had 32.*last_batch="discard"'):
        _check_batch(32, 8, 1, 7)


class _UnusableDistKV(mx.kv.KVStoreBase):
    """A dist ``KVStore`` by its type; ``train_ch13`` must refuse it before any step."""
    type, rank, num_workers = 'dist_sync', 0, 2

    def __init__(self):  # no parameter-server job behind it
        pass


def _never_iterated(n=3):
    class It:
        def __len__(self):
            return n

        def __iter__(self):
            raise AssertionError('train_ch13 started training')
    return It()


def test_train_ch13_refuses_mismatched_kvstores():
    net = _tiny_net([mx.cpu()])
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    fake = _UnusableDistKV()
    kw = dict(progress=False, verbose=False, save_path=os.devnull)
    # a dist kvstore the Trainer does not use: every worker would train alone
    trainer = gluon.Trainer(net.collect_params(), 'adam', kvstore='device')
    with pytest.raises(ValueError, match="Trainer was created with kvstore='device'"):
        d2lcv.train_ch13(net, _never_iterated(), None, loss, trainer, 1, [mx.cpu()],
                         kvstore=fake, **kw)
    # the Trainer's dist kvstore, named otherwise by the caller
    trainer = gluon.Trainer(net.collect_params(), 'adam', kvstore=fake)
    with pytest.raises(ValueError, match="Trainer was created with kvstore='dist_sync'"):
        d2lcv.train_ch13(net, _never_iterated(), None, loss, trainer, 1, [mx.cpu()],
                         kvstore='device', **kw)
    # one dist kvstore, a second Trainer
    fake._d2lcv_trainer = gluon.Trainer(net.collect_params(), 'adam', kvstore=fake)
    with pytest.raises(ValueError, match='already served another Trainer'):
        d2lcv.train_ch13(net, _never_iterated(), None, loss, trainer, 1, [mx.cpu()],
                         kvstore=fake, **kw)


# ---------------------------------------------------------------- launcher, no training

def test_free_ports_distinct_and_sorted():
    ports = free_ports(5)
    assert ports == sorted(ports) and len(set(ports)) == 5


def test_hosts_file(tmp_path):
    good = tmp_path / 'hosts'
    good.write_text('# this machine\n127.0.0.1\n\nlocalhost  # again\n')
    assert read_hosts(str(good)) == ['127.0.0.1', 'localhost']
    bad = tmp_path / 'hosts2'
    bad.write_text('127.0.0.1\ngpu-node-7\n')
    with pytest.raises(LaunchError, match='gpu-node-7'):
        read_hosts(str(bad))
    (tmp_path / 'empty').write_text('# nothing\n')
    with pytest.raises(LaunchError, match='no host'):
        read_hosts(str(tmp_path / 'empty'))


def test_cli_launch_bad_arguments(capsys):
    from d2lcv import cli
    assert cli.main(['launch', '-n', '0', '-s', '1', '--', PY, '-c', 'pass']) == 2
    assert 'at least one worker' in capsys.readouterr().err
    assert cli.main(['launch', '-n', '1', '-s', '1']) == 2
    assert 'no command' in capsys.readouterr().err


def test_launch_failing_worker_named():
    out = io.StringIO()
    tik = time.time()
    code = launch(2, 1, [PY, '-c', 'import os, sys; '
                                   'print("rank", os.environ["D2LCV_LAUNCH_RANK"]); '
                                   'sys.exit(3 if os.environ["DMLC_ROLE"] == "worker" else 0)'],
                  timeout=30, out=out)
    text = out.getvalue()
    assert code == 3, text
    assert time.time() - tik < 20
    assert '[worker 0] rank 0' in text or '[worker 1] rank 1' in text
    assert 'failed: exit code 3' in text and 'worker ' in text


def test_launch_missing_command():
    out = io.StringIO()
    code = launch(1, 1, ['/nonexistent/d2lcv-worker', '--flag'], timeout=30, out=out)
    assert code == 127
    assert "cannot start worker 0 ('/nonexistent/d2lcv-worker')" in out.getvalue()


def test_launch_timeout_kills_everything():
    out = io.StringIO()
    tik = time.time()
    code = launch(1, 1, [PY, '-c', 'import time; print("sleeping", flush=True); '
                                   'time.sleep(120)'], timeout=4, out=out)
    text = out.getvalue()
    assert code == 124, text
    assert time.time() - tik < 15
    assert 'timeout after 4 s' in text and 'worker 0' in text and '[worker 0] sleeping' in text


# ---------------------------------------------------------------- launcher, dist_sync training

@pytest.fixture
def twin(tmp_path_factory, monkeypatch):
    """The CIFAR-10 twin in a private cache the launched workers inherit (made here once:
    the workers would otherwise both generate it)."""
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path_factory.mktemp('dist-data')))
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    monkeypatch.setenv('D2LCV_NUM_WORKERS', '0')
    # an easy class-by-colour set where the twin would be (tests/easydata.py says why)
    from easydata import write_easy_cifar
    return write_easy_cifar(os.path.join(os.environ['D2LCV_DATA_DIR'], 'tiny', 'cifar10'))


def _param_arrays(path):
    return {k: v.asnumpy() for k, v in mx.npx.load(path).items()}


@pytest.mark.slow
def test_dist_sync_two_workers_agree(tmp_path, twin):
    out = io.StringIO()
    # two CPU contexts per worker: the gradients are summed over the devices, then over
    # the workers on the server
    code = launch(2, 1, [PY, WORKER, str(tmp_path), '--epochs', '2', '--devices', '2'],
                  timeout=50, out=out)
    text = out.getvalue()
    assert code == 0, text
    info = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2)]
    for r, rec in enumerate(info):
        assert rec['rank'] == r and rec['launch_rank'] == str(r) and rec['num_workers'] == 2
        assert rec['shard'] == 500 and rec['batches'] == 20   # 1,000 twin images, 25 a batch
        assert rec['train_loss'] < 0.6 * rec['first_loss'], rec
    # only rank 0 evaluates and prints
    assert info[0]['test_acc'] > 0.3 and info[1]['test_acc'] is None
    assert '[worker 0] loss' in text and '[worker 1] loss' not in text
    assert '[cpu(0), cpu(1)] x 2 workers (dist_sync' in text
    p0, p1 = (_param_arrays(str(tmp_path / f'rank{r}.params')) for r in range(2))
    assert p0.keys() == p1.keys()
    trained = [k for k in p0 if not k.endswith(('running_mean', 'running_var'))]
    assert len(trained) == 6
    for k in trained:   # different random initialisations, one set of weights after
        onp.testing.assert_array_equal(p0[k], p1[k], err_msg=k)
    # BatchNorm's running statistics are each worker's own (not gradients)
    assert not onp.array_equal(p0['1.running_mean'], p1['1.running_mean'])
    # rank 0 wrote the checkpoint: parameters and progress, no server-side optimizer state
    assert json.loads((tmp_path / 'ckpt.ckpt' / 'state.json').read_text())['epoch'] == 2
    assert sorted(os.listdir(tmp_path / 'ckpt.ckpt')) == ['manifest.json', 'model.params',
                                                          'state.json']


@pytest.mark.slow
def test_killed_worker_fails_the_launch(tmp_path, twin):
    out = io.StringIO()
    result = {}

    def run():
        # --by-name: the Trainer gets 'dist_sync' by name, train_ch13 infers the kvstore
        result['code'] = launch(2, 1, [PY, WORKER, str(tmp_path), '--epochs', '50',
                                       '--stall-rank', '1', '--by-name'], timeout=40, out=out)
        result['end'] = time.time()

    thread = threading.Thread(target=run)
    start = time.time()
    thread.start()
    pid_file = tmp_path / 'stall1.pid'
    while not pid_file.exists() and thread.is_alive() and time.time() - start < 40:
        time.sleep(0.1)
    assert pid_file.exists(), out.getvalue()
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    killed = time.time()
    thread.join(45)
    assert not thread.is_alive()
    text = out.getvalue()
    assert result['code'] != 0, text
    assert result['end'] - killed < 10, text      # noticed at once, not at the timeout
    assert 'worker 1' in text and 'killed by SIGKILL' in text, text
    assert not (tmp_path / 'rank0.json').exists()  # rank 0 never finished


@pytest.mark.slow
def test_worker_exception_fails_the_launch_at_once(tmp_path, twin):
    """A worker that raises exits (d2lcv's hook) instead of waiting at MXNet's final
    barrier for workers that wait for it: the launch fails long before its timeout."""
    out = io.StringIO()
    tik = time.time()
    code = launch(2, 1, [PY, WORKER, str(tmp_path), '--epochs', '50', '--fail-rank', '0'],
                  timeout=45, out=out)
    text = out.getvalue()
    assert code == 1, text
    assert time.time() - tik < 30, text
    assert 'failing on purpose' in text and 'worker 0 (pid' in text and 'exit code 1' in text


@pytest.mark.slow
def test_run_augment_under_launcher(tmp_path, twin):
    """``d2lcv launch -n 2 -s 1 -- d2lcv run augment --kvstore dist_sync``: one report."""
    out = io.StringIO()
    cmd = [PY, '-m', 'd2lcv', 'run', 'augment', '--tiny', '--kvstore', 'dist_sync', '--out',
           str(tmp_path / 'runs'), '--set', 'batch_size=8', '--set', 'num_train=64',
           '--set', 'num_test=16', '--set', 'num_epochs=1']
    code = launch(2, 1, cmd, timeout=50, out=out,
                  env={'PYTHONPATH': os.pathsep.join(p for p in (os.path.dirname(HERE),
                                                                 os.environ.get('PYTHONPATH'))
                                                     if p)})
    text = out.getvalue()
    assert code == 0, text
    runs = os.listdir(tmp_path / 'runs')
    assert len(runs) == 1, runs                     # rank 1 wrote no report here
    metrics = json.loads((tmp_path / 'runs' / runs[0] / 'metrics.json').read_text())['13.1']
    assert metrics['status'] == 'ok' and metrics['epochs_run'] == 1
    assert 'x 2 workers (dist_sync' in text and '[worker 1] loss' not in text
    scratch = [line.split('report: ')[1].split(' (')[0] for line in text.splitlines()
               if line.startswith('[worker 1] report: ')]
    assert scratch and not os.path.exists(scratch[0])   # rank 1's scratch report is gone


@pytest.mark.slow
def test_mxnet_launcher_runs_the_same_job(tmp_path, twin):
    """The multi-machine route of the README, in MXNet's ``--launcher local`` mode."""
    import subprocess
    cmd = [PY, '-m', 'd2lcv.dist.mxlaunch', '-n', '2', '-s', '1', '--launcher', 'local',
           f'{PY} {WORKER} {tmp_path} --epochs 1']
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (os.path.dirname(HERE), os.environ.get('PYTHONPATH')) if p))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        text = proc.communicate(timeout=60)[0].decode(errors='replace')
    except subprocess.TimeoutExpired:  # MXNet's launcher has no timeout of its own
        os.killpg(proc.pid, signal.SIGKILL)
        text = proc.communicate()[0].decode(errors='replace')
        pytest.fail(f'MXNet launcher hung:\n{text}')
    assert proc.returncode == 0, text
    p0, p1 = (_param_arrays(str(tmp_path / f'rank{r}.params')) for r in range(2))
    for k in p0:
        if not k.endswith(('running_mean', 'running_var')):
            onp.testing.assert_array_equal(p0[k], p1[k], err_msg=k)
