"""train_ch13 and its helpers, on two CPU devices and the CIFAR twin."""
import os
import types

import mxnet as mx
import numpy as onp
import pytest
from mxnet import autograd, gluon, init, np, npx

import d2lcv as d2l
from d2lcv import train as T


def _small_net():
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(8, 3, padding=1), gluon.nn.BatchNorm(), gluon.nn.Activation('relu'),
            gluon.nn.MaxPool2D(2), gluon.nn.Conv2D(16, 3, padding=1), gluon.nn.BatchNorm(),
            gluon.nn.Activation('relu'), gluon.nn.GlobalAvgPool2D(), gluon.nn.Dense(10))
    return net


def _data(n_train, n_test, batch_size):
    import tempfile
    from d2lcv import augment
    from easydata import write_easy_cifar
    # class = colour (tests/easydata.py): the machinery's test, not the twin's level
    os.makedirs(os.environ['D2LCV_DATA_DIR'], exist_ok=True)
    root = write_easy_cifar(tempfile.mkdtemp(dir=os.environ['D2LCV_DATA_DIR']), 250, 100)
    train_iter = augment.load_cifar10(True, augment.test_augs(), batch_size, root=root,
                                      limit=n_train)
    test_iter = augment.load_cifar10(False, augment.test_augs(), batch_size, root=root,
                                     limit=n_test)
    return train_iter, test_iter


def _fit(devices, num_epochs, tmp_path, n_train=210, batch_size=20, **kwargs):
    mx.random.seed(0)
    onp.random.seed(0)
    net = _small_net()
    net.initialize(init.Xavier(), ctx=devices)
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.01})
    train_iter, test_iter = _data(n_train, 100, batch_size)
    result = d2l.train_ch13(net, train_iter, test_iter, gluon.loss.SoftmaxCrossEntropyLoss(),
                            trainer, num_epochs, devices,
                            save_path=str(tmp_path / 'anim.png'), **kwargs)
    return net, trainer, result


def test_train_ch13_two_devices_uneven_last_batch(two_cpus, tmp_path, capsys):
    # 210 examples in batches of 20: the last batch has 10, split 5/5 over two devices;
    # batch 20 split 10/10; the loss must fall and the accuracy beat chance.
    _, _, result = _fit(two_cpus, 4, tmp_path)
    history = result['history']
    losses = history['y'][0]
    assert losses[-1] < losses[0] * 0.8
    assert result['train_acc'] > 0.3 and result['test_acc'] > 0.2
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-2].startswith('loss ') and ', train acc ' in out[-2] and 'test acc' in out[-2]
    assert out[-1].endswith('examples/sec on [cpu(0), cpu(1)]')
    assert (tmp_path / 'anim.png').stat().st_size > 1000
    # 11 batches: 5 animator points per epoch at batches 2, 4, 6, 8, 10 plus the last one
    assert len(history['x'][0]) == 4 * 6
    assert len(history['x'][2]) == 4


def test_train_ch13_fewer_than_five_batches(tmp_path):
    _, _, result = _fit([mx.cpu()], 2, tmp_path, n_train=30, batch_size=16)
    assert len(result['history']['x'][0]) == 2 * 2  # every batch is a report point
    assert result['epochs_run'] == 2


def test_train_batch_ch13_chapter_signature(two_cpus):
    # a net whose output is its input: loss and correct count known exactly, and a step of
    # lr 0.1 on the bias's gradient (softmax - one-hot, averaged over the 5 examples)
    net = gluon.nn.Dense(3, in_units=3, use_bias=True)
    net.initialize(init.Constant(0), ctx=two_cpus)
    net.weight.set_data(np.eye(3))
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    X = np.array([[2., 0, 0], [0, 2., 0], [0, 0, 2.], [2., 0, 0], [0, 2., 0]])
    y = np.array([0, 1, 0, 2, 1], dtype='float32')
    loss_sum, correct = d2l.train_batch_ch13(net, X, y, gluon.loss.SoftmaxCrossEntropyLoss(),
                                             trainer, two_cpus, d2l.split_batch)
    assert isinstance(loss_sum, float) and isinstance(correct, float)
    p = onp.exp(2) / (onp.exp(2) + 2)           # probability of the row's hot class
    q = 1 / (onp.exp(2) + 2)                    # of each other class
    assert correct == 3.0                       # rows 0, 1, 4 are right
    assert loss_sum == pytest.approx(-3 * onp.log(p) - 2 * onp.log(q), rel=1e-5)
    probs = onp.where(onp.eye(3)[[0, 1, 2, 0, 1]] > 0, p, q)
    grad_b = (probs - onp.eye(3)[[0, 1, 0, 2, 1]]).mean(axis=0)
    for dev in two_cpus:
        onp.testing.assert_allclose(net.bias.data(dev).asnumpy(), -0.1 * grad_b, atol=1e-6)


def test_checkpoint_resumes_from_saved_epoch(tmp_path, capsys):
    ckpt = str(tmp_path / 'ckpt' / 'run')
    # interrupted after 2 epochs, then resumed for the third
    _fit([mx.cpu()], 2, tmp_path, checkpoint=ckpt)
    assert sorted(os.listdir(ckpt + '.ckpt')) == ['manifest.json', 'model.params', 'state.json',
                                                 'trainer.states']
    capsys.readouterr()
    net_resumed, _, resumed = _fit([mx.cpu()], 3, tmp_path, checkpoint=ckpt)
    assert 'resuming from' in capsys.readouterr().out
    assert resumed['epochs_run'] == 1
    # the history of the first two epochs was restored, the third appended
    assert len(resumed['history']['x'][2]) == 3
    # the third epoch continued from the saved weights (its loss is well below the first
    # epoch's) instead of restarting from scratch
    assert resumed['history']['y'][0][-1] < resumed['history']['y'][0][0] * 0.8
    # a finished run resumes to nothing
    _, _, again = _fit([mx.cpu()], 3, tmp_path, checkpoint=ckpt)
    assert again['epochs_run'] == 0
    assert again['test_acc'] == pytest.approx(resumed['test_acc'])


def test_checkpoint_loads_saved_parameters(tmp_path):
    ckpt = str(tmp_path / 'c')
    net, _, _ = _fit([mx.cpu()], 1, tmp_path, checkpoint=ckpt)
    fresh = _small_net()
    fresh.initialize(init.Xavier())
    trainer = gluon.Trainer(fresh.collect_params(), 'adam', {'learning_rate': 0.01})
    train_iter, test_iter = _data(20, 20, 10)
    d2l.train_ch13(fresh, train_iter, test_iter, gluon.loss.SoftmaxCrossEntropyLoss(),
                   trainer, 1, [mx.cpu()], checkpoint=ckpt, save_path=str(tmp_path / 'a.png'))
    for (k1, p1), (k2, p2) in zip(net.collect_params().items(),
                                  fresh.collect_params().items()):
        assert onp.array_equal(p1.data().asnumpy(), p2.data().asnumpy()), k1


def test_accuracy_and_accumulator():
    y_hat = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    y = np.array([1, 1, 1])
    assert d2l.accuracy(y_hat, y) == 2.0
    assert d2l.accuracy(np.array([1, 0, 1]), y) == 2.0
    acc = d2l.Accumulator(2)
    acc.add(1, np.array(2.0))
    acc.add(3, 4)
    assert (acc[0], acc[1]) == (4.0, 6.0)
    acc.reset()
    assert acc[0] == 0.0


def test_evaluate_accuracy_gpus_matches_loop(two_cpus):
    net = _small_net()
    net.initialize(init.Xavier(), ctx=two_cpus)
    _, test_iter = _data(10, 45, 10)
    expected = total = 0
    for X, y in test_iter:
        expected += (net(X.as_in_ctx(mx.cpu(0))).argmax(axis=1).asnumpy()
                     == y.asnumpy()).sum()
        total += len(y)
    assert d2l.evaluate_accuracy_gpus(net, test_iter) == pytest.approx(expected / total)


def test_timer(monkeypatch):
    clock = iter([10.0, 10.5, 20.0, 22.0])  # start, stop, start, stop
    monkeypatch.setattr(T, 'time', types.SimpleNamespace(time=lambda: next(clock)))
    t = d2l.Timer()
    assert t.stop() == 0.5
    t.start()
    assert t.stop() == 2.0
    assert t.times == [0.5, 2.0] and t.sum() == 2.5 and t.avg() == 1.25
    assert t.cumsum() == [0.5, 2.5]


def _corr2d_loop(X, K):
    h, w = K.shape
    Y = onp.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


def test_corr2d_chapter_example_reference_and_operator():
    X = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    K = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert d2l.corr2d(X, K).asnumpy().tolist() == [[19.0, 25.0], [37.0, 43.0]]
    rng = onp.random.default_rng(0)
    Xr, Kr = rng.normal(size=(7, 9)), rng.normal(size=(3, 2))
    ours = d2l.corr2d(np.array(Xr), np.array(Kr)).asnumpy()
    assert onp.allclose(ours, _corr2d_loop(Xr, Kr), atol=1e-5)
    conv = npx.convolution(np.array(Xr).reshape(1, 1, 7, 9), np.array(Kr).reshape(1, 1, 3, 2),
                           kernel=(3, 2), num_filter=1, no_bias=True)
    assert onp.allclose(ours, conv.asnumpy()[0, 0], atol=1e-5)


def test_get_dataloader_workers(monkeypatch):
    monkeypatch.setenv('D2LCV_NUM_WORKERS', '3')
    assert d2l.get_dataloader_workers() == 3
    monkeypatch.delenv('D2LCV_NUM_WORKERS')
    monkeypatch.setattr(T.os, 'cpu_count', lambda: 2)
    assert d2l.get_dataloader_workers() == 2
    monkeypatch.setattr(T.os, 'cpu_count', lambda: 16)
    assert d2l.get_dataloader_workers() == 4
    monkeypatch.setattr(T.os, 'cpu_count', lambda: None)
    assert d2l.get_dataloader_workers() == 1


def test_empty_train_iter_is_refused(tmp_path):
    net = _small_net()
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    with pytest.raises(ValueError, match='no batch'):
        d2l.train_ch13(net, [], None, gluon.loss.SoftmaxCrossEntropyLoss(), trainer, 1,
                       save_path=str(tmp_path / 'a.png'))


def test_train_ch13_hands_its_lr_schedule_to_fit(tmp_path):
    net = gluon.nn.Dense(3, in_units=2)
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 9.0})
    used, step = [], trainer.step

    def recording_step(*args, **kwargs):
        step(*args, **kwargs)
        used.append(trainer.learning_rate)  # the rate of the update just made
    trainer.step = recording_step
    data = [(np.ones((4, 2)), np.array([0, 1, 2, 0]))] * 2
    r = d2l.train_ch13(net, data, None, gluon.loss.SoftmaxCrossEntropyLoss(), trainer, 3,
                       lr_schedule=T.step_decay(0.5, 1, 0.1), progress=False, verbose=False,
                       save_path=str(tmp_path / 'a.png'))
    assert used == pytest.approx([0.5] * 2 + [0.05] * 2 + [0.005] * 2)
    assert r['lr'] == pytest.approx(0.005)


def test_fit_lr_schedule_per_epoch_on_two_devices(two_cpus):
    """The schedule is the optimizer's (one mechanism, local and dist): each step uses its
    epoch's rate, with two devices updating; afterwards the Trainer keeps the last rate."""
    net = gluon.nn.Dense(1, in_units=1, use_bias=False)
    net.initialize(init.Constant(0), ctx=two_cpus)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 9.0})
    data = [(np.ones((2, 1)), np.ones((2, 1)))] * 3
    used = []

    def step(batch, trainer):
        X, y = batch
        with autograd.record():
            ls = [((net(x) - t) ** 2 / 2) for x, t in zip(*d2l.split_batch(X, y, two_cpus))]
        for l in ls:
            l.backward()
        trainer.step(X.shape[0])
        used.append(trainer.learning_rate)
        return (X.shape[0],)

    r = T.fit(net, data, step, trainer, epochs=3, devices=two_cpus,
            metrics=lambda s: {'n': s[0]}, curves={'n': 'n'},
            lr_schedule=T.step_decay(0.5, 1, 0.1), progress=False, verbose=False,
            animator_kw={}, save_path=os.devnull)
    assert used == pytest.approx([0.5] * 3 + [0.05] * 3 + [0.005] * 3)
    assert r['lr'] == pytest.approx(0.005) and trainer.learning_rate == pytest.approx(0.005)
    # w <- w - lr (w - 1) for each step: the rates really were applied
    w = 0.0
    for lr in used:
        w -= lr * (w - 1)
    assert net.weight.data(two_cpus[1]).asnumpy()[0, 0] == pytest.approx(w, rel=1e-5)
    trainer.set_learning_rate(0.3)  # the chapter's call works again
    assert r['log'] == [{'n': 6.0, 'epoch': 1}, {'n': 6.0, 'epoch': 2}, {'n': 6.0, 'epoch': 3}]
