#!/usr/bin/env bash
# Builds the wire fuzzer and runs it for a bounded number of inputs.
# Usage: Fuzz/run.sh [runs]   (default 200000); extra corpus/crash files go to .build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200000}
mkdir -p .build-fuzz/corpus
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name WireFuzz -package-name swift_workers \
    Fuzz/WireFuzz.swift Sources/WorkersWire/*.swift -o .build-fuzz/wire-fuzz
.build-fuzz/wire-fuzz -runs="$runs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=.build-fuzz/ .build-fuzz/corpus
