#!/usr/bin/env bash
# Fuzzes the HTTP API with schemathesis (a tool we did not write, from PyPI) against the
# OpenAPI document the gateway serves: it generates requests from every operation's schema,
# valid and invalid, and fails on any 5xx, any status the document does not list, and any
# response body, header or content type that breaks the document. The embedded platform runs
# with authentication on, requests carry an admin's token (so every route is exercised past
# its access check), rate limits are off.
#
#   scripts/schemathesis.sh [path to the metachat binary]   (default: the debug build)
#
# The virtualenv lives in ~/.cache/metachat/schemathesis-3.39.16 and is reused. Prints the
# operations, the requests sent and the failures found.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${HOME}/.cache/metachat"
venv="${cache}/schemathesis-3.39.16"
python="${PYTHON:-python3}"
binary="${1:-${CARGO_TARGET_DIR:-target}/debug/metachat}"
examples="${SCHEMATHESIS_EXAMPLES:-15}"

installed() {
    [ -x "${venv}/bin/st" ] &&
        [ "$("${venv}/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" = "3.39.16" ]
}

if ! installed; then
    echo "installing schemathesis 3.39.16 into ${venv}"
    rm -rf "${venv}"
    mkdir -p "${cache}"
    "${python}" -m venv "${venv}"
    # hypothesis pinned: newer releases changed an API schemathesis 3.39 uses.
    "${venv}/bin/pip" install --quiet --disable-pip-version-check \
        "schemathesis==3.39.16" "hypothesis==6.112.0"
fi

port() { "${python}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
data="$(mktemp -d)"
secret="schemathesis-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
gateway=$(port)
env -i PATH="$PATH" HOME="$HOME" DATA_DIR="${data}" PORT="${gateway}" USER_SERVICE_PORT="$(port)" \
    DIARY_SERVICE_PORT="$(port)" AUTH_TOKEN_SECRET="${secret}" RATE_LIMIT_PER_MINUTE=0 \
    SIGN_IN_RATE_LIMIT_PER_MINUTE=0 LOG_FORMAT=json LOG_LEVEL=warn \
    ${METACHAT_MODEL_DIR:+METACHAT_MODEL_DIR="${METACHAT_MODEL_DIR}"} \
    "${binary}" > "${data}/platform.log" 2>&1 &
platform=$!
trap 'kill "${platform}" 2>/dev/null || true; wait "${platform}" 2>/dev/null || true; rm -rf "${data}"' EXIT
for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:${gateway}/health/ready" > /dev/null 2>&1 && break
    sleep 0.1
done
admin=$(env -i AUTH_TOKEN_SECRET="${secret}" "${binary}" token --user 5c4e0b8e-0000-4000-8000-000000000001 --admin)

status=0
# From the scratch directory: hypothesis keeps its example database in ./.hypothesis.
cd "${data}"
"${venv}/bin/st" run "http://127.0.0.1:${gateway}/openapi.json" \
    --experimental=openapi-3.1 \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --hypothesis-max-examples "${examples}" --hypothesis-derandomize \
    --exclude-path-regex '^/(docs.*)?$' \
    -H "Authorization: Bearer ${admin}" \
    --no-color > "${data}/schemathesis.txt" 2>&1 || status=$?
grep -E '^(GET|POST|PUT|DELETE) |passed|failed|errored' "${data}/schemathesis.txt" || true
if [ "${status}" -ne 0 ]; then
    sed -n '/FAILURES/,$p' "${data}/schemathesis.txt" | head -200
    echo "platform log:"; tail -50 "${data}/platform.log"
    exit "${status}"
fi
echo "schemathesis: every operation passed $(grep -cE '^(GET|POST|PUT|DELETE) ' "${data}/schemathesis.txt") operations, up to ${examples} examples each"
