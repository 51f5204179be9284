/*
 * source_decode.c - raw bytes -> decoded text for the line splitter.
 *
 * Plain text is copied, zstd frames (zstd.c) and gzip members (gzip.c) are
 * decompressed, frame boundaries are remembered as restart points. With a
 * reader thread a compressed regular file is decoded on a second thread into
 * a ring of blocks (struct dblk).
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gzip.h"
#include "source_internal.h"
#include "uring.h"
#include "zstd_stage.h"

/* --- decode stage ------------------------------------------------------------ */

/* Decode stage thread: fill one block from the open file. Returns 1 when the session ends. */
static int dec_fill(struct mfs_source *s, struct dblk *b, int codec)
{
	b->len = 0;
	b->nb = 0;
	b->bytes = 0;
	b->end = b->truncated = b->err = 0;
	b->doff = s->d_doff;
	char *out = b->buf + BLK_HEAD;
	while (b->len < BLK_DATA) {
		int mid = codec == CODEC_ZSTD ? mfs_zstream_mid_frame(s->z)
					      : mfs_gzstream_mid_member(s->gz);
		if (s->raw_pos < s->raw_len || mid) {
			const char *why = "corrupt data";
			size_t ol = b->len, rp = s->raw_pos;
			int rc = codec == CODEC_ZSTD
					 ? mfs_zstream_run(s->z, s->raw, s->raw_len, &s->raw_pos, out,
							   BLK_DATA, &b->len, &why)
					 : mfs_gzstream_run(s->gz, s->raw, s->raw_len, &s->raw_pos, out,
							    BLK_DATA, &b->len, &why);
			if (rc < 0) {
				uint64_t off = s->raw_off + s->raw_pos;
				b->err = mfs_diag_set(&b->diag, MFS_E_CORRUPT, 0, s->d_path, 0, off,
						      "corrupt %s data near compressed byte %llu: %s",
						      codec == CODEC_ZSTD ? "zstd" : "gzip",
						      (unsigned long long)off, why);
				break;
			}
			if (rc == 1 && b->nb < NBOUND) {
				b->b[b->nb].c = s->raw_off + s->raw_pos;
				b->b[b->nb].d = b->doff + b->len;
				b->nb++;
			}
			if (ol != b->len || rp != s->raw_pos)
				continue;
		}
		if (s->eof && s->raw_pos >= s->raw_len) {
			b->end = 1;
			b->truncated = codec == CODEC_ZSTD ? mfs_zstream_mid_frame(s->z)
							   : mfs_gzstream_mid_member(s->gz);
			break;
		}
		ssize_t r = mfs_src_fetch_raw(s, s->d_path, &b->diag);
		if (r < 0) {
			b->err = (int)r;
			break;
		}
		b->bytes += (uint64_t)r;
		s->eof = r == 0;
	}
	b->read_off = s->read_off;
	s->d_doff += b->len;
	return b->end || b->err;
}

static void *dec_main(void *arg)
{
	struct mfs_source *s = arg;
	pthread_mutex_lock(&s->dmu);
	for (;;) {
		while (!s->d_quit && !s->d_run)
			pthread_cond_wait(&s->dcv, &s->dmu);
		if (s->d_quit)
			break;
		int codec = s->codec; /* set before the session starts, fixed during it */
		pthread_mutex_unlock(&s->dmu);
		s->raw_pos = s->raw_len = 0;
		s->eof = 0;
		if (s->be == BE_URING)
			mfs_uring_start(s->ring, s->fd, s->read_off);
		mfs_zstream_reset(s->z);
		mfs_gzstream_reset(s->gz);
		pthread_mutex_lock(&s->dmu);
		for (;;) {
			while (s->produced - s->released >= NBLK && !s->d_cancel)
				pthread_cond_wait(&s->dcv, &s->dmu);
			if (s->d_cancel)
				break;
			struct dblk *b = &s->blk[s->produced % NBLK];
			pthread_mutex_unlock(&s->dmu);
			int last = dec_fill(s, b, codec);
			pthread_mutex_lock(&s->dmu);
			s->produced++;
			pthread_cond_broadcast(&s->dcv);
			if (last)
				break;
		}
		s->d_run = 0;
		pthread_cond_broadcast(&s->dcv);
	}
	pthread_mutex_unlock(&s->dmu);
	return NULL;
}

/* Start the stage thread (once). Without it, decoding stays on the reader thread. */
static void dec_init(struct mfs_source *s)
{
	for (int i = 0; i < NBLK; i++) {
		s->blk[i].buf = malloc(BLK_HEAD + BLK_DATA + 1);
		if (!s->blk[i].buf)
			return;
	}
	pthread_mutex_init(&s->dmu, NULL);
	pthread_cond_init(&s->dcv, NULL);
	if (pthread_create(&s->dth, NULL, dec_main, s) != 0) {
		pthread_mutex_destroy(&s->dmu);
		pthread_cond_destroy(&s->dcv);
		return;
	}
	s->dec_ok = 1;
}

static void dec_start(struct mfs_source *s)
{
	pthread_mutex_lock(&s->dmu);
	s->produced = s->consumed = s->released = 0;
	s->d_cancel = 0;
	s->d_path = mfs_src_path(s);
	s->d_doff = s->text_doff + s->text_len;
	s->d_run = 1;
	pthread_cond_broadcast(&s->dcv);
	pthread_mutex_unlock(&s->dmu);
	s->dec_active = 1;
	s->dec_end = s->dec_trunc = s->dec_err = 0;
	s->text_blk = NULL;
}

/* End the session of the open file; the text goes back to own_text (emptied by the caller). */
void mfs_src_dec_stop(struct mfs_source *s)
{
	if (!s->dec_active)
		return;
	pthread_mutex_lock(&s->dmu);
	s->d_cancel = 1;
	pthread_cond_broadcast(&s->dcv);
	while (s->d_run)
		pthread_cond_wait(&s->dcv, &s->dmu);
	pthread_mutex_unlock(&s->dmu);
	s->dec_active = 0;
	s->text_blk = NULL;
	s->text = s->own_text;
}

void mfs_src_dec_quit(struct mfs_source *s)
{
	if (!s->dec_ok)
		return;
	pthread_mutex_lock(&s->dmu);
	s->d_quit = 1;
	s->d_cancel = 1;
	pthread_cond_broadcast(&s->dcv);
	pthread_mutex_unlock(&s->dmu);
	pthread_join(s->dth, NULL);
	pthread_mutex_destroy(&s->dmu);
	pthread_cond_destroy(&s->dcv);
	s->dec_ok = 0;
}

/* mfs_src_refill() through the decode stage: take the next block, carrying the partial line over. */

/*
 * Resuming inside a frame: drop the decoded text that comes before the
 * position. Returns 1 when all the text in the buffer was dropped.
 */
static int drop_skipped(struct mfs_source *s)
{
	if (!s->skip)
		return 0;
	size_t k = s->text_len - s->text_pos;
	if (k > s->skip)
		k = (size_t)s->skip;
	s->text_pos += k;
	s->skip -= k;
	return s->text_pos == s->text_len;
}

static int refill_blocks(struct mfs_source *s, int *truncated, mfs_diag *d)
{
	for (;;) {
		if (s->dec_err) {
			if (d)
				*d = s->dec_diag;
			return s->dec_err;
		}
		if (s->dec_end) {
			*truncated = s->dec_trunc;
			return 0;
		}
		pthread_mutex_lock(&s->dmu);
		while (s->consumed == s->produced)
			pthread_cond_wait(&s->dcv, &s->dmu);
		struct dblk *b = &s->blk[s->consumed % NBLK];
		s->consumed++;
		pthread_mutex_unlock(&s->dmu);
		s->st.bytes += b->bytes;
		s->dec_read_off = b->read_off;
		if (b->err) {
			s->dec_err = b->err;
			s->dec_diag = b->diag;
			continue;
		}
		size_t tail = s->text_len - s->text_pos;
		assert(tail < BLK_HEAD && s->text_doff + s->text_len == b->doff);
		char *t = b->buf + BLK_HEAD - tail;
		memcpy(t, s->text + s->text_pos, tail);
		s->text_doff += s->text_pos;
		if (s->text_blk) {
			/* blocks are released in order: the previous one is free again */
			pthread_mutex_lock(&s->dmu);
			s->released++;
			pthread_cond_broadcast(&s->dcv);
			pthread_mutex_unlock(&s->dmu);
		}
		s->text_blk = b;
		s->text = t;
		s->text_pos = 0;
		s->text_len = tail + b->len;
		for (int i = 0; i < b->nb; i++)
			mfs_src_push_bound(s, b->b[i].c, b->b[i].d);
		if (b->end) {
			s->dec_end = 1;
			s->dec_trunc = b->truncated;
		}
		if (b->len == 0)
			continue;
		if (drop_skipped(s))
			continue;
		return 1;
	}
}

/*
 * Append decoded text after text[text_len]. Returns 1 if bytes were added,
 * 0 at the end of the file as it is now, <0 on error. *truncated is set when
 * the end falls inside a frame.
 */
int mfs_src_refill(struct mfs_source *s, int *truncated, mfs_diag *d)
{
	*truncated = 0;
	if (s->dec_active)
		return refill_blocks(s, truncated, d);
	/* Keep the unconsumed tail (a partial line) at the front. */
	if (s->text_pos > 0) {
		memmove(s->text, s->text + s->text_pos, s->text_len - s->text_pos);
		s->text_doff += s->text_pos;
		s->text_len -= s->text_pos;
		s->text_pos = 0;
	}
	size_t room = TEXT_CAP - s->text_len;
	if (room == 0)
		return 1; /* the caller handles a line that fills the buffer */
	if (s->codec == CODEC_UNKNOWN) {
		int rc = mfs_src_sniff(s, d);
		if (rc <= 0)
			return rc;
	}
	if (s->threaded && s->is_reg && (s->codec == CODEC_ZSTD || s->codec == CODEC_GZIP)) {
		if (!s->dec_ok && !s->blk[0].buf)
			dec_init(s);
		if (s->dec_ok) {
			dec_start(s);
			return refill_blocks(s, truncated, d);
		}
	}
	for (;;) {
		size_t before = s->text_len;
		if (s->codec == CODEC_PLAIN) {
			if (s->raw_pos < s->raw_len) {
				size_t n = s->raw_len - s->raw_pos;
				if (n > room)
					n = room;
				memcpy(s->text + s->text_len, s->raw + s->raw_pos, n);
				s->raw_pos += n;
				s->text_len += n;
			}
		} else {
			int mid = s->codec == CODEC_ZSTD ? mfs_zstream_mid_frame(s->z)
							 : mfs_gzstream_mid_member(s->gz);
			while (s->raw_pos < s->raw_len || mid) {
				const char *why = "corrupt data";
				size_t tl = s->text_len, rp = s->raw_pos;
				int rc = s->codec == CODEC_ZSTD
						 ? mfs_zstream_run(s->z, s->raw, s->raw_len, &s->raw_pos,
								   s->text, TEXT_CAP, &s->text_len, &why)
						 : mfs_gzstream_run(s->gz, s->raw, s->raw_len, &s->raw_pos,
								    s->text, TEXT_CAP, &s->text_len, &why);
				if (rc < 0) {
					uint64_t off = s->raw_off + s->raw_pos;
					return mfs_diag_set(d, MFS_E_CORRUPT, 0, mfs_src_path(s), 0, off,
							    "corrupt %s data near compressed byte %llu: %s",
							    s->codec == CODEC_ZSTD ? "zstd" : "gzip",
							    (unsigned long long)off, why);
				}
				if (rc == 1)
					mfs_src_push_bound(s, s->raw_off + s->raw_pos, s->text_doff + s->text_len);
				mid = s->codec == CODEC_ZSTD ? mfs_zstream_mid_frame(s->z)
							     : mfs_gzstream_mid_member(s->gz);
				if (s->text_len == TEXT_CAP || (tl == s->text_len && rp == s->raw_pos))
					break;
			}
		}
		if (s->text_len > before) {
			if (drop_skipped(s)) {
				s->text_doff += s->text_len;
				s->text_len = s->text_pos = 0;
				continue;
			}
			return 1;
		}
		if (s->raw_pos < s->raw_len && s->text_len == TEXT_CAP)
			return 1;
		if (s->eof && s->raw_pos >= s->raw_len) {
			if (s->codec == CODEC_ZSTD ? mfs_zstream_mid_frame(s->z)
						   : s->codec == CODEC_GZIP ? mfs_gzstream_mid_member(s->gz)
									    : 0)
				*truncated = 1;
			return 0;
		}
		ssize_t r = mfs_src_fetch(s, d);
		if (r < 0)
			return (int)r;
		s->eof = r == 0;
	}
}
