"""Data-parallel training on MXNet's parameter server (``dist_sync`` / ``dist_async``).

Distribution enters where a Trainer and a training loader are built, nowhere else:

* :mod:`~d2lcv.dist.kvstore` -- :func:`create_kvstore` (the process's one dist ``KVStore``),
  :func:`kv_rank`, :func:`kv_num_workers`, :func:`step_workers`, :func:`trainer_kvstore`,
  :func:`lead_only_dir`;
* :mod:`~d2lcv.dist.shard` -- each worker's equal shard (:func:`shard_loader`, ...);
* :mod:`~d2lcv.dist.params` -- :func:`keep_param_mults`, :func:`broadcast_params`,
  :func:`broadcast_block`;
* :mod:`~d2lcv.dist.launch` -- ``d2lcv launch`` (``python -m d2lcv.dist.launch``): the job
  on one machine, every process guarded by :mod:`~d2lcv.dist._guard`;
* :mod:`~d2lcv.dist.mxlaunch` -- MXNet's own launcher for several machines
  (``python -m d2lcv.dist.mxlaunch``), with its Python 3.9 fix.

The pattern (what ``train_with_data_aug(..., kvstore='dist_sync')`` does)::

    kv = d2lcv.dist.create_kvstore('dist_sync')          # once per process
    train_iter = d2lcv.augment.load_cifar10(True, augs, batch_size,
                                    num_parts=kv.num_workers, part_index=kv.rank)
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr}, kvstore=kv)
    d2lcv.train_ch13(net, train_iter, test_iter, loss, trainer, num_epochs, devices,
                     kvstore=kv)

run under ``d2lcv launch -n WORKERS -s SERVERS -- python script.py``. What a dist kvstore
changes (shards, batch per worker, learning rate, who reports, BatchNorm statistics) is
written once, in docs/distributed.md ("What changes with a dist kvstore").
"""
from .kvstore import (create_kvstore, is_distributed, kv_num_workers, kv_rank, lead_only_dir,
                      step_workers, trainer_kvstore)
from .params import BROADCAST_KEY_BASE, broadcast_block, broadcast_params, keep_param_mults
from .shard import ShardedDataset, shard_args, shard_dataset, shard_indices, shard_loader

__all__ = ['create_kvstore', 'is_distributed', 'kv_rank', 'kv_num_workers',
           'trainer_kvstore', 'shard_indices', 'ShardedDataset', 'shard_dataset',
           'shard_loader', 'shard_args', 'lead_only_dir', 'keep_param_mults', 'step_workers',
           'broadcast_params', 'broadcast_block', 'BROADCAST_KEY_BASE']
