#!/usr/bin/env bash
# Scores common/sentiment's conformance corpus with the reference VADER, the PyPI package
# vaderSentiment 3.3.2, and writes the JSON that common/sentiment/tests/conformance.rs compares
# the Rust port against. `make test` runs it before the tests.
#
# The virtualenv lives in ~/.cache/metachat/vader-3.3.2 and is reused; the output goes to
# $METACHAT_VADER_REFERENCE, by default ~/.cache/metachat/vader-reference-3.3.2.json (where the
# test looks). Set PYTHON to pick the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${HOME}/.cache/metachat"
venv="${cache}/vader-3.3.2"
out="${METACHAT_VADER_REFERENCE:-${cache}/vader-reference-3.3.2.json}"
python="${PYTHON:-python3}"

installed() {
    [ -x "${venv}/bin/python" ] &&
        [ "$("${venv}/bin/python" -c 'import importlib.metadata as m; print(m.version("vaderSentiment"))' 2>/dev/null)" = "3.3.2" ]
}

if ! installed; then
    echo "installing vaderSentiment 3.3.2 into ${venv}"
    rm -rf "${venv}"
    mkdir -p "${cache}"
    "${python}" -m venv "${venv}"
    "${venv}/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
        -r scripts/vader-reference.requirements.txt
fi

mkdir -p "$(dirname "${out}")"
"${venv}/bin/python" scripts/vader-reference.py common/sentiment/tests/corpus.txt "${out}.tmp"
mv "${out}.tmp" "${out}"
echo "reference scores: ${out}"
