#!/bin/sh
# abi_check.sh SOURCE_DIR SHARED_LIB CLI CC [CFLAGS...]
#
# The ABI check: tests/abi/abi_program.c built against the header of the
# previous release (include/mfstream.h at the commit named below, read from
# git) and against today's, both linked to today's shared library, run on the
# same generated stream: they must print the same lines. Exit 77 (skipped)
# when the history is not there (a tarball, a shallow clone).
#
# The previous release: 0.2.0 as it landed on 2026-12-02 (stop 18).
set -eu
src=$1 lib=$2 cli=$3 cc=$4
shift 4
base=a0af6bebb11941d26b94985fef513acf1e3bcb1f
command -v git >/dev/null || { echo "abi_check: no git: skipped"; exit 77; }
tmp=${MFS_TEST_TMP:-${TMPDIR:-/tmp}}/abi_check.$$
rm -rf "$tmp"
mkdir -p "$tmp/old" "$tmp/new"
trap 'rm -rf "$tmp"' EXIT INT TERM
if ! git -C "$src" show "$base:include/mfstream.h" >"$tmp/old/mfstream.h" 2>/dev/null; then
	echo "abi_check: $base is not in this checkout's history: skipped"
	exit 77
fi
cp "$src/include/mfstream.h" "$tmp/new/mfstream.h"
libdir=$(dirname "$lib")
for v in old new; do
	"$cc" -std=c11 -Wall -Werror "$@" -I"$tmp/$v" -o "$tmp/$v/prog" "$src/tests/abi/abi_program.c" \
		-L"$libdir" -l:"$(basename "$lib")" -Wl,-rpath,"$libdir"
done
"$cli" gen --events 50000 --users 2000 --items 500 --seed 3 --ids int --output "$tmp/ev.tsv" 2>/dev/null
"$tmp/old/prog" "$tmp/ev.tsv" "$tmp/old.mfs" >"$tmp/old.out"
"$tmp/new/prog" "$tmp/ev.tsv" "$tmp/new.mfs" >"$tmp/new.out"
if ! cmp -s "$tmp/old.out" "$tmp/new.out"; then
	echo "abi_check: built against $base's header, the program says otherwise:"
	diff "$tmp/old.out" "$tmp/new.out" || true
	exit 1
fi
cmp "$tmp/old.mfs" "$tmp/new.mfs"
lines=$(wc -l <"$tmp/new.out")
echo "abi_check: a program built against ${base%"${base#???????}"}'s header runs on today's library: the same $lines lines, the same model file"
