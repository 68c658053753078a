"""Import hygiene of the package, read from the source with ``ast`` (nothing is imported):

* no module imports another module's private (``_name``) names, by ``from .x import _name``
  or by ``x._name`` on an imported module; shared private helpers live in the designated
  private modules (``_arrays``, ``_util``, ``_guard``), which anyone may import from;
* no import cycle among d2lcv's modules, counting the imports inside functions too (a lazy
  import hides a circle from Python, not from a reader).
"""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'd2lcv')
SHARED_PRIVATE = {'d2lcv._arrays', 'd2lcv._util', 'd2lcv.dist._guard'}
# Private imports inside the training loops that issue 14's engine half (train.py,
# ssd.train_ssd, rcnn.train_faster_rcnn, kaggle) replaces; each must disappear with it (the
# test fails on a listed import that is gone, so the list only shrinks).
PENDING = set()


def _modules():
    """``{dotted name: path}`` of every module of the package."""
    out = {}
    for folder, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith('.py'):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, '.')
                out[rel[:-len('.__init__')] if rel.endswith('.__init__') else rel] = path
    return out


MODULES = _modules()


def _resolve(module, node):
    """The dotted module an ``ImportFrom`` node of ``module`` reads from."""
    if node.level == 0:
        return node.module
    package = module.split('.')
    if not MODULES[module].endswith('__init__.py'):
        package = package[:-1]
    base = package[:len(package) - (node.level - 1)]
    return '.'.join(base + ([node.module] if node.module else []))


def _imports(module):
    """``[(target module, imported name or None, line)]`` of every import in ``module``,
    plus ``(target, attribute, line)`` for ``alias._name`` reads on an imported module."""
    with open(MODULES[module]) as f:
        tree = ast.parse(f.read())
    out, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if not target or not target.startswith('d2lcv'):
                continue
            for a in node.names:
                sub = f'{target}.{a.name}'
                if sub in MODULES:                  # `from . import anchors`: a module
                    out.append((sub, None, node.lineno))
                    aliases[a.asname or a.name] = sub
                else:
                    out.append((target, a.name, node.lineno))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith('d2lcv'):
                    out.append((a.name, None, node.lineno))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith('_')
                and not node.attr.startswith('__')):
            out.append((aliases[node.value.id], node.attr, node.lineno))
    return out


def _private_imports():
    found = set()
    for module in MODULES:
        for target, name, line in _imports(module):
            if (name and name.startswith('_') and not name.startswith('__')
                    and target != module and target not in SHARED_PRIVATE):
                found.add((module, target, name, line))
    return found


def test_no_module_imports_another_modules_private_names():
    found = _private_imports()
    bad = sorted(f for f in found if f[:3] not in PENDING)
    assert not bad, '\n'.join(f'{m} line {line}: {n} from {t}' for m, t, n, line in bad)
    gone = PENDING - {f[:3] for f in found}
    assert not gone, f'no longer imported, drop from PENDING: {sorted(gone)}'


def test_the_checker_sees_private_imports(tmp_path, monkeypatch):
    # the walk above must catch both spellings, or the test could not fail
    pkg = tmp_path / 'd2lcv'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / 'a.py').write_text('def _h():\n    pass\n')
    (pkg / 'b.py').write_text('def f():\n    from .a import _h\n    return _h\n')
    (pkg / 'c.py').write_text('from . import a as aa\nx = aa._h\n')
    (pkg / 'd.py').write_text('from ._arrays import host\n')
    (pkg / '_arrays.py').write_text('def host():\n    pass\n')
    monkeypatch.setattr(__import__(__name__), 'ROOT', str(pkg))
    monkeypatch.setattr(__import__(__name__), 'MODULES', _modules())
    assert {f[:3] for f in _private_imports()} == {('d2lcv.b', 'd2lcv.a', '_h'),
                                                    ('d2lcv.c', 'd2lcv.a', '_h')}


def _graph():
    graph = {}
    for module in MODULES:
        deps = set()
        for target, _, _ in _imports(module):
            # `from .x import name` depends on x; importing d2lcv.a.b also runs d2lcv.a
            parts = target.split('.')
            for k in range(2, len(parts) + 1):
                dep = '.'.join(parts[:k])
                if dep in MODULES and dep != module and not module.startswith(dep + '.'):
                    deps.add(dep)
        graph[module] = deps
    return graph


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def test_no_import_cycles_among_the_modules():
    cycles = _cycles(_graph())
    assert not cycles, cycles


@pytest.mark.parametrize('graph, expected', [
    ({'a': {'b'}, 'b': {'a'}, 'c': set()}, [['a', 'b']]),
    ({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}, [['a', 'b', 'c']]),
    ({'a': {'b'}, 'b': {'c'}, 'c': set()}, []),
])
def test_cycle_finder(graph, expected):
    assert _cycles(graph) == expected
