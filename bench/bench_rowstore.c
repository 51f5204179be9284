/*
 * bench_rowstore - the memory layout of the learner, measured apart from
 * parsing and hashing (issue 13): the same AdaGrad step on the same event
 * stream, over two layouts of the same tables.
 *
 *   arrays:  today's shape. An open-addressing index of 16-byte slots {key,
 *            row, seen} whose hit writes `seen`; factors in one array and
 *            bias, factor and bias AdaGrad state, count, history place and
 *            dirty bit each in its own array; a chunk of 1024 events is
 *            resolved (slots prefetched first), then learned with the rows
 *            4 events ahead prefetched.
 *   rows:    one header line per row {bias, accumulators, count, last seen,
 *            history place, dirty} before the factors; an index of 64-byte
 *            buckets of 4 {key, row}, read-only on a hit; a pipeline over
 *            groups of 8 events: hash and prefetch the bucket two groups
 *            ahead, probe and prefetch the row one group ahead, learn the
 *            current group.
 * With HISTORY 1 (train's default --history 128) both write the user's
 * history ring, a slot per event (128 x 8 bytes per user). Keys are random
 * 64-bit values standing for hashed IDs: users uniform, items skewed as a
 * planted stream's. Prints events/s per layout, median of RUNS, alternated,
 * and checks that both layouts learned the same model (same sums).
 *
 * Usage: bench_rowstore [EVENTS [USERS [ITEMS [DIM [HISTORY]]]]]
 *        (default 20000000 200000 20000 32 1; HISTORY 0: no history ring)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUNS 3
#define HIST 128

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void *zalloc(size_t n)
{
	void *p = aligned_alloc(64, (n + 63) / 64 * 64);
	if (!p) {
		fprintf(stderr, "bench_rowstore: out of memory\n");
		exit(1);
	}
	memset(p, 0, n);
	return p;
}

struct ev {
	uint64_t uk, ik;
	float r;
};

static unsigned dim;
static const float LR = 0.05f, L2 = 0.02f, MU = 3.5f;

/* The step both layouts take: AdaGrad with one accumulator per row. */
static inline void step(float *p, float *q, float *bu, float *bi, float *ap, float *aq,
			float *abu, float *abi, float r)
{
	float dot = 0;
	for (unsigned k = 0; k < dim; k++)
		dot += p[k] * q[k];
	float err = r - (MU + *bu + *bi + dot);
	float rp = LR / sqrtf(*ap), rq = LR / sqrtf(*aq), gp = 0, gq = 0;
	for (unsigned k = 0; k < dim; k++) {
		float dp = err * q[k] - L2 * p[k], dq = err * p[k] - L2 * q[k];
		p[k] += rp * dp;
		q[k] += rq * dq;
		gp += dp * dp;
		gq += dq * dq;
	}
	*ap += gp / (float)dim;
	*aq += gq / (float)dim;
	float gu = err - L2 * *bu, gi = err - L2 * *bi;
	*bu += LR / sqrtf(*abu) * gu;
	*bi += LR / sqrtf(*abi) * gi;
	*abu += gu * gu;
	*abi += gi * gi;
}

/* ---- today's arrays ---------------------------------------------------- */

struct slot {
	uint64_t key;
	uint32_t row, seen;
};

struct side_a {
	struct slot *slots;
	uint64_t mask;
	float *f, *bias, *acc, *bacc;
	uint32_t *count;
	uint16_t *hpos;
	uint64_t *hist, *dirty;
};

static void a_init(struct side_a *s, const uint64_t *keys, uint64_t n, int hist)
{
	uint64_t cap = 1;
	while (cap < 2 * n)
		cap <<= 1;
	s->mask = cap - 1;
	s->slots = zalloc(cap * sizeof *s->slots);
	s->f = zalloc(n * dim * sizeof(float));
	s->bias = zalloc(n * sizeof(float));
	s->acc = zalloc(n * sizeof(float));
	s->bacc = zalloc(n * sizeof(float));
	s->count = zalloc(n * sizeof(uint32_t));
	s->hpos = zalloc(n * sizeof(uint16_t));
	s->hist = hist ? zalloc(n * HIST * sizeof(uint64_t)) : NULL;
	s->dirty = zalloc((n + 63) / 64 * 8);
	uint64_t seed = 99;
	for (uint64_t r = 0; r < n; r++) {
		uint64_t i = keys[r] & s->mask;
		while (s->slots[i].key)
			i = (i + 1) & s->mask;
		s->slots[i] = (struct slot){ keys[r], (uint32_t)r, 0 };
		for (unsigned k = 0; k < dim; k++)
			s->f[r * dim + k] = (float)((mix(&seed) >> 40) * 0x1p-24 - 0.5) * 0.2f;
		s->acc[r] = s->bacc[r] = 1.0f;
	}
}

static inline uint32_t a_touch(struct side_a *s, uint64_t key, uint32_t tick)
{
	uint64_t i = key & s->mask;
	while (s->slots[i].key != key)
		i = (i + 1) & s->mask;
	s->slots[i].seen = tick; /* the write of every hit */
	return s->slots[i].row;
}

static void a_prefetch_row(const struct side_a *s, uint32_t r)
{
	for (unsigned off = 0; off < dim; off += 16)
		__builtin_prefetch(s->f + (size_t)r * dim + off, 1);
	__builtin_prefetch(&s->bias[r], 1);
	__builtin_prefetch(&s->acc[r], 1);
	__builtin_prefetch(&s->bacc[r], 1);
	__builtin_prefetch(&s->count[r], 1);
	if (s->hist)
		__builtin_prefetch(&s->hpos[r], 1);
}

static void a_learn(struct side_a *u, struct side_a *it, const struct ev *ev, size_t n)
{
	enum { CHUNK = 1024, AHEAD = 4 };
	static uint32_t rows[2 * CHUNK];
	uint32_t tick = 0;
	for (size_t base = 0; base < n; base += CHUNK) {
		size_t cn = n - base < CHUNK ? n - base : CHUNK;
		const struct ev *ce = ev + base;
		for (size_t j = 0; j < cn; j++) {
			__builtin_prefetch(&u->slots[ce[j].uk & u->mask]);
			__builtin_prefetch(&it->slots[ce[j].ik & it->mask]);
		}
		for (size_t j = 0; j < cn; j++) {
			tick++;
			rows[2 * j] = a_touch(u, ce[j].uk, tick);
			rows[2 * j + 1] = a_touch(it, ce[j].ik, tick);
		}
		for (size_t j = 0; j < AHEAD && j < cn; j++) {
			a_prefetch_row(u, rows[2 * j]);
			a_prefetch_row(it, rows[2 * j + 1]);
		}
		for (size_t j = 0; j < cn; j++) {
			if (j + AHEAD < cn) {
				a_prefetch_row(u, rows[2 * (j + AHEAD)]);
				a_prefetch_row(it, rows[2 * (j + AHEAD) + 1]);
			}
			uint32_t a = rows[2 * j], b = rows[2 * j + 1];
			u->count[a]++;
			it->count[b]++;
			if (u->hist) {
				uint16_t h = u->hpos[a];
				u->hist[(size_t)a * HIST + h] = ce[j].ik;
				u->hpos[a] = (uint16_t)((h + 1) % HIST);
			}
			u->dirty[a >> 6] |= 1ULL << (a & 63);
			it->dirty[b >> 6] |= 1ULL << (b & 63);
			step(u->f + (size_t)a * dim, it->f + (size_t)b * dim, &u->bias[a], &it->bias[b],
			     &u->acc[a], &it->acc[b], &u->bacc[a], &it->bacc[b], ce[j].r);
		}
	}
}

/* ---- one header line per row ------------------------------------------ */

struct head {
	float bias, acc, bacc;
	uint32_t count;
	uint64_t seen;
	uint16_t hpos;
	uint8_t dirty, pad[37];
};
_Static_assert(sizeof(struct head) == 64, "a header is one cache line");

struct bucket {
	uint64_t key[4];
	uint32_t row[4];
	uint32_t pad[4];
};

struct side_b {
	struct bucket *b;
	uint64_t mask;
	char *rows;
	size_t rsz; /* header + factors, a multiple of 64 */
	uint64_t *hist;
};

static inline struct head *b_head(const struct side_b *s, uint32_t r)
{
	return (struct head *)(void *)(s->rows + (size_t)r * s->rsz);
}

static void b_init(struct side_b *s, const uint64_t *keys, uint64_t n, int hist)
{
	uint64_t nb = 1;
	while (nb * 4 < 2 * n)
		nb <<= 1;
	s->mask = nb - 1;
	s->b = zalloc(nb * sizeof *s->b);
	s->rsz = 64 + (dim * sizeof(float) + 63) / 64 * 64;
	s->rows = zalloc(n * s->rsz);
	s->hist = hist ? zalloc(n * HIST * sizeof(uint64_t)) : NULL;
	uint64_t seed = 99;
	for (uint64_t r = 0; r < n; r++) {
		uint64_t i = keys[r] & s->mask;
		for (;; i = (i + 1) & s->mask) {
			int k = 0;
			while (k < 4 && s->b[i].key[k])
				k++;
			if (k < 4) {
				s->b[i].key[k] = keys[r];
				s->b[i].row[k] = (uint32_t)r;
				break;
			}
		}
		float *f = (float *)(void *)(b_head(s, (uint32_t)r) + 1);
		for (unsigned k = 0; k < dim; k++)
			f[k] = (float)((mix(&seed) >> 40) * 0x1p-24 - 0.5) * 0.2f;
		b_head(s, (uint32_t)r)->acc = b_head(s, (uint32_t)r)->bacc = 1.0f;
	}
}

static inline uint32_t b_find(const struct side_b *s, uint64_t key)
{
	for (uint64_t i = key & s->mask;; i = (i + 1) & s->mask)
		for (int k = 0; k < 4; k++)
			if (s->b[i].key[k] == key)
				return s->b[i].row[k];
}

static inline void b_prefetch_row(const struct side_b *s, uint32_t r)
{
	const char *p = s->rows + (size_t)r * s->rsz;
	for (size_t off = 0; off < s->rsz; off += 64)
		__builtin_prefetch(p + off, 1);
}

static void b_learn(struct side_b *u, struct side_b *it, const struct ev *ev, size_t n)
{
	enum { G = 8 };
	uint32_t rows[3][2 * G];
	uint64_t tick = 0;
	size_t ng = (n + G - 1) / G;
	for (size_t g = 0; g < ng + 2; g++) {
		/* hash and prefetch the buckets of group g */
		if (g < ng)
			for (size_t j = g * G; j < n && j < (g + 1) * G; j++) {
				__builtin_prefetch(&u->b[ev[j].uk & u->mask]);
				__builtin_prefetch(&it->b[ev[j].ik & it->mask]);
			}
		/* probe group g - 1 and prefetch its rows */
		if (g >= 1 && g - 1 < ng) {
			uint32_t *rw = rows[(g - 1) % 3];
			for (size_t j = (g - 1) * G, x = 0; j < n && j < g * G; j++, x++) {
				rw[2 * x] = b_find(u, ev[j].uk);
				rw[2 * x + 1] = b_find(it, ev[j].ik);
				b_prefetch_row(u, rw[2 * x]);
				b_prefetch_row(it, rw[2 * x + 1]);
			}
		}
		/* learn group g - 2 */
		if (g >= 2) {
			const uint32_t *rw = rows[(g - 2) % 3];
			for (size_t j = (g - 2) * G, x = 0; j < n && j < (g - 1) * G; j++, x++) {
				struct head *hu = b_head(u, rw[2 * x]), *hi = b_head(it, rw[2 * x + 1]);
				tick++;
				hu->seen = hi->seen = tick;
				hu->count++;
				hi->count++;
				hu->dirty = hi->dirty = 1;
				if (u->hist) {
					u->hist[(size_t)rw[2 * x] * HIST + hu->hpos] = ev[j].ik;
					hu->hpos = (uint16_t)((hu->hpos + 1) % HIST);
				}
				step((float *)(void *)(hu + 1), (float *)(void *)(hi + 1), &hu->bias,
				     &hi->bias, &hu->acc, &hi->acc, &hu->bacc, &hi->bacc, ev[j].r);
			}
		}
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000000;
	uint64_t nu = argc > 2 ? strtoull(argv[2], NULL, 10) : 200000;
	uint64_t ni = argc > 3 ? strtoull(argv[3], NULL, 10) : 20000;
	dim = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 32;
	int hist = argc > 5 ? atoi(argv[5]) != 0 : 1;
	if (!n || !nu || !ni || !dim || dim > 1024) {
		fprintf(stderr, "usage: bench_rowstore [EVENTS [USERS [ITEMS [DIM [HISTORY]]]]]\n");
		return 2;
	}
	uint64_t seed = 7;
	uint64_t *uk = zalloc(nu * 8), *ik = zalloc(ni * 8);
	for (uint64_t i = 0; i < nu; i++)
		uk[i] = mix(&seed) | 1;
	for (uint64_t i = 0; i < ni; i++)
		ik[i] = mix(&seed) | 1;
	struct ev *ev = zalloc(n * sizeof *ev);
	for (size_t j = 0; j < n; j++) {
		double x = (double)(mix(&seed) >> 11) * 0x1p-53;
		ev[j].uk = uk[mix(&seed) % nu];
		ev[j].ik = ik[(uint64_t)(x * x * (double)ni) % ni]; /* skewed to the first items */
		ev[j].r = (float)(1 + mix(&seed) % 5);
	}
	double ta[RUNS], tb[RUNS], suma = 0, sumb = 0;
	for (int run = 0; run < RUNS; run++) {
		struct side_a au, ai;
		a_init(&au, uk, nu, hist);
		a_init(&ai, ik, ni, 0);
		double t = now();
		a_learn(&au, &ai, ev, n);
		ta[run] = (double)n / (now() - t);
		struct side_b bu, bi;
		b_init(&bu, uk, nu, hist);
		b_init(&bi, ik, ni, 0);
		t = now();
		b_learn(&bu, &bi, ev, n);
		tb[run] = (double)n / (now() - t);
		suma = sumb = 0;
		for (uint64_t r = 0; r < ni; r++) {
			suma += ai.bias[r] + ai.f[r * dim];
			sumb += b_head(&bi, (uint32_t)r)->bias + ((float *)(void *)(b_head(&bi, (uint32_t)r) + 1))[0];
		}
		printf("run %d arrays %.3g events/s  rows %.3g events/s\n", run + 1, ta[run], tb[run]);
		free(au.slots), free(au.f), free(au.bias), free(au.acc), free(au.bacc), free(au.count);
		free(au.hpos), free(au.hist), free(au.dirty);
		free(ai.slots), free(ai.f), free(ai.bias), free(ai.acc), free(ai.bacc), free(ai.count);
		free(ai.hpos), free(ai.hist), free(ai.dirty);
		free(bu.b), free(bu.rows), free(bu.hist), free(bi.b), free(bi.rows), free(bi.hist);
	}
	qsort(ta, RUNS, sizeof *ta, cmp_d);
	qsort(tb, RUNS, sizeof *tb, cmp_d);
	printf("bench_rowstore events=%zu users=%llu items=%llu dim=%u history=%d median arrays=%.3g "
	       "rows=%.3g ratio=%.2fx same_model=%s\n",
	       n, (unsigned long long)nu, (unsigned long long)ni, dim, hist, ta[RUNS / 2], tb[RUNS / 2],
	       tb[RUNS / 2] / ta[RUNS / 2], suma == sumb ? "yes" : "NO");
	free(ev);
	free(uk);
	free(ik);
	return suma == sumb ? 0 : 1;
}
