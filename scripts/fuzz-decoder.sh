#!/usr/bin/env bash
# Coverage-guided fuzzing of the WABinary decoder with libFuzzer + AddressSanitizer.
# Usage: scripts/fuzz-decoder.sh [seconds, default 300]
# Builds into ${TMPDIR:-/tmp}/wabridge-fuzz (nothing in the repository); the
# corpus there grows across runs. A crash leaves crash-* files in that folder.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-300}"
work="${TMPDIR:-/tmp}/wabridge-fuzz"
mkdir -p "$work/corpus"
# Seeds: a few hand-checked stanzas (hex), as in KnownAnswerTests.
for seed in f8031911f70003ff8615551234567f f8080708fb84abcdef1f11f70105ff82123f042af801f80171 f8031911fa001c; do
    echo "$seed" | xxd -r -p > "$work/corpus/seed-${seed:0:16}"
done
swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name WABinary \
    $(find "$root/Sources/WABinary" -name '*.swift') "$root/scripts/fuzz/DecoderFuzzEntry.swift" \
    -o "$work/decoder-fuzz" 2> >(grep -v "Cannot export local symbol" >&2)
cd "$work"
./decoder-fuzz corpus -max_len=512 -max_total_time="$seconds" -print_final_stats=1
