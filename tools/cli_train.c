/* cli_train.c - "mfstream train" and "mfstream eval". */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* The help text; model defaults are printed from mfs_config_default(), so they cannot drift. */
static void train_help(void)
{
	mfs_config d;
	mfs_config_default(&d);
	printf("Usage: mfstream train [options] INPUT...\n"
	       "\n"
	       "Learn from rating events, one SGD step per event, in input order. INPUT is a\n"
	       "file (plain, zstd or gzip, recognised by its magic bytes), a directory\n"
	       "(its files in order; Kafka-sink names by partition and offset; hidden and\n"
	       "temporary files ignored) or '-' for standard input. Prints a JSON summary on\n"
	       "stdout; progress and diagnostics go to stderr. bzip2, xz, lz4, zip and 7z\n"
	       "files are refused (named by their magic bytes).\n"
	       "\n"
	       "Input:\n"
	       "  --format F          auto|tsv|csv|dat|jsonl|ssv (default auto: decided per file;\n"
	       "                      ssv: LIBMF's \"user item rating [time]\" between spaces)\n"
	       "  --fields SPEC       jsonl field names, e.g. user=userId,item=movieId,rating=rating,time=ts;\n"
	       "                      a dotted name reaches into nested objects (user=payload.userId)\n"
	       "  --on-error P        skip-file (default): report an unreadable or corrupt file and go on;\n"
	       "                      stop: exit 1 on it. Malformed records are always skipped and counted.\n"
	       "  --io B              auto (default: io_uring, else pread with a notice), uring, pread\n"
	       "  --follow            keep reading as files grow and new files appear; SIGINT/SIGTERM\n"
	       "                      end the run: the current batch, the final checkpoint, --test,\n"
	       "                      --save and the summary, then exit 0\n"
	       "  --linger-ms N       --follow: events that have arrived wait at most N ms for more\n"
	       "                      before they are learned as a batch (default 5; 0: at once)\n"
	       "  --reader-thread X   on (default): read, decompress and parse on a second core; off\n"
	       "Kafka input (instead of INPUT; follow mode: SIGINT/SIGTERM checkpoint and exit 0):\n"
	       "  --kafka BROKERS     consume from these bootstrap servers (host:port[,host:port])\n"
	       "  --topic T[,T2...]   the topics; a message holds one record or several lines\n"
	       "  --group G           partitions assigned by consumer group G, with static membership\n"
	       "                      (group.instance.id mfstream-HOSTNAME, or --kafka-opt instance=ID).\n"
	       "                      Without --group every partition of the topics is consumed (no\n"
	       "                      group session). Offsets are committed after each checkpoint (to\n"
	       "                      G, or to mfstream-TOPICS, a group never joined)\n"
	       "  --kafka-start S     earliest (default) or latest: where a partition starts that the\n"
	       "                      checkpoint holds no offset for (offsets live in the checkpoints)\n"
	       "  --kafka-opt K=V     a librdkafka property (repeatable), or notice-ms=N: at most\n"
	       "                      one broker notice per N ms (default 10000)\n"
	       "Publishing the model (for `serve --kafka`; needs --checkpoint-dir):\n"
	       "  --publish BROKERS/TOPIC  every checkpoint and delta written is also produced to\n"
	       "                      TOPIC (idempotent producer, 512 KiB chunks with checksums,\n"
	       "                      keys full/<i> and delta/<seq>/<i> for log compaction). A failure\n"
	       "                      is said and counted (summary: published), never loses the\n"
	       "                      checkpoint; the next one published is then whole\n"
	       "  --publish-full-every N  a whole snapshot at least every N checkpoints published\n"
	       "                      (default 10; the deltas between apply on it)\n"
	       "  --publish-opt K=V   a librdkafka producer property (repeatable)\n");
	printf("Model (defaults tuned on MovieLens 100K, see README.md):\n"
	       "  --dim K             embedding width (default %u)\n"
	       "  --optimizer O       adagrad (default: per-row AdaGrad for factors and biases, as\n"
	       "                      LIBMF) or sgd (fixed rates)\n"
	       "  --lr F              factor learning rate (default %g; adagrad: base rate)\n"
	       "  --lr-bias F         bias learning rate (default %g)\n"
	       "  --l2 F              factor L2, at every step (default %g)\n"
	       "  --l2-bias F         bias L2 (default %g)\n"
	       "  --init-std F        std of the initial factors (default %g)\n"
	       "  --rating-range R    LO:HI, or auto (default): the smallest and largest rating of\n"
	       "                      the first batch read (up to 4096 events; with --follow what\n"
	       "                      has arrived), or the checkpoint's when resuming; said on\n"
	       "                      stderr. Predictions stay inside. A rating outside is learned\n"
	       "                      clamped into it, scored as it is, counted in out_of_range\n"
	       "                      and reported once with its file:line (library default %g:%g)\n"
	       "  --range-link L      %s (default) or %s\n"
	       "  --range-margin F    sigmoid link: the sigmoid spans the range widened by F of it on\n"
	       "                      each side, predictions are clamped into range (default %g)\n",
	       d.dim, d.lr, d.lr_bias, d.l2, d.l2_bias, d.init_std, d.lo, d.hi,
	       d.link == MFS_RANGE_SIGMOID ? "sigmoid (fastai's y_range)" : "clamp",
	       d.link == MFS_RANGE_SIGMOID ? "clamp" : "sigmoid (fastai's y_range)", d.range_margin);
	printf("  --max-users N       user table rows (default %llu)\n"
	       "  --max-items N       item table rows (default %llu)\n"
	       "  --memory SIZE       size both tables from a budget (e.g. 512M, 4G): 3/4 users, 1/4 items\n"
	       "  --history N         each user row remembers the items of its N most recent events\n"
	       "                      (pass 1), which recommend and serve leave out; a user with\n"
	       "                      more events has those of its N most recent left out. 8*N+4\n"
	       "                      bytes per user row, in memory and in model files (default %u,\n"
	       "                      at most %u; 0: none)\n"
	       "  --ids MODE          exact (default): each ID its own row; a full table gives a new ID\n"
	       "                      the row of the least recently seen ID (evictions in the summary).\n"
	       "                      hashed: row = hash of the ID, colliding IDs share a row\n"
	       "  --hashes N          hashed mode: 2 gives each user two rows, summed, so users that\n"
	       "                      collide in one row still differ in the other (default 1)\n"
	       "  --no-evict          exact mode: when a table is full, do not learn events with new IDs\n"
	       "                      (counted as unplaced) instead of evicting\n"
	       "  --min-count N       admission: an ID gets a row after N sightings (default 1). Until\n"
	       "                      then its events update mu and the other side's bias only\n"
	       "  --seed N            all randomness comes from it (default %llu)\n"
	       "  --kernel K          auto|scalar|avx2|avx512|neon (default auto; also MFS_KERNEL)\n",
	       (unsigned long long)d.max_users, (unsigned long long)d.max_items, d.history,
	       MFS_HISTORY_MAX, (unsigned long long)d.seed);
	mfs_config di;
	mfs_config_default_implicit(&di);
	mfs_implicit_config ic;
	mfs_implicit_config_default(&ic);
	printf("Implicit feedback (clicks, plays, views; README.md \"Implicit feedback\"):\n"
	       "  --feedback F        explicit (default: ratings, RMSE) or implicit: every event is\n"
	       "                      an interaction, learned against sampled negatives, scored by\n"
	       "                      prequential HR@K and NDCG@K; scores are logits. Implicit\n"
	       "                      defaults: --dim %u, --optimizer sgd, --lr %g, --lr-bias %g,\n"
	       "                      --l2 %g, --l2-bias %g, --init-std %g, --history %u. Refused with\n"
	       "                      it: --epochs, --threads, --replay-*, --rating-range,\n"
	       "                      --range-link, --range-margin, --ids, --hashes, --min-count,\n"
	       "                      --test, --curve, --optimizer adagrad, --history 0\n"
	       "  --loss L            bpr (default: -w log sigmoid(s_ui - s_uj) per negative j),\n"
	       "                      logistic (positive label 1, negatives label 0, weight w), or\n"
	       "                      popularity (a baseline: items ranked by their weighted count)\n"
	       "  --negatives S       negatives per event, 1..1024 (default %u)\n"
	       "  --neg-beta B        negatives drawn in proportion to count^B over the items seen\n"
	       "                      (default %g: uniform; 0.75 as word2vec), redrawn when equal to\n"
	       "                      the positive or in the user's history\n"
	       "  --weight W          the rating column: none (default: every event weight 1),\n"
	       "                      rating (its value), log1p (log(1 + value), e.g. play counts).\n"
	       "                      A weight that is not a number >= 0 is skipped, counted\n"
	       "                      (bad_weights) and named with its file:line. The column is\n"
	       "                      optional: \"user<TAB>item\" lines (JSON without it) weigh 1\n"
	       "  --weights T=W,...   JSON lines with --fields ...,type=FIELD: an event's weight is\n"
	       "                      its type's (e.g. click=1,cart=3,buy=5); an event of another\n"
	       "                      type is a malformed record: skipped, counted, named with\n"
	       "                      its file:line. A weight that is not a number >= 0 is a\n"
	       "                      usage error\n"
	       "  --eval-k K          the cutoff of the ranking metrics (default 10; 0: none)\n"
	       "  --eval-every N      rank only every Nth first-time (user, item) pair (default 1:\n"
	       "                      all); ranking scans every item, so big catalogues sample\n",
	       di.dim, di.lr, di.lr_bias, di.l2, di.l2_bias, di.init_std, di.history, ic.negatives,
	       ic.neg_beta);
	printf("Training:\n"
	       "  --epochs N          passes over finite input (default 1). Pass 1 is in input order\n"
	       "                      (and scored prequentially); passes 2..N replay the events,\n"
	       "                      kept in memory, in a seeded random order, with the replay settings:\n"
	       "  --threads N         learner threads (default 1: one, in input order). N > 1: events\n"
	       "                      are learned in windows of N x --window, each bucketed by (user\n"
	       "                      row mod N, item row mod N) into N x N blocks learned N at a\n"
	       "                      time, conflict-free, in order inside a block (mu fixed per\n"
	       "                      window). Pass 1 resolves a window's IDs on one thread first,\n"
	       "                      and its checkpoints fall on window boundaries; passes 2..N\n"
	       "                      replay on the grid too. The same input, N and --window give\n"
	       "                      the same model byte for byte, resumed or not. --hashes 2 and\n"
	       "                      --min-count > 1 keep pass 1 on one thread\n"
	       "  --window N          --threads N > 1: events per thread of a window (default 65536)\n"
	       "  --replay-lr F       factor learning rate of passes 2..N (default %g)\n"
	       "  --replay-lr-bias F  bias learning rate of passes 2..N (default %g)\n"
	       "  --replay-l2 F       factor L2 of passes 2..N (default %g)\n"
	       "  --replay-l2-bias F  bias L2 of passes 2..N (default %g)\n"
	       "  --freq-alpha F      frequency-dependent L2: a row that learned n events (pass 1)\n"
	       "                      uses L2 * (n/100)^(F-1) in passes 2..N, so its total L2\n"
	       "                      grows as n^F (1: plain per-event L2) (default %g)\n"
	       "  --freq-alpha-bias F the same for the bias L2, in every pass (default %g)\n"
	       "  --checkpoint-dir DIR  write checkpoints (ckpt-<events>.mfs) here while learning, and\n"
	       "                      one at the end; a run with checkpoints in DIR resumes from the\n"
	       "                      newest whole one, after the last event it holds (same inputs).\n"
	       "                      Options given that differ from the checkpoint's (--dim, --ids,\n"
	       "                      capacities, --rating-range, --optimizer, --seed, ...) are refused\n"
	       "                      (exit 2); --lr, --lr-bias, --l2, --l2-bias, --init-std are taken\n"
	       "                      and said. Written by a forked copy-on-write child: learning\n"
	       "                      does not wait. One learner per DIR (a lock, DIR/LOCK: a\n"
	       "                      second one exits 1); temporary files of killed writers are\n"
	       "                      removed at start\n"
	       "  --checkpoint-every X  a duration (500ms, 1.5s, 30s, 5m, 2h; default 30s) or a count\n"
	       "                      of events (50000, 50k, 1.5M). Case matters: 5m is five\n"
	       "                      minutes, 5M five million events\n"
	       "  --delta-every X     between whole checkpoints, write deltas (ckpt-<events>.delta:\n"
	       "                      only the rows changed since the previous checkpoint) every X,\n"
	       "                      a duration or a count as above (default: none). Readers apply\n"
	       "                      the chain of deltas onto the newest whole checkpoint\n"
	       "  --keep N            whole checkpoints kept, with their deltas (default 3)\n"
	       "  --on-checkpoint-error P  continue (default): a failed periodic checkpoint is said\n"
	       "                      and counted, and the next period tries again; stop: the run\n"
	       "                      ends at the first failure (the final checkpoint is tried, exit 1).\n"
	       "                      A failed final checkpoint always exits 1, saying how many events\n"
	       "                      no checkpoint holds\n"
	       "  --checkpoint-compress N  zstd level of checkpoint sections (default 0: raw)\n"
	       "  --test FILE         rated pairs to score after training (repeatable)\n"
	       "  --save FILE         write the final model (atomically)\n"
	       "  --compress N        zstd level for the saved model's sections (default 0: raw)\n"
	       "  --curve FILE        write pass 1's prequential curve as TSV: every --curve-every\n"
	       "                      events and at the end, a line of events, prequential_rmse and\n"
	       "                      _mae (running), window_rmse and _mae (since the line before),\n"
	       "                      events_per_s (of that window, wall clock), seconds\n"
	       "                      (tools/plot.py draws it)\n"
	       "  --curve-every N     events between curve lines (default 10000)\n"
	       "  --progress, --quiet a live progress line on stderr, or none (default: when\n"
	       "                      stderr is a terminal)\n"
	       "  -h, --help          this text\n"
	       "\n"
	       "Counts (--max-users, --epochs, --checkpoint-every N, ...) take k or K (1e3), M (1e6)\n"
	       "and G (1e9): 5k, 1.5M. A bad value names its option: \"--lr: must be >= 0, got -1\".\n"
	       "\n"
	       "Summary fields: events (read), skipped (malformed), epochs (passes completed),\n"
	       "steps (SGD updates), users, items, model_events (first-pass events over the\n"
	       "model's lifetime), rating_range, out_of_range (events rated outside it),\n"
	       "checkpoints, deltas, checkpoint_failures, checkpoint_stall_ms_max, resumed,\n"
	       "stale_temp_removed (temporaries of killed writers removed at start),\n"
	       "unsaved_events (a failed final checkpoint) (with --checkpoint-dir), published\n"
	       "{fulls, deltas, chunks, bytes, delivered, failures, skipped} (with --publish), evictions,\n"
	       "ids, prequential_rmse/mae (pass 1, each event predicted before it is learned,\n"
	       "against its true rating), test_rmse/mae (with --test), interrupted (a signal\n"
	       "ended the run), interrupted_during (what it cut short), seconds, events_per_sec,\n"
	       "kernel, io, kafka (with --kafka, per partition: topic, partition, assigned, offset,\n"
	       "lag, events, skipped). The progress line of passes 2..N shows the training RMSE.\n"
	       "With --feedback implicit: feedback, loss, negatives, neg_beta, weight, bad_weights,\n"
	       "first_time_pairs, ranked, eval_k, eval_every, prequential_hr@K, prequential_ndcg@K\n"
	       "(before each first-time pair is learned, every item ranked for the user as\n"
	       "recommend ranks, its history left out), eval_seconds (the ranking's share of\n"
	       "seconds), train_loss (mean per event), train_seconds and train_events_per_sec\n"
	       "(without the ranking), instead of the RMSE.\n"
	       "\n"
	       "Exit status: 0 success, also a --follow run ended by SIGINT/SIGTERM. 1 runtime\n"
	       "failure: an input or output failed; nothing learned from input that is not\n"
	       "empty (every record malformed, no file readable, an empty directory without\n"
	       "--follow); the final checkpoint or --save failed; a run without --follow\n"
	       "stopped by SIGINT/SIGTERM before it finished (reading, passes 2..N or --test are\n"
	       "cut short; what was learned is still written to the final checkpoint and\n"
	       "--save). 2 usage error: a bad or missing value, options that contradict each\n"
	       "other (--epochs 2 --follow, ...) or the checkpoint resumed. Output paths are\n"
	       "checked before learning. A second SIGINT/SIGTERM ends the process at once.\n",
	       d.replay_lr, d.replay_lr_bias, d.replay_l2, d.replay_l2_bias, d.freq_alpha,
	       d.freq_alpha_bias);
}

enum {
	OPT_FORMAT = 1000, OPT_FIELDS, OPT_ONERR, OPT_DIM, OPT_OPT, OPT_LR, OPT_LRB, OPT_L2, OPT_L2B,
	OPT_INIT, OPT_RANGE, OPT_LINK, OPT_MAXU, OPT_MAXI, OPT_SEED, OPT_KERNEL, OPT_EPOCHS,
	OPT_TEST, OPT_SAVE, OPT_COMPRESS, OPT_PROGRESS, OPT_QUIET, OPT_MEMORY, OPT_IDS, OPT_NOEVICT,
	OPT_MINCOUNT, OPT_CKDIR, OPT_CKEVERY, OPT_KEEP, OPT_CKZ, OPT_HASHES, OPT_MARGIN, OPT_RLR, OPT_RLRB, OPT_RL2, OPT_RL2B, OPT_FA, OPT_FAB, OPT_IO, OPT_FOLLOW, OPT_RTHREAD, OPT_DELTA, OPT_LINGER, OPT_THREADS, OPT_WINDOW,
	OPT_HISTORY, OPT_CKERR,
	OPT_KAFKA, OPT_TOPIC, OPT_GROUP, OPT_KOPT, OPT_KSTART, OPT_CURVE, OPT_CURVE_EVERY,
	OPT_PUBLISH, OPT_PUB_FULL, OPT_PUB_OPT,
	OPT_FEEDBACK, OPT_WEIGHTS, OPT_LOSS, OPT_NEGS, OPT_NEGBETA, OPT_WEIGHT, OPT_EVAL_EVERY, OPT_EVAL_K, OPT_END
};

static const char *loss_name(int loss)
{
	return loss == MFS_LOSS_BPR ? "bpr" : loss == MFS_LOSS_LOGISTIC ? "logistic" : "popularity";
}

/* --weight: what an implicit event's rating column means. */
enum { W_NONE = 0, W_RATING = 1, W_LOG1P = 2 };

/*
 * --checkpoint-dir's settings, parsed; the library's mfs_checkpointer writes
 * the files (forked writers, deltas, the lock, publishing, commits).
 */
struct ckpt {
	const char *dir;
	double every_sec;      /* by time, or */
	uint64_t every_events; /* by events */
	double delta_sec;      /* deltas: by time, or */
	uint64_t delta_events; /* by events (both 0: no deltas) */
	unsigned keep;
	int compress;
	int stop_on_error;     /* --on-checkpoint-error stop: a failed one ends the run */
};

struct progress {
	int on;
	double start, last;
	const mfs_source *kafka; /* show the consumer lag */
};

/* The consumer lag of a Kafka source, over its partitions (-1: not known yet). */
static int64_t kafka_lag(const mfs_source *src)
{
	int64_t lag = -1;
	mfs_kafka_partition kp;
	int n = mfs_source_kafka_partition(src, 0, NULL);
	for (int i = 0; i < n; i++)
		if (mfs_source_kafka_partition(src, (size_t)i, &kp) > 0 && kp.assigned && kp.lag >= 0)
			lag = (lag < 0 ? 0 : lag) + kp.lag;
	return lag;
}

/* --group: a rebalance takes partitions away; checkpoint what is learned first. */
struct revoke_ctx {
	mfs_learner *l;
};

static void on_revoke(void *arg)
{
	struct revoke_ctx *r = arg;
	if (r->l && mfs_learner_checkpointer(r->l) && mfs_learner_source(r->l))
		mfs_learner_checkpoint(r->l, NULL);
}

static void kafka_notice(void *ctx, const mfs_diag *d)
{
	(void)ctx;
	cli_diag(d);
}

/* Pass 1 is scored test-then-train (prequential); passes 2..N replay events
 * already learned, so their error is a training error. */
static void progress_line(struct progress *p, const mfs_learn_stats *st, int epoch, int final)
{
	double now = cli_now();
	if (!p->on || (!final && now - p->last < 0.25))
		return;
	p->last = now;
	double secs = now - p->start;
	double rmse = st->events ? sqrt(st->sq_err / (double)st->events) : 0.0;
	fprintf(stderr, "\r\033[Kepoch %d  %llu events  %.3g events/s  %s RMSE %.4f", epoch,
		(unsigned long long)st->events, secs > 0 ? (double)st->events / secs : 0.0,
		epoch > 1 ? "training" : "prequential", rmse);
	if (p->kafka)
		fprintf(stderr, "  lag %lld", (long long)kafka_lag(p->kafka));
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

/* The progress line of implicit learning: the ranking metrics so far. */
static void progress_rank(struct progress *p, const mfs_learn_stats *st, const mfs_rank_stats *rk,
			  int final)
{
	double now = cli_now();
	if (!p->on || (!final && now - p->last < 0.25))
		return;
	p->last = now;
	double secs = now - p->start;
	fprintf(stderr, "\r\033[K%llu events  %.3g events/s", (unsigned long long)st->events,
		secs > 0 ? (double)st->events / secs : 0.0);
	if (rk->k && rk->ranked)
		fprintf(stderr, "  prequential HR@%u %.4f  NDCG@%u %.4f  (%llu ranked, eval %.1fs)",
			rk->k, rk->hits / (double)rk->ranked, rk->k, rk->ndcg / (double)rk->ranked,
			(unsigned long long)rk->ranked, rk->seconds);
	if (p->kafka)
		fprintf(stderr, "  lag %lld", (long long)kafka_lag(p->kafka));
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

/* The learner's reports: the curve and the progress line of pass 1, the
 * progress of passes 2..N (a signal stops them). */
struct report {
	struct cli_curve *curve;
	struct progress *pg;
	int implicit;
	unsigned pass;        /* the pass reported last */
	mfs_learn_stats last; /* ... its counts */
	int stopped;          /* a signal stopped that pass */
};

static int train_report(void *ctx, mfs_learner *l, unsigned pass, const mfs_learn_stats *st)
{
	struct report *r = ctx;
	if (pass == 1) {
		if (r->implicit) {
			mfs_rank_stats rk;
			mfs_learner_pass_stats(l, NULL, &rk);
			progress_rank(r->pg, st, &rk, 0);
		} else {
			cli_curve_line(r->curve, st, 0);
			progress_line(r->pg, st, 1, 0);
		}
		return 0;
	}
	if (pass != r->pass) {
		if (r->pass > 1)
			progress_line(r->pg, &r->last, (int)r->pass, 1);
		r->pass = pass;
		r->pg->start = cli_now();
	}
	r->last = *st;
	progress_line(r->pg, st, (int)pass, 0);
	r->stopped = cli_stop_signal() != 0;
	return r->stopped;
}

/* The learner's notices: bad weights as malformed records, the rest said. */
static void train_notice(void *ctx, const mfs_diag *d)
{
	if (d->code == MFS_E_PARSE) {
		cli_on_bad(ctx, d);
		return;
	}
	char buf[1200];
	mfs_diag_format(d, buf, sizeof buf);
	cli_error("%s%s", d->code == MFS_E_RANGE ? "warning: " : "", buf);
}

/* The learner's settings from train's options. Returns 0 or -1 (said). */
static int learner_config(mfs_learner_config **out, const mfs_config *cfg, const struct ckpt *ck,
			  const mfs_implicit_config *icfg, int weight, const mfs_rank_stats *rk,
			  uint64_t epochs, unsigned threads, uint64_t window, int range_auto,
			  uint64_t curve_every,
			  struct report *rep, struct cli_bad *badw)
{
	static const char *const weights[] = { "none", "rating", "log1p" };
	mfs_learner_config *c;
	mfs_diag d;
	if (mfs_learner_config_new(&c) < 0 || mfs_learner_config_set_model(c, cfg) < 0 ||
	    (icfg && mfs_learner_config_set_implicit(c, icfg) < 0)) {
		mfs_learner_config_free(c);
		cli_error("out of memory");
		return -1;
	}
	*out = c;
	char v[9][32];
	snprintf(v[0], sizeof v[0], "%llu", (unsigned long long)epochs);
	snprintf(v[8], sizeof v[8], "%llu", (unsigned long long)window);
	snprintf(v[1], sizeof v[1], "%u", threads);
	snprintf(v[2], sizeof v[2], "%u", rk->k);
	snprintf(v[3], sizeof v[3], "%u", rk->every);
	/* a period by events, or by time in ms */
	snprintf(v[4], sizeof v[4], ck->every_events ? "%.0f" : "%.0fms",
		 ck->every_events ? (double)ck->every_events : ck->every_sec * 1000.0);
	snprintf(v[5], sizeof v[5], ck->delta_events ? "%.0f" : "%.0fms",
		 ck->delta_events ? (double)ck->delta_events : ck->delta_sec * 1000.0);
	snprintf(v[6], sizeof v[6], "%u", ck->keep);
	snprintf(v[7], sizeof v[7], "%d", ck->compress);
	const char *kv[][2] = {
		{ "epochs", v[0] },
		{ "threads", v[1] },
		{ window ? "window" : NULL, v[8] },
		{ icfg ? "eval-k" : NULL, v[2] },
		{ icfg ? "eval-every" : NULL, v[3] },
		{ icfg ? "weight" : NULL, weights[weight] },
		{ range_auto ? "rating-range" : NULL, "auto" },
		{ ck->dir ? "checkpoint-dir" : NULL, ck->dir },
		{ ck->dir ? "checkpoint-every" : NULL, v[4] },
		{ ck->dir ? "delta-every" : NULL, v[5] },
		{ ck->dir ? "keep" : NULL, v[6] },
		{ ck->dir ? "compress" : NULL, v[7] },
		{ ck->dir ? "on-checkpoint-error" : NULL, ck->stop_on_error ? "stop" : "continue" },
	};
	for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
		if (kv[i][0] && mfs_learner_config_set(c, kv[i][0], kv[i][1], &d) < 0) {
			cli_diag(&d);
			return -1;
		}
	mfs_learner_config_on_notice(c, train_notice, badw);
	mfs_learner_config_on_report(c, curve_every, train_report, rep);
	return 0;
}

static const char *ids_name(int ids)
{
	return ids == MFS_IDS_HASHED ? "hashed" : "exact";
}

/*
 * Resuming from a checkpoint: the settings given on the command line must be
 * the checkpoint's (a model's shape and scale cannot change), except the
 * learning settings, which are taken and said. Only options given count: a
 * default never refuses a resume. Returns 0, or EXIT_USAGE after naming each
 * difference.
 */
static int resume_check(const char *dir, const char *from, const unsigned char *given, int memory,
			const mfs_config *want, mfs_model *m)
{
	mfs_config have;
	mfs_model_config_get(m, &have);
	int bad = 0;
#define G(o) given[(o) - OPT_FORMAT]
#define DIFF(cond, ...)                  \
	do {                              \
		if (cond) {               \
			cli_error(__VA_ARGS__); \
			bad++;            \
		}                         \
	} while (0)
	DIFF(G(OPT_DIM) && want->dim != have.dim, "--dim %u but the checkpoint in %s has dim %u",
	     want->dim, dir, have.dim);
	DIFF(G(OPT_IDS) && want->ids != have.ids, "--ids %s but the checkpoint in %s has --ids %s",
	     ids_name(want->ids), dir, ids_name(have.ids));
	DIFF((G(OPT_MAXU) || memory) && want->max_users != have.max_users,
	     "%s %llu but the checkpoint in %s holds %llu user rows", memory ? "--memory: users" : "--max-users",
	     (unsigned long long)want->max_users, dir, (unsigned long long)have.max_users);
	DIFF((G(OPT_MAXI) || memory) && want->max_items != have.max_items,
	     "%s %llu but the checkpoint in %s holds %llu item rows", memory ? "--memory: items" : "--max-items",
	     (unsigned long long)want->max_items, dir, (unsigned long long)have.max_items);
	DIFF(G(OPT_RANGE) && (want->lo != have.lo || want->hi != have.hi),
	     "--rating-range %g:%g but the checkpoint in %s has the range %g:%g", want->lo, want->hi,
	     dir, have.lo, have.hi);
	DIFF(G(OPT_OPT) && want->optimizer != have.optimizer,
	     "--optimizer %s but the checkpoint in %s has %s",
	     want->optimizer == MFS_OPT_SGD ? "sgd" : "adagrad", dir,
	     have.optimizer == MFS_OPT_SGD ? "sgd" : "adagrad");
	DIFF(G(OPT_LINK) && want->link != have.link, "--range-link %s but the checkpoint in %s has %s",
	     want->link == MFS_RANGE_CLAMP ? "clamp" : "sigmoid", dir,
	     have.link == MFS_RANGE_CLAMP ? "clamp" : "sigmoid");
	DIFF(G(OPT_MARGIN) && want->range_margin != have.range_margin,
	     "--range-margin %g but the checkpoint in %s has %g", want->range_margin, dir,
	     have.range_margin);
	DIFF(G(OPT_HASHES) && want->user_hashes != have.user_hashes,
	     "--hashes %u but the checkpoint in %s has %u", want->user_hashes, dir, have.user_hashes);
	DIFF(G(OPT_NOEVICT) && want->evict != have.evict,
	     "--no-evict but the checkpoint in %s evicts", dir);
	DIFF(G(OPT_MINCOUNT) && want->min_count != have.min_count,
	     "--min-count %u but the checkpoint in %s has %u", want->min_count, dir, have.min_count);
	DIFF(G(OPT_SEED) && want->seed != have.seed,
	     "--seed %llu but the checkpoint in %s has seed %llu", (unsigned long long)want->seed,
	     dir, (unsigned long long)have.seed);
	DIFF(G(OPT_FA) && want->freq_alpha != have.freq_alpha,
	     "--freq-alpha %g but the checkpoint in %s has %g", want->freq_alpha, dir, have.freq_alpha);
	DIFF(G(OPT_FAB) && want->freq_alpha_bias != have.freq_alpha_bias,
	     "--freq-alpha-bias %g but the checkpoint in %s has %g", want->freq_alpha_bias, dir,
	     have.freq_alpha_bias);
#undef DIFF
	if (bad) {
		cli_error("%s: a checkpoint keeps the settings it was made with: leave %s out to "
			  "resume it, or give another --checkpoint-dir", dir, bad > 1 ? "them" : "it");
		return EXIT_USAGE;
	}
	mfs_model_info mi;
	mfs_model_info_get(m, &mi);
	cli_error("resuming from %s (%llu events learned, rating range %g:%g)", from,
		  (unsigned long long)mi.events, mi.lo, mi.hi);
	/* learning settings may change: taken, and said */
	static const struct {
		int opt;
		const char *name;
		size_t off;
	} lrs[] = {
		{ OPT_LR, "--lr", offsetof(mfs_config, lr) },
		{ OPT_LRB, "--lr-bias", offsetof(mfs_config, lr_bias) },
		{ OPT_L2, "--l2", offsetof(mfs_config, l2) },
		{ OPT_L2B, "--l2-bias", offsetof(mfs_config, l2_bias) },
		{ OPT_INIT, "--init-std", offsetof(mfs_config, init_std) },
	};
	mfs_config nc = have;
	int changed = 0;
	for (size_t i = 0; i < sizeof lrs / sizeof lrs[0]; i++) {
		float w, h;
		memcpy(&w, (const char *)want + lrs[i].off, sizeof w);
		memcpy(&h, (const char *)&have + lrs[i].off, sizeof h);
		if (G(lrs[i].opt) && w != h) {
			cli_error("resuming with %s %g (the checkpoint's was %g)", lrs[i].name, w, h);
			memcpy((char *)&nc + lrs[i].off, &w, sizeof w);
			changed = 1;
		}
	}
#undef G
	if (changed && mfs_model_set_learning(m, &nc) < 0) {
		cli_error("cannot change the learning settings of the checkpoint");
		return EXIT_RUNTIME;
	}
	return 0;
}

/* --save PATH can be written: its directory exists and takes files. Returns 0 or -1 (said). */
static int check_save_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		cli_error("--save %s: is a directory (give a file name)", path);
		return -1;
	}
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path);
	char *sl = strrchr(dir, '/');
	if (!sl)
		snprintf(dir, sizeof dir, ".");
	else if (sl == dir)
		dir[1] = 0;
	else
		*sl = 0;
	if (stat(dir, &st) < 0) {
		cli_error("--save %s: the directory %s: %s", path, dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_error("--save %s: %s is not a directory", path, dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK) < 0) {
		cli_error("--save %s: cannot write in %s: %s", path, dir, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * A run that learned no event: is that a failure, and why? Input that yields
 * nothing (every record malformed, no file readable, a directory without
 * files) is; empty input, or a resume with nothing new, is not. Says which.
 * Returns 1 for a failure.
 */
static int nothing_learned(const struct cli_bad *bad, uint64_t files_failed, const mfs_source *src,
			   int follow, const char *const *inputs, size_t n, int resumed)
{
	mfs_source_stats ss;
	mfs_source_stats_get(src, &ss);
	if (bad->count) {
		char first[1024];
		mfs_diag_format(&bad->first, first, sizeof first);
		cli_error("nothing learned: all %llu records were malformed (the first: %s); is it a "
			  "file of ratings? --format and --fields say how to read one",
			  (unsigned long long)bad->count, first);
		return 1;
	}
	if (files_failed) {
		cli_error("nothing learned: %llu input file%s could not be read (said above)",
			  (unsigned long long)files_failed, files_failed > 1 ? "s" : "");
		return 1;
	}
	if (ss.files == 0 && !follow) {
		for (size_t i = 0; i < n; i++) {
			struct stat st;
			if (stat(inputs[i], &st) == 0 && S_ISDIR(st.st_mode)) {
				cli_error("nothing learned: %s holds no file to read (it is empty, or "
					  "holds only hidden and temporary names)", inputs[i]);
				return 1;
			}
		}
	}
	if (!resumed && !follow && !cli_stop_signal())
		cli_error("warning: no events in the input");
	return 0;
}

int cmd_train(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, 0, OPT_FORMAT },
		{ "fields", required_argument, 0, OPT_FIELDS },
		{ "on-error", required_argument, 0, OPT_ONERR },
		{ "dim", required_argument, 0, OPT_DIM },
		{ "optimizer", required_argument, 0, OPT_OPT },
		{ "lr", required_argument, 0, OPT_LR },
		{ "lr-bias", required_argument, 0, OPT_LRB },
		{ "l2", required_argument, 0, OPT_L2 },
		{ "l2-bias", required_argument, 0, OPT_L2B },
		{ "init-std", required_argument, 0, OPT_INIT },
		{ "rating-range", required_argument, 0, OPT_RANGE },
		{ "range-link", required_argument, 0, OPT_LINK },
		{ "max-users", required_argument, 0, OPT_MAXU },
		{ "max-items", required_argument, 0, OPT_MAXI },
		{ "memory", required_argument, 0, OPT_MEMORY },
		{ "history", required_argument, 0, OPT_HISTORY },
		{ "ids", required_argument, 0, OPT_IDS },
		{ "no-evict", no_argument, 0, OPT_NOEVICT },
		{ "min-count", required_argument, 0, OPT_MINCOUNT },
		{ "range-margin", required_argument, 0, OPT_MARGIN },
		{ "hashes", required_argument, 0, OPT_HASHES },
		{ "checkpoint-dir", required_argument, 0, OPT_CKDIR },
		{ "checkpoint-every", required_argument, 0, OPT_CKEVERY },
		{ "keep", required_argument, 0, OPT_KEEP },
		{ "checkpoint-compress", required_argument, 0, OPT_CKZ },
		{ "delta-every", required_argument, 0, OPT_DELTA },
		{ "on-checkpoint-error", required_argument, 0, OPT_CKERR },
		{ "replay-lr", required_argument, 0, OPT_RLR },
		{ "replay-lr-bias", required_argument, 0, OPT_RLRB },
		{ "replay-l2", required_argument, 0, OPT_RL2 },
		{ "replay-l2-bias", required_argument, 0, OPT_RL2B },
		{ "freq-alpha", required_argument, 0, OPT_FA },
		{ "freq-alpha-bias", required_argument, 0, OPT_FAB },
		{ "seed", required_argument, 0, OPT_SEED },
		{ "kernel", required_argument, 0, OPT_KERNEL },
		{ "epochs", required_argument, 0, OPT_EPOCHS },
		{ "test", required_argument, 0, OPT_TEST },
		{ "save", required_argument, 0, OPT_SAVE },
		{ "compress", required_argument, 0, OPT_COMPRESS },
		{ "progress", no_argument, 0, OPT_PROGRESS },
		{ "quiet", no_argument, 0, OPT_QUIET },
		{ "io", required_argument, 0, OPT_IO },
		{ "follow", no_argument, 0, OPT_FOLLOW },
		{ "linger-ms", required_argument, 0, OPT_LINGER },
		{ "threads", required_argument, 0, OPT_THREADS },
		{ "window", required_argument, 0, OPT_WINDOW },
		{ "reader-thread", required_argument, 0, OPT_RTHREAD },
		{ "kafka", required_argument, 0, OPT_KAFKA },
		{ "topic", required_argument, 0, OPT_TOPIC },
		{ "group", required_argument, 0, OPT_GROUP },
		{ "kafka-opt", required_argument, 0, OPT_KOPT },
		{ "publish", required_argument, 0, OPT_PUBLISH },
		{ "publish-full-every", required_argument, 0, OPT_PUB_FULL },
		{ "publish-opt", required_argument, 0, OPT_PUB_OPT },
		{ "kafka-start", required_argument, 0, OPT_KSTART },
		{ "curve", required_argument, 0, OPT_CURVE },
		{ "curve-every", required_argument, 0, OPT_CURVE_EVERY },
		{ "feedback", required_argument, 0, OPT_FEEDBACK },
		{ "loss", required_argument, 0, OPT_LOSS },
		{ "negatives", required_argument, 0, OPT_NEGS },
		{ "neg-beta", required_argument, 0, OPT_NEGBETA },
		{ "weight", required_argument, 0, OPT_WEIGHT },
		{ "weights", required_argument, 0, OPT_WEIGHTS },
		{ "eval-every", required_argument, 0, OPT_EVAL_EVERY },
		{ "eval-k", required_argument, 0, OPT_EVAL_K },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *cmd = "train";
	mfs_source_config2 rc2;
	mfs_source_config2_default(&rc2);
	rc2.queue = 4; /* parse ahead on a second core */
	mfs_config cfg;
	mfs_config_default(&cfg);
	int format = MFS_FORMAT_AUTO, stop_on_error = 0, progress = isatty(2);
	const char *fields = NULL, *save = NULL, *curve_path = NULL;
	uint64_t curve_every = 10000;
	struct cli_curve curve = { 0 };
	const char **tests = calloc((size_t)argc + 1, sizeof *tests);
	size_t ntests = 0;
	uint64_t epochs = 1, memory = 0, threads = 1, window = 0;
	struct ckpt ck = { .every_sec = 30, .keep = 3 };
	int compress = 0, range_auto = 1;
	unsigned linger_ms = 5;
	unsigned char given[OPT_END - OPT_FORMAT]; /* the options given: a resume compares those */
	memset(given, 0, sizeof given);
	const char *kafka = NULL, *topic = NULL, *group = NULL, *kstart = NULL;
	int implicit = 0, weight_mode = W_NONE;
	const char *type_weights = NULL;
	char *fields_spec = NULL; /* --fields with the --weights entries */
	mfs_implicit_config icfg;
	mfs_implicit_config_default(&icfg);
	mfs_rank_stats rk;
	memset(&rk, 0, sizeof rk);
	rk.k = 10;
	rk.every = 1;
	const char **kopts = calloc((size_t)argc + 1, sizeof *kopts);
	size_t nkopts = 0;
	const char *publish = NULL;
	unsigned pub_full_every = 10;
	const char **popts = calloc((size_t)argc + 1, sizeof *popts);
	size_t npopts = 0;
	int c;
	if (!kopts || !popts) {
		free(kopts);
		free(popts);
		free(tests);
		cli_error("out of memory");
		return EXIT_RUNTIME;
	}
	/* what each option's argument is and where it goes (cli_option_apply) */
	static const char *const w_onerr[] = { "skip-file", "stop", NULL },
				 *const w_opt[] = { "sgd", "adagrad", NULL },
				 *const w_link[] = { "clamp", "sigmoid", NULL },
				 *const w_ids[] = { "exact", "hashed", NULL },
				 *const w_ckerr[] = { "stop", "continue", NULL },
				 *const w_kstart[] = { "earliest", "latest", NULL },
				 *const w_feedback[] = { "explicit", "implicit", NULL },
				 *const w_loss[] = { "bpr", "logistic", "popularity", NULL },
				 *const w_weight[] = { "none", "rating", "log1p", NULL };
	static const int v_onerr[] = { 0, 1 }, v_opt[] = { MFS_OPT_SGD, MFS_OPT_ADAGRAD },
			 v_link[] = { MFS_RANGE_CLAMP, MFS_RANGE_SIGMOID },
			 v_ids[] = { MFS_IDS_EXACT, MFS_IDS_HASHED }, v_ckerr[] = { 1, 0 },
			 v_feedback[] = { 0, 1 },
			 v_loss[] = { MFS_LOSS_BPR, MFS_LOSS_LOGISTIC, MFS_LOSS_POPULARITY },
			 v_weight[] = { W_NONE, W_RATING, W_LOG1P };
#define U CLI_OPT_NUM
#define F CLI_OPT_F32
#define S CLI_OPT_STR
#define C CLI_OPT_CHOICE
	const struct cli_option table[] = {
		CLI_OPT_FORMAT(OPT_FORMAT, &format, 0),
		S(OPT_FIELDS, &fields),
		C(OPT_ONERR, &stop_on_error, w_onerr, v_onerr),
		U(OPT_DIM, CLI_U32, &cfg.dim, 1, 4096),
		C(OPT_OPT, &cfg.optimizer, w_opt, v_opt),
		F(OPT_LR, &cfg.lr, CLI_GE, 0, 0),
		F(OPT_LRB, &cfg.lr_bias, CLI_GE, 0, 0),
		F(OPT_L2, &cfg.l2, CLI_GE, 0, 0),
		F(OPT_L2B, &cfg.l2_bias, CLI_GE, 0, 0),
		F(OPT_INIT, &cfg.init_std, CLI_GE, 0, 0),
		C(OPT_LINK, &cfg.link, w_link, v_link),
		U(OPT_MAXU, CLI_U64, &cfg.max_users, 1, 4294967295ULL),
		U(OPT_MAXI, CLI_U64, &cfg.max_items, 1, 4294967295ULL),
		U(OPT_MEMORY, CLI_SIZE, &memory, 0, 0),
		U(OPT_HISTORY, CLI_U32, &cfg.history, 0, MFS_HISTORY_MAX),
		C(OPT_IDS, &cfg.ids, w_ids, v_ids),
		CLI_OPT_FLAG(OPT_NOEVICT, &cfg.evict, 0),
		S(OPT_CKDIR, &ck.dir),
		{ OPT_CKEVERY, CLI_PERIOD, &ck.every_sec, &ck.every_events, 0, 0, 0, 0, 0, NULL, NULL },
		{ OPT_DELTA, CLI_PERIOD, &ck.delta_sec, &ck.delta_events, 0, 0, 0, 0, 0, NULL, NULL },
		C(OPT_CKERR, &ck.stop_on_error, w_ckerr, v_ckerr),
		S(OPT_CURVE, &curve_path),
		U(OPT_CURVE_EVERY, CLI_U64, &curve_every, 1, UINT64_MAX),
		U(OPT_KEEP, CLI_UINT, &ck.keep, 1, 1000000),
		U(OPT_CKZ, CLI_INT, &ck.compress, 0, 19),
		U(OPT_HASHES, CLI_U32, &cfg.user_hashes, 1, 2),
		F(OPT_MARGIN, &cfg.range_margin, CLI_GE | CLI_LE, 0, 10),
		F(OPT_RLR, &cfg.replay_lr, CLI_GE, 0, 0),
		F(OPT_RLRB, &cfg.replay_lr_bias, CLI_GE, 0, 0),
		F(OPT_RL2, &cfg.replay_l2, CLI_GE, 0, 0),
		F(OPT_RL2B, &cfg.replay_l2_bias, CLI_GE, 0, 0),
		F(OPT_FA, &cfg.freq_alpha, CLI_GE | CLI_LE, 0, 1),
		F(OPT_FAB, &cfg.freq_alpha_bias, CLI_GE | CLI_LE, 0, 1),
		U(OPT_MINCOUNT, CLI_U32, &cfg.min_count, 1, 255),
		U(OPT_SEED, CLI_U64, &cfg.seed, 0, UINT64_MAX),
		S(OPT_KERNEL, &cfg.kernel),
		U(OPT_EPOCHS, CLI_U64, &epochs, 1, 100000),
		U(OPT_THREADS, CLI_U64, &threads, 1, 64),
		U(OPT_WINDOW, CLI_U64, &window, 256, 16777216),
		{ OPT_TEST, CLI_LIST, tests, &ntests, 0, 0, 0, 0, 0, NULL, NULL },
		S(OPT_SAVE, &save),
		U(OPT_COMPRESS, CLI_INT, &compress, 0, 19),
		CLI_OPT_FLAG(OPT_PROGRESS, &progress, 1),
		CLI_OPT_FLAG(OPT_QUIET, &progress, 0),
		U(OPT_LINGER, CLI_UINT, &linger_ms, 0, 60000),
		S(OPT_KAFKA, &kafka),
		S(OPT_TOPIC, &topic),
		S(OPT_GROUP, &group),
		{ OPT_KSTART, CLI_WORD, &kstart, NULL, 0, 0, 0, 0, 0, w_kstart, NULL },
		{ OPT_KOPT, CLI_KV, kopts, &nkopts, 0, 0, 0, 0, 0, NULL, NULL },
		S(OPT_PUBLISH, &publish),
		U(OPT_PUB_FULL, CLI_UINT, &pub_full_every, 1, 1000000),
		{ OPT_PUB_OPT, CLI_KV, popts, &npopts, 0, 0, 0, 0, 0, NULL, NULL },
		C(OPT_FEEDBACK, &implicit, w_feedback, v_feedback),
		C(OPT_LOSS, &icfg.loss, w_loss, v_loss),
		U(OPT_NEGS, CLI_U32, &icfg.negatives, 1, 1024),
		F(OPT_NEGBETA, &icfg.neg_beta, CLI_GE | CLI_LE, 0, 2),
		C(OPT_WEIGHT, &weight_mode, w_weight, v_weight),
		S(OPT_WEIGHTS, &type_weights),
		U(OPT_EVAL_EVERY, CLI_U32, &rk.every, 0, UINT32_MAX),
		U(OPT_EVAL_K, CLI_U32, &rk.k, 0, 1024),
	};
#undef U
#undef F
#undef S
#undef C
	optind = 1;
	opterr = 0;
	while ((c = cli_getopt(cmd, argc, argv, ":h", opts)) != -1) {
		if (c >= OPT_FORMAT && c < OPT_END)
			given[c - OPT_FORMAT] = 1;
		int t = cli_option_apply(cmd, table, sizeof table / sizeof *table, c,
					 cli_option_name(opts, c), optarg);
		if (t < 0)
			goto usage;
		if (t > 0)
			continue;
		switch (c) {
		case 'h':
			train_help();
			free(tests);
			free(kopts);
			free(popts);
			return 0;
		case OPT_RANGE:
			range_auto = strcmp(optarg, "auto") == 0;
			if (range_auto)
				given[OPT_RANGE - OPT_FORMAT] = 0; /* auto: the checkpoint's, on a resume */
			else if (cli_range(cmd, "--rating-range", optarg, &cfg.lo, &cfg.hi) < 0)
				goto usage;
			break;
		case OPT_IO:
		case OPT_FOLLOW:
		case OPT_RTHREAD:
			if (cli_reader_option(cmd, c == OPT_IO ? "--io" : c == OPT_FOLLOW ? "--follow"
											     : "--reader-thread",
					      optarg, &rc2) < 0)
				goto usage;
			break;
		default: /* CLI_OPT_ERR: said */
			goto usage;
		}
	}
	if (kafka && optind < argc) {
		cli_usage(cmd, "--kafka reads topics, not INPUT files (\"%s\")", argv[optind]);
		goto usage;
	}
	if (!kafka && (topic || group || kstart || nkopts)) {
		cli_usage(cmd, "%s needs --kafka BROKERS",
			  topic ? "--topic" : group ? "--group" : kstart ? "--kafka-start" : "--kafka-opt");
		goto usage;
	}
	if (kafka && !topic) {
		cli_usage(cmd, "--kafka needs --topic T");
		goto usage;
	}
	if (kafka && epochs > 1) {
		cli_usage(cmd, "--kafka is a stream: one pass (--epochs 1)");
		goto usage;
	}
	if (kafka)
		rc2.follow = 1; /* a topic never ends: a signal ends the run, as in --follow */
	if (!kafka && optind >= argc) {
		cli_usage(cmd, "no INPUT given (a file, a directory, or '-' for standard input)");
		goto usage;
	}
	if (cfg.kernel && strcmp(cfg.kernel, "auto") != 0 && strcmp(cfg.kernel, "scalar") != 0 &&
	    strcmp(cfg.kernel, "avx2") != 0 && strcmp(cfg.kernel, "avx512") != 0 &&
	    strcmp(cfg.kernel, "neon") != 0) {
		cli_usage(cmd, "--kernel: must be auto, scalar, avx2, avx512 or neon, got \"%s\"",
			  cfg.kernel);
		goto usage;
	}

	/* options that contradict each other, or do nothing without another: usage errors */
#define GIVEN(o) given[(o) - OPT_FORMAT]
	if (!implicit) {
		static const struct {
			int opt;
			const char *name;
		} imp_only[] = { { OPT_LOSS, "--loss" }, { OPT_NEGS, "--negatives" },
				 { OPT_NEGBETA, "--neg-beta" }, { OPT_WEIGHT, "--weight" },
				 { OPT_WEIGHTS, "--weights" },
				 { OPT_EVAL_EVERY, "--eval-every" }, { OPT_EVAL_K, "--eval-k" } };
		for (size_t i = 0; i < sizeof imp_only / sizeof imp_only[0]; i++)
			if (GIVEN(imp_only[i].opt)) {
				cli_usage(cmd, "%s needs --feedback implicit", imp_only[i].name);
				goto usage;
			}
	} else {
		/* what implicit learning does not do is refused, not done wrongly */
		static const struct {
			int opt;
			const char *name;
		} exp_only[] = { { OPT_EPOCHS, "--epochs" }, { OPT_THREADS, "--threads" },
				 { OPT_WINDOW, "--window" }, { OPT_RLR, "--replay-lr" }, { OPT_RLRB, "--replay-lr-bias" },
				 { OPT_RL2, "--replay-l2" }, { OPT_RL2B, "--replay-l2-bias" },
				 { OPT_RANGE, "--rating-range" }, { OPT_LINK, "--range-link" },
				 { OPT_MARGIN, "--range-margin" }, { OPT_IDS, "--ids" },
				 { OPT_HASHES, "--hashes" }, { OPT_MINCOUNT, "--min-count" },
				 { OPT_TEST, "--test" }, { OPT_CURVE, "--curve" },
				 { OPT_CURVE_EVERY, "--curve-every" } };
		for (size_t i = 0; i < sizeof exp_only / sizeof exp_only[0]; i++)
			if (GIVEN(exp_only[i].opt)) {
				cli_usage(cmd, "%s is not supported with --feedback implicit (one pass, "
					  "exact IDs, ranking metrics; see --help)", exp_only[i].name);
				goto usage;
			}
		if (cfg.optimizer != MFS_OPT_SGD && GIVEN(OPT_OPT)) {
			cli_usage(cmd, "--optimizer adagrad is not supported with --feedback implicit "
				  "(plain SGD)");
			goto usage;
		}
		if (GIVEN(OPT_HISTORY) && cfg.history == 0) {
			cli_usage(cmd, "--history 0 and --feedback implicit: the history is the seen set "
				  "of the metrics and of the sampler");
			goto usage;
		}
		if (GIVEN(OPT_FA) && GIVEN(OPT_FAB) && cfg.freq_alpha == 1.0f &&
		    cfg.freq_alpha_bias == 1.0f) {
			cli_usage(cmd, "--freq-alpha 1 --freq-alpha-bias 1 and --feedback implicit: the "
				  "sampler needs the item counts");
			goto usage;
		}
		/* the implicit defaults for what was not given */
		mfs_config di;
		mfs_config_default_implicit(&di);
		if (!GIVEN(OPT_DIM))
			cfg.dim = di.dim;
		if (!GIVEN(OPT_OPT))
			cfg.optimizer = di.optimizer;
		if (!GIVEN(OPT_LR))
			cfg.lr = di.lr;
		if (!GIVEN(OPT_LRB))
			cfg.lr_bias = di.lr_bias;
		if (!GIVEN(OPT_L2))
			cfg.l2 = di.l2;
		if (!GIVEN(OPT_L2B))
			cfg.l2_bias = di.l2_bias;
		if (!GIVEN(OPT_INIT))
			cfg.init_std = di.init_std;
		if (!GIVEN(OPT_HISTORY))
			cfg.history = di.history;
		range_auto = 0; /* interactions have no rating range */
		if (type_weights) {
			if (GIVEN(OPT_WEIGHT)) {
				cli_usage(cmd, "--weight and --weights: the weights come from the event "
					  "type (--weights) or from the rating column (--weight)");
				goto usage;
			}
			if (!fields || !strstr(fields, "type=")) {
				cli_usage(cmd, "--weights needs --fields ...,type=FIELD (the JSON field "
					  "of the event type)");
				goto usage;
			}
			/* the library reads the weights as weight:TYPE=W entries of the spec */
			size_t cap = strlen(fields) + 8 * strlen(type_weights) + 16, o;
			fields_spec = malloc(cap);
			if (!fields_spec) {
				cli_error("out of memory");
				goto usage;
			}
			o = (size_t)snprintf(fields_spec, cap, "%s", fields);
			for (const char *w = type_weights; *w;) {
				const char *comma = strchr(w, ',');
				size_t n = comma ? (size_t)(comma - w) : strlen(w);
				o += (size_t)snprintf(fields_spec + o, cap - o, ",weight:%.*s", (int)n, w);
				w = comma ? comma + 1 : w + n;
			}
			fields = fields_spec;
			weight_mode = W_RATING;
		} else {
			/* the rating column is optional: an interaction without one weighs 1 */
			size_t cap = (fields ? strlen(fields) : 0) + 16;
			fields_spec = malloc(cap);
			if (!fields_spec) {
				cli_error("out of memory");
				goto usage;
			}
			snprintf(fields_spec, cap, "%s%sunrated", fields ? fields : "",
				 fields && *fields ? "," : "");
			fields = fields_spec;
		}
	}
	if (epochs > 1 && rc2.follow) {
		cli_usage(cmd, "--epochs %llu and --follow: a followed stream has no end to start "
			  "pass 2 from (give one of them)", (unsigned long long)epochs);
		goto usage;
	}
	if (ck.dir && epochs > 1) {
		cli_usage(cmd, "--checkpoint-dir and --epochs %llu: checkpoints cover one pass over a "
			  "stream (--epochs 1)", (unsigned long long)epochs);
		goto usage;
	}
	static const struct {
		int opt;
		const char *name;
	} need_ck[] = { { OPT_CKEVERY, "--checkpoint-every" }, { OPT_DELTA, "--delta-every" },
			{ OPT_KEEP, "--keep" },	{ OPT_CKZ, "--checkpoint-compress" },
			{ OPT_CKERR, "--on-checkpoint-error" } };
	for (size_t i = 0; i < sizeof need_ck / sizeof need_ck[0]; i++)
		if (GIVEN(need_ck[i].opt) && !ck.dir) {
			cli_usage(cmd, "%s needs --checkpoint-dir", need_ck[i].name);
			goto usage;
		}
	if (!publish && (GIVEN(OPT_PUB_FULL) || GIVEN(OPT_PUB_OPT))) {
		cli_usage(cmd, "%s needs --publish BROKERS/TOPIC",
			  GIVEN(OPT_PUB_FULL) ? "--publish-full-every" : "--publish-opt");
		goto usage;
	}
	if (publish && !ck.dir) {
		cli_usage(cmd, "--publish needs --checkpoint-dir (what is published are its checkpoints)");
		goto usage;
	}
	if (publish) {
		const char *sl = strrchr(publish, '/');
		if (!sl || sl == publish || !sl[1]) {
			cli_usage(cmd, "--publish: must be BROKERS/TOPIC, got \"%s\"", publish);
			goto usage;
		}
	}
	if (GIVEN(OPT_CURVE_EVERY) && !curve_path) {
		cli_usage(cmd, "--curve-every needs --curve FILE");
		goto usage;
	}
	if (GIVEN(OPT_COMPRESS) && !save) {
		cli_usage(cmd, "--compress needs --save (checkpoints: --checkpoint-compress)");
		goto usage;
	}
	if (memory && (GIVEN(OPT_MAXU) || GIVEN(OPT_MAXI))) {
		cli_usage(cmd, "--memory and --max-users/--max-items: give the capacities one way");
		goto usage;
	}
	if (cfg.user_hashes == 2 && cfg.ids != MFS_IDS_HASHED) {
		cli_usage(cmd, "--hashes 2 needs --ids hashed");
		goto usage;
	}
	if (GIVEN(OPT_NOEVICT) && cfg.ids == MFS_IDS_HASHED) {
		cli_usage(cmd, "--no-evict and --ids hashed: hashed IDs share rows, nothing is evicted");
		goto usage;
	}
	if (fields && format != MFS_FORMAT_AUTO && format != MFS_FORMAT_JSONL) {
		cli_usage(cmd, "--fields names JSON keys: it needs --format jsonl (or auto)");
		goto usage;
	}
	static const struct {
		int opt;
		const char *name;
	} replay_opts[] = { { OPT_RLR, "--replay-lr" }, { OPT_RLRB, "--replay-lr-bias" },
			    { OPT_RL2, "--replay-l2" }, { OPT_RL2B, "--replay-l2-bias" } };
	for (size_t i = 0; i < sizeof replay_opts / sizeof replay_opts[0]; i++)
		if (GIVEN(replay_opts[i].opt) && epochs < 2) {
			cli_usage(cmd, "%s sets passes 2..N: it needs --epochs 2 or more",
				  replay_opts[i].name);
			goto usage;
		}
	/* where the results go, before anything is learned */
	for (size_t i = 0; i < ntests; i++)
		if (access(tests[i], R_OK) < 0) {
			cli_error("--test %s: %s", tests[i], strerror(errno));
			free(tests);
			free(kopts);
			free(popts);
			return EXIT_RUNTIME;
		}
	if (save && check_save_path(save) < 0) {
		free(tests);
		free(kopts);
		free(popts);
		return EXIT_RUNTIME;
	}
	if (memory) {
		/* 3 user rows (with their history) for each item row */
		uint64_t per_row = mfs_model_row_bytes(&cfg);
		uint64_t quad = 4 * per_row + 3 * mfs_model_history_bytes(&cfg);
		uint64_t items = memory / quad;
		if (items < 2) {
			cli_usage(cmd, "--memory: %llu bytes hold fewer than 8 rows of dim %u",
				  (unsigned long long)memory, cfg.dim);
			goto usage;
		}
		cfg.max_users = 3 * items;
		cfg.max_items = items;
	}
	int rc = EXIT_RUNTIME;
	mfs_learner_config *lc = NULL;
	mfs_learner *l = NULL;
	mfs_source *src = NULL;
	struct cli_bad bad = { 0 };  /* malformed records */
	struct cli_bad badw = { 0 }; /* implicit: events with a bad weight */
	mfs_diag d;
	mfs_publisher *pub = NULL;
	mfs_kafka_config *kc = NULL;
	struct revoke_ctx rv = { NULL };
	struct progress pg = { progress, cli_now(), 0, NULL };
	struct report rep = { &curve, &pg, implicit, 1, { 0 }, 0 };
	if (kafka) {
		/* every setting is checked before anything is loaded */
		if (mfs_kafka_config_create(&kc) < 0) {
			cli_error("out of memory");
			goto out;
		}
		const char *keys[] = { "brokers", "topics", "group", "start" };
		const char *vals[] = { kafka, topic, group, kstart };
		for (size_t i = 0; i < 4; i++)
			if (vals[i] && mfs_kafka_config_set(kc, keys[i], vals[i], &d) < 0) {
				cli_diag(&d);
				rc = EXIT_USAGE;
				goto out;
			}
		for (size_t i = 0; i < nkopts; i++) {
			char key[256];
			const char *eq = strchr(kopts[i], '=');
			snprintf(key, sizeof key, "%.*s", (int)(eq - kopts[i]), kopts[i]);
			if (mfs_kafka_config_set(kc, key, eq + 1, &d) < 0) {
				cli_usage(cmd, "--kafka-opt %s: %s", kopts[i], d.reason);
				rc = EXIT_USAGE;
				goto out;
			}
		}
		mfs_kafka_config_set_notice(kc, kafka_notice, NULL);
		if (group)
			mfs_kafka_config_set_revoke(kc, on_revoke, &rv);
	}
	/* the learner: the lock on the checkpoint directory, the resumed or new model */
	if (learner_config(&lc, &cfg, &ck, implicit ? &icfg : NULL, weight_mode, &rk, epochs,
			   (unsigned)threads, window, range_auto, curve_path ? curve_every : 0, &rep,
			   &badw) < 0)
		goto out;
	if (mfs_learner_new(&l, lc, &d) < 0) {
		char buf[1200];
		mfs_diag_format(&d, buf, sizeof buf);
		/* the directory's own trouble (cannot create, not writable, locked) */
		cli_error("%s%s", ck.dir && strcmp(d.path, ck.dir) == 0 ? "--checkpoint-dir " : "", buf);
		rc = d.code == MFS_E_INVAL ? EXIT_USAGE : EXIT_RUNTIME;
		goto out;
	}
	mfs_model *m = mfs_learner_model(l);
	mfs_learner_stats ls;
	mfs_learner_stats_get(l, &ls);
	int resumed = ls.resumed;
	if (ls.stale_removed > 0)
		cli_error("removed %llu temporary file%s of an interrupted checkpoint write",
			  (unsigned long long)ls.stale_removed, ls.stale_removed == 1 ? "" : "s");
	if (resumed) {
		/* the settings given must be the checkpoint's (learning rates may change) */
		rc = resume_check(ck.dir, mfs_learner_resumed_from(l), given, memory != 0, &cfg, m);
		if (rc != 0)
			goto out;
		rc = EXIT_RUNTIME;
		mfs_implicit_config hc;
		if (implicit && mfs_model_implicit_get(m, &hc) &&
		    ((GIVEN(OPT_LOSS) && hc.loss != icfg.loss) ||
		     (GIVEN(OPT_NEGS) && hc.negatives != icfg.negatives) ||
		     (GIVEN(OPT_NEGBETA) && hc.neg_beta != icfg.neg_beta))) {
			cli_error("--loss, --negatives or --neg-beta differ from the checkpoint's in %s "
				  "(%s, %u, %g): leave them out to resume it", ck.dir,
				  loss_name(hc.loss), hc.negatives, hc.neg_beta);
			rc = EXIT_USAGE;
			goto out;
		}
		if (implicit)
			icfg = hc;
	}
	rv.l = l;
	mfs_source_config sc;
	mfs_source_config_default(&sc);
	sc.format = format;
	sc.fields = fields;
	sc.on_bad = cli_on_bad;
	sc.on_bad_ctx = &bad;
	if (kafka ? mfs_source_open_kafka(&src, kc, &sc, &d) < 0
		  : mfs_source_open2(&src, (const char *const *)argv + optind,
				     (size_t)(argc - optind), &sc, &rc2, &d) < 0) {
		cli_diag(&d);
		rc = d.code == MFS_E_INVAL ? EXIT_USAGE : EXIT_RUNTIME;
		goto out;
	}
	if (kafka)
		pg.kafka = src;
	int ar = mfs_learner_attach(l, src, &d);
	src = mfs_learner_source(l); /* the learner's now */
	if (ar < 0) {
		cli_diag(&d);
		cli_error("the checkpoint's position does not fit these inputs (give the same "
			  "inputs, or another --checkpoint-dir)");
		goto out;
	}
	if (publish) {
		if (mfs_publisher_open(&pub, publish, popts, npopts, pub_full_every, kafka_notice,
				       NULL, &d) < 0) {
			cli_diag(&d);
			goto out;
		}
		mfs_checkpointer_set_publisher(mfs_learner_checkpointer(l), pub);
	}
	if (curve_path && cli_curve_open(&curve, curve_path, curve_every) < 0)
		goto out;
	mfs_source_set_linger(src, linger_ms);
	cli_reader_start(src);
	/* follow mode: come back this often while the stream is idle, for the clock's work */
	int tick_ms = 100;
	if (ck.dir && ck.every_sec > 0 && ck.every_sec * 250 < tick_ms)
		tick_ms = (int)(ck.every_sec * 250) + 1;
	if (ck.dir && ck.delta_sec > 0 && ck.delta_sec * 250 < tick_ms)
		tick_ms = (int)(ck.delta_sec * 250) + 1;

	uint64_t files_failed = 0;
	int failed = 0; /* a failure that makes the exit status 1 */
	double t0 = cli_now();
	pg.start = t0;		      /* rates count from the first batch, not the setup */
	cli_curve_take(&curve, 0, 0); /* the curve's clock starts with learning */
	for (;;) {
		int n = mfs_learner_step(l, tick_ms, &d);
		if (n == 0)
			break;
		if (n > 0 || n == -MFS_E_AGAIN)
			continue;
		mfs_learner_stats_get(l, &ls);
		if (ls.failure == MFS_LEARNER_FAIL_CHECKPOINT) {
			cli_error("a checkpoint failed and --on-checkpoint-error is stop: learning "
				  "stopped");
			failed = 1;
			break;
		}
		cli_diag(&d);
		if (ls.failure == MFS_LEARNER_FAIL_LEARN)
			goto out;
		files_failed++;
		if (stop_on_error)
			goto out;
		mfs_learner_skip_file(l);
	}
	cli_stop_source(NULL); /* reading is over: a signal now only sets the flag */
	/* What a signal cut short (in --follow it is the run's normal end). */
	char cut[64] = "";
	if (cli_stop_signal() && !rc2.follow)
		snprintf(cut, sizeof cut, "reading");
	int final_ok = 0;
	uint64_t unsaved = 0;
	if (ck.dir) {
		/* the last period's writer, then a checkpoint of the end */
		final_ok = mfs_learner_finish(l, &unsaved, &d) == 0;
		if (!final_ok) {
			cli_error("%s: %s", ck.dir, d.reason);
			failed = 1;
		}
	}
	if (pub && mfs_publisher_flush(pub, 30000) < 0)
		cli_error("warning: model chunks still undelivered after 30 s: the edges get the next "
			  "whole snapshot of a later run");
	mfs_learn_stats pre;
	mfs_learner_pass_stats(l, &pre, &rk);
	if (implicit)
		progress_rank(&pg, &pre, &rk, 1);
	else
		progress_line(&pg, &pre, 1, 1);
	cli_curve_line(&curve, &pre, 1);
	if (cli_curve_close(&curve) < 0)
		failed = 1;
	if (pre.unplaced)
		cli_error("warning: %llu events not learned: a table is full (raise --max-users / "
			  "--max-items)",
			  (unsigned long long)pre.unplaced);
	cli_bad_finish(&bad);
	if (badw.count > badw.shown)
		cli_error("%llu more events with a bad weight skipped",
			  (unsigned long long)(badw.count - badw.shown));
	int nothing = pre.events == 0 && nothing_learned(&bad, files_failed, src, rc2.follow,
							 (const char *const *)argv + optind,
							 (size_t)(argc - optind), resumed);
	failed |= nothing;

	uint64_t epochs_done = 1;
	mfs_source_stats ss1;
	mfs_source_stats_get(src, &ss1);
	if (epochs > 1 && ss1.events > 0 && !cut[0] && !nothing && !failed) {
		int64_t done = mfs_learner_replay(l, &d);
		if (done < 0) {
			cli_diag(&d);
			goto out;
		}
		epochs_done = (uint64_t)done;
		progress_line(&pg, &rep.last, (int)rep.pass, 1);
		if (rep.stopped)
			snprintf(cut, sizeof cut, "epoch %u of %llu", rep.pass,
				 (unsigned long long)epochs);
	}
	mfs_learner_stats_get(l, &ls);
	uint64_t steps = ls.steps;
	double secs = cli_now() - t0;

	struct cli_eval te;
	memset(&te, 0, sizeof te);
	int tested = 0;
	if (ntests && (cut[0] || nothing))
		cli_error("--test skipped: %s", nothing ? "nothing was learned" : "interrupted");
	else if (ntests) {
		if (cli_evaluate(m, tests, ntests, format, fields, &te) != 0)
			goto out;
		if (te.interrupted) {
			snprintf(cut, sizeof cut, "--test");
		} else if (te.n == 0) {
			cli_error("--test: no rated pairs to score in the test files");
			failed = 1;
		} else {
			tested = 1;
		}
	}
	int save_failed = 0;
	if (save && !nothing && mfs_learner_save(l, save, compress, &d) < 0) {
		cli_diag(&d);
		cli_error("--save %s failed: the model learned in this run is not saved", save);
		save_failed = failed = 1;
	}
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	mfs_source_stats ss;
	mfs_source_stats_get(src, &ss);
	printf("{\"events\": %llu, \"skipped\": %llu, \"epochs\": %llu, \"steps\": %llu, "
	       "\"users\": %llu, \"items\": %llu",
	       (unsigned long long)ss.events, (unsigned long long)ss.skipped,
	       (unsigned long long)epochs_done, (unsigned long long)steps,
	       (unsigned long long)info.users, (unsigned long long)info.items);
	if (pre.unplaced)
		printf(", \"unplaced\": %llu", (unsigned long long)pre.unplaced);
	printf(", \"model_events\": %llu", (unsigned long long)info.events);
	printf(", \"rating_range\": \"%g:%g\", \"out_of_range\": %llu", info.lo, info.hi,
	       (unsigned long long)pre.out_of_range);
	if (mfs_learner_checkpointer(l)) {
		mfs_checkpointer_stats cs;
		mfs_checkpointer_stats_get(mfs_learner_checkpointer(l), &cs);
		printf(", \"checkpoints\": %llu, \"deltas\": %llu, \"checkpoint_failures\": %llu, "
		       "\"checkpoint_stall_ms_max\": %.3f, \"checkpoint_wait_ms\": %.1f, "
		       "\"checkpoint_final_ms\": %.1f, \"resumed\": %s, \"stale_temp_removed\": %d",
		       (unsigned long long)cs.written, (unsigned long long)cs.deltas,
		       (unsigned long long)cs.failed, cs.stall_ms_max, cs.wait_ms, cs.final_ms,
		       resumed ? "true" : "false", (int)ls.stale_removed);
	}
	if (unsaved)
		printf(", \"unsaved_events\": %llu", (unsigned long long)unsaved);
	if (pub) {
		mfs_publisher_stats ps;
		mfs_publisher_stats_get(pub, &ps);
		printf(", \"published\": {\"fulls\": %llu, \"deltas\": %llu, \"chunks\": %llu, "
		       "\"bytes\": %llu, \"delivered\": %llu, \"failures\": %llu, \"skipped\": %llu}",
		       (unsigned long long)ps.fulls, (unsigned long long)ps.deltas,
		       (unsigned long long)ps.chunks, (unsigned long long)ps.bytes,
		       (unsigned long long)ps.delivered, (unsigned long long)ps.failures,
		       (unsigned long long)ps.skipped);
	}
	if (save_failed)
		printf(", \"save_failed\": true");
	printf(", \"evictions\": %llu",
	       (unsigned long long)(info.user_evictions + info.item_evictions));
	if (cfg.min_count > 1)
		printf(", \"unadmitted\": %llu", (unsigned long long)pre.unadmitted);
	printf(", \"ids\": \"%s\"", cfg.ids == MFS_IDS_HASHED ? "hashed" : "exact");
	if (files_failed)
		printf(", \"files_failed\": %llu", (unsigned long long)files_failed);
	if (implicit) {
		printf(", \"feedback\": \"implicit\", \"loss\": \"%s\", \"negatives\": %u, "
		       "\"neg_beta\": %g, \"weight\": \"%s\", \"bad_weights\": %llu",
		       loss_name(icfg.loss), icfg.loss == MFS_LOSS_POPULARITY ? 0 : icfg.negatives,
		       icfg.neg_beta,
		       type_weights ? "type" : weight_mode == W_NONE ? "none"
					 : weight_mode == W_RATING ? "rating" : "log1p",
		       (unsigned long long)ls.bad_weights);
		if (rk.k)
			printf(", \"first_time_pairs\": %llu, \"ranked\": %llu, \"eval_k\": %u, "
			       "\"eval_every\": %u, \"prequential_hr@%u\": %.6f, \"prequential_ndcg@%u\": %.6f, "
			       "\"eval_seconds\": %.3f",
			       (unsigned long long)rk.pairs, (unsigned long long)rk.ranked, rk.k,
			       rk.every ? rk.every : 1, rk.k, rk.ranked ? rk.hits / (double)rk.ranked : 0.0,
			       rk.k, rk.ranked ? rk.ndcg / (double)rk.ranked : 0.0, rk.seconds);
		if (pre.events)
			printf(", \"train_loss\": %.6f", rk.loss / (double)pre.events);
	} else if (pre.events)
		printf(", \"prequential_rmse\": %.6f, \"prequential_mae\": %.6f",
		       sqrt(pre.sq_err / (double)pre.events), pre.abs_err / (double)pre.events);
	if (ntests) {
		printf(", \"test_n\": %llu", (unsigned long long)te.n);
		if (tested)
			printf(", \"test_rmse\": %.6f, \"test_mae\": %.6f", sqrt(te.sq / (double)te.n),
			       te.ab / (double)te.n);
	}
	if (kafka) {
		mfs_source_kafka_watermarks(src, 1000); /* the lag of partitions not fetched yet */
		int np = mfs_source_kafka_partition(src, 0, NULL);
		printf(", \"kafka\": [");
		for (int i = 0; i < np; i++) {
			mfs_kafka_partition kp;
			mfs_source_kafka_partition(src, (size_t)i, &kp);
			printf("%s{\"topic\": ", i ? ", " : "");
			cli_json_string(stdout, kp.topic, kp.topic_len);
			printf(", \"partition\": %d, \"assigned\": %s, \"offset\": %lld, \"lag\": %lld, "
			       "\"events\": %llu, \"skipped\": %llu}",
			       (int)kp.partition, kp.assigned ? "true" : "false", (long long)kp.offset,
			       (long long)kp.lag, (unsigned long long)kp.events,
			       (unsigned long long)kp.skipped);
		}
		printf("]");
	}
	int sig = cli_stop_signal();
	printf(", \"interrupted\": %s", sig ? "true" : "false");
	if (cut[0])
		printf(", \"interrupted_during\": \"%s\"", cut);
	printf(", \"seconds\": %.3f, \"events_per_sec\": %.4g", secs,
	       secs > 0 ? (double)steps / secs : 0.0);
	if (implicit && secs - rk.seconds > 0)
		printf(", \"train_seconds\": %.3f, \"train_events_per_sec\": %.4g", secs - rk.seconds,
		       (double)steps / (secs - rk.seconds));
	printf(", \"kernel\": \"%s\", \"io\": \"%s\"}\n", info.kernel, mfs_source_io(src));
	fflush(stdout);
	if (cut[0]) {
		int saved = save && !save_failed;
		cli_error("interrupted by %s during %s: the run did not finish (exit status 1); what "
			  "was learned until then is %s", cli_signal_name(sig), cut,
			  final_ok && saved ? "in the final checkpoint and --save"
			  : final_ok	    ? "in the final checkpoint"
			  : saved	    ? "saved (--save)"
					    : "not saved");
		failed = 1;
	}
	rc = failed ? EXIT_RUNTIME : 0;
out:
	cli_curve_close(&curve);
	cli_stop_source(NULL);
	mfs_learner_free(l); /* a checkpoint writer still running keeps the lock until it exits */
	mfs_kafka_config_free(kc);
	mfs_publisher_free(pub);
	mfs_learner_config_free(lc);
	free(fields_spec);
	free(tests);
	free(kopts);
	free(popts);
	return rc;
usage:
	free(fields_spec);
	free(tests);
	free(kopts);
	free(popts);
	return EXIT_USAGE;
}

static const char eval_help[] =
	"Usage: mfstream eval --model PATH [options] TEST...\n"
	"\n"
	"Score a saved model on rated pairs (any input format train reads) and print\n"
	"{\"n\": ..., \"rmse\": ..., \"mae\": ..., \"skipped\": ...} on stdout. Errors are taken\n"
	"against the ratings as given (not clamped into the model's range). Exit 1 when\n"
	"there is no rated pair to score (n would be 0).\n"
	"\n"
	"With --metric, rank instead (implicit or explicit models): each held-out pair\n"
	"whose item is not in the user's history is ranked against every item, as\n"
	"recommend ranks (the history left out), and scores hr@K (a hit: the item in\n"
	"the top K), ndcg@K (1 / log2(rank + 2) per hit) over pairs, recall@K (a\n"
	"user's hits / its pairs) over users. An item the model lacks is a miss;\n"
	"pairs already in the history are counted as seen_skipped. Prints {\"n\",\n"
	"\"users\", one key per metric, \"seen_skipped\", \"unknown_items\", ...}.\n"
	"\n"
	"  --model PATH    a model file, or a checkpoint directory (its newest valid model)\n"
	"  --metric LIST   ranking metrics, e.g. hr@10,ndcg@10,recall@20 (K 1..1000)\n"
	"  --format F      auto|tsv|csv|dat|jsonl|ssv (default auto)\n"
	"  --fields SPEC   jsonl field names (see train --help)\n"
	"  --kernel K      auto|scalar|avx2|avx512|neon\n"
	"  -h, --help      this text\n";

int cmd_eval(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, 0, 'm' },	 { "format", required_argument, 0, 'f' },
		{ "fields", required_argument, 0, 'F' }, { "kernel", required_argument, 0, 'K' },
		{ "metric", required_argument, 0, 'M' }, { "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *model = NULL, *fields = NULL, *kernel = NULL, *metric = NULL;
	int format = MFS_FORMAT_AUTO, c;
	optind = 1;
	opterr = 0;
	const struct cli_option table[] = {
		CLI_OPT_STR('m', &model),     CLI_OPT_FORMAT('f', &format, 0),
		CLI_OPT_STR('F', &fields),    CLI_OPT_STR('K', &kernel),
		CLI_OPT_STR('M', &metric),
	};
	while ((c = cli_getopt_table("eval", argc, argv, ":hm:", opts, table,
				     sizeof table / sizeof *table)) != -1) {
		if (c != 'h')
			return EXIT_USAGE; /* CLI_OPT_ERR: said */
		fputs(eval_help, stdout);
		return 0;
	}
	if (!model)
		return cli_usage("eval", "--model PATH is required");
	if (optind >= argc)
		return cli_usage("eval", "no TEST file given");
	mfs_model *m;
	int rc = cli_load_model(model, kernel, &m);
	if (rc)
		return rc;
	if (metric) {
		rc = cli_rank_eval(m, (const char *const *)argv + optind, (size_t)(argc - optind),
				   format, fields, metric);
		mfs_model_free(m);
		return rc;
	}
	struct cli_eval te;
	rc = cli_evaluate(m, (const char *const *)argv + optind, (size_t)(argc - optind), format,
			  fields, &te);
	if (rc == 0 && te.n == 0) {
		/* an RMSE of nothing is no score: say why there was nothing */
		if (te.skipped) {
			char first[1024];
			mfs_diag_format(&te.first_bad, first, sizeof first);
			cli_error("no rated pairs to score: all %llu records were malformed (the first: "
				  "%s)", (unsigned long long)te.skipped, first);
		} else {
			cli_error("no rated pairs to score: the test input is empty");
		}
		rc = EXIT_RUNTIME;
	} else if (rc == 0) {
		printf("{\"n\": %llu, \"rmse\": %.6f, \"mae\": %.6f, \"skipped\": %llu}\n",
		       (unsigned long long)te.n, sqrt(te.sq / (double)te.n), te.ab / (double)te.n,
		       (unsigned long long)te.skipped);
	}
	mfs_model_free(m);
	return rc;
}
