#!/usr/bin/env bash
# .ci/neon.sh - cross-build the NEON kernels and tests/test_kernels.c for aarch64
# with Debian's aarch64-linux-gnu-gcc and run the test under qemu-aarch64.
#
# Needs (installed here with apt-get if missing; run as root):
#   gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user  (the toolchain and emulator)
#   libcmocka-dev:arm64                                     (Debian multiarch: dpkg --add-architecture arm64)
# Only simd/ and tests/support are built: test_kernels.c needs nothing else of
# the library (the MFS_E_* codes come from include/mfstream.h alone).
#
# Exit 0 when every test passes and the NEON tests really ran (not skipped),
# non-zero otherwise. Work files go to a temporary directory ($MFS_NEON_OUT to keep them).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CC=aarch64-linux-gnu-gcc
SYSROOT=/usr/aarch64-linux-gnu

log() { printf 'neon.sh: %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
	if [ "$apt_updated" = 0 ]; then
		apt-get update -qq
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# --- toolchain and emulator --------------------------------------------------
if ! command -v "$CC" >/dev/null || ! command -v qemu-aarch64 >/dev/null ||
	[ ! -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ]; then
	log "installing the aarch64 cross toolchain and qemu-user"
	apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
fi

# --- an aarch64 cmocka (Debian multiarch) --------------------------------------
if [ ! -e /usr/lib/aarch64-linux-gnu/libcmocka.so ]; then
	log "installing libcmocka-dev:arm64 (multiarch)"
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		dpkg --add-architecture arm64
		apt_updated=0
	fi
	if ! apt_install libcmocka-dev:arm64; then
		log "FAILED: could not install libcmocka-dev:arm64 (is the Debian arm64 archive reachable?)"
		exit 1
	fi
fi

# --- build ----------------------------------------------------------------------
OUT=${MFS_NEON_OUT:-$(mktemp -d /tmp/mfs-neon.XXXXXX)}
mkdir -p "$OUT"
if [ -z "${MFS_NEON_OUT:-}" ]; then
	trap 'rm -rf "$OUT"' EXIT
fi

CFLAGS=(-std=c11 -O2 -D_GNU_SOURCE -DMFS_HAVE_NEON_KERNELS=1
	-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
	-I"$ROOT/include" -I"$ROOT/simd" -I"$ROOT/src" -I"$ROOT/tests/support")

log "compiling with $($CC --version | head -n1)"
"$CC" "${CFLAGS[@]}" -c "$ROOT/simd/dispatch.c" -o "$OUT/dispatch.o"
"$CC" "${CFLAGS[@]}" -ffp-contract=off -c "$ROOT/simd/kernels_scalar.c" -o "$OUT/kernels_scalar.o"
"$CC" "${CFLAGS[@]}" -c "$ROOT/simd/kernels_neon.c" -o "$OUT/kernels_neon.o"
"$CC" "${CFLAGS[@]}" -c "$ROOT/tests/test_kernels.c" -o "$OUT/test_kernels.o"
"$CC" "${CFLAGS[@]}" -c "$ROOT/tests/support/support.c" -o "$OUT/support.o"
"$CC" -o "$OUT/test_kernels" "$OUT"/test_kernels.o "$OUT"/support.o "$OUT"/dispatch.o \
	"$OUT"/kernels_scalar.o "$OUT"/kernels_neon.o -lcmocka -lm

# --- run under qemu ------------------------------------------------------------------
log "running test_kernels under qemu-aarch64"
set +e
MFS_TEST_TMP="$OUT" qemu-aarch64 -L "$SYSROOT" "$OUT/test_kernels" 2>&1 | tee "$OUT/test.log"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
	log "FAILED: test_kernels exited with $rc"
	exit 1
fi
# A pass where every NEON test was skipped proves nothing.
ran=$(grep -c '^\[       OK \] kernels_neon__' "$OUT/test.log" || true)
skipped=$(grep -c '^\[  SKIPPED \] kernels_neon__' "$OUT/test.log" || true)
if [ "$ran" -eq 0 ] || [ "$skipped" -ne 0 ]; then
	log "FAILED: the NEON tests did not run (passed $ran, skipped $skipped)"
	exit 1
fi
log "OK: $ran NEON kernel tests passed under qemu-aarch64"
