"""The section training functions on a kvstore: ``train_fine_tuning`` (13.2), ``train_ssd``
(13.7), ``train_fcn`` (13.11), ``train_cifar10`` / ``train_dog`` (13.13-13.14).

In process: the kvstore named (``'local'``) or given (a ``KVStore``) reaches the Trainer and
training still works; the dist pieces that need no parameter-server job (sharded loaders,
the servers' copy of the optimizer, the step-decay schedule, rank-0-only reporting). On
loopback under ``d2lcv launch``: ``train_fine_tuning`` with ``dist_sync`` on 2 workers + 1
server ends with the same parameters on both workers.
"""
import io
import json
import os
import pickle
import sys

import mxnet as mx
import numpy as onp
import pytest
from mxnet import gluon, init
from mxnet.gluon import nn

import d2lcv
from d2lcv import dist, fcn, finetune, kaggle as K, segmentation, ssd
from d2lcv.dist.launch import launch

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, 'dist_finetune_worker.py')
CPU = [mx.cpu()]


@pytest.fixture
def trainers(monkeypatch):
    """Every ``gluon.Trainer`` the code under test creates, in order."""
    made = []

    class Recording(gluon.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(gluon, 'Trainer', Recording)
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    return made


def _given(trainer):
    """The kvstore the Trainer was created with (name or object)."""
    return trainer._kvstore_params['kvstore']


def _check_reached(trainers, kvstore):
    assert len(trainers) == 1
    if isinstance(kvstore, str):
        assert _given(trainers[0]) == kvstore
    else:  # the very object, used for the steps
        assert _given(trainers[0]) is kvstore and trainers[0]._kvstore is kvstore


def _kvstores():
    return ['local', 'kvobject']


def _make(kind):
    return mx.kv.create('local') if kind == 'kvobject' else kind


class _FakeDistKV(mx.kv.KVStoreBase):
    """A dist ``KVStore`` by its type and rank, with no job behind it (never stepped)."""

    def __init__(self, rank=0, num_workers=2, type='dist_sync'):
        self._rank, self._workers, self._type = rank, num_workers, type

    rank = property(lambda self: self._rank)
    num_workers = property(lambda self: self._workers)
    type = property(lambda self: self._type)


# ---------------------------------------------------------------- 13.2 train_fine_tuning

@pytest.fixture(scope='module')
def hotdog(tmp_path_factory):
    root = tmp_path_factory.mktemp('hd') / 'twin'
    return d2lcv.hub.synth_twin('hotdog', root=str(root), num_train=6, num_test=4, min_size=24,
                            max_size=40)


@pytest.mark.parametrize('kind', _kvstores())
def test_train_fine_tuning_kvstore_reaches_trainer(hotdog, trainers, kind):
    kv = _make(kind)
    train_imgs, test_imgs = finetune.hotdog_datasets(hotdog)
    finetune.set_seed(0)
    net = finetune.small_resnet(2, width=8)
    net.initialize(init.Xavier())
    r = finetune.train_fine_tuning(
        net, 0.05, batch_size=12, num_epochs=4, devices=CPU, train_imgs=train_imgs,
        test_imgs=test_imgs, train_transform=finetune.test_augs(24, 28),
        test_transform=finetune.test_augs(24, 28), verbose=False, progress=False,
        kvstore=kv)
    _check_reached(trainers, kv)
    losses = [y for x, y in zip(*r['history']['x'][:1], *r['history']['y'][:1])
              if float(x).is_integer()]
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    # the reported figure is the trained net's accuracy on the whole test set
    test_iter = gluon.data.DataLoader(test_imgs.transform_first(finetune.test_augs(24, 28)), 5)
    assert r['test_acc'] == d2lcv.evaluate_accuracy_gpus(net, test_iter)
    assert 'num_workers' not in r


def test_train_fine_tuning_shards_with_a_dist_kvstore(hotdog, monkeypatch):
    """With a dist kvstore the training loader is the worker's shard, dropping the last
    partial batch, and the same kvstore reaches the Trainer and train_ch13."""
    train_imgs, test_imgs = finetune.hotdog_datasets(hotdog)
    net = finetune.small_resnet(2, width=8)
    net.initialize(init.Xavier())
    seen = {}

    def fake_train_ch13(net, train_iter, test_iter, loss, trainer, *args, **kwargs):
        seen.update(train=train_iter, test=test_iter, trainer=trainer, kv=kwargs['kvstore'])
        return {}

    monkeypatch.setattr(finetune, 'train_ch13', fake_train_ch13)
    fake = _FakeDistKV(rank=1, num_workers=3)
    finetune.train_fine_tuning(net, 0.05, batch_size=3, num_epochs=1, devices=CPU,
                               train_imgs=train_imgs, test_imgs=test_imgs, kvstore=fake)
    n = len(train_imgs)          # 12: shards of 4, one full batch of 3 each
    assert len(seen['train']._dataset) == n // 3 and len(seen['train']) == (n // 3) // 3
    assert len(seen['test']._dataset) == len(test_imgs)   # rank 0 evaluates all of it
    assert seen['kv'] is fake and _given(seen['trainer']) is fake
    # shard 1 of 3: the examples 1, 4, 7, 10 (dist.shard_indices)
    labels = [seen['train']._dataset[i][1] for i in range(len(seen['train']._dataset))]
    assert labels == [train_imgs[i][1] for i in (1, 4, 7, 10)]


def test_lr_mult_survives_the_servers_copy_of_the_optimizer():
    """MXNet pickles the optimizer to the servers without ``param_dict``: 13.2's 10x output
    layer would train at 1x there. ``keep_param_mults`` carries the multipliers."""
    src = finetune.small_resnet(10, width=4)
    src.initialize(init.Xavier())
    net = finetune.make_finetune_net(src, 2, lr_mult=10)
    net.features.collect_params('.*bias').setattr('wd_mult', 0)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.5, 'wd': 0.01})
    out_idx = [i for i, p in enumerate(trainer._params) if p.name.startswith(
        net.output.prefix)]
    bias_idx = [i for i, p in enumerate(trainer._params) if p.name.endswith('bias') and
                i not in out_idx]
    other = [i for i in range(len(trainer._params)) if i not in out_idx + bias_idx]
    assert len(out_idx) == 2 and bias_idx and other

    def on_server(opt):
        return pickle.loads(pickle.dumps(opt, 0))   # as KVStore.set_optimizer sends it

    lost = on_server(trainer._optimizer)
    assert lost._get_lrs(out_idx) == [0.5, 0.5]           # MXNet's behaviour: 1x
    dist.keep_param_mults(trainer)
    kept = on_server(trainer._optimizer)
    assert kept._get_lrs(out_idx) == [5.0, 5.0]
    assert kept._get_lrs(other) == [0.5] * len(other)
    assert kept._get_wds(bias_idx) == [0.0] * len(bias_idx)
    assert kept._get_wds(other + out_idx) == [0.01] * len(other + out_idx)
    # on the worker nothing changed: param_dict and the copied tables agree
    assert trainer._optimizer._get_lrs(out_idx) == [5.0, 5.0]


# ---------------------------------------------------------------- 13.11 train_fcn

@pytest.fixture(scope='module')
def tiny_voc(tmp_path_factory):
    root = tmp_path_factory.mktemp('dsvoc') / 'voc2012'
    return d2lcv.hub.synth_twin('voc2012', root=str(root), num_train=8, num_val=6, scale=0.25)


def _seg_net():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, 3, padding=1), nn.BatchNorm(), nn.Activation('relu'),
            nn.Conv2D(21, 1))
    net.initialize(init.Xavier(), ctx=CPU)
    return net


@pytest.mark.parametrize('kind', _kvstores())
def test_train_fcn_kvstore_reaches_trainer(tiny_voc, trainers, kind):
    mx.random.seed(0)
    onp.random.seed(0)
    kv = _make(kind)
    train_iter, test_iter = segmentation.load_data_voc(4, (32, 48), voc_dir=tiny_voc,
                                                       num_workers=0, verbose=False)
    test_iter = list(test_iter)  # VOC's test crops are random: fix one set for both reads
    net = _seg_net()
    r = fcn.train_fcn(net, train_iter, test_iter, num_epochs=4, lr=0.01, wd=1e-4,
                      devices=CPU, optimizer='adam', verbose=False, progress=False,
                      kvstore=kv)
    _check_reached(trainers, kv)
    ys = r['history']['y'][0]
    assert ys[-1] < ys[0]
    # the reported figure is the trained net's pixel accuracy over the valid (non-void) pixels
    assert r['test_acc'] == d2lcv.evaluate_accuracy_gpus(net, test_iter, ignore_label=255)


def test_load_data_voc_shards_for_a_dist_kvstore(tiny_voc):
    full, _ = segmentation.load_data_voc(2, (32, 48), voc_dir=tiny_voc, num_workers=0,
                                         verbose=False)
    n = len(full._dataset)
    got = []
    for rank in range(3):
        it, _ = segmentation.load_data_voc(2, (32, 48), voc_dir=tiny_voc, num_workers=0,
                                           verbose=False, kvstore=_FakeDistKV(rank, 3))
        got.append(len(it._dataset))
        assert len(it) == (n // 3) // 2
    assert got == [n // 3] * 3


# ---------------------------------------------------------------- 13.13 / 13.14

def _tiny_cnn(num_classes):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, 3, padding=1), nn.BatchNorm(), nn.Activation('relu'),
            nn.MaxPool2D(4), nn.Flatten(), nn.Dense(num_classes))
    net.initialize(init.Xavier(), ctx=CPU)
    return net


@pytest.fixture(scope='module')
def cifar_sets(tmp_path_factory):
    d = d2lcv.hub.synth_twin('cifar10_tiny', root=str(tmp_path_factory.mktemp('kc') / 'c'),
                         num_train=80, num_test=5)
    K.reorg_cifar10_data(d, 0.1)
    return K.read_image_folders(d)


@pytest.mark.parametrize('kind', _kvstores())
def test_train_cifar10_kvstore_reaches_trainer(cifar_sets, trainers, kind, tmp_path):
    mx.random.seed(0)
    kv = _make(kind)
    train_iter, valid_iter, _, _ = K.kaggle_loaders(
        cifar_sets, 8, K.transform_test_cifar10(), K.transform_test_cifar10(), kvstore=kv)
    net = _tiny_cnn(10)
    r = K.train_cifar10(net, train_iter, valid_iter, 4, 0.05, 5e-4, CPU,
                        lr_period=3, lr_decay=0.1, verbose=False, kvstore=kv,
                        save_path=str(tmp_path / 'c.png'))
    _check_reached(trainers, kv)
    xs, ys = r['history']['x'][0], r['history']['y'][0]
    assert ys[-1] < ys[xs.index(1.0)]
    assert r['lr'] == pytest.approx(0.005)   # the chapter's set_learning_rate, no dist
    # the reported figure is the trained net's accuracy on the whole validation set
    assert r['valid_acc'] == d2lcv.evaluate_accuracy_gpus(net, valid_iter)
    assert 'num_workers' not in r


@pytest.mark.parametrize('kind', _kvstores())
def test_train_dog_kvstore_reaches_trainer(tmp_path, trainers, kind):
    mx.random.seed(0)
    onp.random.seed(0)   # the loader's shuffle
    kv = _make(kind)
    d = d2lcv.hub.synth_twin('dog_tiny', root=str(tmp_path / 'd'), num_train=40, num_test=4,
                         num_breeds=3)
    K.reorg_dog_data(d, 0.1)
    ds = K.read_image_folders(d)
    train_iter, valid_iter, _, _ = K.kaggle_loaders(ds, 8, K.transform_test_dog(32),
                                                    K.transform_test_dog(32), kvstore=kv)
    net = K.get_net_dog(CPU, 3, features=K.small_features(), pretrained=False)
    loss0 = K.evaluate_loss(train_iter, net, CPU)
    r = K.train_dog(net, train_iter, valid_iter, 6, 0.1, 1e-4, CPU, lr_period=5,
                    lr_decay=0.5, verbose=False, kvstore=kv, save_path=str(tmp_path / 'd.png'))
    _check_reached(trainers, kv)
    # the fitted head, scored on the whole training set (the last epoch's running mean of a
    # few noisy batches was not a reliable figure: that assertion failed 1 run in 3)
    assert K.evaluate_loss(train_iter, net, CPU) < loss0 and r['lr'] == pytest.approx(0.05)
    assert r['history']['legend'] == ['train loss', 'valid loss']


class _EmulatedServer:
    """In-process stand-in for a dist kvstore's ``init`` / ``pull``: rank 0's init value is
    stored (the other ranks' init is ignored, as MXNet's), a pull reads the stored value."""

    def __init__(self):
        self.store = {}

    def worker(self, rank):
        server = self

        class KV(_FakeDistKV):
            def init(self, key, value):
                if self.rank == 0:
                    server.store[key] = value.asnumpy().copy()

            def pull(self, key, out):
                out[:] = mx.nd.array(server.store[key], dtype=out.dtype)

        return KV(rank, 2)


def test_broadcast_params_gives_every_worker_rank_0s_frozen_features():
    server = _EmulatedServer()
    nets = []
    for rank in range(2):
        mx.random.seed(100 + rank)   # each worker's own random features
        net = K.small_features((4, 8))
        net.initialize(init.Xavier(), ctx=CPU)
        net(mx.np.ones((2, 3, 16, 16)))   # deferred init done; conv weights used once
        nets.append(net)
    before = [{k: v.data().asnumpy().copy() for k, v in n.collect_params().items()}
              for n in nets]
    names = list(before[0])
    assert any(not onp.array_equal(before[0][a], before[1][b])
               for a, b in zip(names, before[1]))
    n = [dist.broadcast_params(server.worker(r), nets[r].collect_params()) for r in range(2)]
    assert n == [len(names)] * 2 == [12] * 2
    assert sorted(server.store) == list(range(dist.BROADCAST_KEY_BASE,
                                              dist.BROADCAST_KEY_BASE + 12))
    for net in nets:   # both hold rank 0's values now, in their own arrays
        for (k, v), k0 in zip(net.collect_params().items(), names):
            onp.testing.assert_array_equal(v.data().asnumpy(), before[0][k0], err_msg=k)
    # without a dist kvstore: nothing to do
    assert dist.broadcast_params('local', nets[1].collect_params()) == 0
    assert dist.broadcast_params(mx.kv.create('local'), nets[1].collect_params()) == 0


def test_kaggle_loaders_shard_the_training_sets(cifar_sets):
    whole = K.kaggle_loaders(cifar_sets, 4, K.transform_test_cifar10(),
                             K.transform_test_cifar10())
    for rank in range(2):
        parts = K.kaggle_loaders(cifar_sets, 4, K.transform_test_cifar10(),
                                 K.transform_test_cifar10(), kvstore=_FakeDistKV(rank, 2))
        for k in (0, 2):   # train, train_valid: this worker's half
            assert len(parts[k]._dataset) == len(whole[k]._dataset) // 2
        for k in (1, 3):   # valid, test: whole (rank 0 evaluates)
            assert len(parts[k]._dataset) == len(whole[k]._dataset)


@pytest.fixture
def steps(monkeypatch):
    """``gluon.Trainer.step`` made a recorder (no update, no kvstore traffic): each call
    appends ``(batch_size, the optimizer as the servers would receive it)``."""
    made = []

    def step(self, batch_size, ignore_stale_grad=False):
        made.append((batch_size, pickle.loads(pickle.dumps(self._optimizer, 0))))

    monkeypatch.setattr(gluon.Trainer, 'step', step)
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    return made


@pytest.mark.parametrize('kv_type,per_push', [('dist_sync', 1), ('dist_async', 2)])
def test_kaggle_step_decay_runs_on_the_servers(cifar_sets, steps, capsys, tmp_path, kv_type,
                                               per_push):
    """With a dist kvstore the servers get a pickled copy of the optimizer at the first step
    and never see ``set_learning_rate``: the step decay rides on that copy, equal to the
    chapter's table over the servers' update count. Rank 1 neither validates, prints nor
    draws."""
    fake = _FakeDistKV(rank=1, num_workers=2, type=kv_type)
    T = K.transform_test_cifar10()
    train_iter, valid_iter, _, _ = K.kaggle_loaders(cifar_sets, 8, T, T, kvstore=fake)
    lr, period, decay, epochs, nb = 0.1, 2, 0.5, 5, len(train_iter)
    png = tmp_path / 'never.png'
    r = K.train_cifar10(_tiny_cnn(10), train_iter, valid_iter, epochs, lr, 5e-4, CPU,
                        lr_period=period, lr_decay=decay, kvstore=fake, save_path=str(png))
    assert len(steps) == epochs * nb
    # a synchronous step is normalised by the global batch (2 workers x 8)
    assert {b for b, _ in steps} == {16 if kv_type == 'dist_sync' else 8}
    sched = steps[0][1].lr_scheduler
    for n in range(1, epochs * nb * per_push + 1):   # the servers' num_update
        epoch = (n - 1) // (nb * per_push)
        assert sched(n) == pytest.approx(K.lr_at_epoch(lr, epoch, period, decay)), n
    assert r['lr'] == pytest.approx(K.lr_at_epoch(lr, epochs - 1, period, decay))
    assert r['valid_acc'] is None and r['rank'] == 1 and r['num_workers'] == 2
    assert r['history']['legend'] == ['train loss', 'train acc']
    assert capsys.readouterr().out == '' and not png.exists()


def test_train_dog_gives_every_worker_rank_0s_frozen_features(tmp_path, steps):
    """13.14's frozen features are not the Trainer's: ``train_dog`` under a dist kvstore
    starts every worker from rank 0's (the emulated servers' init/pull)."""
    d = d2lcv.hub.synth_twin('dog_tiny', root=str(tmp_path / 'd'), num_train=40, num_test=4,
                         num_breeds=3)
    K.reorg_dog_data(d, 0.1)
    ds = K.read_image_folders(d)
    server, feats = _EmulatedServer(), []
    for rank in range(2):
        mx.random.seed(100 + rank)   # each worker's own random features
        kv = server.worker(rank)
        train_iter, _, _, _ = K.kaggle_loaders(ds, 4, K.transform_test_dog(32),
                                               K.transform_test_dog(32), kvstore=kv)
        net = K.get_net_dog(CPU, 3, features=K.small_features((4, 8)), pretrained=False)
        K.train_dog(net, train_iter, None, 1, 0.1, 1e-4, CPU, verbose=False, kvstore=kv)
        feats.append([p.data().asnumpy() for p in net.features.collect_params().values()])
    assert len(server.store) == len(feats[0]) == 12
    for a, b, key in zip(*feats, sorted(server.store)):
        onp.testing.assert_array_equal(a, server.store[key])
        onp.testing.assert_array_equal(b, server.store[key])


# ---------------------------------------------------------------- 13.7 train_ssd

@pytest.fixture(scope='module')
def bananas(tmp_path_factory):
    root = tmp_path_factory.mktemp('dsssd') / 'bananas'
    return d2lcv.hub.synth_twin('bananas', root=str(root), num_train=32, num_val=8, edge=64)


@pytest.mark.parametrize('kind', _kvstores())
def test_train_ssd_kvstore_reaches_trainer(bananas, trainers, kind):
    from d2lcv.bananas import load_data_bananas
    mx.random.seed(0)
    kv = _make(kind)
    train_iter, _ = load_data_bananas(16, 64, data_dir=bananas, kvstore=kv)
    r = ssd.train_ssd(ssd.TinySSD(1), train_iter, 3, devices=CPU, progress=False,
                      verbose=False, kvstore=kv)
    _check_reached(trainers, kv)
    assert r['loss_history'][-1] < r['loss_history'][0]


def test_load_data_bananas_shards_for_a_dist_kvstore(bananas):
    from d2lcv.bananas import load_data_bananas
    whole, _ = load_data_bananas(4, 64, data_dir=bananas)
    seqs = [load_data_bananas(4, 64, data_dir=bananas, kvstore=_FakeDistKV(r, 2))[0].seq
            for r in range(2)]
    assert [len(s) for s in seqs] == [len(whole.seq) // 2] * 2
    assert sorted(list(seqs[0]) + list(seqs[1])) == sorted(whole.seq)   # disjoint, complete
    X, Y = next(ssd.batches(load_data_bananas(4, 64, data_dir=bananas,
                                              kvstore=_FakeDistKV(1, 2))[0]))
    assert X.shape == (4, 3, 64, 64) and Y.shape[0] == 4


def test_train_ssd_refuses_a_caller_trainer_on_another_kvstore():
    net = ssd.TinySSD(1)
    net.initialize(init.Xavier(), ctx=CPU)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    with pytest.raises(ValueError, match="Trainer was created with kvstore='device'"):
        ssd.train_ssd(net, [], 1, trainer=trainer, devices=CPU, kvstore=_FakeDistKV())


# ---------------------------------------------------------------- dist_sync on loopback

@pytest.mark.slow
def test_train_fine_tuning_dist_sync_two_workers_agree(tmp_path, monkeypatch):
    """2 workers + 1 server: each fine-tunes on its half of a tiny hot dog twin (output
    layer lr_mult 10, SGD with weight decay on the server), from different random
    initialisations; both end with the same weights and only rank 0 reports."""
    monkeypatch.setenv('D2LCV_DATA_DIR', str(tmp_path / 'data'))
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    monkeypatch.setenv('D2LCV_NUM_WORKERS', '0')
    twin = d2lcv.hub.synth_twin('hotdog', root=str(tmp_path / 'twin'), num_train=16, num_test=4,
                            min_size=24, max_size=40)
    out = io.StringIO()
    code = launch(2, 1, [sys.executable, WORKER, str(tmp_path), twin], timeout=40, out=out)
    text = out.getvalue()
    assert code == 0, text
    info = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2)]
    for r, rec in enumerate(info):
        assert rec['rank'] == r and rec['num_workers'] == 2
        assert rec['batches'] == 4   # 32 images, 16 a worker, 4 a batch
    # the job learned: rank 0's loss over the whole training set (both shards; its initial
    # weights were the job's starting point), BatchNorm in eval mode
    assert info[0]['loss_after'] < 0.8 * info[0]['loss_before'], info
    assert info[0]['test_acc'] is not None and info[1]['test_acc'] is None
    assert '[worker 0] loss' in text and '[worker 1] loss' not in text
    p0, p1 = ({k: v.asnumpy() for k, v in mx.npx.load(str(tmp_path / f'rank{r}.params'))
               .items()} for r in range(2))
    trained = [k for k in p0 if not k.endswith(('running_mean', 'running_var'))]
    assert p0.keys() == p1.keys() and len(trained) >= 6
    for k in trained:
        onp.testing.assert_array_equal(p0[k], p1[k], err_msg=k)
    # the multipliers reach the servers: the lr_mult=0 convolution kept rank 0's initial
    # weights (the kvstore's starting point), the rest moved
    p_init = {k: v.asnumpy() for k, v in mx.npx.load(str(tmp_path / 'init0.params')).items()}
    frozen = [k for k in trained if k.startswith('features.0.')]
    assert frozen
    for k in trained:
        same = onp.array_equal(p0[k], p_init[k])
        assert same == (k in frozen), k
