#!/usr/bin/env bash
# fuzz.sh [SECONDS [TARGET...]]: build the libFuzzer targets with clang (ASan+UBSan) and run each
# (default: decode, text, cursor and lane) for SECONDS (default 60), all at once, starting from the seed
# corpora. New crashes land in tests/fuzz/crashes/NAME/, where the normal test suite replays them.
# Prints executions per target at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode text cursor lane)
scripts/deps.sh --test
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzz=enabled -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C build-fuzz >/dev/null
work=$(mktemp -d "${TMPDIR:-/tmp}/hr_fuzz.XXXXXX")
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  cp tests/fuzz/corpus/$t/* "$work/$t/"
  [ $t != lane ] || cp tests/fuzz/corpus/cursor/* "$work/$t/" # lane: also the cursor's seeds
  # a fuzzed trace may ask for a block of many GiB (fuzz_lane's pymalloc replays pass it to
  # malloc): an allocation failure, not a crash
  ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=1024 \
  build-fuzz/tests/fuzz/fuzz_$t -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="tests/fuzz/crashes/$t/" "$work/$t" >"$work/$t.log" 2>&1 &
done
wait || true
for t in "${targets[@]}"; do
  runs=$(grep -E '^stat::number_of_executed_units' "$work/$t.log" | awk '{print $2}')
  cov=$(grep -E '^#[0-9]+' "$work/$t.log" | tail -n 1 | grep -oE 'cov: [0-9]+')
  echo "fuzz_$t: ${runs:-?} executions in ${secs}s, $cov; log $work/$t.log"
done
ls tests/fuzz/crashes/*/ | grep -v '^\.' || true
