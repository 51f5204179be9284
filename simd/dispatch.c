/*
 * dispatch.c - choose a kernel table once, at model creation.
 * Compiled with baseline flags: it only asks the CPU (and, through
 * __builtin_cpu_supports, the OS's support for the wide registers) what it may run.
 */
#include <string.h>

#include "kernels.h"
#include "mfstream.h"

static int cpu_has(const char *name)
{
	if (strcmp(name, "scalar") == 0)
		return 1;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (strcmp(name, "avx2") == 0)
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	if (strcmp(name, "avx512") == 0)
		return __builtin_cpu_supports("avx512f");
#endif
#if defined(__aarch64__)
	if (strcmp(name, "neon") == 0)
		return 1; /* Advanced SIMD is mandatory on AArch64 */
#endif
	return 0;
}

static const struct mfs_kernels *table(const char *name)
{
	if (strcmp(name, "scalar") == 0)
		return &mfs_kernels_scalar;
#if defined(__x86_64__) && defined(MFS_HAVE_X86_KERNELS)
	if (strcmp(name, "avx2") == 0)
		return &mfs_kernels_avx2;
	if (strcmp(name, "avx512") == 0)
		return &mfs_kernels_avx512;
#endif
#if defined(__aarch64__) && defined(MFS_HAVE_NEON_KERNELS)
	if (strcmp(name, "neon") == 0)
		return &mfs_kernels_neon;
#endif
	return NULL;
}

static int known(const char *name)
{
	static const char *const names[] = { "scalar", "avx2", "avx512", "neon" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(name, names[i]) == 0)
			return 1;
	return 0;
}

const struct mfs_kernels *mfs_kernels_get(const char *name)
{
	if (!name || !known(name) || !cpu_has(name))
		return NULL;
	return table(name);
}

const char *mfs_kernels_preferred(unsigned isa)
{
	if (isa & MFS_ISA_AVX512F)
		return "avx512";
	if (isa & MFS_ISA_AVX2_FMA)
		return "avx2";
	if (isa & MFS_ISA_NEON)
		return "neon";
	return "scalar";
}

unsigned mfs_kernels_usable_isa(void)
{
	return (mfs_kernels_get("avx2") ? MFS_ISA_AVX2_FMA : 0u) |
	       (mfs_kernels_get("avx512") ? MFS_ISA_AVX512F : 0u) |
	       (mfs_kernels_get("neon") ? MFS_ISA_NEON : 0u);
}

int mfs_kernels_select(const char *name, const struct mfs_kernels **out)
{
	if (!name || !*name || strcmp(name, "auto") == 0) {
		const struct mfs_kernels *k = mfs_kernels_get(mfs_kernels_preferred(mfs_kernels_usable_isa()));
		*out = k ? k : &mfs_kernels_scalar;
		return 0;
	}
	if (!known(name))
		return -MFS_E_INVAL;
	const struct mfs_kernels *k = mfs_kernels_get(name);
	if (!k)
		return -MFS_E_UNSUPPORTED;
	*out = k;
	return 0;
}
