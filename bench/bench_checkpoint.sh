#!/usr/bin/env bash
# Checkpoints, measured:
#  1. kill -9 at random moments, again and again, during a one-pass run with
#     checkpoints every 100k events; restart each time; the final --save must
#     equal an uninterrupted run's byte for byte, and no temporary file of a
#     killed writer may be left (each run removes those it finds at start).
#     The kill (timeout -s KILL) hits the learner's process group: its forked
#     writer too, so kills during a write leave half-written temporaries.
#  2. a ~1 GiB model (dim 64, 4M user rows) with a checkpoint every 1M events:
#     the longest pause of learning (the fork), the end-of-run write time and
#     throughput, and the time to load the newest checkpoint (eval on no pairs).
#  3. deltas: 1M users (uniform activity), 100k items, a whole checkpoint every
#     1M events and a delta every 10k events, so that about 1% of the rows
#     change between two checkpoints: the size of a delta against a whole one,
#     and the time to load the newest whole checkpoint with its chain.
#
# Usage: bench/bench_checkpoint.sh [BUILD_DIR] [EVENTS] [KILLS] [PARTS]
# Defaults: build/release 3000000 30 "sigkill big delta" (PARTS: which of the
# three to run, e.g. "sigkill" for the kill loop alone: ... 3000000 100 sigkill)
set -uo pipefail
build="${1:-build/release}"; events="${2:-3000000}"; kills="${3:-30}"
parts="${4:-sigkill big delta}"
bin="$build/mfstream"
dir="${BENCH_DIR:-/tmp/mfstream-bench}/ckpt"
rm -rf "$dir"; mkdir -p "$dir"
want() { case " $parts " in *" $1 "*) return 0 ;; esac; return 1; }
temps() { find "$dir/ck" -maxdepth 1 -name '.ckpt-*.tmp.*' 2>/dev/null | wc -l; }

if want sigkill; then
"$bin" gen --events "$events" --users 50000 --items 5000 --seed 9 --output "$dir/s.tsv" >/dev/null
t0=$(date +%s.%N)
"$bin" train --quiet --dim 32 --save "$dir/ref.mfs" "$dir/s.tsv" >/dev/null
t1=$(date +%s.%N)
full=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
# Kill moments: uniform in a window that shrinks with the number of kills
# (30: 2%..15% of a whole run's time; 100: 2%..9%), so that the killed runs
# cover much of the stream; many die before their first checkpoint or while
# their writer writes.
n=0; finished=0; removed=0; : > "$dir/runs.err"
while [ "$n" -lt "$kills" ]; do
  delay=$(awk -v f="$full" -v r="$RANDOM" -v k="$kills" 'BEGIN{printf "%.3f", f*(0.02+0.13*sqrt(30/k)*r/32768)}')
  # (braces: bash's own "Killed" report of the job goes to /dev/null too)
  { timeout -s KILL "$delay" "$bin" train --quiet --dim 32 --checkpoint-dir "$dir/ck" \
    --checkpoint-every 100000 --save "$dir/out.mfs" "$dir/s.tsv" >/dev/null 2>"$dir/run.err"; } 2>/dev/null
  st=$?
  cat "$dir/run.err" >> "$dir/runs.err"
  if [ "$st" -eq 0 ]; then finished=1; break; fi
  n=$((n+1))
done
before=$(temps)
reached=$(ls -1 "$dir/ck" 2>/dev/null | sed -n 's/^ckpt-0*\([0-9][0-9]*\)\.mfs$/\1/p' | sort -n | tail -1)
last_json=""
if [ "$finished" -eq 0 ]; then
  last_json=$("$bin" train --quiet --dim 32 --checkpoint-dir "$dir/ck" \
    --checkpoint-every 100000 --save "$dir/out.mfs" "$dir/s.tsv" 2>>"$dir/runs.err")
fi
removed=$(sed -n 's/.*removed \([0-9]*\) temporary file.*/\1/p' "$dir/runs.err" | awk '{s+=$1} END{print s+0}')
left=$(temps)
if cmp -s "$dir/ref.mfs" "$dir/out.mfs"; then same=identical; else same=DIFFERENT; fi
echo "bench_checkpoint sigkill: events=$events kills=$n killed_runs_reached=${reached:-0}" \
  "final_model=$same (vs uninterrupted run)" \
  "temporaries_removed_at_restarts=$removed left_before_final_run=$before left_at_end=$left" \
  "final_run_stale_temp_removed=$(printf '%s' "$last_json" | sed -n 's/.*"stale_temp_removed": \([0-9]*\).*/\1/p')"
fi

if want big; then
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

fi

if want delta; then
: > "$dir/empty.tsv"
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
fi
