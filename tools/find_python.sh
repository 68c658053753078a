#!/bin/sh
# Print the name of a Python that MXNet 1.9.1 supports (3.8-3.11: its numpy<1.24 has no
# wheels for newer ones), or say in one sentence what to install and exit 1.
# Usage: tools/find_python.sh [PYTHON]   (PYTHON: the interpreter `make PYTHON=...` asked for)
version() { "$1" --version 2>&1 | sed -n 's/^Python \([0-9]*\.[0-9]*\).*/\1/p'; }
supported() {
    case "$(version "$1")" in 3.8|3.9|3.10|3.11) return 0 ;; *) return 1 ;; esac
}
advice='MXNet 1.9.1 needs Python 3.8-3.11: install one (e.g. `uv python install 3.11`, `pyenv install 3.11` or `conda create -n py311 python=3.11`) and run `make setup PYTHON=/path/to/python3.11`.'
if [ -n "$1" ]; then
    if command -v "$1" >/dev/null 2>&1 && supported "$1"; then echo "$1"; exit 0; fi
    v=$(version "$1")
    if [ -n "$v" ]; then v="Python $v"; else v='not a runnable Python'; fi
    echo "PYTHON=$1 is $v; $advice" >&2
    exit 1
fi
for p in python3 python3.11 python3.10 python3.9 python3.8; do
    if command -v "$p" >/dev/null 2>&1 && supported "$p"; then echo "$p"; exit 0; fi
done
v=$(command -v python3 >/dev/null 2>&1 && version python3)
if [ -n "$v" ]; then v="Python $v"; else v='missing'; fi
echo "No Python 3.8-3.11 found (python3 is $v); $advice" >&2
exit 1
