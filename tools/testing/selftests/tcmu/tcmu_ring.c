// SPDX-License-Identifier: GPL-2.0
/*
 * Ring ABI tests of the TCMU backstore ("user" backend), run against whichever module
 * provides it: target_core_user (C) or tcmu_rs (Rust). The test is its own userspace
 * handler: it creates a user device through configfs, maps its UIO region and serves the
 * command ring (include/uapi/linux/target_core_user.h) from a thread, while initiator
 * threads send SCSI commands with SG_IO to the /dev/sgN node of a tcm_loop LUN exporting
 * the device.
 *
 * The handler, the fixture and the initiator threads are in tcmu_util.h.
 *
 * Needs tcm_loop (CONFIG_LOOPBACK_TARGET), sd and sg. Run with the module under test
 * loaded (TCMU_MODULE may name it, for the log only).
 */
#define TDEV_FIXTURE ring
#include "tcmu_util.h"

/* ----------------------------------------------------------------------------------- */
/* Tests                                                                                */

/* The mailbox of a fresh device, and the ring state after sd's probe. */
TEST_F(ring, mailbox)
{
	struct ring *r = &self->r;
	char buf[512], caps[64];

	dev_create(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	snprintf(caps, sizeof(caps), "OOOC %d READ_LEN %d TMR %d KEEP_BUF %d",
		 !!(READ_ONCE(r->mb->flags) & TCMU_MAILBOX_FLAG_CAP_OOOC),
		 !!(READ_ONCE(r->mb->flags) & TCMU_MAILBOX_FLAG_CAP_READ_LEN),
		 !!(READ_ONCE(r->mb->flags) & TCMU_MAILBOX_FLAG_CAP_TMR),
		 !!(READ_ONCE(r->mb->flags) & TCMU_MAILBOX_FLAG_CAP_KEEP_BUF));
	TH_LOG("%s: mailbox version %u flags %#x (%s) cmdr_off %u cmdr_size %u map %zu",
	       module_name(), READ_ONCE(r->mb->version), READ_ONCE(r->mb->flags), caps,
	       r->cmdr_off, r->cmdr_size, r->map_size);
	EXPECT_EQ(TCMU_MAILBOX_VERSION, READ_ONCE(r->mb->version));
	EXPECT_EQ(sizeof(struct tcmu_mailbox), r->cmdr_off);
	EXPECT_EQ(128, r->cmdr_off);
	EXPECT_EQ((1u << 20) - 128, r->cmdr_size);
	EXPECT_TRUE(READ_ONCE(r->mb->flags) & TCMU_MAILBOX_FLAG_CAP_OOOC);
	EXPECT_TRUE(READ_ONCE(r->mb->flags) & TCMU_MAILBOX_FLAG_CAP_READ_LEN);
	/*
	 * Only defined capabilities. (The C module advertises all four; CAP_TMR and
	 * CAP_KEEP_BUF are optional: logged above, not required.)
	 */
	EXPECT_EQ(0, READ_ONCE(r->mb->flags) &
		  ~(TCMU_MAILBOX_FLAG_CAP_OOOC | TCMU_MAILBOX_FLAG_CAP_READ_LEN |
		    TCMU_MAILBOX_FLAG_CAP_TMR | TCMU_MAILBOX_FLAG_CAP_KEEP_BUF));
	/* Mailbox + ring + max_data_area_mb of data. */
	EXPECT_EQ((1u << 20) + (4u << 20), r->map_size);
	EXPECT_EQ(0, ring_head(r));
	EXPECT_EQ(0, ring_tail(r));
	/* UIO's view of it. */
	snprintf(buf, sizeof(buf), "/sys/class/uio/%s/version", r->uio);
	if (read_file(buf, buf, sizeof(buf)) > 0)
		EXPECT_STREQ("2", buf);
	ASSERT_LT(0, read_file(DEV "/info", buf, sizeof(buf)));
	TH_LOG("info: %s", buf);
	EXPECT_NE(NULL, strstr(buf, "MaxDataAreaMB: 4 "));
	EXPECT_NE(NULL, strstr(buf, "CmdRingSizeMB: 1"));

	dev_export(_metadata, self);
	pthread_mutex_lock(&r->lock);
	EXPECT_LT(0, r->ncmds) TH_LOG("the LUN scan sent nothing to the ring?");
	EXPECT_EQ(r->rd, ring_head(r));
	EXPECT_EQ(ring_head(r), ring_tail(r));
	EXPECT_EQ(0, ring_head(r) % 8);
	pthread_mutex_unlock(&r->lock);
}

/* Commands until one does not fit before the ring end: a PAD fills it, the next entry is at 0. */
TEST_F_TIMEOUT(ring, pad_at_wrap, 240)
{
	struct ring *r = &self->r;
	uint8_t tur[6] = { 0 }, rd10[10];
	unsigned int sent = 0, limit, after = 0;
	uint32_t tur_len = 0, rd_len = 0;
	uint64_t t0;

	dev_start(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	cdb_rw10(rd10, 0x28, 64, 1);
	limit = 2 * r->cmdr_size / 64;
	t0 = now_ms();
	while (sent < limit) {
		uint32_t before = ring_head(r), left = r->cmdr_size - before, h, used;
		unsigned int n0 = r->ncmds;
		int with_data;
		struct job *j;

		/*
		 * TEST UNIT READY makes a small entry, READ(10) of one block (one iovec) a
		 * bigger one. Learn both sizes first, then never pick the one that would end
		 * exactly at the ring end: some entry must not fit, and get a PAD before it.
		 */
		if (!tur_len)
			with_data = 0;
		else if (!rd_len)
			with_data = 1;
		else
			with_data = left == tur_len || left < rd_len;
		if (with_data)
			j = sg_cmd(self, rd10, 10, SG_DXFER_FROM_DEV, 512);
		else
			j = sg_cmd(self, tur, 6, SG_DXFER_NONE, 0);
		sent++;
		if (!job_ok(j)) {
			job_log(_metadata, "command", j);
			ASSERT_TRUE(job_ok(j));
		}
		pthread_mutex_lock(&r->lock);
		h = ring_head(r);
		used = (h + r->cmdr_size - before) % r->cmdr_size;
		/*
		 * Learn a size only from a command that went on the ring alone: the midlayer's
		 * own commands (a slow disk probe, on the debug kernel) may come in between.
		 */
		if (!r->npads && r->ncmds - n0 == 1) {
			if (with_data && !rd_len)
				rd_len = used;
			else if (!with_data && !tur_len)
				tur_len = used;
		}
		pthread_mutex_unlock(&r->lock);
		ASSERT_EQ(0, h % 8);
		ASSERT_LT(h, r->cmdr_size);
		/* The handler completed it: nothing outstanding. */
		ASSERT_EQ(h, ring_tail(r));
		if (r->npads && ++after >= 3)
			break;
		/* Do not free the jobs one by one: reuse the slots. */
		free(j->buf);
		free(j);
		self->njobs--;
	}
	TH_LOG("%s: %u commands in %llu ms; entries: TUR %u, READ(10) %u bytes", module_name(),
	       sent, (unsigned long long)(now_ms() - t0), tur_len, rd_len);
	TH_LOG("%s: PAD at %u len %u, next entry at %u len %u", module_name(), r->pad_off,
	       r->pad_len, r->after_pad_off, r->after_pad_len);
	ASSERT_EQ(1, r->npads) TH_LOG("no PAD after %u commands", sent);
	EXPECT_EQ(r->cmdr_size, r->pad_off + r->pad_len);
	EXPECT_EQ(0, r->pad_len % 8);
	EXPECT_EQ(0, r->after_pad_off);
	/* The PAD exists because the next entry did not fit. */
	EXPECT_LT(r->pad_len, r->after_pad_len);
	/* C writes cmd_id 0 and no flags in a PAD. */
	EXPECT_EQ(0, r->pad_id);
	EXPECT_EQ(0, r->pad_flags);
	/* C: no iovec: 112 (sizeof(struct tcmu_cmd_entry)) + 8 (CDB); one iovec: 112 + 16. */
	EXPECT_EQ(120, tur_len);
	EXPECT_EQ(128, rd_len);
	EXPECT_EQ(ring_head(r), ring_tail(r));
}

/* Two READs outstanding; the second is completed first (into the first's slot). */
TEST_F(ring, out_of_order_completion)
{
	struct ring *r = &self->r;
	struct job *a, *b;
	struct cmd *ca, *cb;
	uint8_t cdb[10], *want;
	unsigned int n0;
	uint64_t lba;
	uint32_t n;
	int held;

	dev_start(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	if (!(READ_ONCE(r->mb->flags) & TCMU_MAILBOX_FLAG_CAP_OOOC))
		SKIP(return, "no CAP_OOOC");
	/*
	 * The first completion must go into the first READ's slot: no command of sd's probe may
	 * come in between (its completion would take that slot). On a slow kernel the probe
	 * pauses longer than dev_start's quiet period.
	 */
	wait_quiet(r, 1000, 10000);
	pthread_mutex_lock(&r->lock);
	n0 = r->ncmds;
	r->hold = 1;
	pthread_mutex_unlock(&r->lock);
	cdb_rw10(cdb, 0x28, 100, 8);
	a = job_new(self, cdb, 10, SG_DXFER_FROM_DEV, 4096);
	job_start(a);
	ASSERT_EQ(1, wait_held(r, 1, 5000));
	cdb_rw10(cdb, 0x28, 200, 8);
	b = job_new(self, cdb, 10, SG_DXFER_FROM_DEV, 4096);
	job_start(b);
	held = wait_held(r, 2, 5000);
	ASSERT_EQ(2, held);

	pthread_mutex_lock(&r->lock);
	ca = r->held[0];
	cb = r->held[1];
	rw_decode(ca->cdb, &lba, &n);
	EXPECT_EQ(100, lba);
	rw_decode(cb->cdb, &lba, &n);
	EXPECT_EQ(200, lba);
	EXPECT_NE(ca->id, cb->id);
	EXPECT_EQ(4096, ca->data_len);
	EXPECT_EQ(4096, cb->data_len);
	if (r->ncmds - n0 == 2) {
		EXPECT_EQ(ca->off, ring_tail(r)) TH_LOG("first entry is not at the tail");
	} else {
		TH_LOG("%u other commands came in between (late probe): %s", r->ncmds - n0 - 2,
		       "the second READ's completion does not go into the first's slot");
	}
	TH_LOG("cmd %u at %u, cmd %u at %u: completing %u first", ca->id, ca->off, cb->id,
	       cb->off, cb->id);
	data_fill_pattern(r, cb, 200, 4096);
	EXPECT_EQ(0, complete_good(r, cb));
	pthread_mutex_unlock(&r->lock);

	EXPECT_TRUE(job_wait(b, 5000))
		TH_LOG("second READ not completed by its out-of-order completion");
	EXPECT_FALSE(job_done(a)) TH_LOG("first READ completed by the second's completion");

	pthread_mutex_lock(&r->lock);
	data_fill_pattern(r, ca, 100, 4096);
	EXPECT_EQ(0, complete_good(r, ca));
	EXPECT_EQ(ring_head(r), ring_tail(r));
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(a, 5000));
	ASSERT_TRUE(job_wait(b, 5000));

	want = malloc(4096);
	if (!job_ok(a))
		job_log(_metadata, "READ lba 100", a);
	if (!job_ok(b))
		job_log(_metadata, "READ lba 200", b);
	ASSERT_TRUE(job_ok(a));
	ASSERT_TRUE(job_ok(b));
	pat_fill(want, 100, 512, 4096);
	EXPECT_EQ(0, memcmp(want, a->buf, 4096)) TH_LOG("first READ got the wrong data");
	pat_fill(want, 200, 512, 4096);
	EXPECT_EQ(0, memcmp(want, b->buf, 4096)) TH_LOG("second READ got the wrong data");
	EXPECT_EQ(0, a->h.resid);
	EXPECT_EQ(0, b->h.resid);
	free(want);
}

/* TCMU_UFLAG_UNKNOWN_OP: the initiator gets CHECK CONDITION. */
TEST_F(ring, unknown_op)
{
	struct ring *r = &self->r;
	uint8_t cdb[10] = { VENDOR_OP, 0, 1, 2, 3, 4, 5, 6, 7, 0 };
	struct job *j;
	struct cmd *c;

	dev_start(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	r->hold = 1;
	j = job_new(self, cdb, 10, SG_DXFER_NONE, 0);
	job_start(j);
	ASSERT_EQ(1, wait_held(r, 1, 5000));
	pthread_mutex_lock(&r->lock);
	c = r->held[0];
	EXPECT_EQ(0, memcmp(c->cdb, cdb, 10)) TH_LOG("CDB not copied verbatim");
	EXPECT_EQ(0, c->iov_cnt);
	EXPECT_EQ(0, c->data_len);
	/* The status the handler writes does not matter: the flag makes it CHECK CONDITION. */
	EXPECT_EQ(0, ring_complete(r, c, SAM_STAT_GOOD, TCMU_UFLAG_UNKNOWN_OP, 0, NULL, 0));
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(j, 5000));
	job_log(_metadata, "vendor opcode", j);
	ASSERT_EQ(0, j->rc);
	EXPECT_EQ(SAM_STAT_CHECK_CONDITION, j->h.status);
	EXPECT_EQ(0, j->h.host_status);
	/*
	 * C: target_complete_cmd(CHECK CONDITION) -> NOT READY, LOGICAL UNIT COMMUNICATION
	 * FAILURE.
	 */
	ASSERT_LE(14, j->h.sb_len_wr);
	EXPECT_EQ(NOT_READY, j->sense[2] & 0xf);
	EXPECT_EQ(0x08, j->sense[12]);
	EXPECT_EQ(0x00, j->sense[13]);
}

/* CHECK CONDITION with a fixed-format sense from the handler reaches the initiator as is. */
TEST_F(ring, check_condition_sense)
{
	struct ring *r = &self->r;
	struct job *j;
	uint8_t cdb[10];

	dev_start(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	r->hold = 1;
	cdb_rw10(cdb, 0x28, 5, 1);
	j = job_new(self, cdb, 10, SG_DXFER_FROM_DEV, 512);
	job_start(j);
	ASSERT_EQ(1, wait_held(r, 1, 5000));
	pthread_mutex_lock(&r->lock);
	EXPECT_EQ(0, complete_sense(r, r->held[0], MEDIUM_ERROR, 0x11, 0x00));
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(j, 5000));
	job_log(_metadata, "READ with MEDIUM ERROR", j);
	ASSERT_EQ(0, j->rc);
	EXPECT_EQ(SAM_STAT_CHECK_CONDITION, j->h.status);
	ASSERT_LE(14, j->h.sb_len_wr);
	EXPECT_EQ(0x70, j->sense[0] & 0x7f);
	EXPECT_EQ(MEDIUM_ERROR, j->sense[2] & 0xf);
	EXPECT_EQ(0x11, j->sense[12]);
	EXPECT_EQ(0x00, j->sense[13]);
}

/* READ of 8 blocks completed with TCMU_UFLAG_READ_LEN and 4 blocks: a residual of 4. */
TEST_F(ring, read_len_residual)
{
	struct ring *r = &self->r;
	struct job *j;
	uint8_t cdb[10], want[2048], *tail;
	int stale = 0;

	dev_start(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	if (!(READ_ONCE(r->mb->flags) & TCMU_MAILBOX_FLAG_CAP_READ_LEN))
		SKIP(return, "no CAP_READ_LEN");
	r->hold = 1;
	cdb_rw10(cdb, 0x28, 40, 8);
	j = job_new(self, cdb, 10, SG_DXFER_FROM_DEV, 4096);
	job_start(j);
	ASSERT_EQ(1, wait_held(r, 1, 5000));
	pthread_mutex_lock(&r->lock);
	{
		struct cmd *c = r->held[0];
		uint8_t junk[2048];

		EXPECT_EQ(4096, c->data_len);
		/* 4 blocks of data, then junk the kernel must not copy. */
		data_fill_pattern(r, c, 40, 2048);
		memset(junk, 0xee, sizeof(junk));
		data_fill(r, c, 2048, junk, sizeof(junk));
		EXPECT_EQ(0, ring_complete(r, c, SAM_STAT_GOOD, TCMU_UFLAG_READ_LEN, 2048,
					   NULL, 0));
	}
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(j, 5000));
	job_log(_metadata, "short READ", j);
	ASSERT_EQ(0, j->rc);
	EXPECT_EQ(SAM_STAT_GOOD, j->h.status);
	EXPECT_EQ(2048, j->h.resid);
	pat_fill(want, 40, 512, 2048);
	EXPECT_EQ(0, memcmp(want, j->buf, 2048)) TH_LOG("first 4 blocks differ");
	tail = j->buf + 2048;
	for (int i = 0; i < 2048; i++)
		stale += tail[i] == 0xee;
	EXPECT_EQ(0, stale) TH_LOG("%d bytes past read_len were copied to the initiator", stale);
}

/*
 * data_pages_per_blk=1, a WRITE over several data blocks while another command holds a
 * block in the middle: several iovecs, inside the data area, covering the data exactly.
 */
TEST_F(ring, multi_iovec)
{
	struct ring *r = &self->r;
	uint32_t data_off, blk = 4096;
	struct job *a, *b, *c;
	struct cmd *cb, *cc;
	uint8_t cdb[10], *got;
	uint64_t sum = 0;

	dev_start(_metadata, self, 512, DEF_SIZE, DEF_PARAMS ",data_pages_per_blk=1");
	data_off = r->cmdr_off + r->cmdr_size;
	r->hold = 1;
	/* A and B take one data block each; A completes, leaving a hole before B's block. */
	cdb_rw10(cdb, 0x2a, 10, 8);
	a = job_new(self, cdb, 10, SG_DXFER_TO_DEV, blk);
	job_start(a);
	ASSERT_EQ(1, wait_held(r, 1, 5000));
	cdb_rw10(cdb, 0x2a, 20, 8);
	b = job_new(self, cdb, 10, SG_DXFER_TO_DEV, blk);
	job_start(b);
	ASSERT_EQ(2, wait_held(r, 2, 5000));
	pthread_mutex_lock(&r->lock);
	cb = r->held[1];
	TH_LOG("A: %u iov at %#llx; B: %u iov at %#llx", r->held[0]->iov_cnt,
	       (unsigned long long)(uintptr_t)r->held[0]->iov[0].iov_base, cb->iov_cnt,
	       (unsigned long long)(uintptr_t)cb->iov[0].iov_base);
	EXPECT_EQ(0, complete_good(r, r->held[0]));
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(a, 5000));
	EXPECT_TRUE(job_ok(a));

	/* C: 16 KiB = 4 data blocks. */
	cdb_rw10(cdb, 0x2a, 30, 32);
	c = job_new(self, cdb, 10, SG_DXFER_TO_DEV, 4 * blk);
	pat_fill(c->buf, 0x5a5a5a, 512, 4 * blk);
	job_start(c);
	ASSERT_EQ(2, wait_held(r, 2, 5000));
	pthread_mutex_lock(&r->lock);
	cc = r->held[1];
	TH_LOG("%s: C: iov_cnt %u bidi %u dif %u", module_name(), cc->iov_cnt, cc->iov_bidi_cnt,
	       cc->iov_dif_cnt);
	for (uint32_t i = 0; i < cc->iov_cnt; i++) {
		uint64_t base = (uint64_t)(uintptr_t)cc->iov[i].iov_base, len = cc->iov[i].iov_len;
		uint64_t bb = (uint64_t)(uintptr_t)cb->iov[0].iov_base;

		TH_LOG("  iov[%u] = {%#llx (block %lld), %llu}", i, (unsigned long long)base,
		       (long long)(base - data_off) / blk, (unsigned long long)len);
		EXPECT_LE(data_off, base);
		EXPECT_GE(r->map_size, base + len);
		EXPECT_LT(0, len);
		/* Never B's block. */
		EXPECT_TRUE(base + len <= bb || base >= bb + blk)
			TH_LOG("iov[%u] overlaps B's buffer", i);
		sum += len;
	}
	EXPECT_EQ(0, cc->iov_bidi_cnt);
	EXPECT_EQ(4 * blk, sum);
	EXPECT_EQ(4 * blk, cc->data_len);
	/*
	 * C: lowest free blocks first, adjacent blocks merged into one iovec: the hole A left
	 * (block 0), then the 3 blocks after B's block 1.
	 */
	EXPECT_EQ(2, cc->iov_cnt);
	if (cc->iov_cnt == 2) {
		EXPECT_EQ(data_off, (uintptr_t)cc->iov[0].iov_base);
		EXPECT_EQ(blk, cc->iov[0].iov_len);
		EXPECT_EQ(data_off + 2 * blk, (uintptr_t)cc->iov[1].iov_base);
		EXPECT_EQ(3 * blk, cc->iov[1].iov_len);
	}
	got = malloc(4 * blk);
	memset(got, 0, 4 * blk);
	data_read(r, cc, 0, got, 4 * blk);
	EXPECT_EQ(0, memcmp(got, c->buf, 4 * blk))
		TH_LOG("data in the ring differs from the WRITE's");
	free(got);
	EXPECT_EQ(0, complete_good(r, cc));
	EXPECT_EQ(0, complete_good(r, cb));
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(b, 5000));
	ASSERT_TRUE(job_wait(c, 5000));
	EXPECT_TRUE(job_ok(b));
	EXPECT_TRUE(job_ok(c));
}

/*
 * More WRITEs than the (1 MiB) data area holds, nothing completed: cmd_head stops, the
 * kernel keeps the rest; completing everything drains them all.
 */
TEST_F_TIMEOUT(ring, ring_full_then_drained, 90)
{
	struct ring *r = &self->r;
	enum { NJOBS = 24, BLOCKS = 128, LEN = BLOCKS * 512 };
	struct job *jobs[NJOBS];
	uint32_t head, len_op[MAX_HELD], id[MAX_HELD], off[MAX_HELD];
	int held, prev = -1, completed = 0, bad_data = 0;
	uint64_t end, stable;

	dev_start(_metadata, self, 512, DEF_SIZE, "cmd_ring_size_mb=1,max_data_area_mb=1");
	r->hold = 1;
	for (int i = 0; i < NJOBS; i++) {
		uint8_t cdb[10];

		cdb_rw10(cdb, 0x2a, i * BLOCKS, BLOCKS);
		jobs[i] = job_new(self, cdb, 10, SG_DXFER_TO_DEV, LEN);
		pat_fill(jobs[i]->buf, i * BLOCKS, 512, LEN);
		job_start(jobs[i]);
	}
	/* Wait until what reached the ring stays the same for a second. */
	for (end = now_ms() + 20000, stable = now_ms(); now_ms() < end; sleep_ms(50)) {
		held = wait_held(r, 0, 0);
		if (held != prev) {
			prev = held;
			stable = now_ms();
		} else if (now_ms() - stable >= 1000) {
			break;
		}
	}
	pthread_mutex_lock(&r->lock);
	held = r->nheld;
	head = ring_head(r);
	for (int i = 0; i < held; i++) {
		len_op[i] = r->held[i]->len_op;
		id[i] = r->held[i]->id;
		off[i] = r->held[i]->off;
	}
	pthread_mutex_unlock(&r->lock);
	TH_LOG("%s: %d of %d WRITEs of %u KiB in the ring, cmd_head %u", module_name(), held,
	       NJOBS, LEN >> 10, head);
	EXPECT_LT(0, held);
	EXPECT_GT(NJOBS, held) TH_LOG("more data in flight than the data area holds?");
	/* C: 1 MiB / 64 KiB. */
	EXPECT_EQ((1 << 20) / LEN, held);
	for (int i = 0; i < NJOBS; i++) {
		EXPECT_FALSE(job_done(jobs[i]))
			TH_LOG("WRITE %d completed without the handler", i);
	}

	/* Nothing moves while nothing is completed; no entry was overwritten. */
	sleep_ms(500);
	pthread_mutex_lock(&r->lock);
	EXPECT_EQ(head, ring_head(r));
	EXPECT_EQ(held, r->nheld);
	for (int i = 0; i < held; i++) {
		struct tcmu_cmd_entry_hdr *h = (void *)(r->cmdr + off[i]);

		EXPECT_EQ(len_op[i], h->len_op) TH_LOG("entry %d at %u rewritten", i, off[i]);
		EXPECT_EQ(id[i], h->cmd_id) TH_LOG("entry %d at %u rewritten", i, off[i]);
	}
	/* No two in-flight commands share data pages. */
	for (int i = 0; i < held; i++) {
		for (int k = i + 1; k < held; k++) {
			for (uint32_t x = 0; x < r->held[i]->iov_cnt; x++) {
				for (uint32_t y = 0; y < r->held[k]->iov_cnt; y++) {
					uint64_t b1 = (uintptr_t)r->held[i]->iov[x].iov_base;
					uint64_t l1 = r->held[i]->iov[x].iov_len;
					uint64_t b2 = (uintptr_t)r->held[k]->iov[y].iov_base;
					uint64_t l2 = r->held[k]->iov[y].iov_len;

					EXPECT_TRUE(b1 + l1 <= b2 || b2 + l2 <= b1)
						TH_LOG("cmds %u and %u share data", r->held[i]->id,
						       r->held[k]->id);
				}
			}
		}
	}
	pthread_mutex_unlock(&r->lock);

	/*
	 * Drain: check each WRITE's data and complete it, one at a time (each completion
	 * frees exactly one WRITE's worth of data area), until all came through or every
	 * initiator is done (a command the kernel failed instead of queueing never comes).
	 */
	for (end = now_ms() + 30000; completed < NJOBS && now_ms() < end;) {
		uint8_t *buf, *want;
		int all_done = 1;

		if (!wait_held(r, 1, 200)) {
			for (int i = 0; i < NJOBS; i++)
				all_done &= job_done(jobs[i]);
			if (all_done)
				break;
			continue;
		}
		buf = malloc(LEN);
		want = malloc(LEN);
		pthread_mutex_lock(&r->lock);
		while (r->nheld) {
			struct cmd *c = r->held[0];
			uint64_t lba;
			uint32_t n;

			rw_decode(c->cdb, &lba, &n);
			EXPECT_EQ(LEN, c->data_len);
			data_read(r, c, 0, buf, LEN);
			pat_fill(want, lba, 512, LEN);
			bad_data += !!memcmp(buf, want, LEN);
			EXPECT_EQ(0, complete_good(r, c));
			completed++;
		}
		pthread_mutex_unlock(&r->lock);
		free(buf);
		free(want);
	}
	EXPECT_EQ(NJOBS, completed) TH_LOG("%d WRITEs never reached the ring", NJOBS - completed);
	EXPECT_EQ(0, bad_data) TH_LOG("%d WRITEs with the wrong data in the ring", bad_data);
	for (int i = 0; i < NJOBS; i++) {
		ASSERT_TRUE(job_wait(jobs[i], 5000)) TH_LOG("WRITE %d still pending", i);
		if (!job_ok(jobs[i]))
			job_log(_metadata, "WRITE", jobs[i]);
		EXPECT_TRUE(job_ok(jobs[i]));
	}
	EXPECT_EQ(ring_head(r), ring_tail(r));
}

/*
 * dev_size and hw_block_size=4096 read back from configfs; the handler answers READ
 * CAPACITY from them and sd shows them; READ CAPACITY(16) from the initiator reaches the
 * ring.
 */
TEST_F(ring, dev_size_block_size_visible)
{
	struct ring *r = &self->r;
	const uint64_t size = 8ull << 20;
	uint8_t cdb[16] = { 0x9e, 0x10 }, want[8192];
	char path[256], buf[512];
	unsigned int rc16;
	struct job *j;

	dev_create(_metadata, self, 4096, size, DEF_PARAMS);
	ASSERT_LT(0, read_file(DEV "/attrib/hw_block_size", buf, sizeof(buf)));
	EXPECT_STREQ("4096", buf);
	ASSERT_LT(0, read_file(DEV "/info", buf, sizeof(buf)));
	TH_LOG("info: %s", buf);
	EXPECT_NE(NULL, strstr(buf, "Size: 8388608 ")) TH_LOG("info: %s", buf);
	dev_export(_metadata, self);

	snprintf(path, sizeof(path), "/sys/block/%s/queue/logical_block_size", self->sd);
	ASSERT_LT(0, read_file(path, buf, sizeof(buf)));
	EXPECT_STREQ("4096", buf);
	snprintf(path, sizeof(path), "/sys/block/%s/size", self->sd);
	ASSERT_LT(0, read_file(path, buf, sizeof(buf)));
	EXPECT_EQ(size / 512, strtoull(buf, NULL, 10));

	rc16 = r->nrc16;
	put_be32(cdb + 10, 32);
	j = sg_cmd(self, cdb, 16, SG_DXFER_FROM_DEV, 32);
	if (!job_ok(j))
		job_log(_metadata, "READ CAPACITY(16)", j);
	ASSERT_TRUE(job_ok(j));
	EXPECT_EQ(rc16 + 1, r->nrc16) TH_LOG("READ CAPACITY(16) did not reach the handler");
	EXPECT_EQ(size / 4096 - 1, get_be64(j->buf));
	EXPECT_EQ(4096, get_be32(j->buf + 8));

	/* A READ(10) of 2 blocks carries 8 KiB. */
	r->hold = 1;
	{
		uint8_t rd[10];
		struct job *k;

		cdb_rw10(rd, 0x28, 3, 2);
		k = job_new(self, rd, 10, SG_DXFER_FROM_DEV, 8192);
		job_start(k);
		ASSERT_EQ(1, wait_held(r, 1, 5000));
		pthread_mutex_lock(&r->lock);
		EXPECT_EQ(8192, r->held[0]->data_len);
		data_fill_pattern(r, r->held[0], 3, 8192);
		EXPECT_EQ(0, complete_good(r, r->held[0]));
		pthread_mutex_unlock(&r->lock);
		ASSERT_TRUE(job_wait(k, 5000));
		EXPECT_TRUE(job_ok(k));
		pat_fill(want, 3, 4096, 8192);
		EXPECT_EQ(0, memcmp(want, k->buf, 8192));
	}
}

TEST_HARNESS_MAIN
