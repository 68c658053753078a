"""Each worker's equal shard of a data set, and a training loader over it."""
from mxnet import gluon

from .kvstore import is_distributed, kv_num_workers, kv_rank

__all__ = ['shard_indices', 'ShardedDataset', 'shard_dataset', 'shard_loader', 'shard_args']


def shard_indices(n, num_parts, part_index):
    """Indices of shard ``part_index`` of ``n`` examples split into ``num_parts`` equal shards.

    Strided (``part_index, part_index + num_parts, ...``) and cut to ``n // num_parts``
    examples, so every worker gets exactly as many examples (and so as many batches: with
    ``dist_sync`` a worker with one batch more would wait forever for the others).
    """
    if num_parts < 1 or not 0 <= part_index < num_parts:
        raise ValueError(f'part_index {part_index} is not in [0, num_parts={num_parts})')
    per = n // num_parts
    return list(range(part_index, per * num_parts, num_parts))


class ShardedDataset(gluon.data.Dataset):
    """The examples of ``dataset`` at ``indices`` (a view; nothing is copied)."""

    def __init__(self, dataset, indices):
        self._data = dataset
        self._indices = list(indices)

    def __len__(self):
        return len(self._indices)

    def __getitem__(self, idx):
        return self._data[self._indices[idx]]


def shard_dataset(dataset, num_parts=1, part_index=0):
    """Equal shard ``part_index`` of ``num_parts`` of a Gluon dataset (itself if one part)."""
    if num_parts == 1 and part_index == 0:
        return dataset
    return ShardedDataset(dataset, shard_indices(len(dataset), num_parts, part_index))


def shard_loader(dataset, batch_size, kvstore=None, shuffle=True, **kwargs):
    """A training ``DataLoader`` over this worker's shard of ``dataset``.

    Without a dist kvstore: over the whole data set (``DataLoader``'s defaults). With one:
    over shard ``kv.rank`` of ``kv.num_workers`` equal shards, dropping the last partial
    batch (every worker must take as many steps of the same size). The section training
    functions build their training loaders with it, e.g.
    ``shard_loader(train_imgs.transform_first(train_augs), batch_size, kv)``.
    """
    if is_distributed(kvstore):
        dataset = shard_dataset(dataset, kv_num_workers(kvstore), kv_rank(kvstore))
        kwargs.setdefault('last_batch', 'discard')
    return gluon.data.DataLoader(dataset, batch_size, shuffle=shuffle, **kwargs)


def shard_args(kvstore=None):
    """``dict(num_parts=..., part_index=...)`` naming this worker's shard, for MXNet's
    iterators that take those keywords (``ImageRecordIter``, ``ImageDetIter``): one part
    without a dist kvstore, shard ``kv.rank`` of ``kv.num_workers`` with one."""
    return dict(num_parts=kv_num_workers(kvstore), part_index=kv_rank(kvstore))
