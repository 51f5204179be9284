#!/usr/bin/env bash
# Checkpoints, measured:
#  1. kill -9 at random moments, again and again, during a one-pass run with
#     checkpoints every 100k events; restart each time; the final --save must
#     equal an uninterrupted run's byte for byte.
#  2. a ~1 GiB model (dim 64, 4M user rows) with a checkpoint every 1M events:
#     the longest pause of learning (the fork), the end-of-run write time and
#     throughput, and the time to load the newest checkpoint (eval on no pairs).
#  3. deltas: 1M users (uniform activity), 100k items, a whole checkpoint every
#     1M events and a delta every 10k events, so that about 1% of the rows
#     change between two checkpoints: the size of a delta against a whole one,
#     and the time to load the newest whole checkpoint with its chain.
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
  # (braces: bash's own "Killed" report of the job goes to /dev/null too)
  { timeout -s KILL "$delay" "$bin" train --quiet --dim 32 --checkpoint-dir "$dir/ck" \
    --checkpoint-every 100000 --save "$dir/out.mfs" "$dir/s.tsv" >/dev/null 2>&1; } 2>/dev/null
  st=$?
  if [ "$st" -eq 0 ]; then finished=1; break; fi
  n=$((n+1))
done
[ "$finished" -eq 1 ] || "$bin" train --quiet --dim 32 --checkpoint-dir "$dir/ck" \
  --checkpoint-every 100000 --save "$dir/out.mfs" "$dir/s.tsv" >/dev/null 2>&1
if cmp -s "$dir/ref.mfs" "$dir/out.mfs"; then same=identical; else same=DIFFERENT; fi
echo "bench_checkpoint sigkill: events=$events kills=$n final_model=$same (vs uninterrupted run)"

# 2. a 1 GiB model (without the users' histories, which at the default
# --history 128 would add 1028 bytes per user row: 4.3 GB here)
"$bin" gen --events 8000000 --users 4000000 --items 100000 --user-zipf 0 --seed 3 \
  --output "$dir/big.tsv" >/dev/null
out=$("$bin" train --quiet --dim 64 --max-users 4200000 --max-items 100000 --history 0 \
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

# 3. deltas on a stream touching ~1% of the rows between checkpoints: a
# --follow run on a directory that gets a 10k-event file every 0.4 s (a live
# topic at 25k events/s), 1M users of uniform activity, so that each delta
# (every 10k events) holds about 1% of the rows. No histories, as in 2.
"$bin" gen --events 1600000 --users 1000000 --items 100000 --user-zipf 0 --seed 5 \
  --output "$dir/d.tsv" >/dev/null
rm -rf "$dir/topic" "$dir/dck"; mkdir -p "$dir/topic" "$dir/dck"
head -n 1000000 "$dir/d.tsv" > "$dir/topic/part-000000.tsv"
tail -n +1000001 "$dir/d.tsv" | split -l 10000 -d -a 6 - "$dir/chunk-"
"$bin" train --quiet --dim 64 --max-users 1000000 --max-items 100000 --follow \
  --history 0 --checkpoint-dir "$dir/dck" --checkpoint-every 1000000 --delta-every 10000 \
  --keep 2 "$dir/topic" > "$dir/dtrain.json" &
tpid=$!
sleep 5
k=1
for c in "$dir"/chunk-*; do
  mv "$c" "$dir/topic/.tmp"; mv "$dir/topic/.tmp" "$(printf '%s/topic/part-%06d.tsv' "$dir" "$k")"
  k=$((k+1)); sleep 0.4
done
sleep 2; kill -TERM "$tpid"; wait "$tpid"
# rows in a file: raw length of its row-list sections (tags 9 and 19, u32 each)
delta_rows() {
  local f=$1 ns i tag len rows=0
  ns=$(od -An -tu4 -j132 -N4 "$f" | tr -d ' ')
  for ((i = 0; i < ns; i++)); do
    tag=$(od -An -tu4 -j$((256 + 48 * i)) -N4 "$f" | tr -d ' ')
    len=$(od -An -tu8 -j$((256 + 48 * i + 24)) -N8 "$f" | tr -d ' ')
    if [ "$tag" = 9 ] || [ "$tag" = 19 ]; then rows=$((rows + len / 4)); fi
  done
  echo "$rows"
}
# the whole checkpoint before the last (the last is the one written at exit) and its deltas
whole=$(ls -1 "$dir"/dck/ckpt-*.mfs | tail -2 | head -1)
fsize=$(stat -c %s "$whole")
urows=$(sed -n 's/.*"users": \([0-9]*\), "items": \([0-9]*\).*/\1 \2/p' "$dir/dtrain.json" | awk '{print $1+$2}')
: > "$dir/dstats"
for f in $(ls -1 "$dir"/dck/ckpt-*.delta | awk -v w="$whole" '$0 > w'); do
  echo "$(stat -c %s "$f") $(delta_rows "$f")" >> "$dir/dstats"
done
nd=$(grep -c . "$dir/dstats")
# load the state before the final whole checkpoint: the whole one and its chain
mv "$(ls -1 "$dir"/dck/ckpt-*.mfs | tail -1)" "$dir/last-whole.mfs"
l0=$(date +%s.%N); "$bin" eval --model "$dir/dck" "$dir/empty.tsv" >/dev/null; l1=$(date +%s.%N)
sort -n "$dir/dstats" | awk -v f="$fsize" -v n="$nd" -v r="$urows" -v a="$l0" -v b="$l1" '
  { s[NR] = $1; rows[NR] = $2 }
  END {
    m = int((NR + 1) / 2)
    printf "bench_checkpoint delta: users=1000000 items=100000 dim=64 delta_every=10000 rows=%d full_bytes=%d deltas=%d delta_bytes_median=%d delta_rows_median=%d rows_touched=%.2f%% delta/full=%.4f load_whole+%d_deltas_s=%.2f\n",
      r, f, n, s[m], rows[m], 100 * rows[m] / r, s[m] / f, n, b - a }'
