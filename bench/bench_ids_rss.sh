#!/usr/bin/env bash
# Memory stays flat however many IDs arrive: peak RSS of one pass over 2M
# events through a 10k-row user table, with 200k distinct (churning) users,
# 10k users (the table just fills, no eviction) and 5k users (half of it).
#
# Usage: bench/bench_ids_rss.sh [BUILD_DIR] [DIM]
set -euo pipefail
build="${1:-build/release}"; dim="${2:-64}"
bin="$build/mfstream"
dir="${BENCH_DIR:-/tmp/mfstream-bench}"
mkdir -p "$dir"
gen() { [ -s "$dir/$1.tsv" ] || "$bin" gen --events 2000000 --seed 3 --output "$dir/$1.tsv" "${@:2}" >/dev/null; }
gen churn200k --users 200000 --active-users 5000
gen users10k --users 10000
gen users5k --users 5000
for s in churn200k users10k users5k; do
  out=$( { /usr/bin/time -f 'rss_kb=%M' "$bin" train --quiet --dim "$dim" --max-users 10000 "$dir/$s.tsv"; } 2>&1 )
  printf 'bench_ids_rss stream=%-10s dim=%s max_users=10000 users=%s evictions=%s peak_rss_kb=%s\n' "$s" "$dim" \
    "$(printf '%s' "$out" | sed -n 's/.*"users": \([0-9]*\).*/\1/p')" \
    "$(printf '%s' "$out" | sed -n 's/.*"evictions": \([0-9]*\).*/\1/p')" \
    "$(printf '%s' "$out" | sed -n 's/.*rss_kb=\([0-9]*\).*/\1/p')"
done
