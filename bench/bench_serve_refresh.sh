#!/usr/bin/env bash
# Serving while a learner writes checkpoints: `mfstream serve` answers a
# continuous stream of recommend queries on a checkpoint directory that
# `mfstream train` fills (a checkpoint every EVERY events). Reports:
#  - refreshes and, per refresh, lag_ms (from the checkpoint file's last write
#    to the swap: what an answer waits for a new model) and load_ms;
#  - that every answer names a model_events of a checkpoint that was written
#    (a whole model), and that they never go backwards.
#
# Usage: bench/bench_serve_refresh.sh [BUILD_DIR] [EVENTS] [EVERY]
# Defaults: build/release 20000000 500000 (a checkpoint every ~0.25 s: more time
# apart than a load takes, so that each is served)
set -uo pipefail
build="${1:-build/release}"; events="${2:-20000000}"; every="${3:-500000}"
bin="$(cd "$(dirname "$build/mfstream")" && pwd)/mfstream"
dir="${BENCH_DIR:-/tmp/mfstream-bench}/serve-refresh"
rm -rf "$dir"; mkdir -p "$dir"
"$bin" gen --events "$events" --users 50000 --items 100000 --zipf 0.8 --seed 12 \
  --output "$dir/s.tsv" >/dev/null
user=$(head -1 "$dir/s.tsv" | cut -f1)
"$bin" train --quiet --dim 64 --max-users 60000 --max-items 100000 --checkpoint-dir "$dir/ck" \
  --checkpoint-every "$every" --keep 4 "$dir/s.tsv" > "$dir/train.json" &
trainer=$!
# serve starts from the learner's first checkpoint
until ls "$dir"/ck/ckpt-* >/dev/null 2>&1; do sleep 0.01; done
( yes "recommend $user 10" | "$bin" serve --model "$dir/ck" --poll-ms 100 2>"$dir/serve.err" |
  sed -n 's/.*"model_events": \([0-9]*\).*/\1/p' | uniq -c > "$dir/answers.txt" ) &
wait "$trainer"
sleep 2
pkill -INT -f "mfstream serve --model $dir/ck"
wait
written=$(sed -n 's/.*"checkpoints": \([0-9]*\).*/\1/p' "$dir/train.json")
# the models serve loaded whole (its first and each refresh), from their file names
sed -n 's/.*"\(serving\|path\)": "[^"]*ckpt-0*\([0-9]*\)\.mfs".*/\2/p' "$dir/serve.err" > "$dir/loaded.txt"
awk 'NR == FNR { loaded[$1] = 1; next }
  { n += $1; if (!($2 in loaded)) bad++; if ($2 < last) back++; last = $2; models++ }
  END { printf "bench_serve_refresh answers=%d models_answered_from=%d not_a_loaded_checkpoint=%d went_back=%d\n",
        n, models, bad + 0, back + 0 }' "$dir/loaded.txt" "$dir/answers.txt"
grep '"refresh"' "$dir/serve.err" | sed -n 's/.*"load_ms": \([0-9.]*\), "lag_ms": \([0-9.-]*\).*/\1 \2/p' |
  sort -k2 -n | awk -v w="$written" '
  { load[NR] = $1; lag[NR] = $2; sl += $1 }
  END { if (!NR) { print "bench_serve_refresh: no refresh seen"; exit 1 }
        printf "bench_serve_refresh refreshes=%d (checkpoints written: %d) lag_ms median=%s max=%s load_ms mean=%.1f\n",
          NR, w, lag[int((NR + 1) / 2)], lag[NR], sl / NR }'
