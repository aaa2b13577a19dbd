#!/usr/bin/env bash
# cargo fuzz over every parser of untrusted bytes (fuzz/fuzz_targets/): WebSocket client frames,
# the bus codec, upload sniffing and file names, the image inspector, the audio container probes,
# the audio decoders and the search query parser.
#
#   scripts/fuzz.sh [--secs N] [TARGET ...]
#
# Each target runs N seconds (default 20) from its seeds (fuzz/seeds/TARGET, committed) plus the
# corpus earlier runs grew (target/fuzz-corpus/TARGET, kept between runs). A crash, a panic, a
# run over 10 s on one input or over 2 GiB fails; libFuzzer writes the input to
# fuzz/artifacts/TARGET/, and the fix gets a regression test in the crate that owns the parser.
# Prints each target's executions for docs/RELIABILITY.md. Needs the nightly toolchain (rustup);
# installs cargo-fuzz with `cargo install` when missing. Without a sanitizer (`-s none`): the code
# is safe Rust, and a sanitizer build of the dependencies would double the build time.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CARGO_FUZZ_VERSION=0.13.2
SECS=20
targets=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --secs) SECS=$2; shift 2 ;;
        -*) echo "unknown option: $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "cargo fuzz needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install -q --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi

# Its own target dir: the nightly, instrumented build must not evict the stable one's artifacts.
export CARGO_TARGET_DIR=${NATTER_FUZZ_TARGET_DIR:-$ROOT/target/fuzz}
cd fuzz
cargo +nightly fuzz build -s none --release
status=0
report=()
for target in "${targets[@]}"; do
    corpus=$ROOT/target/fuzz-corpus/$target
    mkdir -p "$corpus" "artifacts/$target"
    log=$ROOT/target/fuzz-$target.log
    echo "==> $target: ${SECS}s"
    # A target without committed seeds (git keeps no empty directory) starts from nothing.
    seeds=()
    [[ -d seeds/$target ]] && seeds=("seeds/$target")
    if cargo +nightly fuzz run -s none --release "$target" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        report+=("$target: ${execs:-?} executions in ${SECS}s, no crash")
    else
        tail -40 "$log" >&2
        report+=("$target: FAILED (log $log; input in fuzz/artifacts/$target/)")
        status=1
    fi
done
printf '%s\n' "${report[@]}"
exit "$status"
