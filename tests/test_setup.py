"""`make setup` picks a Python MXNet 1.9.1 supports, or stops at once saying what to install."""
import os
import shutil
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stub(folder, name, version):
    """An executable ``name`` in ``folder`` that reports ``Python <version>`` and does nothing."""
    path = os.path.join(folder, name)
    with open(path, 'w') as f:
        f.write(f'#!/bin/sh\necho "Python {version}"\n')
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def project(tmp_path):
    """The files `make setup` reads, in a folder with no .venv."""
    for name in ('Makefile', 'pyproject.toml', 'constraints.txt'):
        shutil.copy(os.path.join(ROOT, name), tmp_path)
    (tmp_path / 'tools').mkdir()
    shutil.copy(os.path.join(ROOT, 'tools', 'find_python.sh'), tmp_path / 'tools')
    return tmp_path


@pytest.mark.skipif(shutil.which('make') is None, reason='make is not installed')
def test_make_setup_with_a_too_new_python_stops_within_seconds(project, tmp_path_factory):
    bins = tmp_path_factory.mktemp('bin')
    py313 = _stub(str(bins), 'python3.13', '3.13.1')
    t = time.monotonic()
    proc = subprocess.run(['make', 'setup', f'PYTHON={py313}'], cwd=project,
                          capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - t
    assert proc.returncode != 0
    assert f'PYTHON={py313} is Python 3.13; MXNet 1.9.1 needs Python 3.8-3.11' in proc.stderr
    assert '`uv python install 3.11`' in proc.stderr
    assert not (project / '.venv').exists()
    assert seconds < 10, seconds  # a sentence, not a numpy build


def _find(args, bins):
    """Run the finder with only ``bins`` (the stubs, and the sed it needs) on the PATH."""
    os.symlink(shutil.which('sed'), os.path.join(bins, 'sed'))
    return subprocess.run([shutil.which('sh'), os.path.join(ROOT, 'tools', 'find_python.sh'),
                           *args], capture_output=True, text=True, timeout=30,
                          env={'PATH': str(bins)})


def test_finder_skips_a_too_new_python3_for_python3_11(tmp_path):
    _stub(str(tmp_path), 'python3', '3.13.0')
    _stub(str(tmp_path), 'python3.11', '3.11.9')
    _stub(str(tmp_path), 'python3.10', '3.10.2')
    proc = _find([], tmp_path)
    assert (proc.returncode, proc.stdout.strip()) == (0, 'python3.11')


def test_finder_takes_python3_when_supported(tmp_path):
    _stub(str(tmp_path), 'python3', '3.10.12')
    _stub(str(tmp_path), 'python3.11', '3.11.9')
    proc = _find([], tmp_path)
    assert (proc.returncode, proc.stdout.strip()) == (0, 'python3')


def test_finder_without_a_supported_python_says_what_to_install(tmp_path):
    _stub(str(tmp_path), 'python3', '3.12.3')
    proc = _find([], tmp_path)
    assert proc.returncode == 1 and proc.stdout == ''
    assert proc.stderr.startswith('No Python 3.8-3.11 found (python3 is Python 3.12); ')
    assert proc.stderr.count('\n') == 1
