#!/usr/bin/env bash
# A short fuzzing smoke (docs/fuzzing.md): builds every target with libFuzzer's coverage
# instrumentation (the flags `cargo fuzz build -O -s none` uses, so cargo-fuzz itself is not
# needed, and neither is a nightly compiler), replays the kept corpus, then fuzzes each
# target for a few seconds. Fails on any crash, and says where the crashing input is.
#
#   fuzz/smoke.sh            # every target, KITH_FUZZ_SECONDS (default 5) each
#   fuzz/smoke.sh sealed     # only the targets named
#
# New corpus entries and crash inputs go to a temporary directory; the committed corpus is
# only read.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_EACH=${KITH_FUZZ_SECONDS:-5}
TARGETS=(wire_request wire_response sealed user_record contact_code group_op group_frame signal avatar media)
if [ $# -gt 0 ]; then
    TARGETS=("$@")
fi

HOST=$(rustc -vV | sed -n 's/^host: //p')
TARGET_DIR=${CARGO_TARGET_DIR:-target}
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 -Cllvm-args=-sanitizer-coverage-stack-depth \
-Ccodegen-units=1"
export CARGO_INCREMENTAL=0

build_start=$(date +%s)
bins=()
for t in "${TARGETS[@]}"; do bins+=(--bin "$t"); done
cargo build --locked --release --target "$HOST" "${bins[@]}"
echo "fuzz smoke: build took $(($(date +%s) - build_start)) s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for t in "${TARGETS[@]}"; do
    bin="$TARGET_DIR/$HOST/release/$t"
    mkdir -p "$work/$t" "$work/artifacts"
    # The kept corpus first (seeds and inputs that once crashed), then a short run from it.
    if ! "$bin" "$work/$t" "corpus/$t" -max_total_time="$SECONDS_EACH" -seed=1 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/$t-" >"$work/$t.log" 2>&1; then
        echo "fuzz smoke: $t FAILED" >&2
        tail -40 "$work/$t.log" >&2
        for a in "$work/artifacts/$t-"*; do
            [ -e "$a" ] || continue
            mkdir -p artifacts
            cp "$a" artifacts/
            echo "fuzz smoke: crashing input kept in fuzz/artifacts/$(basename "$a")" >&2
        done
        status=1
        continue
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log")
    echo "fuzz smoke: $t ok, $runs runs ($rate/s)"
done
exit $status
