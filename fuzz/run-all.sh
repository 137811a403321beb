#!/bin/sh
# Runs every fuzz target for $1 seconds each (default 600), one at a time,
# from binaries built with `cargo +nightly fuzz build -O`.
set -u
secs=${1:-600}
bin=${FUZZ_BIN:-target/x86_64-unknown-linux-gnu/release}
cd "$(dirname "$0")"
for t in ${TARGETS:-feed_csv feed_tsv feed_json feed_ndjson feed_text normalize}; do
    mkdir -p corpus/$t artifacts/$t
    "$bin/$t" corpus/$t -max_total_time="$secs" -artifact_prefix=artifacts/$t/ -print_final_stats=1 \
        > "artifacts/$t.log" 2>&1
    echo "$t: exit $?"
done
