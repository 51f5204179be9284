#!/bin/sh
# .ci/fuzz.sh - build every libFuzzer target (fuzz_*) with clang and run each
# for a bounded time, starting from a copy of its seed corpus.
#
#   FUZZ_SECONDS   seconds per target (default 30)
#   FUZZ_TARGETS   space-separated subset of targets (default: every fuzz_* target)
#   BUILD_DIR      build directory (default build/fuzz)
#   CC             compiler (default clang; libFuzzer needs clang)
#
# Seeds: tests/fuzz/corpus_<name>/ for target fuzz_<name> (and a libFuzzer
# dictionary tests/fuzz/fuzz_<name>.dict if there is one). The seeds are
# copied to a temporary directory, so the tree is never written to.
# fuzz_model and fuzz_delta start from real models and deltas of every mode
# (exact, hashed, admission, both optimizers, raw and compressed), written
# here by make_model_seeds rather than committed.
# Crash inputs are kept in $BUILD_DIR/fuzz-artifacts/<target>/.
# Exit status: 0 all targets ran clean, 1 a target crashed, 2 setup failed.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build/fuzz}
secs=${FUZZ_SECONDS:-30}
cc=${CC:-clang}

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER="$cc" \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo -DMFS_FUZZ=ON -DMFS_BUILD_BENCH=OFF >/dev/null || exit 2

targets=${FUZZ_TARGETS:-$(ninja -C "$build" -t targets all |
	sed -n 's/^\(fuzz_[A-Za-z0-9_]*\): phony$/\1/p' | sort -u)}
if [ -z "$targets" ]; then
	echo "fuzz.sh: no fuzz_* targets in $build (is the compiler clang?)" >&2
	exit 2
fi
# shellcheck disable=SC2086 # word splitting intended
cmake --build "$build" --target $targets || exit 2

work=$(mktemp -d "${TMPDIR:-/tmp}/mfs-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

case " $(echo $targets) " in
*" fuzz_model "* | *" fuzz_delta "*)
	cmake --build "$build" --target make_model_seeds >/dev/null || exit 2
	gen=$(find "$build" -type f -name make_model_seeds -perm -u+x | head -n 1)
	"$gen" "$work/seeds-model" "$work/seeds-delta" >/dev/null || exit 2
	;;
esac

status=0
for t in $targets; do
	bin=$(find "$build" -type f -name "$t" -perm -u+x | head -n 1)
	if [ -z "$bin" ]; then
		echo "fuzz.sh: $t: binary not found" >&2
		exit 2
	fi
	corpus="$work/$t"
	mkdir -p "$corpus" "$build/fuzz-artifacts/$t"
	seeds="$root/tests/fuzz/corpus_${t#fuzz_}"
	if [ -d "$seeds" ]; then
		cp -R "$seeds/." "$corpus/"
	fi
	case $t in
	fuzz_model) cp -R "$work/seeds-model/." "$corpus/" ;;
	fuzz_delta) cp -R "$work/seeds-delta/." "$corpus/" ;;
	esac
	dict="$root/tests/fuzz/$t.dict"
	set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$build/fuzz-artifacts/$t/"
	if [ -f "$dict" ]; then
		set -- "$@" -dict="$dict"
	fi
	echo "fuzz.sh: $t for ${secs}s"
	rc=0
	"$bin" "$@" "$corpus" >"$work/$t.log" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "fuzz.sh: $t FAILED (exit $rc); artifacts in $build/fuzz-artifacts/$t/" >&2
		tail -n 60 "$work/$t.log" >&2
		status=1
	else
		grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+.*DONE)' \
			"$work/$t.log" | sed "s/^/fuzz.sh: $t: /" || true
	fi
done
exit $status
