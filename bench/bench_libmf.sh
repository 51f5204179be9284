#!/usr/bin/env bash
# mfstream against LIBMF on one planted stream, side by side in one run.
#
# The stream: `mfstream gen` with EVENTS events (default 20M, of which the last
# 1% is the test set: 19.8M to learn), 200k users, 20k items, integer IDs. It is
# written plain, zstd-compressed, and in LIBMF's text form (0-based `user item
# rating`). Then, RUNS times (default 3), alternately:
#   - LIBMF `mf-train -k 32 -t 11` at 1 and N threads: the time from its first
#     to its last iteration line (printed as each iteration ends) is 10
#     iterations, loading the text file not counted (a difference of a -t 11
#     and a -t 1 run, as issue 13 measured, is drowned by the loading time's
#     noise on a loaded machine); updates/s = 10 x events / that time;
#   - mfstream `train --dim 32` one pass from the zstd file (end to end, reader
#     thread on): events/s from its summary;
#   - mfstream `--epochs 11`: replay updates/s = 10 x events / the time from
#     the end of pass 1 to the end of pass 11 (its progress lines, stamped as
#     they arrive), at 1 and N threads where `--threads` exists.
# Medians are printed with the ratios, both test RMSEs (LIBMF's from
# mf-predict on its -t 11 model, mfstream's `test_rmse` after 1 and 11 passes)
# and the load average when the run began and ended.
#
# LIBMF is not part of mfstream: build the public cjlin1/libmf with its AVX
# flags (`make` in its tree; the Makefile's USEAVX) and point LIBMF_DIR at it.
# Without mf-train there, the LIBMF half is skipped with a message.
#
# Usage: bench/bench_libmf.sh [BUILD_DIR] [EVENTS] [RUNS] [THREADS]
# Defaults: build/release 20000000 3 2. The stream is cached in $BENCH_DIR
# (default /tmp/mfstream-bench).
set -euo pipefail
build="${1:-build/release}"; events="${2:-20000000}"; runs="${3:-3}"; nthr="${4:-2}"
users="${USERS:-200000}"; items="${ITEMS:-20000}"; dim="${DIM:-32}"
bin="$build/mfstream"
dir="${BENCH_DIR:-/tmp/mfstream-bench}"
libmf="${LIBMF_DIR:-}"
mkdir -p "$dir"
[ -x "$bin" ] || { echo "bench_libmf: $bin not found (build first)" >&2; exit 2; }

base="$dir/libmf-$events-$users-$items"
train="$base.train.tsv"; test="$base.test.tsv"
if [ ! -s "$train" ] || [ ! -s "$test" ]; then
  echo "generating $train" >&2
  "$bin" gen --events "$events" --users "$users" --items "$items" --ids int --seed 7 \
    --holdout 0.01 --output "$train" --holdout-output "$test" >/dev/null
fi
[ -s "$train.zst" ] || zstd -q -3 -f -o "$train.zst" "$train"
# LIBMF's text form: 0-based integer row and column indices (gen's IDs start at 1).
for f in "$train" "$test"; do
  [ -s "$f.libmf" ] || awk -F'\t' '{print $1 - 1, $2 - 1, $3}' "$f" >"$f.libmf"
done
n=$(wc -l <"$train")

have_libmf=0
if [ -n "$libmf" ] && [ -x "$libmf/mf-train" ]; then
  have_libmf=1
else
  echo "bench_libmf: LIBMF skipped: set LIBMF_DIR to a built cjlin1/libmf (mf-train not found${libmf:+ in $libmf})" >&2
fi
thr_list="1"; [ "$nthr" != 1 ] && thr_list="1 $nthr"
has_threads=0
# (the help whole first: grep -q closing the pipe early fails it under pipefail)
train_help=$("$bin" train --help 2>&1 || true)
case "$train_help" in *--threads*) has_threads=1 ;; esac

field() { sed -n "s/.*\"$1\": \([0-9.e+-]*\).*/\1/p"; }
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Each line of standard input with the time it arrived in front.
stamp() { while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done; }
# The same for mfstream's progress lines (each begins with a carriage return and ESC [K).
stamp_cr() {
  while IFS= read -r -d $'\r' line || [ -n "$line" ]; do
    line="${line//$'\e[K'/}"; line="${line//$'\n'/ }"
    [ -n "$line" ] && printf '%s %s\n' "$(date +%s.%N)" "$line"
  done
}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A r
mf_train() { # threads epochs -> the summary on stdout, progress lines stamped in $dir/progress
  local t="$1" e="$2" extra=()
  [ "$has_threads" = 1 ] && extra=(--threads "$t")
  "$bin" train --progress --dim "$dim" --epochs "$e" "${extra[@]}" --test "$test" "$train.zst" \
    2> >(stamp_cr >"$dir/progress")
}
for run in $(seq "$runs"); do
  if [ "$have_libmf" = 1 ]; then
    for t in $thr_list; do
      # iteration lines "0".."10" are printed (and flushed) as each ends: the
      # time from the first to the last is 10 iterations, loading excluded
      "$libmf/mf-train" -k "$dim" -t 11 -s "$t" "$train.libmf" "$dir/libmf.model" | stamp >"$dir/libmf.log"
      ups=$(awk -v n="$n" '$2 == "0" {a = $1} $2 == "10" {b = $1} END {print 10 * n / (b - a)}' "$dir/libmf.log")
      r[libmf$t]="${r[libmf$t]:-} $ups"
      echo "run $run libmf threads=$t updates/s=$ups" >&2
    done
  fi
  for t in $thr_list; do
    [ "$t" != 1 ] && [ "$has_threads" = 0 ] && continue
    o1=$(mf_train "$t" 1)
    eps=$(printf '%s' "$o1" | field events_per_sec)
    o11=$(mf_train "$t" 11)
    sleep 0.2 # the progress pipe drains
    # replay: from the end of pass 1 to the end of pass 11, by the last progress line of each
    rps=$(awk -v n="$n" '$2 == "epoch" {last[$3] = $1} END {print 10 * n / (last[11] - last[1])}' "$dir/progress")
    r[pass$t]="${r[pass$t]:-} $eps"; r[replay$t]="${r[replay$t]:-} $rps"
    r[rmse1_$t]=$(printf '%s' "$o1" | field test_rmse); r[rmse11_$t]=$(printf '%s' "$o11" | field test_rmse)
    echo "run $run mfstream threads=$t pass1 events/s=$eps replay updates/s=$rps" >&2
  done
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "bench_libmf events=$n users=$users items=$items dim=$dim runs=$runs cpu=\"$cpu\" cores=$(nproc) load_start=\"$load0\" load_end=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
l1=""
if [ "$have_libmf" = 1 ]; then
  l1=$(median "${r[libmf1]}")
  for t in $thr_list; do
    printf 'libmf    threads=%s median_updates/s=%.4g\n' "$t" "$(median "${r[libmf$t]}")"
  done
  lr=$("$libmf/mf-predict" "$test.libmf" "$dir/libmf.model" "$dir/libmf.pred" | sed -n 's/.*RMSE *= *\([0-9.]*\).*/\1/p')
  printf 'libmf    test_rmse(11 iter)=%s\n' "$lr"
fi
for t in $thr_list; do
  [ -n "${r[pass$t]:-}" ] || continue
  p=$(median "${r[pass$t]}"); q=$(median "${r[replay$t]}")
  ratio=""; [ -n "$l1" ] && ratio=$(awk -v q="$q" -v l="$l1" 'BEGIN{printf " replay/libmf_1thread=%.3fx", q/l}')
  printf 'mfstream threads=%s median_single_pass_events/s=%.4g median_replay_updates/s=%.4g%s test_rmse(1 pass)=%s test_rmse(11 passes)=%s\n' \
    "$t" "$p" "$q" "$ratio" "${r[rmse1_$t]}" "${r[rmse11_$t]}"
done
[ "$nthr" != 1 ] && [ "$has_threads" = 0 ] && echo "mfstream threads=$nthr: skipped (this build has no --threads)"
exit 0
