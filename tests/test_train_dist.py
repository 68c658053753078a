"""``d2lcv.train.fit``'s distributed path checked numerically, not only for plumbing.

Two ``dist_sync`` workers with batch ``B`` each and one process with batch ``2B`` over the
same examples in the same order (tests/dist_fit_worker.py) must end with the same
parameters: plain SGD, no BatchNorm, a step-decay schedule across two epochs (so the one
schedule mechanism is checked on the servers too). A step normalised by the worker's own
batch instead of the global one moves every weight twice as far and fails this.
"""
import io
import os
import sys

import numpy as onp
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import dist_fit_worker as W  # noqa: E402

from d2lcv.dist.launch import launch  # noqa: E402

BATCH = 4


def test_one_process_run_learns_and_is_deterministic():
    a, ra = W.train(2 * BATCH)
    b, _ = W.train(2 * BATCH)
    pa, pb = W.params(a), W.params(b)
    for k in pa:
        onp.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    # the weights moved away from their start, and the schedule decayed: 0.5 then 0.1
    start = W.params(W.net())
    assert all(onp.abs(pa[k] - start[k]).max() > 1e-3 for k in pa)
    assert ra['lr'] == pytest.approx(0.1)
    assert len(ra['log']) == W.EPOCHS


@pytest.mark.slow
def test_two_dist_sync_workers_match_one_process_with_twice_the_batch(tmp_path):
    out = io.StringIO()
    code = launch(2, 1, [sys.executable, os.path.join(HERE, 'dist_fit_worker.py'),
                         str(tmp_path), str(BATCH)], timeout=60, out=out)
    assert code == 0, out.getvalue()
    single, _ = W.train(2 * BATCH)
    want = W.params(single)
    start = W.params(W.net())
    for r in range(2):
        got = dict(onp.load(tmp_path / f'rank{r}.npz'))
        assert got.keys() == want.keys()
        for k in want:
            # the run did move the weights (by far more than the tolerance)
            assert onp.abs(want[k] - start[k]).max() > 1e-3, k
            onp.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-5,
                                        err_msg=f'rank {r} {k}')
