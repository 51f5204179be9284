#!/usr/bin/env bash
# End-to-end single-pass training speed: `mfstream train` on a generated
# stream, each kernel the CPU has against --kernel scalar, run alternately in
# one session; prints the median events/s of each and the ratio to scalar.
#
# Usage: bench/bench_train.sh [BUILD_DIR] [EVENTS] [USERS] [ITEMS] [DIM] [RUNS]
# Defaults: build/release 10000000 1000000 100000 64 3 (the stream is cached
# in $BENCH_DIR, default /tmp/mfstream-bench).
set -euo pipefail
build="${1:-build/release}"; events="${2:-10000000}"; users="${3:-1000000}"
items="${4:-100000}"; dim="${5:-64}"; runs="${6:-3}"
bin="$build/mfstream"
dir="${BENCH_DIR:-/tmp/mfstream-bench}"
mkdir -p "$dir"
stream="$dir/stream-$events-$users-$items.tsv"
if [ ! -s "$stream" ]; then
  echo "generating $stream" >&2
  "$bin" gen --events "$events" --users "$users" --items "$items" --ids string --seed 7 \
    --output "$stream" >/dev/null
fi
kernels="scalar"
for k in avx2 avx512 neon; do
  if "$bin" train --quiet --kernel "$k" --dim 4 --max-users 16 --max-items 16 /dev/null >/dev/null 2>&1; then
    kernels="$kernels $k"
  fi
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
declare -A rates
for r in $(seq "$runs"); do
  for k in $kernels; do
    out=$("$bin" train --quiet --kernel "$k" --dim "$dim" --max-users "$users" --max-items "$items" "$stream")
    eps=$(printf '%s' "$out" | sed -n 's/.*"events_per_sec": \([0-9.e+]*\).*/\1/p')
    rates[$k]="${rates[$k]:-} $eps"
    echo "run $r kernel=$k events/s=$eps" >&2
  done
done
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
base=$(median "${rates[scalar]}")
for k in $kernels; do
  m=$(median "${rates[$k]}")
  printf 'bench_train kernel=%-6s dim=%s events=%s users=%s items=%s median_events/s=%.4g ns/event=%.1f vs_scalar=%.2fx cpu="%s"\n' \
    "$k" "$dim" "$events" "$users" "$items" "$m" "$(awk -v m="$m" 'BEGIN{print 1e9/m}')" \
    "$(awk -v m="$m" -v b="$base" 'BEGIN{print m/b}')" "$cpu"
done
