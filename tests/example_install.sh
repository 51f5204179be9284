#!/bin/sh
# example_install.sh BUILD_DIR README CLI CC [CFLAGS...]
#
# README's C example against the installed library: install BUILD_DIR into a
# temporary prefix, take the example out of README (between its
# "example: learn_resume.c" markers), compile it with pkg-config's flags for
# mfstream, then learn a generated stream once without interruption and once
# killed (SIGKILL) right after three of its checkpoints, restarting each time:
# the final checkpoints must be byte-identical. Exit 77 (skipped) without
# pkg-config.
set -eu
build=$1 readme=$2 cli=$3 cc=$4
shift 4
command -v pkg-config >/dev/null || { echo "example_install: no pkg-config: skipped"; exit 77; }
tmp=${MFS_TEST_TMP:-${TMPDIR:-/tmp}}/example_install.$$
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT INT TERM
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name mfstream.pc | head -n 1)")
sed -n '/<!-- example: learn_resume.c -->/,/<!-- end of example -->/p' "$readme" |
	sed '1,2d;$d' | sed '$d' >"$tmp/learn_resume.c"
lines=$(wc -l <"$tmp/learn_resume.c")
[ "$lines" -gt 20 ] || { echo "example_install: no example in $readme ($lines lines)"; exit 1; }
libdir=$(PKG_CONFIG_PATH=$pc pkg-config --variable=libdir mfstream)
# shellcheck disable=SC2046 # pkg-config's words are meant to split
"$cc" -std=c11 -Wall -Wextra -Werror "$@" -o "$tmp/learn_resume" "$tmp/learn_resume.c" \
	$(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs mfstream) -Wl,-rpath,"$libdir"
# it runs on the installed library, not the build tree's
ldd "$tmp/learn_resume" | grep -q "$tmp/prefix" || { echo "example_install: not linked to the install"; exit 1; }
"$cli" gen --events 300000 --seed 5 --output "$tmp/ev.tsv" 2>/dev/null
mkdir "$tmp/whole" "$tmp/killed"
"$tmp/learn_resume" "$tmp/ev.tsv" "$tmp/whole"
for k in 40000 100000 160000; do
	"$tmp/learn_resume" "$tmp/ev.tsv" "$tmp/killed" &
	pid=$!
	name=$(printf 'ckpt-%020d.mfs' "$k")
	while [ ! -f "$tmp/killed/$name" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
	kill -9 "$pid" 2>/dev/null || { echo "example_install: it ended before checkpoint $k"; exit 1; }
	wait "$pid" 2>/dev/null || true
done
"$tmp/learn_resume" "$tmp/ev.tsv" "$tmp/killed"
final=$(printf 'ckpt-%020d.mfs' 300000)
cmp "$tmp/whole/$final" "$tmp/killed/$final"
echo "example_install: $lines-line example, installed library, 3 SIGKILLs: final checkpoint byte-identical"
