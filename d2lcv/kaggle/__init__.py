"""Kaggle competitions: CIFAR-10 (section 13.13) and dog breed identification (13.14).

From raw competition files to ``submission.csv``, one module per job:

* :mod:`~d2lcv.kaggle.reorg` -- :func:`read_csv_labels`, :func:`copyfile`,
  :func:`reorg_train_valid`, :func:`reorg_test`, :func:`reorg_cifar10_data`,
  :func:`reorg_dog_data` build ``<data_dir>/train_valid_test/{train,valid,train_valid,test}/
  <class>/<image>`` (checked inputs, :class:`KaggleDataError` naming the file and line;
  atomic, fingerprinted and locked, so re-runs and concurrent runs are safe).
* :mod:`~d2lcv.kaggle.loaders` -- the chapter's transforms (:func:`transform_train_cifar10`,
  ...), :func:`read_image_folders`, :func:`subsample`, :func:`kaggle_loaders`.
* :mod:`~d2lcv.kaggle.submit` -- :func:`predict_labels`, :func:`predict_probs`,
  :func:`write_cifar10_submission` (``id,label``), :func:`write_dog_submission` (``id`` + one
  probability column per breed) and :func:`check_submission` (against the sample file).
* :mod:`~d2lcv.kaggle.cifar10` -- 13.13: :func:`get_net_cifar10` (``resnet18`` from scratch),
  :func:`train_cifar10` and the pipeline :func:`kaggle_cifar10`.
* :mod:`~d2lcv.kaggle.dog` -- 13.14: :func:`get_net_dog` (frozen feature extractor +
  trainable ``output_new``), :func:`small_features`, :func:`evaluate_loss`,
  :func:`train_dog` and the pipeline :func:`kaggle_dog`.

Both training functions keep the chapter's ``train(net, train_iter, valid_iter, num_epochs,
lr, wd, devices, lr_period, lr_decay)``.
"""
from ._run import lr_at_epoch
from .cifar10 import get_net_cifar10, kaggle_cifar10, train_cifar10
from .dog import evaluate_loss, get_net_dog, kaggle_dog, small_features, train_dog
from .loaders import (CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD, kaggle_loaders,
                      read_image_folders, subsample, transform_test_cifar10, transform_test_dog,
                      transform_train_cifar10, transform_train_dog)
from .reorg import (SPLITS, KaggleDataError, copyfile, read_csv_labels, reorg_cifar10_data,
                    reorg_dog_data, reorg_test, reorg_train_valid)
from .submit import (check_submission, image_ids, predict_labels, predict_probs,
                     write_cifar10_submission, write_dog_submission)

__all__ = ['KaggleDataError', 'read_csv_labels', 'copyfile', 'reorg_train_valid', 'reorg_test',
           'reorg_cifar10_data', 'reorg_dog_data', 'transform_train_cifar10',
           'transform_test_cifar10', 'transform_train_dog', 'transform_test_dog',
           'read_image_folders', 'subsample', 'kaggle_loaders', 'get_net_cifar10', 'lr_at_epoch',
           'train_cifar10', 'small_features', 'get_net_dog', 'evaluate_loss', 'train_dog',
           'image_ids', 'predict_labels', 'predict_probs', 'write_cifar10_submission',
           'write_dog_submission', 'check_submission', 'kaggle_cifar10', 'kaggle_dog',
           'SPLITS', 'CIFAR10_MEAN', 'CIFAR10_STD', 'IMAGENET_MEAN', 'IMAGENET_STD']
