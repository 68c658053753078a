"""Write a notebook from a list of cells: ``make_notebook(path, [('md', text), ('code', src)])``.

Notebooks are generated (without outputs) so that they stay thin and reviewable as code.
"""
import nbformat


def make_notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3',
                                 'language': 'python'}
    for kind, text in cells:
        text = text.strip('\n')
        nb.cells.append(nbformat.v4.new_markdown_cell(text) if kind == 'md'
                        else nbformat.v4.new_code_cell(text))
    nbformat.write(nb, path)
