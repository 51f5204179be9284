#!/usr/bin/env bash
# Quality of the ID modes at equal memory on a churning planted stream:
# exact with eviction, exact with admission (--min-count 2 and 3), hashed with
# one and with two hashes per user;
# prequential RMSE of each, side by side in one run, plus peak RSS.
#
# Usage: bench/bench_ids_quality.sh [BUILD_DIR] [MEMORY] [EVENTS] [USERS] [ACTIVE]
# Defaults: build/release 8M 2000000 200000 5000
set -euo pipefail
build="${1:-build/release}"; memory="${2:-8M}"; events="${3:-2000000}"
users="${4:-200000}"; active="${5:-5000}"
bin="$build/mfstream"
dir="${BENCH_DIR:-/tmp/mfstream-bench}"
mkdir -p "$dir"
stream="$dir/churn-$events-$users-$active.tsv"
[ -s "$stream" ] || "$bin" gen --events "$events" --users "$users" --active-users "$active" \
  --items 3000 --ids string --seed 5 --output "$stream" >/dev/null
run() {
  local name="$1"; shift
  local out rss
  out=$( { /usr/bin/time -f 'rss_kb=%M' "$bin" train --quiet --dim 32 --memory "$memory" "$@" "$stream"; } 2>&1 )
  rss=$(printf '%s' "$out" | sed -n 's/.*rss_kb=\([0-9]*\).*/\1/p')
  printf 'bench_ids_quality mode=%-12s memory=%s prequential_rmse=%s evictions=%s unadmitted=%s users=%s peak_rss_kb=%s\n' \
    "$name" "$memory" \
    "$(printf '%s' "$out" | sed -n 's/.*"prequential_rmse": \([0-9.]*\).*/\1/p')" \
    "$(printf '%s' "$out" | sed -n 's/.*"evictions": \([0-9]*\).*/\1/p')" \
    "$(printf '%s' "$out" | sed -n 's/.*"unadmitted": \([0-9]*\).*/\1/p')" \
    "$(printf '%s' "$out" | sed -n 's/.*"users": \([0-9]*\).*/\1/p')" "$rss"
}
run exact
run exact-min2 --min-count 2
run exact-min3 --min-count 3
run hashed --ids hashed
run hashed-2 --ids hashed --hashes 2
