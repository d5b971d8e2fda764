// SPDX-License-Identifier: GPL-2.0
/*
 * Differential scenarios: one seeded scenario, run on whichever module provides the "user"
 * backend (TCMU_MODULE), written as a transcript that a run on the other module must
 * reproduce line for line (devtools/guest/diff.sh compares them, devtools/guest/diff.allow
 * lists the deliberate differences).
 *
 * The test is the handler (tcmu_util.h) and the initiator (SG_IO through tcm_loop). From
 * the seed it draws steps: batches of commands held on the ring and completed in a seeded
 * order with seeded outcomes (data, short reads, sense in fixed and descriptor format,
 * UNKNOWN_OP), attribute writes (valid and invalid), LUN RESETs with commands held (with and
 * without TMR notification), reset_ring of either level with commands on the ring,
 * block_dev with commands waiting for room, command timeouts, WRITEs completed with
 * KEEP_BUF and free_kept_buf (valid, stale and invalid ids), the handler closing and
 * reopening the UIO device with commands held, and global_max_data_area_mb lowered with
 * commands in flight. The transcript records
 * what the handler sees on the ring (opcode, iovecs, Data-Out checksum, TMR entries) and
 * what the initiator gets (status, sense, residual, Data-In checksum, errno of attribute
 * writes and what they read back), in the order the scenario defines: nothing that depends
 * on timing or on command ids.
 *
 * DIFF_SEED selects the seed (default 1); DIFF_OUT the transcript file (default stdout);
 * DIFF_STEPS the number of steps (default 10); DIFF_ONLY a comma-separated list of the
 * steps to run (the others are skipped). Each step draws from its own stream of the seed,
 * so that a step does the same whichever others run: diff.sh minimises a failing seed by
 * dropping steps.
 */
#define TDEV_FIXTURE diff
#include "tcmu_util.h"

#define MAX_BATCH	6
#define STEPS		10
#define MAX_KEPT	64
#define CMD_TIME_OUT	"6"	/* seconds; written before the export (refused after) */
#define TIMED_OUT_MS	9000	/* a held command has timed out by then */

static uint64_t rng;

/* The stream of step STEP of SEED (step -1: the setup). */
static void rng_seed(uint64_t seed, int step)
{
	rng = (seed * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)(step + 2) * 0xbf58476d1ce4e5b9ull);
	if (!rng)
		rng = 1;
}

/* xorshift64*: the same sequence on every machine. */
static uint32_t rnd(uint32_t n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 2685821657736338717ull) >> 32) % n;
}

static FILE *tr;

static uint32_t fnv(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

enum outcome { O_GOOD, O_SHORT, O_CHECK, O_CHECK_DESC, O_UNKNOWN_OP, O_KEEP, O_N };
static const char *const outcome_name[] = {
	"good", "short", "check", "check-desc", "unknown-op", "keep-buf",
};

/* WRITEs completed with KEEP_BUF whose data blocks the handler still holds. */
static struct {
	uint16_t id;
	uint32_t key;
} kept[MAX_KEPT];
static int nkept;

/* Sense the handler returns; no UNIT ATTENTION or ABORTED COMMAND (the midlayer retries). */
static const uint8_t sense_tab[][3] = {
	{ 0x3, 0x11, 0x00 }, { 0x5, 0x24, 0x00 }, { 0x5, 0x20, 0x00 },
	{ 0x4, 0x44, 0x00 }, { 0x7, 0x27, 0x00 }, { 0x1, 0x18, 0x00 },
};

struct dcmd {
	struct job *j;
	uint8_t op;
	uint32_t key, blocks, len;
	enum outcome out;
	int sense;
};

static uint32_t next_lba = 64;

/* Draws a command: READ(10), WRITE(10) or a vendor opcode with Data-In, keyed by LBA. */
static void dcmd_new(tdev_t *self, struct dcmd *d)
{
	static const uint32_t blocks[] = { 1, 8, 64, 128 };
	uint8_t cdb[10];
	int dir;

	memset(d, 0, sizeof(*d));
	d->blocks = blocks[rnd(4)];
	d->len = d->blocks * 512;
	d->key = next_lba;
	next_lba += d->blocks;
	switch (rnd(5)) {
	case 0: case 1:
		d->op = 0x28;
		break;
	case 2: case 3:
		d->op = 0x2a;
		break;
	default:
		d->op = VENDOR_OP;
		break;
	}
	if (d->op == VENDOR_OP) {
		memset(cdb, 0, sizeof(cdb));
		cdb[0] = VENDOR_OP;
		put_be32(cdb + 2, d->key);
		put_be16(cdb + 7, d->blocks);
	} else {
		cdb_rw10(cdb, d->op, d->key, d->blocks);
	}
	dir = d->op == 0x2a ? SG_DXFER_TO_DEV : SG_DXFER_FROM_DEV;
	d->j = job_new(self, cdb, 10, dir, d->len);
	d->j->timeout_ms = 20000;
	if (d->op == 0x2a)
		pat_fill(d->j->buf, d->key, 512, d->len);
	d->out = rnd(O_N);
	if ((d->out == O_SHORT && d->op == 0x2a) || (d->out == O_KEEP && d->op != 0x2a))
		d->out = O_GOOD;
	d->sense = rnd(ARRAY_SIZE(sense_tab));
}

static uint32_t cmd_key(const struct cmd *c)
{
	return get_be32(c->cdb + 2);
}

/* The held command with KEY (lock held), or NULL. */
static struct cmd *held_find(struct ring *r, uint32_t key)
{
	for (int i = 0; i < r->nheld; i++)
		if (cmd_key(r->held[i]) == key)
			return r->held[i];
	return NULL;
}

/* What the handler sees of D (lock held). */
static void log_ring(struct ring *r, struct dcmd *d)
{
	struct cmd *c = held_find(r, d->key);
	uint8_t *buf;

	if (!c) {
		fprintf(tr, "  ring %u: not held\n", d->key);
		return;
	}
	fprintf(tr, "  ring %u: op %02x iov %u/%u/%u len %llu", d->key, c->cdb[0], c->iov_cnt,
		c->iov_bidi_cnt, c->iov_dif_cnt, (unsigned long long)c->data_len);
	buf = d->op == 0x2a ? malloc(d->len) : NULL;
	if (buf) {
		data_read(r, c, 0, buf, d->len);
		fprintf(tr, " data %08x", fnv(buf, d->len));
		free(buf);
	}
	fputc('\n', tr);
}

/* The handler completes D with its outcome (lock held). */
static void complete_drawn(struct ring *r, struct dcmd *d)
{
	struct cmd *c = held_find(r, d->key);
	const uint8_t *s = sense_tab[d->sense];
	uint8_t desc[8] = { 0x72, s[0], s[1], s[2], 0, 0, 0, 0 };

	if (!c)
		return;
	if (d->op != 0x2a)
		data_fill_pattern(r, c, d->key, d->len);
	switch (d->out) {
	case O_GOOD:
		complete_good(r, c);
		break;
	case O_SHORT:
		ring_complete(r, c, SAM_STAT_GOOD, TCMU_UFLAG_READ_LEN, d->len / 2, NULL, 0);
		break;
	case O_CHECK:
		complete_sense(r, c, s[0], s[1], s[2]);
		break;
	case O_CHECK_DESC:
		ring_complete(r, c, SAM_STAT_CHECK_CONDITION, 0, 0, desc, sizeof(desc));
		break;
	case O_KEEP:
		if (nkept < MAX_KEPT) {
			kept[nkept].id = c->id;
			kept[nkept++].key = d->key;
			ring_complete(r, c, SAM_STAT_GOOD, TCMU_UFLAG_KEEP_BUF, 0, NULL, 0);
		} else {
			complete_good(r, c);
		}
		break;
	default:
		ring_complete(r, c, SAM_STAT_GOOD, TCMU_UFLAG_UNKNOWN_OP, 0, NULL, 0);
		break;
	}
}

/* What the initiator got for D. */
static void log_initiator(struct dcmd *d)
{
	struct job *j = d->j;

	if (!job_wait(j, 30000)) {
		fprintf(tr, "  initiator %u: no completion\n", d->key);
		return;
	}
	fprintf(tr, "  initiator %u: rc %d status %02x host %02x resid %d", d->key, j->rc,
		j->h.status, j->h.host_status, j->h.resid);
	if (j->h.sb_len_wr)
		fprintf(tr, " sense %02x %x/%02x/%02x", j->sense[0] & 0x7f,
			(j->sense[0] & 0x7f) >= 0x72 ? j->sense[1] & 0xf : j->sense[2] & 0xf,
			(j->sense[0] & 0x7f) >= 0x72 ? j->sense[2] : j->sense[12],
			(j->sense[0] & 0x7f) >= 0x72 ? j->sense[3] : j->sense[13]);
	if (d->op != 0x2a && j->rc == 0 && j->h.status == SAM_STAT_GOOD)
		fprintf(tr, " data %08x", fnv(j->buf, d->len - (j->h.resid > 0 ? j->h.resid : 0)));
	fputc('\n', tr);
}

/* Forgets the jobs of a finished step, so that a scenario is not bounded by MAX_JOBS. */
static void jobs_forget(tdev_t *self)
{
	for (int i = 0; i < self->njobs; i++) {
		struct job *j = self->jobs[i];

		if (!job_wait(j, 30000))
			return; /* the teardown waits for it and reports it */
		free(j->buf);
		free(j);
	}
	self->njobs = 0;
}

/* Starts N drawn commands and waits until the handler holds them all. */
static int batch_start(tdev_t *self, struct dcmd *d, int n)
{
	struct ring *r = &self->r;
	int held;

	pthread_mutex_lock(&r->lock);
	r->hold = 1;
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < n; i++) {
		dcmd_new(self, &d[i]);
		fprintf(tr, "  cmd %u: op %02x blocks %u -> %s", d[i].key, d[i].op, d[i].blocks,
			outcome_name[d[i].out]);
		if (d[i].out == O_CHECK || d[i].out == O_CHECK_DESC) {
			const uint8_t *st = sense_tab[d[i].sense];

			fprintf(tr, " %x/%02x/%02x", st[0], st[1], st[2]);
		}
		fputc('\n', tr);
		/*
		 * One at a time: the order in which concurrent commands reach the ring is a
		 * race, and with kept buffers it decides where their data blocks go.
		 */
		job_start(d[i].j);
		wait_held(r, i + 1, 10000);
	}
	held = wait_held(r, n, 10000);
	if (held != n)
		fprintf(tr, "  held %d of %d\n", held, n);
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < n; i++)
		log_ring(r, &d[i]);
	pthread_mutex_unlock(&r->lock);
	return held;
}

/* Serves whatever is still held and ends a step. */
static void step_end(tdev_t *self, struct dcmd *d, int n)
{
	ring_release_all(&self->r);
	for (int i = 0; i < n; i++)
		log_initiator(&d[i]);
	jobs_forget(self);
}

/* Writes VAL to action/free_kept_buf: "ok" or the error. */
static const char *free_kept_write(const char *val)
{
	int ret = write_file(DEV "/action/free_kept_buf", val);

	return ret ? strerror(-ret) : "ok";
}

/* Frees every kept buffer, in a seeded order. */
static void kept_free_all(void)
{
	char v[16];

	while (nkept) {
		int k = rnd(nkept);

		snprintf(v, sizeof(v), "%u", kept[k].id);
		fprintf(tr, "  free_kept_buf of %u: %s\n", kept[k].key, free_kept_write(v));
		kept[k] = kept[--nkept];
	}
}

/*
 * The kernel has freed the kept buffers (reset_ring, close): the id of one is stale, as
 * long as no new command took it.
 */
static void kept_gone(int check)
{
	char v[16];

	if (nkept && check) {
		snprintf(v, sizeof(v), "%u", kept[0].id);
		fprintf(tr, "  free_kept_buf of %u (freed by the kernel): %s\n", kept[0].key,
			free_kept_write(v));
	}
	nkept = 0;
}

/* Commands completed by the handler in a seeded order, each with a seeded outcome. */
static void step_batch(tdev_t *self)
{
	struct ring *r = &self->r;
	struct dcmd d[MAX_BATCH];
	int n = 1 + rnd(MAX_BATCH), order[MAX_BATCH];

	fprintf(tr, "batch %d\n", n);
	batch_start(self, d, n);
	for (int i = 0; i < n; i++)
		order[i] = i;
	for (int i = n - 1; i > 0; i--) {
		int k = rnd(i + 1), t = order[i];

		order[i] = order[k];
		order[k] = t;
	}
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < n; i++)
		complete_drawn(r, &d[order[i]]);
	pthread_mutex_unlock(&r->lock);
	step_end(self, d, n);
}

/* An attribute write, valid or not: its errno and what the attribute reads after. */
static void step_attr(tdev_t *self)
{
	static const struct {
		const char *name, *vals[6];
	} tab[] = {
		{ "cmd_time_out", { "0", "5", "30", "-1", "abc", "4294968" } },
		{ "qfull_time_out", { "-1", "0", "10", "-2", "x", "2147484" } },
		{ "tmr_notification", { "0", "1", "2", "-1", "", "1" } },
	};
	char path[128], buf[64] = "";
	int a = rnd(3), v = rnd(6), ret;

	(void)self;
	snprintf(path, sizeof(path), DEV "/attrib/%s", tab[a].name);
	ret = write_file(path, tab[a].vals[v]);
	if (read_file(path, buf, sizeof(buf)) < 0)
		snprintf(buf, sizeof(buf), "?");
	fprintf(tr, "attr %s = \"%s\": %s, reads %s\n", tab[a].name, tab[a].vals[v],
		ret ? strerror(-ret) : "ok", buf);
}

/*
 * After a LUN RESET the target core reports a UNIT ATTENTION to the next command: a TEST
 * UNIT READY takes it here, so that it does not land on whichever command of the next step
 * happens to arrive first.
 */
static void ua_take(tdev_t *self)
{
	uint8_t cdb[6] = { 0 };
	struct job *j = job_new(self, cdb, 6, SG_DXFER_NONE, 0);

	j->timeout_ms = 20000;
	job_run(j);
	fprintf(tr, "  test unit ready: rc %d status %02x", j->rc, j->h.status);
	if (j->h.sb_len_wr)
		fprintf(tr, " sense %x/%02x/%02x", j->sense[2] & 0xf, j->sense[12], j->sense[13]);
	fputc('\n', tr);
	jobs_forget(self);
}

/* A LUN RESET with commands held, notified to the handler or not. */
static void step_lun_reset(tdev_t *self)
{
	struct ring *r = &self->r;
	struct dcmd d[3];
	int n = 1 + rnd(3), notify = rnd(2), ret;
	struct reset_job rs = { 0 };
	unsigned int ntmrs;
	pthread_t th;

	fprintf(tr, "lun-reset %d, tmr_notification %d\n", n, notify);
	write_file(DEV "/attrib/tmr_notification", notify ? "1" : "0");
	batch_start(self, d, n);
	pthread_mutex_lock(&r->lock);
	ntmrs = r->ntmrs;
	pthread_mutex_unlock(&r->lock);
	snprintf(rs.dev, sizeof(rs.dev), "%s", self->sg);
	ret = pthread_create(&th, NULL, reset_thread, &rs);
	/* The handler sees the TMR entry (if notified) before it completes the commands. */
	for (int i = 0; i < 200; i++) {
		int seen;

		pthread_mutex_lock(&r->lock);
		seen = r->ntmrs != ntmrs;
		pthread_mutex_unlock(&r->lock);
		if (seen)
			break;
		sleep_ms(notify ? 10 : 2);
	}
	pthread_mutex_lock(&r->lock);
	if (r->ntmrs != ntmrs)
		fprintf(tr, "  tmr entry: type %u, %u commands\n", r->tmr_type, r->tmr_cnt);
	else
		fprintf(tr, "  tmr entry: none\n");
	for (int i = 0; i < n; i++)
		complete_drawn(r, &d[i]);
	pthread_mutex_unlock(&r->lock);
	if (!ret)
		pthread_join(th, NULL);
	fprintf(tr, "  reset: %s\n", ret ? "not started" : rs.rc ? strerror(rs.err) : "ok");
	step_end(self, d, n);
	write_file(DEV "/attrib/tmr_notification", "0");
	ua_take(self);
}

/* reset_ring of level 1 or 2 with commands on the ring: what their initiators get. */
static void step_reset_ring(tdev_t *self)
{
	struct ring *r = &self->r;
	struct dcmd d[3];
	int n = 1 + rnd(3), level = 1 + rnd(2), ret;
	char v[4];

	fprintf(tr, "reset-ring %d, level %d\n", n, level);
	batch_start(self, d, n);
	snprintf(v, sizeof(v), "%d", level);
	/* Commands retried after a BUSY come back: served from now on. */
	pthread_mutex_lock(&r->lock);
	r->hold = 0;
	pthread_mutex_unlock(&r->lock);
	ret = ring_reset_level(self, v);
	fprintf(tr, "  reset_ring: %s\n", ret ? strerror(-ret) : "ok");
	/* Level 1's BUSY commands come back at once and may take a freed id. */
	kept_gone(!ret && level == 2);
	step_end(self, d, n);
}

#define BLOCK_FILL	16	/* READs of 64 KiB that fill the 1 MiB data area */
#define BLOCK_WAIT	2	/* READs that then wait for room */

/*
 * block_dev while commands wait for data area room: the waiting ones are failed with BUSY
 * (the midlayer retries them until the device is unblocked and serves them), then the
 * held ones complete and the device is unblocked.
 */
static void step_block_dev(tdev_t *self)
{
	struct ring *r = &self->r;
	struct dcmd d[BLOCK_FILL + BLOCK_WAIT];
	int n = BLOCK_FILL + BLOCK_WAIT, ret;
	uint8_t cdb[10];

	fprintf(tr, "block-dev %d+%d\n", BLOCK_FILL, BLOCK_WAIT);
	kept_free_all();
	pthread_mutex_lock(&r->lock);
	r->hold = 1;
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < n; i++) {
		memset(&d[i], 0, sizeof(d[i]));
		d[i].op = 0x28;
		d[i].blocks = 128;
		d[i].len = 65536;
		d[i].key = next_lba;
		next_lba += 128;
		cdb_rw10(cdb, 0x28, d[i].key, 128);
		d[i].j = job_new(self, cdb, 10, SG_DXFER_FROM_DEV, d[i].len);
		d[i].j->timeout_ms = 20000;
		job_start(d[i].j);
		/* In order, as batch_start(); the last ones wait for room. */
		if (i < BLOCK_FILL && wait_held(r, i + 1, 10000) != i + 1)
			fprintf(tr, "  the data area did not fill\n");
	}
	sleep_ms(300);
	pthread_mutex_lock(&r->lock);
	fprintf(tr, "  held %d\n", r->nheld);
	pthread_mutex_unlock(&r->lock);
	ret = write_file(DEV "/action/block_dev", "1");
	fprintf(tr, "  block_dev 1: %s\n", ret ? strerror(-ret) : "ok");
	sleep_ms(300);
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < BLOCK_FILL; i++)
		complete_drawn(r, &d[i]);
	r->hold = 0;
	pthread_mutex_unlock(&r->lock);
	ret = write_file(DEV "/action/block_dev", "0");
	fprintf(tr, "  block_dev 0: %s\n", ret ? strerror(-ret) : "ok");
	step_end(self, d, n);
}

/* A command the handler holds past cmd_time_out, then completes late. */
static void step_timeout(tdev_t *self)
{
	struct ring *r = &self->r;
	struct dcmd d[1];

	fprintf(tr, "timeout\n");
	batch_start(self, d, 1);
	fprintf(tr, "  completed before the handler: %s\n",
		job_wait(d[0].j, TIMED_OUT_MS) ? "yes" : "no");
	pthread_mutex_lock(&r->lock);
	complete_drawn(r, &d[0]);
	pthread_mutex_unlock(&r->lock);
	step_end(self, d, 1);
}

/* free_kept_buf of a held command, of every kept buffer (one twice) and of bad values. */
static void step_free_kept(tdev_t *self)
{
	static const char *const bad[] = { "0", "65536", "-1", "x", "1 2" };
	struct ring *r = &self->r;
	struct dcmd d[1];
	uint32_t again_key = 0, b;
	char v[16], again[16] = "";
	struct cmd *c;

	fprintf(tr, "free-kept %d\n", nkept);
	if (nkept) {
		int k = rnd(nkept);

		snprintf(again, sizeof(again), "%u", kept[k].id);
		again_key = kept[k].key;
	}
	batch_start(self, d, 1);
	pthread_mutex_lock(&r->lock);
	c = held_find(r, d[0].key);
	snprintf(v, sizeof(v), "%u", c ? c->id : 0);
	pthread_mutex_unlock(&r->lock);
	fprintf(tr, "  free_kept_buf of held %u: %s\n", d[0].key, free_kept_write(v));
	kept_free_all();
	if (again[0])
		fprintf(tr, "  free_kept_buf of %u again: %s\n", again_key, free_kept_write(again));
	b = rnd(ARRAY_SIZE(bad));
	fprintf(tr, "  free_kept_buf \"%s\": %s\n", bad[b], free_kept_write(bad[b]));
	pthread_mutex_lock(&r->lock);
	complete_drawn(r, &d[0]);
	pthread_mutex_unlock(&r->lock);
	step_end(self, d, 1);
}

/*
 * The handler closes the UIO device with commands held (the kernel frees the kept
 * buffers) and opens it again: it resumes at cmd_tail, or resets the ring first, as
 * tcmu-runner does after a restart.
 */
static void step_kill(tdev_t *self)
{
	static const char *const how_name[] = { "resume", "reset-ring 1", "reset-ring 2" };
	struct ring *r = &self->r;
	struct dcmd d[3];
	int n = 1 + rnd(3), how = rnd(3), ret;

	fprintf(tr, "kill %d, %s\n", n, how_name[how]);
	batch_start(self, d, n);
	ring_detach(self);
	ret = ring_map(r);
	fprintf(tr, "  reopen: %s\n", ret ? strerror(-ret) : "ok");
	if (r->map)
		self->mapped = 1;
	kept_gone(!ret);
	WRITE_ONCE(r->stop, 0);
	r->hold = how == 0;
	if (!ret && !pthread_create(&r->th, NULL, ring_thread, r))
		r->th_running = 1;
	if (!r->th_running) {
		fprintf(tr, "  no handler\n");
		return;
	}
	if (how) {
		ret = ring_reset_level(self, how == 1 ? "1" : "2");
		fprintf(tr, "  reset_ring: %s\n", ret ? strerror(-ret) : "ok");
	} else {
		fprintf(tr, "  held again %d\n", wait_held(r, n, 10000));
		pthread_mutex_lock(&r->lock);
		for (int i = 0; i < n; i++)
			complete_drawn(r, &d[i]);
		pthread_mutex_unlock(&r->lock);
	}
	step_end(self, d, n);
}

/* global_max_data_area_mb written (lowered, or a bad value) with commands in flight. */
static void step_global(tdev_t *self)
{
	static const char *const vals[] = { "1", "2", "0", "-1", "x" };
	struct ring *r = &self->r;
	char path[128], old[32] = "", now[32] = "";
	struct dcmd d[MAX_BATCH];
	int n = 1 + rnd(MAX_BATCH), v = rnd(ARRAY_SIZE(vals)), ret;

	snprintf(path, sizeof(path), "/sys/module/%s/parameters/global_max_data_area_mb",
		 module_name());
	read_file(path, old, sizeof(old));
	fprintf(tr, "global %d, \"%s\"\n", n, vals[v]);
	batch_start(self, d, n);
	ret = write_file(path, vals[v]);
	if (read_file(path, now, sizeof(now)) < 0)
		snprintf(now, sizeof(now), "?");
	fprintf(tr, "  global_max_data_area_mb: %s, reads %s\n", ret ? strerror(-ret) : "ok",
		now);
	sleep_ms(200); /* a reclaim runs */
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < n; i++)
		complete_drawn(r, &d[i]);
	pthread_mutex_unlock(&r->lock);
	step_end(self, d, n);
	if (old[0])
		write_file(path, old);
}

/* Whether step I is in the comma-separated list ONLY. */
static int step_listed(const char *only, int i)
{
	char want[16], list[256];

	snprintf(want, sizeof(want), ",%d,", i);
	snprintf(list, sizeof(list), ",%s,", only);
	return !!strstr(list, want);
}

static void step_run(tdev_t *self, int i)
{
	uint32_t k = rnd(32);

	fprintf(tr, "step %d: ", i);
	if (k < 13)
		step_batch(self);
	else if (k < 18)
		step_attr(self);
	else if (k < 22)
		step_lun_reset(self);
	else if (k < 25)
		step_reset_ring(self);
	else if (k < 27)
		step_block_dev(self);
	else if (k < 28)
		step_timeout(self);
	else if (k < 30)
		step_kill(self);
	else if (k < 31)
		step_free_kept(self);
	else
		step_global(self);
	fflush(tr);
}

TEST_F_TIMEOUT(diff, scenario, 600)
{
	const char *seed = getenv("DIFF_SEED"), *out = getenv("DIFF_OUT");
	const char *only = getenv("DIFF_ONLY"), *steps = getenv("DIFF_STEPS");
	uint64_t s = seed ? strtoull(seed, NULL, 0) : 1;
	int nsteps = steps ? atoi(steps) : STEPS;

	tr = out ? fopen(out, "w") : stdout;
	ASSERT_NE(NULL, tr);
	/* A data area of 1 MiB: block-dev fills it. */
	dev_create(_metadata, self, 512, DEF_SIZE, "cmd_ring_size_mb=1,max_data_area_mb=1");
	ASSERT_EQ(0, write_file(DEV "/attrib/cmd_time_out", CMD_TIME_OUT));
	dev_export(_metadata, self);
	fprintf(tr, "seed %llu\n", (unsigned long long)s);
	for (int i = 0; i < nsteps; i++) {
		if (only && *only && !step_listed(only, i))
			continue;
		rng_seed(s, i);
		step_run(self, i);
	}
	/* The device still works after the scenario. */
	fprintf(tr, "end\n");
	rng_seed(s, -1);
	{
		struct dcmd d[1];

		batch_start(self, d, 1);
		d[0].out = O_GOOD;
		pthread_mutex_lock(&self->r.lock);
		complete_drawn(&self->r, &d[0]);
		pthread_mutex_unlock(&self->r.lock);
		step_end(self, d, 1);
	}
	kept_free_all();
	EXPECT_EQ(0, self->r.nerr) TH_LOG("ring errors: %s", self->r.err);
	if (tr != stdout)
		fclose(tr);
}

TEST_HARNESS_MAIN
