/*
 * mathf.h - exp and log for the per-event path, without a libm call.
 *
 * The learner evaluates a sigmoid (exp), the logit of mu (log) and the
 * frequency-L2 weight (a power) at every event; a call into libm for each
 * costs more than the rest of the bias update. These are Cephes' single
 * precision polynomials (range reduction by ln 2, then a short polynomial),
 * plain C, the same code for every kernel (kernels.h's mfs_step_finish uses
 * mfs_expf, so all kernels agree on the link once the dot product is known).
 * Relative error below 2e-7 (a couple of float ulps) over the ranges used;
 * tests/test_kernels.c checks them against libm.
 */
#ifndef MFS_SIMD_MATHF_H
#define MFS_SIMD_MATHF_H

#include <stdint.h>
#include <string.h>

static inline float mfs_bits_float(uint32_t b)
{
	float f;
	memcpy(&f, &b, sizeof f);
	return f;
}

static inline uint32_t mfs_float_bits(float f)
{
	uint32_t b;
	memcpy(&b, &f, sizeof b);
	return b;
}

/*
 * e^x. Inputs beyond [-87.3, 88.3] are clamped there (the result stays a
 * normal float: 1.2e-38 .. 2.0e38); NaN gives NaN.
 */
static inline float mfs_expf(float x)
{
	if (x != x)
		return x;
	if (x > 88.3f)
		x = 88.3f;
	if (x < -87.3f)
		x = -87.3f;
	float z = x * 1.44269504088896341f;
	int n = (int)(z >= 0.0f ? z + 0.5f : z - 0.5f);
	float fn = (float)n;
	float r = x - fn * 0.693359375f;
	r = r - fn * -2.12194440e-4f;
	float p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	float y = p * r * r + r + 1.0f;
	return y * mfs_bits_float((uint32_t)(n + 127) << 23);
}

/* ln x for a positive normal finite x (the callers' arguments are). */
static inline float mfs_logf(float x)
{
	uint32_t b = mfs_float_bits(x);
	int e = (int)((b >> 23) & 0xff) - 126;
	float m = mfs_bits_float((b & 0x007fffffu) | 0x3f000000u); /* [0.5, 1) */
	if (m < 0.707106781186547524f) {
		e -= 1;
		m = m + m - 1.0f;
	} else {
		m = m - 1.0f;
	}
	float z = m * m;
	float y = 7.0376836292e-2f;
	y = y * m - 1.1514610310e-1f;
	y = y * m + 1.1676998740e-1f;
	y = y * m - 1.2420140846e-1f;
	y = y * m + 1.4249322787e-1f;
	y = y * m - 1.6668057665e-1f;
	y = y * m + 2.0000714765e-1f;
	y = y * m - 2.4999993993e-1f;
	y = y * m + 3.3333331174e-1f;
	y = y * m * z;
	float fe = (float)e;
	y += fe * -2.12194440e-4f;
	y += -0.5f * z;
	return m + y + fe * 0.693359375f;
}

/* x^a for a positive normal finite x, as e^(a ln x). */
static inline float mfs_powf(float x, float a)
{
	return mfs_expf(a * mfs_logf(x));
}

#endif
