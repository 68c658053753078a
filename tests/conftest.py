"""Test environment: offline, quiet, small, and never writing outside temporary folders."""
import os

# Set before d2lcv / mxnet are imported by any test module.
os.environ.setdefault('OMP_WAIT_POLICY', 'passive')
os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ['D2LCV_NUM_WORKERS'] = '0'
os.environ.pop('D2LCV_TINY', None)

import pytest  # noqa: E402


@pytest.fixture(scope='session', autouse=True)
def _isolated_data_dir(tmp_path_factory):
    """Every test session gets its own data cache and figure folder."""
    root = tmp_path_factory.mktemp('d2lcv')
    os.environ['D2LCV_DATA_DIR'] = str(root / 'data')
    os.environ['D2LCV_FIG_DIR'] = str(root / 'figs')
    # the model zoo must never be reached from a test
    os.environ['MXNET_HOME'] = str(root / 'mxnet_home')
    os.environ['MXNET_GLUON_REPO'] = 'http://127.0.0.1:9/'
    yield root


@pytest.fixture
def two_cpus():
    """Two CPU contexts: MXNet treats them as two devices (the multi-device code paths)."""
    import mxnet as mx
    return [mx.cpu(0), mx.cpu(1)]


@pytest.fixture
def d2lcv_anchors_impl():
    """Run a test on d2lcv's anchor implementation whatever $D2LCV_ANCHORS_IMPL says."""
    from d2lcv import anchors
    before = anchors.get_impl()
    anchors.set_impl('d2lcv')
    yield
    anchors.set_impl(before)
