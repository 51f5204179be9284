#!/usr/bin/env bash
# Serving latency: top-10 recommendations per query, measured inside the
# process by `mfstream recommend --users FILE --stats` (model loading and
# printing excluded), for 10k, 100k and 1M items at dim 32, 64 and 128, with
# every kernel this CPU runs. Models are trained on generated streams (planted
# structure, Zipf popularity), so scores spread as in a real model.
#
# Usage: bench/bench_serve.sh [BUILD_DIR] [QUERIES]
# Defaults: build/release 1000 (the scalar kernel gets a tenth of them)
# Environment: ITEMS="10000 100000 1000000" DIMS="32 64 128" KERNELS="auto list"
set -uo pipefail
build="${1:-build/release}"; queries="${2:-1000}"
bin="$build/mfstream"
dir="${BENCH_DIR:-/tmp/mfstream-bench}/serve"
mkdir -p "$dir"
items_list="${ITEMS:-10000 100000 1000000}"
dims="${DIMS:-32 64 128}"
if [ -z "${KERNELS:-}" ]; then
  KERNELS=scalar
  grep -q ' avx2' /proc/cpuinfo && grep -q ' fma' /proc/cpuinfo && KERNELS="$KERNELS avx2"
  grep -q ' avx512f' /proc/cpuinfo && KERNELS="$KERNELS avx512"
  grep -q ' asimd' /proc/cpuinfo && KERNELS="$KERNELS neon"
fi
field() { printf '%s' "$2" | sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }

printf '%-8s %-4s %-7s %8s %10s %10s %10s %10s %9s\n' items dim kernel queries p50_us p90_us p99_us max_us p99_vs_scalar
for items in $items_list; do
  events=$(( items * 4 > 2000000 ? items * 4 : 2000000 ))
  s="$dir/s-$items.tsv"
  [ -f "$s" ] || "$bin" gen --events "$events" --users 50000 --items "$items" --zipf 0.8 \
      --seed 11 --output "$s" >/dev/null
  cut -f1 "$s" | awk '!seen[$0]++' | head -n "$queries" > "$dir/users-$items.txt"
  head -n $(( queries / 10 > 10 ? queries / 10 : 10 )) "$dir/users-$items.txt" > "$dir/users-$items-few.txt"
  for dim in $dims; do
    m="$dir/m-$items-$dim.mfs"
    [ -f "$m" ] || "$bin" train --quiet --dim "$dim" --max-users 60000 --max-items "$items" \
        --save "$m" "$s" >/dev/null
    p99s=""
    for k in $KERNELS; do
      list="$dir/users-$items.txt"
      [ "$k" = scalar ] && list="$dir/users-$items-few.txt"
      st=$("$bin" recommend --model "$m" --users "$list" -k 10 --stats --kernel "$k" 2>&1 >/dev/null | tail -1)
      q=$(field queries "$st"); p50=$(field p50_us "$st"); p90=$(field p90_us "$st")
      p99=$(field p99_us "$st"); mx=$(field max_us "$st")
      [ "$k" = scalar ] && p99s="$p99"
      ratio=$(awk -v a="$p99s" -v b="$p99" 'BEGIN{ if (a > 0 && b > 0) printf "%.1fx", a / b; else print "-" }')
      printf '%-8s %-4s %-7s %8s %10s %10s %10s %10s %9s\n' "$items" "$dim" "$k" "$q" "$p50" "$p90" "$p99" "$mx" "$ratio"
    done
  done
done

# recommend's top-10 against brute force: predict every item for a user, sort,
# keep the 10 best; compare the items and the scores (printed to 4 decimals;
# items with equal printed scores may come in either order).
# (at 100k items and dim 64 when those were benchmarked, else the first)
items=$(echo $items_list | awk '{print $1}'); dim=$(echo $dims | awk '{print $1}')
[ -f "$dir/m-100000-64.mfs" ] && case " $items_list " in *" 100000 "*) items=100000; dim=64;; esac
m="$dir/m-$items-$dim.mfs"
cut -f2 "$dir/s-$items.tsv" | awk '!seen[$0]++' > "$dir/all-items.txt"
same=0; n=0
for u in $(head -n 20 "$dir/users-$items.txt"); do
  n=$((n + 1))
  awk -v u="$u" '{ print u "\t" $0 }' "$dir/all-items.txt" |
    "$bin" predict --model "$m" | sort -t"$(printf '\t')" -k3,3gr -k2,2 | head -n 10 |
    cut -f2,3 | sort > "$dir/brute.txt"
  # --include-seen: brute force ranks every item, so the scan must too
  "$bin" recommend --model "$m" --user "$u" -k 10 --include-seen | sort > "$dir/rec.txt"
  if cmp -s "$dir/brute.txt" "$dir/rec.txt"; then same=$((same + 1))
  elif [ "$(cut -f2 "$dir/brute.txt" | sort)" = "$(cut -f2 "$dir/rec.txt" | sort)" ]; then
    same=$((same + 1))   # the same scores; a tie took another item
  fi
done
echo "bench_serve brute_force_check: items=$items dim=$dim users=$n recommend_equals_brute_force_top10=$same"
