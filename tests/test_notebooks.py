"""Every notebook in notebooks/ runs top to bottom on the synthetic twins (D2LCV_TINY=1)."""
import glob
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, 'notebooks', '*.ipynb')))


def test_there_are_notebooks():
    assert any(os.path.basename(p).startswith('13_01_') for p in NOTEBOOKS)


@pytest.mark.slow
@pytest.mark.parametrize('path', NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch, tmp_path_factory):
    nbformat = pytest.importorskip('nbformat')
    nbclient = pytest.importorskip('nbclient')
    monkeypatch.setenv('D2LCV_TINY', '1')
    monkeypatch.setenv('D2LCV_FIG_DIR', str(tmp_path_factory.mktemp('nbfigs')))
    monkeypatch.setenv('PYTHONPATH', ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name='python3',
                                     resources={'metadata': {'path': os.path.dirname(path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])
              if o.get('output_type') == 'error']
    assert not errors
