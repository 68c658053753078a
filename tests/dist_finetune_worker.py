"""A parameter-server worker for tests/test_dist_sections.py (run under ``d2lcv.dist.launch``).

    python dist_finetune_worker.py OUT_DIR HOTDOG_DIR

Fine-tunes a small ResNet on this worker's shard of the hot dog twin at ``HOTDOG_DIR`` with
``train_fine_tuning(..., kvstore='dist_sync')``: every worker starts from its own random
weights, the first convolution has ``lr_mult=0`` (it must not move, which holds only if
the servers' optimizer keeps the multipliers) and the output layer the chapter's 10.
Writes ``OUT_DIR/rank<r>.params`` (final weights), ``OUT_DIR/rank<r>.json`` and, on rank 0,
``OUT_DIR/init0.params`` (its initial weights: the kvstore starts every worker from them).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mxnet as mx  # noqa: E402
from mxnet import gluon, init  # noqa: E402

from d2lcv import dist, finetune  # noqa: E402


def main():
    out, twin = sys.argv[1], sys.argv[2]
    kv = dist.create_kvstore('dist_sync')
    rank, workers = dist.kv_rank(kv), dist.kv_num_workers(kv)
    finetune.set_seed(100 + rank)   # different weights on every worker
    src = finetune.small_resnet(2, width=8)
    src.initialize(init.Xavier(), ctx=[mx.cpu()])
    net = finetune.make_finetune_net(src, 2, lr_mult=10)
    net.features[0].collect_params().setattr('lr_mult', 0)
    net(mx.np.zeros((1, 3, 24, 24)))   # shapes known, so the initial weights can be saved
    if rank == 0:
        net.save_parameters(os.path.join(out, 'init0.params'))
    train_imgs, test_imgs = finetune.hotdog_datasets(twin)
    aug = finetune.test_augs(24, 28)
    whole = gluon.data.DataLoader(train_imgs.transform_first(aug), 32)

    def train_set_loss():
        """Mean loss over the whole training set (all shards), BatchNorm in eval mode."""
        loss = gluon.loss.SoftmaxCrossEntropyLoss()
        return sum(float(loss(net(X), y).sum()) for X, y in whole) / len(train_imgs)

    loss_before = train_set_loss()   # rank 0's: the job's starting point
    result = finetune.train_fine_tuning(net, 0.05, batch_size=4, num_epochs=8,
                                        devices=[mx.cpu()], train_imgs=train_imgs,
                                        test_imgs=test_imgs, train_transform=aug,
                                        test_transform=aug, kvstore='dist_sync',
                                        progress=False)
    net.save_parameters(os.path.join(out, f'rank{rank}.params'))
    # train_ch13 reports every batch when an epoch has <= 9: the first point is 1 / batches
    batches = round(1 / min(result['history']['x'][0]))
    info = {'rank': rank, 'num_workers': workers, 'batches': batches,
            'first_loss': result['history']['y'][0][0], 'train_loss': result['train_loss'],
            'epoch_losses': [y for x, y in zip(result['history']['x'][0],
                                               result['history']['y'][0])
                             if float(x).is_integer()],
            'test_acc': result.get('test_acc'), 'loss_before': loss_before,
            'loss_after': train_set_loss()}
    with open(os.path.join(out, f'rank{rank}.json'), 'w') as f:
        json.dump(info, f)


if __name__ == '__main__':
    main()
