#!/usr/bin/env bash
# Checks the dependency direction of natter's crates (ARCHITECTURE.md's invariants) with
# `cargo tree`, normal edges only (dev- and build-dependencies do not ship):
#
#   proto <- core <- {store, bus, gateway, ...} <- natter
#
# * natter-proto depends on no other natter crate;
# * natter-core depends on natter-proto only, and on none of sqlx, axum, tonic;
# * the adapters (natter-store, natter-bus, natter-blob, natter-media, natter-redis,
#   natter-discovery) and natter-gateway use no natter crate but proto/core, so the gateway never
#   reaches storage or the bus except through core's ports;
# * only natter-store uses sqlx directly, only natter-gateway (and natter-bench's ceiling server)
#   axum, only natter-rpc tonic; natter-bench uses natter-proto only;
# * no crate reaches aws-lc-rs/aws-lc-sys or opusic-sys (both built with cmake).
#
# Prints every violation, exits 1 if there was any. Run from anywhere.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

failures=0
fail() {
    echo "dependency rule broken: $*" >&2
    failures=$((failures + 1))
}

members=$(cargo tree --workspace --depth 0 -e normal --prefix none --format '{p}' | awk 'NF { print $1 }' | sort -u)
is_member() { grep -qx "$1" <<<"$members"; }

# Every package `crate` reaches through normal edges, itself excluded.
closure() { cargo tree -p "$1" -e normal --prefix none --format '{p}' | awk -v self="$1" 'NF && $1 != self { print $1 }' | sort -u; }

# Workspace crates that list `package` as a direct normal dependency.
direct_dependents() {
    cargo tree --workspace -e normal --depth 1 --no-dedupe --prefix depth --format '{p}' |
        awk -v dep="$1" '
            match($1, /^[0-9]+/) {
                depth = substr($1, 1, RLENGTH); name = substr($1, RLENGTH + 1)
                if (depth == 0) root = name
                else if (depth == 1 && name == dep) print root
            }' |
        sort -u
}

# allow_natter CRATE ALLOWED...: CRATE reaches no natter crate outside ALLOWED.
allow_natter() {
    local crate=$1 dep
    shift
    is_member "$crate" || return 0
    for dep in $(closure "$crate" | grep -E '^natter(-|$)' || true); do
        if [[ " $* " != *" $dep "* ]]; then
            fail "$crate depends on $dep (allowed natter crates: ${*:-none})"
        fi
    done
}

# forbid_prefix CRATE PREFIX...: CRATE reaches no package named PREFIX or PREFIX-*.
forbid_prefix() {
    local crate=$1 prefix dep
    shift
    is_member "$crate" || return 0
    for prefix in "$@"; do
        for dep in $(closure "$crate" | grep -E "^$prefix(-|$)" || true); do
            fail "$crate depends on $dep"
        done
    done
}

# only_user PACKAGE CRATE...: no workspace crate but the CRATEs depends directly on PACKAGE.
only_user() {
    local package=$1 user
    shift
    for user in $(direct_dependents "$package"); do
        [[ " $* " == *" $user "* ]] || fail "$user depends on $package directly (only $* may)"
    done
}

allow_natter natter-proto
allow_natter natter-core natter-proto
forbid_prefix natter-core sqlx axum tonic
allow_natter natter-store natter-proto natter-core
allow_natter natter-bus natter-proto natter-core
allow_natter natter-blob natter-proto natter-core
allow_natter natter-media natter-proto natter-core
allow_natter natter-redis natter-proto natter-core
forbid_prefix natter-redis sqlx axum
allow_natter natter-gateway natter-proto natter-core
allow_natter natter-search natter-proto natter-core
forbid_prefix natter-search sqlx axum
forbid_prefix natter-gateway sqlx
allow_natter natter-speech natter-proto natter-core
forbid_prefix natter-speech sqlx axum
# Discovery knows addresses and role names, not services: no storage, HTTP server or gRPC.
allow_natter natter-discovery natter-proto natter-core
forbid_prefix natter-discovery sqlx axum tonic
# The benchmark is a client of the public contract: wire types only.
allow_natter natter-bench natter-proto
# The gRPC layer carries services; it reaches no storage itself.
allow_natter natter-rpc natter-proto natter-core
forbid_prefix natter-rpc sqlx
# Test support (a dev-dependency only) creates throwaway databases; it uses no natter crate.
allow_natter natter-testkit
only_user sqlx natter-store natter-testkit
only_user sqlx-core natter-store natter-testkit
# natter-bench's ceiling server must use the same WebSocket library as the gateway.
only_user axum natter-gateway natter-bench
only_user tonic natter-rpc
only_user redis natter-redis
# The build needs no cmake for TLS or Opus: rustls with ring (not aws-lc), Opus with opus-rs (not
# libopus through opusic-sys).
for member in $members; do
    forbid_prefix "$member" aws-lc opusic
done

if [[ $failures -gt 0 ]]; then
    echo "$failures dependency rule(s) broken" >&2
    exit 1
fi
echo "dependency rules hold for: $(tr '\n' ' ' <<<"$members")"
