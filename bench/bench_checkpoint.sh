#!/usr/bin/env bash
# Checkpoints, measured:
#  1. kill -9 at random moments, again and again, during a one-pass run with
#     checkpoints every 100k events; restart each time; the final --save must
#     equal an uninterrupted run's byte for byte.
#  2. a ~1 GiB model (dim 64, 4M user rows) with a checkpoint every 1M events:
#     the longest pause of learning (the fork), the end-of-run write time and
#     throughput, and the time to load the newest checkpoint (eval on no pairs).
#
# Usage: bench/bench_checkpoint.sh [BUILD_DIR] [EVENTS] [KILLS]
# Defaults: build/release 3000000 30
set -uo pipefail
build="${1:-build/release}"; events="${2:-3000000}"; kills="${3:-30}"
bin="$build/mfstream"
dir="${BENCH_DIR:-/tmp/mfstream-bench}/ckpt"
rm -rf "$dir"; mkdir -p "$dir"
"$bin" gen --events "$events" --users 50000 --items 5000 --seed 9 --output "$dir/s.tsv" >/dev/null
t0=$(date +%s.%N)
"$bin" train --quiet --dim 32 --save "$dir/ref.mfs" "$dir/s.tsv" >/dev/null
t1=$(date +%s.%N)
full=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
n=0; finished=0
while [ "$n" -lt "$kills" ]; do
  delay=$(awk -v f="$full" -v r="$RANDOM" 'BEGIN{printf "%.3f", f*(0.02+0.13*r/32768)}')
  ( timeout -s KILL "$delay" "$bin" train --quiet --dim 32 --checkpoint-dir "$dir/ck" \
    --checkpoint-every 100000 --save "$dir/out.mfs" "$dir/s.tsv" >/dev/null 2>&1 ) 2>/dev/null
  st=$?
  if [ "$st" -eq 0 ]; then finished=1; break; fi
  n=$((n+1))
done
[ "$finished" -eq 1 ] || "$bin" train --quiet --dim 32 --checkpoint-dir "$dir/ck" \
  --checkpoint-every 100000 --save "$dir/out.mfs" "$dir/s.tsv" >/dev/null 2>&1
if cmp -s "$dir/ref.mfs" "$dir/out.mfs"; then same=identical; else same=DIFFERENT; fi
echo "bench_checkpoint sigkill: events=$events kills=$n final_model=$same (vs uninterrupted run)"

# 2. a 1 GiB model
"$bin" gen --events 8000000 --users 4000000 --items 100000 --user-zipf 0 --seed 3 \
  --output "$dir/big.tsv" >/dev/null
out=$("$bin" train --quiet --dim 64 --max-users 4200000 --max-items 100000 \
  --checkpoint-dir "$dir/bigck" --checkpoint-every 1000000 --keep 2 "$dir/big.tsv")
f=$(ls -1 "$dir"/bigck/ckpt-*.mfs | tail -1)
size=$(stat -c %s "$f")
fin=$(printf '%s' "$out" | sed -n 's/.*"checkpoint_final_ms": \([0-9.]*\).*/\1/p')
stall=$(printf '%s' "$out" | sed -n 's/.*"checkpoint_stall_ms_max": \([0-9.]*\).*/\1/p')
cks=$(printf '%s' "$out" | sed -n 's/.*"checkpoints": \([0-9]*\).*/\1/p')
: > "$dir/empty.tsv"
l0=$(date +%s.%N); "$bin" eval --model "$dir/bigck" "$dir/empty.tsv" >/dev/null; l1=$(date +%s.%N)
awk -v s="$size" -v f="$fin" -v st="$stall" -v c="$cks" -v a="$l0" -v b="$l1" 'BEGIN{
  printf "bench_checkpoint big: model_bytes=%d checkpoints=%d stall_ms_max=%s final_write_ms=%s write_MB/s=%.0f load_s=%.2f\n",
    s, c, st, f, s/1e6/(f/1000), b-a }'
