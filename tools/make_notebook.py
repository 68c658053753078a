"""Notebooks: write one from a list of cells, or strip outputs from existing ones.

The notebooks in ``notebooks/`` are the source: edit them in Jupyter (``make notebooks``) and
save them without outputs, e.g. ``python tools/make_notebook.py --strip notebooks/*.ipynb``
(tests/test_notebooks.py checks they are stored clean). ``make_notebook(path, cells)`` writes
a new notebook from ``[('md', text), ('code', source), ...]``. Cell ids are derived from the
cell's text, so rewriting a notebook changes only the ids of the cells that changed.
"""
import hashlib
import sys

import nbformat


def _ids(nb):
    seen = set()
    for cell in nb.cells:
        base = hashlib.sha1(cell.source.encode()).hexdigest()[:8]
        cid, k = base, 1
        while cid in seen:
            k += 1
            cid = f'{base}-{k}'
        seen.add(cid)
        cell['id'] = cid


def make_notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3',
                                 'language': 'python'}
    for kind, text in cells:
        text = text.strip('\n')
        nb.cells.append(nbformat.v4.new_markdown_cell(text) if kind == 'md'
                        else nbformat.v4.new_code_cell(text))
    _ids(nb)
    nbformat.write(nb, path)


def strip(path):
    """Remove outputs, execution counts and per-cell metadata in place; keep cell ids."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.metadata = {}
        if cell.cell_type == 'code':
            cell.outputs, cell.execution_count = [], None
    nb.metadata = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3',
                                  'language': 'python'}}
    nbformat.write(nb, path)


if __name__ == '__main__':
    if sys.argv[1:2] != ['--strip'] or len(sys.argv) < 3:
        sys.exit('usage: python tools/make_notebook.py --strip NOTEBOOK.ipynb ...')
    for p in sys.argv[2:]:
        strip(p)
