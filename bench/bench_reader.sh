#!/bin/sh
# bench/bench_reader.sh - the reader against `zstd -dc`, uring vs pread, strace
# proof of io_uring, and train with the reader thread on vs off.
#
#   BUILD    build directory holding mfstream (default build/release)
#   EVENTS   events in the generated stream (default 60M: about 1 GiB of zstd TSV)
#   RUNS     runs per case, the median is reported (default 3)
#   WORK     scratch directory (default a mktemp dir, removed at the end)
# One line per case; ratios are measured in the same run.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build/release}
M=$build/mfstream
events=${EVENTS:-60M}
runs=${RUNS:-3}
work=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/mfs-bench-reader.XXXXXX")}
keep=${WORK:+1}
[ -n "$keep" ] || trap 'rm -rf "$work"' EXIT INT TERM
cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)
f=$work/stream.tsv.zst
if [ ! -s "$f" ]; then
	"$M" gen --events "$events" --ids string --zstd 3 --output "$f" >/dev/null
fi
size=$(stat -c %s "$f")
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# warm the page cache
cat "$f" >/dev/null

t_zstd=$(for i in $(seq "$runs"); do s=$(now); zstd -dc "$f" >/dev/null; e=$(now); echo "$e - $s" | bc -l; done | median)
echo "bench_reader: cpu=\"$cpu\" file=$size bytes ($events events, zstd -3)"
printf 'bench_reader: zstd -dc              %.3f s  %.1f MB/s (compressed)\n' "$t_zstd" "$(echo "$size / $t_zstd / 1000000" | bc -l)"
for io in uring pread; do
	for th in on off; do
		t=$(for i in $(seq "$runs"); do "$M" scan --io $io --reader-thread $th "$f" |
			sed 's/.*"seconds": \([0-9.]*\).*/\1/'; done | median)
		printf 'bench_reader: scan --io %-5s thread %-3s %.3f s  %.1f MB/s  %.2fx zstd -dc\n' \
			"$io" "$th" "$t" "$(echo "$size / $t / 1000000" | bc -l)" "$(echo "$t_zstd / $t" | bc -l)"
	done
done
if command -v strace >/dev/null 2>&1; then
	for io in uring pread; do
		strace -f -c -o "$work/strace.$io" "$M" scan --io $io "$f" >/dev/null 2>&1 || true
		printf 'bench_reader: strace --io %-5s %s\n' "$io" "$(awk '$NF ~ /^(io_uring_enter|io_uring_setup|pread64|read)$/ {printf "%s=%s ", $NF, $4}' "$work/strace.$io")"
	done
fi
for th in on off; do
	out=$("$M" train --quiet --reader-thread $th "$f")
	echo "bench_reader: train --reader-thread $th: $out" |
		sed 's/"users".*"prequential_rmse"/"prequential_rmse"/'
done
