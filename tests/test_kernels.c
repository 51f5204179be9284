/*
 * test_kernels.c - every SIMD kernel table the CPU can run against the scalar
 * oracle (simd/kernels_scalar.c), and the dispatcher (simd/dispatch.c).
 *
 * A kernel this build or CPU cannot run is skipped, never failed. Results are
 * compared with a relative tolerance scaled by the sum of the magnitudes of
 * the terms (summation order differs between kernels), never bit for bit.
 * Values outside [ptr, ptr + n) are guards: a kernel that reads them gets a
 * wrong answer and one that writes them is caught.
 *
 * Uses only simd/ symbols and the MFS_E_* codes from the public header, so
 * .ci/neon.sh can cross-build it without the rest of the library.
 */
#include "support.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "mfstream.h"

/* Relative tolerance against the sum of |terms|. */
#define RTOL 1e-5
/* Value of every float outside the vectors under test: large, so reading it shows. */
#define GUARD 1000.0f
/* Floats per test vector buffer: longest length + offset + room for guards. */
#define CAP 320

/* The usual edge lengths, plus a whole and a partial vector count for every
 * count up to 8 of 16 floats (the AVX-512 sgd_step has a register-resident
 * path per vector count, with and without a masked tail). */
static const size_t lengths[] = { 0,  1,  7,  8,  9,   15,  16,  17,  31,  32,  33,  47,  48,
				  63, 64, 65, 80, 81, 96, 100, 112, 127, 128, 129, 255, 256 };
#define NLENGTHS (sizeof lengths / sizeof lengths[0])

struct offsets {
	size_t a, b;
};
static const struct offsets aligned_offsets[] = { { 0, 0 } };
static const struct offsets unaligned_offsets[] = {
	{ 1, 2 }, { 2, 3 }, { 3, 1 }, { 1, 0 }, { 0, 3 },
};

/* What the failing case was, printed with any failure. */
static char ctx[256];

/* ---- seeded randomness (splitmix64) ------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static float rng_float(uint64_t *s, float lo, float hi)
{
	return lo + (hi - lo) * ((float)(rng_next(s) >> 40) * (1.0f / 16777216.0f));
}

/* ---- helpers ------------------------------------------------------------ */

static const struct mfs_kernels *kernel_or_skip(void **state)
{
	const char *name = *state;
	const struct mfs_kernels *k = mfs_kernels_get(name);
	if (!k) {
		print_message("kernel %s: not in this build or not supported by this CPU, skipped\n",
			      name);
		skip();
	}
	return k;
}

static float *alloc_floats(size_t n)
{
	size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
	float *f = aligned_alloc(64, bytes ? bytes : 64);
	assert_non_null(f);
	return f;
}

static void fill(float *f, size_t n, float v)
{
	for (size_t i = 0; i < n; i++)
		f[i] = v;
}

/* got within tol of want (NaN fails). */
static void check_close(double got, double want, double tol, const char *what, size_t i)
{
	if (!(fabs(got - want) <= tol))
		fail_msg("%s: %s[%zu] = %.9g, scalar %.9g, |diff| %.3g > tol %.3g", ctx, what, i, got,
			 want, fabs(got - want), tol);
}

/* Every float of buf outside [off, off + n) still holds GUARD. */
static void check_guards(const float *buf, size_t cap, size_t off, size_t n, const char *what)
{
	for (size_t i = 0; i < cap; i++) {
		if (i >= off && i < off + n)
			continue;
		if (buf[i] != GUARD)
			fail_msg("%s: %s[%zu] outside the vector was overwritten (%.9g)", ctx, what, i,
				 (double)buf[i]);
	}
}

static size_t round_up(size_t n, size_t w)
{
	return (n + w - 1) / w * w;
}

/* ---- dot ---------------------------------------------------------------- */

static void dot_cases(const struct mfs_kernels *k, const struct offsets *offs, size_t noffs,
		      uint64_t seed)
{
	float *a = alloc_floats(CAP), *b = alloc_floats(CAP);
	for (size_t o = 0; o < noffs; o++) {
		for (size_t li = 0; li < NLENGTHS; li++) {
			size_t n = lengths[li];
			fill(a, CAP, GUARD);
			fill(b, CAP, GUARD);
			double mag = 0.0;
			for (size_t i = 0; i < n; i++) {
				a[offs[o].a + i] = rng_float(&seed, -1.0f, 1.0f);
				b[offs[o].b + i] = rng_float(&seed, -1.0f, 1.0f);
				mag += fabs((double)a[offs[o].a + i] * b[offs[o].b + i]);
			}
			snprintf(ctx, sizeof ctx, "%s dot n=%zu offsets=%zu,%zu", k->name, n,
				 offs[o].a, offs[o].b);
			float want = mfs_kernels_scalar.dot(a + offs[o].a, b + offs[o].b, n);
			float got = k->dot(a + offs[o].a, b + offs[o].b, n);
			check_close(got, want, RTOL * mag + FLT_MIN, "dot", 0);
			if (n == 0)
				assert_true(got == 0.0f);
		}
	}
	free(a);
	free(b);
}

static void test_dot_matches_scalar(void **state)
{
	dot_cases(kernel_or_skip(state), aligned_offsets, 1, 11);
}

static void test_dot_matches_scalar_unaligned(void **state)
{
	dot_cases(kernel_or_skip(state), unaligned_offsets,
		  sizeof unaligned_offsets / sizeof unaligned_offsets[0], 12);
}

/* ---- sgd_step / adagrad_step --------------------------------------------- */

struct scenario {
	const char *what;
	float base, rating, lo, hi;
	int link;
	int engaged; /* +1: raw > hi, -1: raw < lo (the clamp engages), 0: either */
};

static const struct scenario clamp_scenarios[] = {
	{ "clamp", 3.0f, 4.0f, 1.0f, 5.0f, MFS_LINK_CLAMP, 0 },
	{ "clamp_low_rating", 3.2f, 1.0f, 1.0f, 5.0f, MFS_LINK_CLAMP, 0 },
};
static const struct scenario sigmoid_scenarios[] = {
	{ "sigmoid", 3.0f, 4.0f, 0.5f, 5.5f, MFS_LINK_SIGMOID, 0 },
	{ "sigmoid_low", -0.5f, 1.0f, 0.5f, 5.5f, MFS_LINK_SIGMOID, 0 },
	{ "sigmoid_saturated", 9.0f, 1.0f, 0.5f, 5.5f, MFS_LINK_SIGMOID, 0 },
};
/* base far outside [lo, hi]: |dot| stays below 3 for the data used here. */
static const struct scenario engaged_scenarios[] = {
	{ "clamp_engaged_high", 9.0f, 2.0f, 1.0f, 5.0f, MFS_LINK_CLAMP, +1 },
	{ "clamp_engaged_low", -7.0f, 4.5f, 1.0f, 5.0f, MFS_LINK_CLAMP, -1 },
	{ "clamp_engaged_at_rating", 9.0f, 5.0f, 1.0f, 5.0f, MFS_LINK_CLAMP, +1 },
};
static const struct scenario all_scenarios[] = {
	{ "clamp", 3.0f, 4.0f, 1.0f, 5.0f, MFS_LINK_CLAMP, 0 },
	{ "clamp_engaged_high", 9.0f, 2.0f, 1.0f, 5.0f, MFS_LINK_CLAMP, +1 },
	{ "clamp_engaged_low", -7.0f, 4.5f, 1.0f, 5.0f, MFS_LINK_CLAMP, -1 },
	{ "sigmoid", 3.0f, 4.0f, 0.5f, 5.5f, MFS_LINK_SIGMOID, 0 },
};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

enum op { OP_SGD, OP_ADAGRAD };

/*
 * One step on (n, offsets, scenario) with kernel k and with the scalar oracle,
 * on identical inputs; compare pred, grad, both rows, both accumulators.
 */
static void step_case(const struct mfs_kernels *k, enum op op, const struct scenario *sc,
		      size_t n, struct offsets off, uint64_t *rng, float *bufs[4])
{
	float *pk = bufs[0], *qk = bufs[1], *ps = bufs[2], *qs = bufs[3];
	float p0[CAP], q0[CAP];
	for (int b = 0; b < 4; b++)
		fill(bufs[b], CAP, GUARD);
	double mag_raw = fabs((double)sc->base);
	for (size_t i = 0; i < n; i++) {
		p0[i] = rng_float(rng, -0.3f, 0.3f);
		q0[i] = rng_float(rng, -0.3f, 0.3f);
		mag_raw += fabs((double)p0[i] * q0[i]);
	}
	memcpy(pk + off.a, p0, n * sizeof(float));
	memcpy(ps + off.a, p0, n * sizeof(float));
	memcpy(qk + off.b, q0, n * sizeof(float));
	memcpy(qs + off.b, q0, n * sizeof(float));

	const float lr = rng_float(rng, 0.01f, 0.1f), l2 = rng_float(rng, 0.005f, 0.05f);
	const float acc_p0 = rng_float(rng, 1.0f, 3.0f), acc_q0 = rng_float(rng, 1.0f, 3.0f);
	float kacc_p = acc_p0, kacc_q = acc_q0, sacc_p = acc_p0, sacc_q = acc_q0;
	struct mfs_step sk = {
		.base = sc->base, .rating = sc->rating, .lo = sc->lo, .hi = sc->hi,
		.slo = sc->lo - 0.5f, .shi = sc->hi + 0.5f,
		.link = sc->link, .lr = lr, .l2 = l2, .l2_q = 0.5f * l2, .acc_p = &kacc_p, .acc_q = &kacc_q,
		.pred = NAN, .grad = NAN,
	};
	struct mfs_step ss = sk;
	ss.acc_p = &sacc_p;
	ss.acc_q = &sacc_q;

	snprintf(ctx, sizeof ctx, "%s %s %s n=%zu offsets=%zu,%zu", k->name,
		 op == OP_SGD ? "sgd_step" : "adagrad_step", sc->what, n, off.a, off.b);
	if (op == OP_SGD) {
		mfs_kernels_scalar.sgd_step(ps + off.a, qs + off.b, n, &ss);
		k->sgd_step(pk + off.a, qk + off.b, n, &sk);
	} else {
		mfs_kernels_scalar.adagrad_step(ps + off.a, qs + off.b, n, &ss);
		k->adagrad_step(pk + off.a, qk + off.b, n, &sk);
	}

	/* pred and grad: the dot product differs by rounding, the link amplifies it */
	const double span = (double)sc->hi - sc->lo;
	const double slope = sc->link == MFS_LINK_SIGMOID ? span / 4.0 : 1.0;
	const double tol_pred = RTOL * (mag_raw * slope + fabs(sc->lo) + fabs(sc->hi));
	const double tol_grad = RTOL * (mag_raw * (1.0 + span) * (1.0 + span) +
					(fabs(sc->rating) + fabs(sc->lo) + fabs(sc->hi)) * (1.0 + span));
	check_close(sk.pred, ss.pred, tol_pred, "pred", 0);
	check_close(sk.grad, ss.grad, tol_grad, "grad", 0);
	if (sc->engaged > 0) {
		assert_true(ss.pred == sc->hi);
		assert_true(sk.pred == sc->hi);
		assert_true(sk.grad == sc->rating - sc->hi);
	} else if (sc->engaged < 0) {
		assert_true(ss.pred == sc->lo);
		assert_true(sk.pred == sc->lo);
		assert_true(sk.grad == sc->rating - sc->lo);
	}

	/* rows: rounding of the update, plus the (known) effect of the grad difference */
	const double g = sk.grad, dg = fabs((double)sk.grad - ss.grad) * (1.0 + RTOL);
	double rp = lr, rq = lr;
	if (op == OP_ADAGRAD) {
		rp = lr / sqrtf(acc_p0);
		rq = lr / sqrtf(acc_q0);
	}
	double sum_gp2 = 0.0, sum_gq2 = 0.0, dacc_p = 0.0, dacc_q = 0.0;
	for (size_t i = 0; i < n; i++) {
		const double pi = p0[i], qi = q0[i];
		double tp = RTOL * (fabs(pi) + rp * (fabs(g * qi) + l2 * fabs(pi))) + rp * fabs(qi) * dg;
		double tq = RTOL * (fabs(qi) + rq * (fabs(g * pi) + l2 * fabs(qi))) + rq * fabs(pi) * dg;
		check_close(pk[off.a + i], ps[off.a + i], tp + FLT_MIN, "p", i);
		check_close(qk[off.b + i], qs[off.b + i], tq + FLT_MIN, "q", i);
		const double gp = g * qi - l2 * pi, gq = g * pi - l2 * qi;
		sum_gp2 += gp * gp;
		sum_gq2 += gq * gq;
		/* d(gp^2)/dg = 2 gp q, plus the second-order term */
		dacc_p += 2.0 * fabs(gp * qi) * dg + qi * qi * dg * dg;
		dacc_q += 2.0 * fabs(gq * pi) * dg + pi * pi * dg * dg;
	}
	check_guards(pk, CAP, off.a, n, "p");
	check_guards(qk, CAP, off.b, n, "q");

	if (op == OP_ADAGRAD) {
		if (n == 0) {
			assert_true(kacc_p == acc_p0);
			assert_true(kacc_q == acc_q0);
		} else {
			double tap = RTOL * (acc_p0 + sum_gp2 / n) + dacc_p / n + FLT_MIN;
			double taq = RTOL * (acc_q0 + sum_gq2 / n) + dacc_q / n + FLT_MIN;
			check_close(kacc_p, sacc_p, tap, "acc_p", 0);
			check_close(kacc_q, sacc_q, taq, "acc_q", 0);
		}
	} else {
		/* plain SGD never touches the accumulators */
		assert_true(kacc_p == acc_p0);
		assert_true(kacc_q == acc_q0);
	}
}

static void step_cases(void **state, enum op op, const struct scenario *sc, size_t nsc,
		       const struct offsets *offs, size_t noffs, uint64_t seed)
{
	const struct mfs_kernels *k = kernel_or_skip(state);
	float *bufs[4];
	for (int b = 0; b < 4; b++)
		bufs[b] = alloc_floats(CAP);
	for (size_t s = 0; s < nsc; s++)
		for (size_t o = 0; o < noffs; o++)
			for (size_t li = 0; li < NLENGTHS; li++)
				step_case(k, op, &sc[s], lengths[li], offs[o], &seed, bufs);
	for (int b = 0; b < 4; b++)
		free(bufs[b]);
}

static void test_sgd_step_matches_scalar_clamp(void **state)
{
	step_cases(state, OP_SGD, clamp_scenarios, COUNT(clamp_scenarios), aligned_offsets, 1, 21);
}

static void test_sgd_step_matches_scalar_sigmoid(void **state)
{
	step_cases(state, OP_SGD, sigmoid_scenarios, COUNT(sigmoid_scenarios), aligned_offsets, 1,
		   22);
}

static void test_sgd_step_matches_scalar_clamp_engaged(void **state)
{
	step_cases(state, OP_SGD, engaged_scenarios, COUNT(engaged_scenarios), aligned_offsets, 1,
		   23);
}

static void test_sgd_step_matches_scalar_unaligned(void **state)
{
	step_cases(state, OP_SGD, all_scenarios, COUNT(all_scenarios), unaligned_offsets,
		   COUNT(unaligned_offsets), 24);
}

static void test_adagrad_step_matches_scalar_clamp(void **state)
{
	step_cases(state, OP_ADAGRAD, clamp_scenarios, COUNT(clamp_scenarios), aligned_offsets, 1,
		   31);
}

static void test_adagrad_step_matches_scalar_sigmoid(void **state)
{
	step_cases(state, OP_ADAGRAD, sigmoid_scenarios, COUNT(sigmoid_scenarios), aligned_offsets,
		   1, 32);
}

static void test_adagrad_step_matches_scalar_clamp_engaged(void **state)
{
	step_cases(state, OP_ADAGRAD, engaged_scenarios, COUNT(engaged_scenarios), aligned_offsets,
		   1, 33);
}

static void test_adagrad_step_matches_scalar_unaligned(void **state)
{
	step_cases(state, OP_ADAGRAD, all_scenarios, COUNT(all_scenarios), unaligned_offsets,
		   COUNT(unaligned_offsets), 34);
}

/* n == 0: pred and grad from base alone, accumulators untouched (no 0/0). */
static void test_adagrad_step_keeps_accumulators_when_n_is_0(void **state)
{
	const struct mfs_kernels *k = kernel_or_skip(state);
	float p[16], q[16], acc_p = 1.5f, acc_q = 2.5f;
	fill(p, 16, GUARD);
	fill(q, 16, GUARD);
	struct mfs_step s = {
		.base = 3.5f, .rating = 4.0f, .lo = 1.0f, .hi = 5.0f, .link = MFS_LINK_CLAMP,
		.lr = 0.1f, .l2 = 0.01f, .l2_q = 0.01f, .acc_p = &acc_p, .acc_q = &acc_q,
	};
	k->adagrad_step(p, q, 0, &s);
	assert_true(acc_p == 1.5f);
	assert_true(acc_q == 2.5f);
	assert_true(s.pred == 3.5f);
	assert_true(s.grad == 0.5f);
	snprintf(ctx, sizeof ctx, "%s adagrad_step n=0", k->name);
	check_guards(p, 16, 0, 0, "p");
	check_guards(q, 16, 0, 0, "q");
}

/* ---- score ---------------------------------------------------------------- */

static const size_t score_counts[] = { 0, 1, 3, 4, 5, 7, 8, 9, 16, 17, 33 };

static void score_cases(const struct mfs_kernels *k, const struct offsets *offs, size_t noffs,
			uint64_t seed)
{
	const size_t maxcount = 33, maxstride = 2 * 256 + 5;
	const size_t rcap = 3 + maxcount * maxstride + 16;
	float *u = alloc_floats(CAP), *rows = alloc_floats(rcap);
	float *ok = alloc_floats(maxcount + 8), *os = alloc_floats(maxcount + 8);
	for (size_t o = 0; o < noffs; o++) {
		for (size_t li = 0; li < NLENGTHS; li++) {
			const size_t n = lengths[li];
			const size_t strides[] = { n, n + 1, n + 3, round_up(n, 16) + 16, 2 * n + 5 };
			for (size_t si = 0; si < COUNT(strides); si++) {
				const size_t stride = strides[si];
				if (stride == 0 && si > 0)
					continue;
				/* guards in the gaps between rows: reading them spoils the score */
				fill(u, CAP, GUARD);
				fill(rows, rcap, GUARD);
				for (size_t i = 0; i < n; i++)
					u[offs[o].a + i] = rng_float(&seed, -1.0f, 1.0f);
				for (size_t j = 0; j < maxcount; j++)
					for (size_t i = 0; i < n; i++)
						rows[offs[o].b + j * stride + i] =
							rng_float(&seed, -1.0f, 1.0f);
				for (size_t ci = 0; ci < COUNT(score_counts); ci++) {
					const size_t count = score_counts[ci];
					fill(ok, maxcount + 8, GUARD);
					fill(os, maxcount + 8, GUARD);
					snprintf(ctx, sizeof ctx,
						 "%s score n=%zu stride=%zu count=%zu offsets=%zu,%zu",
						 k->name, n, stride, count, offs[o].a, offs[o].b);
					const float *uu = u + offs[o].a, *rr = rows + offs[o].b;
					mfs_kernels_scalar.score(uu, rr, stride, n, count, os);
					k->score(uu, rr, stride, n, count, ok);
					for (size_t j = 0; j < count; j++) {
						double mag = 0.0;
						for (size_t i = 0; i < n; i++)
							mag += fabs((double)uu[i] * rr[j * stride + i]);
						check_close(ok[j], os[j], RTOL * mag + FLT_MIN, "out",
							    j);
					}
					check_guards(ok, maxcount + 8, 0, count, "out");
				}
			}
		}
	}
	free(u);
	free(rows);
	free(ok);
	free(os);
}

static void test_score_matches_scalar(void **state)
{
	score_cases(kernel_or_skip(state), aligned_offsets, 1, 41);
}

static void test_score_matches_scalar_unaligned(void **state)
{
	score_cases(kernel_or_skip(state), unaligned_offsets, COUNT(unaligned_offsets), 42);
}

/* ---- integer score ----------------------------------------------------- */

/* n multiples of 16 (the serving copy pads rows to 16), strides in bytes >= n,
 * rows starting at any byte; u in 0..127, rows in -127..127 (the extremes
 * included: no pair of products may saturate). Integer sums: equal exactly. */
static void test_score_q8_matches_scalar(void **state)
{
	const struct mfs_kernels *k = kernel_or_skip(state);
	const size_t ns[] = { 0, 16, 32, 48, 64, 80, 128, 256, 4096 }, maxcount = 33;
	uint64_t seed = 43;
	uint8_t *u = malloc(4096 + 1);
	int32_t *ok = malloc((maxcount + 8) * sizeof *ok), *os = malloc((maxcount + 8) * sizeof *os);
	assert_non_null(u);
	assert_non_null(ok);
	assert_non_null(os);
	for (size_t ni = 0; ni < COUNT(ns); ni++) {
		const size_t n = ns[ni];
		const size_t strides[] = { n, n + 16, n + 7 };
		for (size_t si = 0; si < COUNT(strides); si++) {
			const size_t stride = strides[si], off = si; /* 0, 1, 2: unaligned starts */
			const size_t cap = off + maxcount * stride + 16;
			int8_t *rows = malloc(cap);
			assert_non_null(rows);
			memset(rows, 0x55, cap); /* guards: reading them spoils the score */
			for (size_t i = 0; i < n; i++)
				u[1 + i] = (uint8_t)(si == 1 ? 127 : rng_float(&seed, 0.0f, 127.99f));
			for (size_t j = 0; j < maxcount; j++)
				for (size_t i = 0; i < n; i++)
					rows[off + j * stride + i] =
						(int8_t)(si == 1 ? (j % 2 ? 127 : -127)
								 : rng_float(&seed, -127.99f, 127.99f));
			for (size_t ci = 0; ci < COUNT(score_counts); ci++) {
				const size_t count = score_counts[ci];
				for (size_t j = 0; j < maxcount + 8; j++)
					ok[j] = os[j] = 0x5eed;
				snprintf(ctx, sizeof ctx, "%s score_q8 n=%zu stride=%zu count=%zu",
					 k->name, n, stride, count);
				mfs_kernels_scalar.score_q8(u + 1, rows + off, stride, n, count, os);
				k->score_q8(u + 1, rows + off, stride, n, count, ok);
				for (size_t j = 0; j < count; j++) {
					int64_t want = 0;
					for (size_t i = 0; i < n; i++)
						want += (int64_t)u[1 + i] * rows[off + j * stride + i];
					if (os[j] != want || ok[j] != want)
						fail_msg("%s: row %zu: scalar %d, kernel %d, want %lld", ctx,
							 j, os[j], ok[j], (long long)want);
				}
				for (size_t j = count; j < maxcount + 8; j++)
					assert_int_equal(ok[j], 0x5eed); /* nothing written past count */
			}
			free(rows);
		}
	}
	free(u);
	free(ok);
	free(os);
}

/* ---- rows as the model stores them ---------------------------------------- */

/*
 * The model stores rows 64-byte aligned, stride padded to 16 floats, zero
 * padding, and calls the kernels with n = round_up(dim, width). The first dim
 * floats must match the scalar oracle on n = dim; the padding must stay zero.
 * (AdaGrad's accumulators divide by n, so they are compared with the scalar
 * oracle on the same padded n.)
 */
static void test_padded_rows_match_scalar_and_padding_stays_zero(void **state)
{
	const struct mfs_kernels *k = kernel_or_skip(state);
	static const size_t dims[] = { 1, 3, 5, 8, 10, 13, 16, 20, 33, 64, 100, 250 };
	uint64_t seed = 51;
	for (size_t di = 0; di < COUNT(dims); di++) {
		const size_t dim = dims[di], stride = round_up(dim, 16);
		const size_t n = round_up(dim, k->width);
		assert_true(n <= stride);
		for (int op = OP_SGD; op <= OP_ADAGRAD; op++) {
			/* two rows per table; update row 1 of each, row 0 and 2 must not move */
			float *tk = alloc_floats(6 * stride), *ts = alloc_floats(6 * stride);
			float *tn = alloc_floats(6 * stride);
			fill(tk, 6 * stride, 0.0f);
			for (size_t r = 0; r < 6; r++)
				for (size_t i = 0; i < dim; i++)
					tk[r * stride + i] = rng_float(&seed, -0.3f, 0.3f);
			memcpy(ts, tk, 6 * stride * sizeof(float));
			memcpy(tn, tk, 6 * stride * sizeof(float));
			float *pk = tk + stride, *qk = tk + 4 * stride;
			float *ps = ts + stride, *qs = ts + 4 * stride;
			float *pn = tn + stride, *qn = tn + 4 * stride;
			float acc[6] = { 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f };
			struct mfs_step sk = {
				.base = 3.0f, .rating = 4.5f, .lo = 1.0f, .hi = 5.0f,
				.link = MFS_LINK_CLAMP, .lr = 0.05f, .l2 = 0.02f, .l2_q = 0.02f,
				.acc_p = &acc[0], .acc_q = &acc[1],
			};
			struct mfs_step ss = sk, sn = sk;
			ss.acc_p = &acc[2];
			ss.acc_q = &acc[3];
			sn.acc_p = &acc[4];
			sn.acc_q = &acc[5];
			snprintf(ctx, sizeof ctx, "%s %s padded dim=%zu n=%zu stride=%zu", k->name,
				 op == OP_SGD ? "sgd_step" : "adagrad_step", dim, n, stride);
			double mag = 3.0;
			for (size_t i = 0; i < dim; i++)
				mag += fabs((double)pk[i] * qk[i]);
			const double want_dot = mfs_kernels_scalar.dot(pk, qk, dim);
			check_close(k->dot(pk, qk, n), want_dot, RTOL * mag, "dot", 0);
			float out[6], outs[6];
			k->score(pk, tk, stride, n, 6, out);
			for (size_t j = 0; j < 6; j++) {
				double m = 0.0;
				for (size_t i = 0; i < dim; i++)
					m += fabs((double)pk[i] * tk[j * stride + i]);
				outs[j] = mfs_kernels_scalar.dot(pk, tk + j * stride, dim);
				check_close(out[j], outs[j], RTOL * m + FLT_MIN, "score", j);
			}
			if (op == OP_SGD) {
				k->sgd_step(pk, qk, n, &sk);
				mfs_kernels_scalar.sgd_step(ps, qs, dim, &ss);
			} else {
				k->adagrad_step(pk, qk, n, &sk);
				mfs_kernels_scalar.adagrad_step(ps, qs, dim, &ss);
				mfs_kernels_scalar.adagrad_step(pn, qn, n, &sn);
				check_close(acc[0], acc[4], RTOL * acc[4] * 4.0, "acc_p", 0);
				check_close(acc[1], acc[5], RTOL * acc[5] * 4.0, "acc_q", 0);
			}
			check_close(sk.pred, ss.pred, RTOL * mag, "pred", 0);
			check_close(sk.grad, ss.grad, RTOL * mag * 2.0, "grad", 0);
			for (size_t r = 0; r < 6; r++) {
				for (size_t i = 0; i < stride; i++) {
					const float got = tk[r * stride + i], want = ts[r * stride + i];
					if (i >= dim) {
						if (got != 0.0f)
							fail_msg("%s: padding row %zu [%zu] = %.9g, not 0",
								 ctx, r, i, (double)got);
					} else if (r != 1 && r != 4) {
						if (got != want)
							fail_msg("%s: row %zu not under update changed",
								 ctx, r);
					} else {
						check_close(got, want, RTOL * 2.0, "row", r * stride + i);
					}
				}
			}
			free(tk);
			free(ts);
			free(tn);
		}
	}
}

/* ---- bpr_step ------------------------------------------------------------ */

/* One BPR pair on (n, offsets) with kernel k and with the oracle, from the same rows. */
static void bpr_case(const struct mfs_kernels *k, size_t n, size_t off, uint64_t *rng,
		     float *bufs[6], float base)
{
	float p0[CAP], a0[CAP], b0[CAP];
	for (int b = 0; b < 6; b++)
		fill(bufs[b], CAP, GUARD);
	double mag = fabs((double)base);
	for (size_t i = 0; i < n; i++) {
		p0[i] = rng_float(rng, -0.3f, 0.3f);
		a0[i] = rng_float(rng, -0.3f, 0.3f);
		b0[i] = rng_float(rng, -0.3f, 0.3f);
		mag += fabs((double)p0[i] * a0[i]) + fabs((double)p0[i] * b0[i]);
	}
	for (int b = 0; b < 6; b += 3) {
		memcpy(bufs[b] + off, p0, n * sizeof(float));
		memcpy(bufs[b + 1] + off + 1, a0, n * sizeof(float));
		memcpy(bufs[b + 2] + off + 2, b0, n * sizeof(float));
	}
	const float lr = rng_float(rng, 0.01f, 0.1f), l2 = rng_float(rng, 0.0f, 0.05f);
	struct mfs_bpr sk = { .base = base, .w = 1.5f, .lr = lr, .l2 = l2, .x = NAN, .g = NAN };
	struct mfs_bpr ss = sk;
	snprintf(ctx, sizeof ctx, "%s bpr_step n=%zu offset=%zu base=%g", k->name, n, off, base);
	mfs_kernels_scalar.bpr_step(bufs[3] + off, bufs[4] + off + 1, bufs[5] + off + 2, n, &ss);
	k->bpr_step(bufs[0] + off, bufs[1] + off + 1, bufs[2] + off + 2, n, &sk);
	check_close(sk.x, ss.x, RTOL * mag + FLT_MIN, "x", 0);
	/* |dg/dx| <= w / 4 */
	const double dg = fabs((double)sk.g - ss.g);
	check_close(sk.g, ss.g, 1.5 / 4.0 * RTOL * mag * 2 + FLT_MIN, "g", 0);
	const double g = ss.g;
	for (size_t i = 0; i < n; i++) {
		double tp = RTOL * (fabs(p0[i]) + lr * (fabs(g) * (fabs(a0[i]) + fabs(b0[i])) +
							l2 * fabs(p0[i]))) +
			    lr * (fabs(a0[i]) + fabs(b0[i])) * dg;
		double tq = RTOL * (fabs(a0[i]) + fabs(b0[i]) + lr * (fabs(g * p0[i]) + l2)) +
			    lr * fabs(p0[i]) * dg;
		check_close(bufs[0][off + i], bufs[3][off + i], tp + FLT_MIN, "p", i);
		check_close(bufs[1][off + 1 + i], bufs[4][off + 1 + i], tq + FLT_MIN, "qi", i);
		check_close(bufs[2][off + 2 + i], bufs[5][off + 2 + i], tq + FLT_MIN, "qj", i);
	}
	check_guards(bufs[0], CAP, off, n, "p");
	check_guards(bufs[1], CAP, off + 1, n, "qi");
	check_guards(bufs[2], CAP, off + 2, n, "qj");
}

static void test_bpr_step_matches_scalar(void **state)
{
	const struct mfs_kernels *k = kernel_or_skip(state);
	float *bufs[6];
	for (int b = 0; b < 6; b++)
		bufs[b] = alloc_floats(CAP);
	uint64_t seed = 61;
	const float bases[] = { 0.0f, 2.5f, -4.0f };
	for (size_t bi = 0; bi < COUNT(bases); bi++)
		for (size_t off = 0; off < 4; off++)
			for (size_t li = 0; li < NLENGTHS; li++)
				bpr_case(k, lengths[li], off, &seed, bufs, bases[bi]);
	for (int b = 0; b < 6; b++)
		free(bufs[b]);
}

/*
 * The oracle against a case worked by hand: p = (1, 2), qi = (0.5, 0),
 * qj = (0, 0.25), base 0.5: d = 0.5 - 0.5 = 0, x = 0.5, g = w * sigmoid(-0.5)
 * = 2 * 0.3775407 = 0.7550813; lr 0.1, l2 0.1:
 *   p  = (1 + 0.1 * (g * 0.5 - 0.1), 2 + 0.1 * (g * -0.25 - 0.2))
 *   qi = (0.5 + 0.1 * (g * 1 - 0.05), 0 + 0.1 * (g * 2))
 *   qj = (0 + 0.1 * (-g * 1), 0.25 + 0.1 * (-g * 2 - 0.025))
 */
static void test_bpr_step_scalar_hand_computed(void **state)
{
	(void)state;
	float p[2] = { 1.0f, 2.0f }, qi[2] = { 0.5f, 0.0f }, qj[2] = { 0.0f, 0.25f };
	struct mfs_bpr s = { .base = 0.5f, .w = 2.0f, .lr = 0.1f, .l2 = 0.1f };
	mfs_kernels_scalar.bpr_step(p, qi, qj, 2, &s);
	const double g = 2.0 / (1.0 + exp(0.5));
	assert_float_equal(s.x, 0.5, 1e-6);
	assert_float_equal(s.g, g, 1e-6);
	assert_float_equal(p[0], 1.0 + 0.1 * (g * 0.5 - 0.1), 1e-6);
	assert_float_equal(p[1], 2.0 + 0.1 * (g * -0.25 - 0.2), 1e-6);
	assert_float_equal(qi[0], 0.5 + 0.1 * (g - 0.05), 1e-6);
	assert_float_equal(qi[1], 0.1 * (g * 2.0), 1e-6);
	assert_float_equal(qj[0], 0.1 * -g, 1e-6);
	assert_float_equal(qj[1], 0.25 + 0.1 * (-g * 2.0 - 0.025), 1e-6);
}

/* The table says what it is. */
static void test_table_names_isa_and_width(void **state)
{
	const struct mfs_kernels *k = kernel_or_skip(state);
	const char *name = *state;
	assert_string_equal(k->name, name);
	size_t want = strcmp(name, "avx512") == 0 ? 16 : strcmp(name, "avx2") == 0 ? 8 : 4;
	assert_int_equal(k->width, want);
	assert_non_null(k->dot);
	assert_non_null(k->sgd_step);
	assert_non_null(k->adagrad_step);
	assert_non_null(k->bpr_step);
	assert_non_null(k->score);
}

/* ---- dispatch --------------------------------------------------------------- */

static void test_dispatch_auto_returns_a_kernel_the_cpu_runs(void **state)
{
	(void)state;
	const char *names[] = { NULL, "auto", "" };
	for (size_t i = 0; i < COUNT(names); i++) {
		const struct mfs_kernels *k = NULL;
		assert_int_equal(mfs_kernels_select(names[i], &k), 0);
		assert_non_null(k);
		assert_ptr_equal(mfs_kernels_get(k->name), k);
	}
}

/* The order itself, for every set of instruction sets (whatever this CPU has):
 * AVX-512F over AVX2+FMA over NEON over scalar. */
static void test_dispatch_order_prefers_the_widest(void **state)
{
	(void)state;
	for (unsigned isa = 0; isa < 8; isa++) {
		const char *want = isa & MFS_ISA_AVX512F    ? "avx512"
				   : isa & MFS_ISA_AVX2_FMA ? "avx2"
				   : isa & MFS_ISA_NEON     ? "neon"
							    : "scalar";
		assert_string_equal(mfs_kernels_preferred(isa), want);
	}
}

#if defined(__x86_64__)
/* The CPU's flags as the kernel reports them (/proc/cpuinfo), read here
 * without the dispatcher's code: 1 if the flag is there, 0 if not, -1 when
 * cpuinfo cannot be read. */
static int cpuinfo_flag(const char *flag)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return -1;
	char line[8192];
	int found = -1;
	while (found < 0 && fgets(line, sizeof line, f)) {
		if (strncmp(line, "flags", 5) != 0 && strncmp(line, "Features", 8) != 0)
			continue;
		found = 0;
		for (char *t = strtok(strchr(line, ':') + 1, " \t\n"); t; t = strtok(NULL, " \t\n"))
			if (strcmp(t, flag) == 0)
				found = 1;
	}
	fclose(f);
	return found;
}
#endif

/* auto on this machine: the widest kernel its cpuinfo flags allow. */
static void test_dispatch_auto_prefers_the_widest(void **state)
{
	(void)state;
	const char *want;
#if defined(__x86_64__)
	int a512 = cpuinfo_flag("avx512f"), a2 = cpuinfo_flag("avx2"), fma = cpuinfo_flag("fma");
	if (a512 < 0)
		skip(); /* no /proc/cpuinfo */
	want = a512 ? "avx512" : a2 && fma ? "avx2" : "scalar";
#elif defined(__aarch64__)
	want = "neon";
#else
	want = "scalar";
#endif
	const struct mfs_kernels *k = NULL;
	assert_int_equal(mfs_kernels_select("auto", &k), 0);
	print_message("auto: %s\n", k->name);
	assert_string_equal(k->name, want);
}

static void test_dispatch_unknown_name_is_inval(void **state)
{
	(void)state;
	const char *names[] = { "bogus", "AVX2", "sse4", "avx2 ", "scalar2" };
	for (size_t i = 0; i < COUNT(names); i++) {
		const struct mfs_kernels *k = &mfs_kernels_scalar;
		assert_int_equal(mfs_kernels_select(names[i], &k), -MFS_E_INVAL);
		assert_ptr_equal(k, &mfs_kernels_scalar); /* *out untouched on error */
		assert_null(mfs_kernels_get(names[i]));
	}
}

static void test_dispatch_foreign_isa_is_unsupported(void **state)
{
	(void)state;
	const struct mfs_kernels *k = NULL;
#if defined(__x86_64__)
	assert_int_equal(mfs_kernels_select("neon", &k), -MFS_E_UNSUPPORTED);
	assert_null(mfs_kernels_get("neon"));
#elif defined(__aarch64__)
	assert_int_equal(mfs_kernels_select("avx2", &k), -MFS_E_UNSUPPORTED);
	assert_int_equal(mfs_kernels_select("avx512", &k), -MFS_E_UNSUPPORTED);
	assert_null(mfs_kernels_get("avx2"));
#else
	skip();
#endif
	assert_null(k);
}

static void test_dispatch_named_kernel_matches_get(void **state)
{
	(void)state;
	const char *names[] = { "scalar", "avx2", "avx512", "neon" };
	for (size_t i = 0; i < COUNT(names); i++) {
		const struct mfs_kernels *want = mfs_kernels_get(names[i]), *k = NULL;
		int rc = mfs_kernels_select(names[i], &k);
		if (want) {
			assert_int_equal(rc, 0);
			assert_ptr_equal(k, want);
			assert_string_equal(k->name, names[i]);
		} else {
			assert_int_equal(rc, -MFS_E_UNSUPPORTED);
		}
	}
	const struct mfs_kernels *k = NULL;
	assert_int_equal(mfs_kernels_select("scalar", &k), 0);
	assert_ptr_equal(k, &mfs_kernels_scalar);
	assert_int_equal(mfs_kernels_scalar.width, 1);
}

/* ---- registration -------------------------------------------------------------- */

/* ---- mathf.h: exp, log and pow of the per-event path against libm ------- */

/* Relative error allowed: a few float ulps. */
#define MATH_RTOL 4e-7

static void test_mathf_expf_matches_libm(void **state)
{
	(void)state;
	uint64_t rs = 11;
	for (int j = 0; j < 200000; j++) {
		float x = j < 1000 ? -87.0f + 175.0f * (float)j / 1000.0f : rng_float(&rs, -30.0f, 30.0f);
		double want = exp((double)x), got = mfs_expf(x);
		snprintf(ctx, sizeof ctx, "mfs_expf(%.9g) = %.9g, exp = %.9g", x, got, want);
		if (fabs(got - want) > MATH_RTOL * want)
			fail_msg("%s", ctx);
	}
	/* clamped ends stay finite normal floats; NaN stays NaN */
	assert_true(isfinite(mfs_expf(1000.0f)) && mfs_expf(1000.0f) > 1e38f);
	assert_true(mfs_expf(-1000.0f) >= FLT_MIN && mfs_expf(-1000.0f) < 1e-37f);
	assert_true(isnan(mfs_expf(NAN)));
}

static void test_mathf_logf_and_powf_match_libm(void **state)
{
	(void)state;
	uint64_t rs = 12;
	for (int j = 0; j < 200000; j++) {
		/* log-uniform over 1e-30 .. 1e30, and the logit's range 1e-3 .. 1e3 densely */
		float x = j & 1 ? expf(rng_float(&rs, -69.0f, 69.0f)) : expf(rng_float(&rs, -6.9f, 6.9f));
		double want = log((double)x), got = mfs_logf(x);
		snprintf(ctx, sizeof ctx, "mfs_logf(%.9g) = %.9g, log = %.9g", x, got, want);
		if (fabs(got - want) > MATH_RTOL * fabs(want) + 1e-7)
			fail_msg("%s", ctx);
		/* the frequency weight: (n / 100)^(alpha - 1), alpha in [0, 1] */
		float r = (float)(1 + (rng_next(&rs) % 10000000)) / 100.0f;
		float a = rng_float(&rs, -1.0f, 0.0f);
		double pw = pow((double)r, (double)a), pg = mfs_powf(r, a);
		snprintf(ctx, sizeof ctx, "mfs_powf(%.9g, %.9g) = %.9g, pow = %.9g", r, a, pg, pw);
		if (fabs(pg - pw) > 2e-6 * pw)
			fail_msg("%s", ctx);
	}
}

#define KTEST(isa, fn) { "kernels_" #isa "__" #fn, test_##fn, NULL, NULL, (void *)#isa }
#define KTESTS(isa)                                                               \
	KTEST(isa, table_names_isa_and_width), KTEST(isa, dot_matches_scalar),     \
		KTEST(isa, dot_matches_scalar_unaligned),                          \
		KTEST(isa, sgd_step_matches_scalar_clamp),                         \
		KTEST(isa, sgd_step_matches_scalar_sigmoid),                       \
		KTEST(isa, sgd_step_matches_scalar_clamp_engaged),                 \
		KTEST(isa, sgd_step_matches_scalar_unaligned),                     \
		KTEST(isa, adagrad_step_matches_scalar_clamp),                     \
		KTEST(isa, adagrad_step_matches_scalar_sigmoid),                   \
		KTEST(isa, adagrad_step_matches_scalar_clamp_engaged),             \
		KTEST(isa, adagrad_step_matches_scalar_unaligned),                 \
		KTEST(isa, adagrad_step_keeps_accumulators_when_n_is_0),           \
		KTEST(isa, score_matches_scalar), KTEST(isa, score_matches_scalar_unaligned), \
		KTEST(isa, bpr_step_matches_scalar),                                \
		KTEST(isa, score_q8_matches_scalar),                                \
		KTEST(isa, padded_rows_match_scalar_and_padding_stays_zero)
#define DTEST(fn) { "kernels_dispatch__" #fn, test_dispatch_##fn, NULL, NULL, NULL }

int main(void)
{
	const struct CMUnitTest tests[] = {
		DTEST(auto_returns_a_kernel_the_cpu_runs),
		DTEST(order_prefers_the_widest),
		DTEST(auto_prefers_the_widest),
		DTEST(unknown_name_is_inval),
		DTEST(foreign_isa_is_unsupported),
		DTEST(named_kernel_matches_get),
		{ "kernels_scalar__bpr_step_hand_computed", test_bpr_step_scalar_hand_computed, NULL, NULL,
		  NULL },
		{ "mathf__expf_matches_libm", test_mathf_expf_matches_libm, NULL, NULL, NULL },
		{ "mathf__logf_and_powf_match_libm", test_mathf_logf_and_powf_match_libm, NULL, NULL, NULL },
		KTESTS(avx2),
		KTESTS(avx512),
		KTESTS(neon),
	};
	return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
