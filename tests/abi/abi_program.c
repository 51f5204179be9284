/*
 * abi_program.c - a client of the public API that passes its structs both
 * ways (mfs_config, mfs_source_config, mfs_event, mfs_learn_stats,
 * mfs_model_info, mfs_save_opts, mfs_scored, mfs_server_info, mfs_diag).
 * tests/abi_check.sh builds it against the header of the previous release
 * and against today's, runs both on today's shared library and compares what
 * they print: a struct that changed layout, a call that changed meaning, or
 * a symbol that went away shows up as a difference, a crash or a link error.
 */
#include <mfstream.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	mfs_diag d;
	memset(&d, 0, sizeof d);
	mfs_config cfg;
	mfs_config_default(&cfg);
	cfg.dim = 12;
	cfg.seed = 5;
	cfg.max_users = 5000;
	cfg.max_items = 2000;
	cfg.lo = 1.0f;
	cfg.hi = 5.0f;
	mfs_model *m;
	if (mfs_model_create(&m, &cfg, &d) < 0)
		return fprintf(stderr, "create: %s\n", d.reason), 1;
	mfs_source_config sc;
	mfs_source_config_default(&sc);
	sc.batch = 1000;
	mfs_source *src;
	const char *in[] = { argv[1] };
	if (mfs_source_open(&src, in, 1, &sc, &d) < 0)
		return fprintf(stderr, "open: %s\n", d.reason), 1;
	mfs_learn_stats st;
	memset(&st, 0, sizeof st);
	const mfs_event *ev;
	int n;
	while ((n = mfs_source_next(src, &ev, &d)) > 0)
		if (mfs_model_learn(m, ev, (size_t)n, &st) < 0)
			return 1;
	mfs_source_stats ss;
	mfs_source_stats_get(src, &ss);
	mfs_source_free(src);
	printf("learned %llu, rmse %.6f, source events %llu\n", (unsigned long long)st.events,
	       st.events ? st.sq_err / (double)st.events : 0.0, (unsigned long long)ss.events);
	mfs_model_info mi;
	mfs_model_info_get(m, &mi);
	printf("info: dim %u users %llu items %llu events %llu range %g:%g\n", mi.dim,
	       (unsigned long long)mi.users, (unsigned long long)mi.items,
	       (unsigned long long)mi.events, mi.lo, mi.hi);
	float p;
	if (mfs_model_predict(m, "1", 1, "1", 1, &p) == 0)
		printf("predict 1,1: %.6f\n", p);
	mfs_scored top[5];
	int k = mfs_model_recommend(m, "1", 1, 5, top);
	for (int i = 0; i < k; i++)
		printf("top %d: row %u score %.6f\n", i, top[i].row, top[i].score);
	mfs_save_opts so;
	memset(&so, 0, sizeof so);
	so.compress = 3;
	if (mfs_model_save(m, argv[2], &so, &d) < 0)
		return fprintf(stderr, "save: %s\n", d.reason), 1;
	mfs_model_free(m);
	mfs_server *srv;
	if (mfs_server_open(&srv, argv[2], NULL, NULL, NULL, &d) < 0)
		return fprintf(stderr, "server: %s\n", d.reason), 1;
	mfs_server_info si;
	mfs_server_info_get(srv, &si);
	const mfs_view *v = mfs_server_acquire(srv);
	k = mfs_view_recommend(v, "1", 1, 5, top);
	mfs_server_release(srv, v);
	printf("served: events %llu refreshes %llu, top %d first row %u\n",
	       (unsigned long long)si.events, (unsigned long long)si.refreshes, k,
	       k > 0 ? top[0].row : 0);
	mfs_server_free(srv);
	return 0;
}
