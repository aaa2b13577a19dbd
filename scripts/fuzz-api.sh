#!/usr/bin/env bash
# API fuzzing: schemathesis (PyPI) against a real `natter serve` and its own /openapi.json.
#
#   scripts/fuzz-api.sh [--secs N] [--seed S] [--bin PATH]
#
# Starts natter (embedded defaults, a throwaway data dir under target/, a free port), registers a
# user and runs every operation of the document with that user's access token: the coverage,
# fuzzing and stateful phases (schemathesis follows the links it infers from responses, e.g. a
# created conversation's id into its messages), for N seconds (default 90). It fails on any
# response that is a 5xx, has a status the document does not list, a content type or headers
# other than documented, or a body that contradicts the documented schema; and on a panic in the
# server's log. A seed makes the generated cases repeatable (the test command passes a fixed one;
# a long run takes a random one and prints it).
#
# Not fuzzed here (they end the fuzzer's own session, so everything after would be a 401):
# POST /auth/logout, PUT /users/me/password and DELETE /auth/sessions/{id}. The API tests and the
# authorization matrix cover them. The WebSocket is not HTTP: its frames are fuzzed by cargo fuzz.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SCHEMATHESIS_VERSION=4.32.5
VENV=$ROOT/target/schemathesis-venv
SECS=90
SEED=
BIN=$ROOT/target/debug/natter
while [[ $# -gt 0 ]]; do
    case $1 in
        --secs) SECS=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

if [[ ! -x $VENV/bin/schemathesis ]] || ! "$VENV/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "installing schemathesis==$SCHEMATHESIS_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" </dev/null
fi
[[ -x $BIN ]] || cargo build -q -p natter

WORK=$(mktemp -d "$ROOT/target/fuzz-api.XXXXXX")
SERVER_PID=
cleanup() {
    [[ -z $SERVER_PID ]] || kill "$SERVER_PID" 2>/dev/null || true
    [[ -z $SERVER_PID ]] || wait "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT

# natter refuses unknown NATTER_* variables, and the test script exports NATTER_TEST_*.
unset_natter=()
mapfile -t unset_natter < <(compgen -e | grep '^NATTER_' | sed 's/^/--unset=/')
# Cheap password hashes and no registration limit: the fuzzer registers users by the thousand.
env "${unset_natter[@]}" NATTER_DATA_DIR="$WORK/data" NATTER_AUTH__ARGON2_MEMORY_KIB=256 \
    NATTER_AUTH__ARGON2_ITERATIONS=1 NATTER_AUTH__REGISTER_MAX_PER_ADDRESS=0 RUST_LOG=warn \
    "$BIN" serve --listen 127.0.0.1:0 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
BASE=
for _ in {1..300}; do
    BASE=$(sed -n 's/^natter listening on //p' "$WORK/server.log" | head -1)
    [[ -z $BASE ]] || break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
[[ -n $BASE ]] || { cat "$WORK/server.log" >&2; echo "natter did not start" >&2; exit 1; }

TOKEN=$(curl -sf -X POST -H 'content-type: application/json' "$BASE/api/v1/auth/register" \
    -d '{"username":"fuzzer","password":"correct-horse-9"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

seed_args=()
[[ -z $SEED ]] || seed_args=(--seed "$SEED")
status=0
# From the work dir: schemathesis keeps a cache in the current directory.
cd "$WORK"
"$VENV/bin/schemathesis" --no-color run "$BASE/openapi.json" \
    -H "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --exclude-path /api/v1/auth/logout --exclude-path /api/v1/users/me/password \
    --exclude-path-regex '^/api/v1/auth/sessions/' \
    --max-time "$SECS" --workers 2 "${seed_args[@]}" \
    --report junit --report-dir "$WORK/report" || status=$?

if grep -n "panicked" "$WORK/server.log"; then
    echo "the server panicked during the fuzz run (log: $WORK/server.log)" >&2
    status=1
fi
kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server died during the fuzz run" >&2; status=1; }
echo "schemathesis report and server log: $WORK"
exit "$status"
