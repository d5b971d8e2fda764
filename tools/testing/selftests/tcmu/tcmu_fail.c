// SPDX-License-Identifier: GPL-2.0
/*
 * Failure contingencies of the TCMU backstore ("user" backend), run against whichever
 * module provides it: target_core_user (C) or tcmu_rs (Rust). Like tcmu_ring, the test is
 * its own userspace handler (tcmu_util.h) and sends SCSI commands with SG_IO through a
 * tcm_loop LUN; here the handler is missing, hangs, dies, breaks the ring protocol, or the
 * device runs out of room, is blocked, or is misconfigured.
 *
 * The C module's behaviour is the expectation. Every check names the module it ran on
 * ("[tcmu_rs] ..."), so a failure says which module fails which check. For a handler that
 * breaks the protocol (misbehave_*) the modules may legitimately react differently: the
 * checks there are what both must do (no crash, the command ends, reset_ring recovers);
 * where a module reacts unlike the C module, a "DIFFERENCE" line says how.
 *
 * The initiator side goes through the SCSI midlayer, which retries BUSY and TASK SET FULL
 * until the command's SG_IO timeout has passed: the tests that expect those statuses give
 * the command a short SG_IO timeout and see the first failure in the LUN's ioerr_cnt.
 *
 * Several protocol violations make the C module loop for ever in tcmu_handle_completions()
 * (a soft lockup; mb[].c_hangs): those cases are skipped on it unless TCMU_FAIL_UNSAFE=1.
 */
#define TDEV_FIXTURE fail
#include "tcmu_util.h"

#include <sys/prctl.h>
#include <setjmp.h>
#include <signal.h>

#define PROBE_TIMEOUT_MS	5000

/* Prefixes a check's message with the module it ran on. */
#define MSG(fmt, ...)	TH_LOG("[%s] " fmt, module_name(), ##__VA_ARGS__)

static int is_c_module(void)
{
	return !access("/sys/module/target_core_user", F_OK);
}

/* Escapes newlines for the log. */
static const char *vis(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; *s && o + 3 < len; s++) {
		if (*s == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = *s;
		}
	}
	buf[o] = 0;
	return buf;
}

/* A counter of the LUN's SCSI device (iodone_cnt, ioerr_cnt...), or -1. */
static long sdev_counter(tdev_t *self, const char *name)
{
	char path[256], buf[64];

	snprintf(path, sizeof(path), "/sys/class/scsi_generic/%s/device/%s", self->sgname, name);
	if (read_file(path, buf, sizeof(buf)) <= 0)
		return -1;
	return strtol(buf, NULL, 0);
}

static void ring_kick(struct ring *r)
{
	uint32_t one = 1;

	if (write(r->fd, &one, sizeof(one)) != sizeof(one))
		ring_err(r, "write to %s: %s", r->uio, strerror(errno));
}

static void set_tail(struct ring *r, uint32_t t)
{
	__atomic_store_n(&r->mb->cmd_tail, t, __ATOMIC_RELEASE);
}

/* Sense key, ASC, ASCQ of a job's sense data (fixed or descriptor format). */
static void sense_kaq(struct job *j, int *k, int *a, int *q)
{
	const uint8_t *s = j->sense;

	*k = *a = *q = -1;
	if (j->h.sb_len_wr < 4)
		return;
	if ((s[0] & 0x7f) == 0x72 || (s[0] & 0x7f) == 0x73) {
		*k = s[1] & 0xf;
		*a = s[2];
		*q = s[3];
	} else if (j->h.sb_len_wr >= 14) {
		*k = s[2] & 0xf;
		*a = s[12];
		*q = s[13];
	}
}

/*
 * CHECK CONDITION, NOT READY, LOGICAL UNIT COMMUNICATION FAILURE: how the target core
 * reports target_complete_cmd(CHECK CONDITION) without sense, and TCM_LOGICAL_UNIT_
 * COMMUNICATION_FAILURE.
 */
static int is_lu_comm_failure(struct job *j)
{
	int k, a, q;

	sense_kaq(j, &k, &a, &q);
	return j->rc == 0 && j->h.status == SAM_STAT_CHECK_CONDITION && k == NOT_READY &&
	       a == 0x08 && q == 0x00;
}

static const char *job_str(struct job *j, char *buf, size_t len)
{
	int k, a, q;

	sense_kaq(j, &k, &a, &q);
	snprintf(buf, len,
		 "rc %d%s%s status %#x host %#x driver %#x resid %d sense %d/%#x/%#x (%u bytes) after %llu ms",
		 j->rc, j->rc ? " " : "", j->rc ? strerror(j->err) : "", j->h.status,
		 j->h.host_status, j->h.driver_status, j->h.resid, k, a, q, j->h.sb_len_wr,
		 (unsigned long long)(j->t_done - j->t_start));
	return buf;
}

static const char *status_name(int s)
{
	switch (s) {
	case SAM_STAT_GOOD: return "GOOD";
	case SAM_STAT_CHECK_CONDITION: return "CHECK CONDITION";
	case SAM_STAT_BUSY: return "BUSY";
	case SAM_STAT_TASK_SET_FULL: return "TASK SET FULL";
	}
	return "?";
}

static struct job *job_timed(tdev_t *self, const uint8_t *cdb, int cdb_len, int dir,
			     uint32_t len, unsigned int timeout_ms)
{
	struct job *j = job_new(self, cdb, cdb_len, dir, len);

	j->timeout_ms = timeout_ms;
	return j;
}

/*
 * Starts J and waits until the LUN's ioerr_cnt grows (the first failed attempt of J, which
 * the midlayer may retry) or J ends, at most MS ms. Returns the ms from the start to that
 * failure, or -1.
 */
static long first_failure(tdev_t *self, struct job *j, unsigned int ms)
{
	long from = sdev_counter(self, "ioerr_cnt"), now;
	uint64_t t0 = now_ms(), end = t0 + ms;

	job_start(j);
	while (now_ms() < end) {
		now = sdev_counter(self, "ioerr_cnt");
		if (now > from)
			return now_ms() - t0;
		if (job_done(j))
			return j->rc == 0 && j->h.status != SAM_STAT_GOOD ?
			       (long)(now_ms() - t0) : -1;
		sleep_ms(2);
	}
	return -1;
}

/*
 * dev_start(512, DEF_SIZE, PARAMS) with cmd_time_out TMO seconds, written before the LUN is
 * exported (the C module refuses it while exports exist).
 */
static void dev_start_tmo(struct __test_metadata *_metadata, tdev_t *self, const char *params,
			  const char *tmo)
{
	dev_configure(_metadata, self, 512, DEF_SIZE, params);
	ASSERT_EQ(0, write_file(DEV "/attrib/cmd_time_out", tmo));
	ring_attach(_metadata, self);
	ring_start(_metadata, self);
	dev_export(_metadata, self);
}

/* Kernel log records since kmsg_open(), for the test log. */
static int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

/* Whether a kernel log record since kmsg_open() contains NEEDLE (reads them all). */
static int kmsg_has(int fd, const char *needle)
{
	char rec[2048];
	int found = 0;

	while (fd >= 0) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);

		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			break;
		rec[n] = 0;
		if (strstr(rec, needle))
			found = 1;
	}
	return found;
}

static void kmsg_show(struct __test_metadata *_metadata, int fd, const char *what)
{
	char rec[2048];
	int lines = 0;

	if (fd < 0)
		return;
	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);
		char *msg, *nl;

		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			break;
		rec[n] = 0;
		msg = strchr(rec, ';');
		if (!msg)
			continue;
		msg++;
		nl = strchr(msg, '\n');
		if (nl)
			*nl = 0;
		if (++lines <= 16)
			TH_LOG("%s: %s: kernel: %s", module_name(), what, msg);
	}
	if (lines > 16)
		TH_LOG("%s: %s: %d more kernel messages", module_name(), what, lines - 16);
	if (!lines)
		TH_LOG("%s: %s: no kernel message", module_name(), what);
	close(fd);
}

/* A READ of 8 blocks from LBA, served by the handler thread (no hold): the pattern. */
static void read_ok(struct __test_metadata *_metadata, tdev_t *self, uint32_t lba, const char *what)
{
	uint8_t cdb[10], want[4096];
	char d[256];
	struct job *j;

	ASSERT_EQ(0, self->r.hold);
	cdb_rw10(cdb, 0x28, lba, 8);
	j = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 10000);
	job_run(j);
	EXPECT_TRUE(job_ok(j)) MSG("%s: READ: %s", what, job_str(j, d, sizeof(d)));
	pat_fill(want, lba, 512, sizeof(want));
	EXPECT_EQ(0, memcmp(want, j->buf, sizeof(want)))
		MSG("%s: READ returned the wrong data", what);
}

/*
 * A WRITE then a READ of the same 8 blocks, both held and completed by the test: the READ
 * returns what the WRITE put in the ring.
 */
static void roundtrip(struct __test_metadata *_metadata, tdev_t *self, uint32_t lba,
		      const char *what)
{
	struct ring *r = &self->r;
	uint8_t cdb[10], save[4096];
	struct job *w, *rd;
	int hold = r->hold;
	char d[256];

	ASSERT_EQ(0, wait_held(r, 0, 0)) MSG("%s: commands still held", what);
	r->hold = 1;
	cdb_rw10(cdb, 0x2a, lba, 8);
	w = job_timed(self, cdb, 10, SG_DXFER_TO_DEV, 4096, 10000);
	pat_fill(w->buf, lba ^ 0x5a5a, 512, 4096);
	job_start(w);
	ASSERT_EQ(1, wait_held(r, 1, 5000)) MSG("%s: the WRITE did not reach the handler", what);
	pthread_mutex_lock(&r->lock);
	EXPECT_EQ(4096, r->held[0]->data_len);
	memset(save, 0, sizeof(save));
	data_read(r, r->held[0], 0, save, sizeof(save));
	EXPECT_EQ(0, complete_good(r, r->held[0]));
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(w, 5000)) MSG("%s: WRITE not completed", what);
	EXPECT_TRUE(job_ok(w)) MSG("%s: WRITE: %s", what, job_str(w, d, sizeof(d)));
	EXPECT_EQ(0, memcmp(save, w->buf, sizeof(save)))
		MSG("%s: the ring has other data than the WRITE's", what);

	cdb_rw10(cdb, 0x28, lba, 8);
	rd = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 10000);
	job_start(rd);
	ASSERT_EQ(1, wait_held(r, 1, 5000)) MSG("%s: the READ did not reach the handler", what);
	pthread_mutex_lock(&r->lock);
	data_fill(r, r->held[0], 0, save, sizeof(save));
	EXPECT_EQ(0, complete_good(r, r->held[0]));
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(rd, 5000)) MSG("%s: READ not completed", what);
	EXPECT_TRUE(job_ok(rd)) MSG("%s: READ: %s", what, job_str(rd, d, sizeof(d)));
	EXPECT_EQ(0, memcmp(rd->buf, w->buf, 4096))
		MSG("%s: the READ did not return the WRITE's data", what);
	r->hold = hold;
}

/* ----------------------------------------------------------------------------------- */
/* Tests                                                                                */

/*
 * Nobody has the UIO device open: a command waits on the ring until cmd_time_out, then
 * fails with CHECK CONDITION. (The LUN scan needs answers before sd and sg appear: a
 * handler serves it, then closes the device.)
 */
TEST_F(fail, never_attaches)
{
	uint8_t cdb[10];
	char d[256];
	struct job *j;
	uint64_t ms;

	dev_start_tmo(_metadata, self, DEF_PARAMS, "2");
	ring_detach(self);

	cdb_rw10(cdb, 0x28, 100, 8);
	j = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 30000);
	job_start(j);
	ASSERT_TRUE(job_wait(j, 15000))
		MSG("READ without a handler still pending after 15 s (cmd_time_out 2)");
	ms = j->t_done - j->t_start;
	TH_LOG("%s: READ without a handler: %s", module_name(), job_str(j, d, sizeof(d)));
	EXPECT_EQ(0, j->rc) MSG("SG_IO failed: %s", strerror(j->err));
	EXPECT_EQ(SAM_STAT_CHECK_CONDITION, j->h.status) MSG("READ without a handler: %s", d);
	/* C: target_complete_cmd(CHECK CONDITION) -> NOT READY, LU COMMUNICATION FAILURE. */
	EXPECT_TRUE(is_lu_comm_failure(j)) MSG("READ without a handler: %s", d);
	EXPECT_LE(1500, ms)
		MSG("failed before cmd_time_out (2 s): %llu ms", (unsigned long long)ms);
	EXPECT_GE(10000, ms)
		MSG("failed long after cmd_time_out (2 s): %llu ms", (unsigned long long)ms);
}

/*
 * The handler takes commands but does not complete them (a stopped process): they fail
 * after cmd_time_out while their entries stay on the ring. Completing such a stale entry
 * late is ignored, and the ring keeps working around it.
 */
TEST_F_TIMEOUT(fail, handler_hangs, 60)
{
	struct ring *r = &self->r;
	struct job *a, *b, *e;
	struct cmd *ca;
	uint8_t cdb[10], want[4096];
	uint32_t a_off;
	char d[256];
	uint64_t ms;

	dev_start_tmo(_metadata, self, DEF_PARAMS, "2");
	r->hold = 1;

	cdb_rw10(cdb, 0x28, 100, 8);
	a = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 30000);
	job_start(a);
	ASSERT_EQ(1, wait_held(r, 1, 5000));
	pthread_mutex_lock(&r->lock);
	ca = r->held[0];
	a_off = ca->off;
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(a, 15000)) MSG("held READ still pending after 15 s (cmd_time_out 2)");
	ms = a->t_done - a->t_start;
	TH_LOG("%s: READ the handler never completes: %s", module_name(), job_str(a, d, sizeof(d)));
	EXPECT_TRUE(is_lu_comm_failure(a)) MSG("timed-out READ: %s", d);
	EXPECT_LE(1500, ms)
		MSG("failed before cmd_time_out (2 s): %llu ms", (unsigned long long)ms);
	EXPECT_GE(10000, ms)
		MSG("failed long after cmd_time_out (2 s): %llu ms", (unsigned long long)ms);
	/* Its entry stays: only the handler moves cmd_tail. */
	EXPECT_EQ(a_off, ring_tail(r)) MSG("cmd_tail moved without the handler");

	/* A new command works meanwhile; completed first, into the stale entry's slot. */
	cdb_rw10(cdb, 0x28, 200, 8);
	b = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 10000);
	job_start(b);
	ASSERT_EQ(2, wait_held(r, 2, 5000)) MSG("a READ after the timeout did not reach the ring");
	cdb_rw10(cdb, 0x28, 300, 8);
	e = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 10000);
	job_start(e);
	ASSERT_EQ(3, wait_held(r, 3, 5000));
	pthread_mutex_lock(&r->lock);
	data_fill_pattern(r, r->held[1], 200, 4096);
	EXPECT_EQ(0, complete_good(r, r->held[1]));
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(b, 5000));
	EXPECT_TRUE(job_ok(b)) MSG("READ next to a timed-out entry: %s", job_str(b, d, sizeof(d)));
	pat_fill(want, 200, 512, sizeof(want));
	EXPECT_EQ(0, memcmp(want, b->buf, sizeof(want)))
		MSG("READ next to a timed-out entry: wrong data");

	/* The late completion of the timed-out READ: ignored, and it completes nothing else. */
	pthread_mutex_lock(&r->lock);
	EXPECT_EQ(ca, r->held[0]);
	data_fill_pattern(r, ca, 100, 4096);
	EXPECT_EQ(0, complete_good(r, ca));
	pthread_mutex_unlock(&r->lock);
	sleep_ms(300);
	EXPECT_FALSE(job_done(e))
		MSG("the late completion of a timed-out command completed another one");
	EXPECT_TRUE(is_lu_comm_failure(a));

	pthread_mutex_lock(&r->lock);
	ASSERT_EQ(1, r->nheld);
	data_fill_pattern(r, r->held[0], 300, 4096);
	EXPECT_EQ(0, complete_good(r, r->held[0]));
	EXPECT_EQ(ring_head(r), ring_tail(r));
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(e, 5000));
	EXPECT_TRUE(job_ok(e)) MSG("READ after the late completion: %s", job_str(e, d, sizeof(d)));
	pat_fill(want, 300, 512, sizeof(want));
	EXPECT_EQ(0, memcmp(want, e->buf, sizeof(want)))
		MSG("READ after the late completion: wrong data");

	/* Nothing broke. */
	r->hold = 0;
	read_ok(_metadata, self, 7, "after the late completion");
	roundtrip(_metadata, self, 400, "after the late completion");
}

/* What a forked handler tells the test (READ_ONCE()/WRITE_ONCE() or atomics only). */
struct shared {
	int attached, err, nheld, nerr;
	unsigned int ncmds;
	uint64_t last_ms;
};

/* A handler process: serves the probe, holds the tests' commands, never completes them. */
static void handler_child(tdev_t *self, struct shared *sh)
{
	struct ring *r = &self->r;
	int ret;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	r->hold = 1;
	ret = ring_map(r);
	if (ret) {
		WRITE_ONCE(sh->err, -ret);
		_exit(1);
	}
	__atomic_store_n(&sh->attached, 1, __ATOMIC_RELEASE);
	for (;;) {
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		uint32_t count;

		if (poll(&p, 1, 20) > 0 && (p.revents & POLLIN)) {
			if (read(r->fd, &count, sizeof(count)) != sizeof(count))
				sleep_ms(5);
		}
		ring_process(r);
		WRITE_ONCE(sh->ncmds, r->ncmds);
		WRITE_ONCE(sh->nheld, r->nheld);
		WRITE_ONCE(sh->nerr, r->nerr);
		WRITE_ONCE(sh->last_ms, r->last_ms);
	}
}

/*
 * The handler (a process) dies with a command on the ring. A new handler can open the UIO
 * device once the old one is gone (never two at a time), resets the ring, and I/O works
 * again; the command the dead handler held completes with BUSY at the reset, and the
 * midlayer's retry goes to the new handler.
 */
TEST_F_TIMEOUT(fail, handler_dies_then_reset_ring, 60)
{
	struct ring *r = &self->r;
	struct shared *sh;
	char path[64], d[256];
	uint32_t head, tail;
	uint8_t cdb[10], want[4096];
	struct job *a;
	uint64_t end;
	int fd2, ret;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, sh);
	memset(sh, 0, sizeof(*sh));
	dev_configure(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	/* Bounds what a failing run leaves pending; the test needs far less. */
	ASSERT_EQ(0, write_file(DEV "/attrib/cmd_time_out", "10"));
	snprintf(path, sizeof(path), "/dev/%s", r->uio);

	/* No thread runs yet: fork is safe. */
	self->child = fork();
	ASSERT_LE(0, self->child);
	if (self->child == 0)
		handler_child(self, sh);
	for (end = now_ms() + 5000;
	     !READ_ONCE(sh->attached) && !READ_ONCE(sh->err) && now_ms() < end;)
		sleep_ms(5);
	ASSERT_TRUE(READ_ONCE(sh->attached))
		MSG("forked handler did not map the ring: %s", strerror(READ_ONCE(sh->err)));

	/* One handler at a time. */
	fd2 = open(path, O_RDWR);
	EXPECT_EQ(-1, fd2) MSG("a second open of %s while the handler has it open succeeded", path);
	if (fd2 < 0) {
		EXPECT_EQ(EBUSY, errno)
			MSG("second open of %s: %s", path, strerror(errno));
	} else {
		close(fd2);
	}

	dev_export(_metadata, self);
	for (end = now_ms() + 10000; now_ms() < end && now_ms() - READ_ONCE(sh->last_ms) < 300;)
		sleep_ms(10);
	TH_LOG("%s: forked handler %d served %u probe commands", module_name(), self->child,
	       READ_ONCE(sh->ncmds));

	cdb_rw10(cdb, 0x28, 100, 8);
	a = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 60000);
	job_start(a);
	for (end = now_ms() + 5000; READ_ONCE(sh->nheld) < 1 && now_ms() < end;)
		sleep_ms(2);
	ASSERT_EQ(1, READ_ONCE(sh->nheld)) MSG("the forked handler did not get the READ");
	EXPECT_EQ(0, READ_ONCE(sh->nerr));

	/* The handler dies. */
	ASSERT_EQ(0, kill(self->child, SIGKILL));
	ASSERT_EQ(self->child, waitpid(self->child, NULL, 0));
	self->child = 0;
	self->needs_reset = 1;
	sleep_ms(300);
	EXPECT_FALSE(job_done(a))
		MSG("the dead handler's READ ended by itself: %s", job_str(a, d, sizeof(d)));

	/* A new handler: the device is free again once the dead one's file is released. */
	for (end = now_ms() + 3000;;) {
		ret = ring_map(r);
		if (ret != -EBUSY || now_ms() >= end)
			break;
		sleep_ms(20);
	}
	if (r->map)
		self->mapped = 1;
	ASSERT_EQ(0, ret) MSG("new handler: open/mmap %s: %s", path, strerror(-ret));
	head = ring_head(r);
	tail = ring_tail(r);
	TH_LOG("%s: new handler: mailbox cmd_head %u cmd_tail %u", module_name(), head, tail);
	EXPECT_NE(head, tail) MSG("the dead handler's READ is not on the ring");
	fd2 = open(path, O_RDWR);
	EXPECT_EQ(-1, fd2)
		MSG("a second open of %s while the new handler has it open succeeded", path);
	if (fd2 < 0) {
		EXPECT_EQ(EBUSY, errno)
			MSG("second open of %s: %s", path, strerror(errno));
	} else {
		close(fd2);
	}

	ASSERT_EQ(0, write_file(DEV "/action/reset_ring", "1"));
	head = ring_head(r);
	tail = ring_tail(r);
	self->needs_reset = 0;
	TH_LOG("%s: after reset_ring: cmd_head %u cmd_tail %u", module_name(), head, tail);
	EXPECT_EQ(0, tail) MSG("cmd_tail %u after reset_ring", tail);
	if (head) {
		/* The READ completed with BUSY, and the midlayer's retry came in already. */
		struct tcmu_cmd_entry *ent = (void *)r->cmdr;

		TH_LOG("%s: the retried READ reached the ring before the mailbox was read",
		       module_name());
		EXPECT_EQ(TCMU_OP_CMD, tcmu_hdr_get_op(ent->hdr.len_op))
			MSG("cmd_head %u after reset_ring", head);
		EXPECT_EQ(head, tcmu_hdr_get_len(ent->hdr.len_op))
			MSG("cmd_head %u after reset_ring", head);
	} else {
		EXPECT_EQ(0, head);
	}

	/* Serve from offset 0: the READ comes back (BUSY at the reset, retried) and succeeds. */
	r->rd = 0;
	r->hold = 0;
	ring_start(_metadata, self);
	ASSERT_TRUE(job_wait(a, 10000))
		MSG("the dead handler's READ still pending after reset_ring");
	TH_LOG("%s: the dead handler's READ: %s", module_name(), job_str(a, d, sizeof(d)));
	EXPECT_TRUE(job_ok(a))
		MSG("the dead handler's READ after reset_ring (1: BUSY, retried): %s", d);
	pat_fill(want, 100, 512, sizeof(want));
	EXPECT_EQ(0, memcmp(want, a->buf, sizeof(want))) MSG("the retried READ: wrong data");

	roundtrip(_metadata, self, 500, "after reset_ring");
	munmap((void *)sh, sizeof(*sh));
}

#define QF_PARAMS	"cmd_ring_size_mb=1,max_data_area_mb=1"
#define QF_BLOCKS	128			/* 64 KiB: hw_max_sectors (128) at 512 bytes */
#define QF_LEN		(QF_BLOCKS * 512)
#define QF_FILL		((1 << 20) / QF_LEN)	/* WRITEs that fill the 1 MiB data area */

/*
 * Fills the data area: QF_FILL WRITEs, completed with KEEP_BUF (GOOD for the initiator;
 * the handler keeps the data blocks until free_kept_buf, and no timer runs). Their ids go
 * to IDS.
 */
static void fill_data_area(struct __test_metadata *_metadata, tdev_t *self, uint16_t *ids,
			   int n)
{
	struct ring *r = &self->r;
	struct job *w[QF_FILL];
	char d[256];

	ASSERT_TRUE(READ_ONCE(r->mb->flags) & TCMU_MAILBOX_FLAG_CAP_KEEP_BUF)
		MSG("no CAP_KEEP_BUF");
	r->hold = 1;
	for (int i = 0; i < n; i++) {
		uint8_t cdb[10];

		cdb_rw10(cdb, 0x2a, 1000 + i * QF_BLOCKS, QF_BLOCKS);
		w[i] = job_timed(self, cdb, 10, SG_DXFER_TO_DEV, QF_LEN, 10000);
		job_start(w[i]);
		ASSERT_EQ(i + 1, wait_held(r, i + 1, 5000))
			MSG("WRITE %d of %d did not reach the ring", i, n);
	}
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < n; i++) {
		ids[i] = r->held[0]->id;
		ring_complete(r, r->held[0], SAM_STAT_GOOD, TCMU_UFLAG_KEEP_BUF, 0, NULL, 0);
	}
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < n; i++) {
		ASSERT_TRUE(job_wait(w[i], 5000));
		EXPECT_TRUE(job_ok(w[i]))
			MSG("WRITE completed with KEEP_BUF: %s", job_str(w[i], d, sizeof(d)));
	}
}

static void free_kept(struct __test_metadata *_metadata, uint16_t id)
{
	char buf[16];
	int ret;

	snprintf(buf, sizeof(buf), "%u", id);
	ret = write_file(DEV "/action/free_kept_buf", buf);
	EXPECT_EQ(0, ret) MSG("free_kept_buf %u: %s", id, strerror(-ret));
}

/*
 * qfull_time_out=0: a command that finds no room in the data area fails at once with
 * TASK SET FULL (TCM_OUT_OF_RESOURCES). The midlayer retries it until its SG_IO timeout
 * (2 s); the first failure shows in ioerr_cnt at once.
 */
TEST_F_TIMEOUT(fail, qfull_time_out_zero, 60)
{
	struct ring *r = &self->r;
	uint16_t ids[QF_FILL];
	uint8_t cdb[10];
	unsigned int ncmds;
	long first, err0;
	char buf[64], d[256];
	struct job *v;
	int ret;

	dev_start(_metadata, self, 512, DEF_SIZE, QF_PARAMS);
	ASSERT_EQ(0, write_file(DEV "/attrib/qfull_time_out", "0"));
	ASSERT_LT(0, read_raw(DEV "/attrib/qfull_time_out", buf, sizeof(buf)));
	EXPECT_STREQ("0\n", buf);
	fill_data_area(_metadata, self, ids, QF_FILL);

	ncmds = r->ncmds;
	err0 = sdev_counter(self, "ioerr_cnt");
	ASSERT_LE(0, err0) MSG("no ioerr_cnt for %s", self->sgname);
	cdb_rw10(cdb, 0x2a, 5000, QF_BLOCKS);
	v = job_timed(self, cdb, 10, SG_DXFER_TO_DEV, QF_LEN, 2000);
	first = first_failure(self, v, 10000);
	ASSERT_TRUE(job_wait(v, 10000)) MSG("WRITE that does not fit still pending after 10 s");
	TH_LOG("%s: qfull_time_out=0: first failure after %ld ms, %ld failed attempts",
	       module_name(), first, sdev_counter(self, "ioerr_cnt") - err0);
	TH_LOG("%s: qfull_time_out=0: initiator: %s (%s)", module_name(),
	       job_str(v, d, sizeof(d)), status_name(v->h.status));
	EXPECT_LE(0, first) MSG("the WRITE that does not fit never failed");
	EXPECT_GE(1000, first) MSG("qfull_time_out=0: first failure only after %ld ms", first);
	EXPECT_EQ(0, v->rc);
	/* C: TCM_OUT_OF_RESOURCES -> TASK SET FULL. */
	EXPECT_EQ(SAM_STAT_TASK_SET_FULL, v->h.status) MSG("qfull_time_out=0: %s", d);
	/* Retried until the SG_IO timeout. */
	EXPECT_LE(1500, v->t_done - v->t_start);
	EXPECT_GE(8000, v->t_done - v->t_start);
	EXPECT_EQ(ncmds, r->ncmds) MSG("the WRITE that does not fit reached the ring");

	/* Room again: the kept buffers are freed (each once). */
	for (int i = 0; i < QF_FILL; i++)
		free_kept(_metadata, ids[i]);
	snprintf(buf, sizeof(buf), "%u", ids[0]);
	ret = write_file(DEV "/action/free_kept_buf", buf);
	EXPECT_EQ(-EINVAL, ret) MSG("free_kept_buf of a freed id: %s", strerror(-ret));
	r->hold = 0;
	cdb_rw10(cdb, 0x2a, 5000, QF_BLOCKS);
	v = job_timed(self, cdb, 10, SG_DXFER_TO_DEV, QF_LEN, 10000);
	job_run(v);
	EXPECT_TRUE(job_ok(v)) MSG("WRITE after free_kept_buf: %s", job_str(v, d, sizeof(d)));
	read_ok(_metadata, self, 9, "after free_kept_buf");
}

/*
 * A WRITE that finds no room waits qfull_time_out (2), then cmd_time_out (3) with
 * qfull_time_out=-1, before it fails with TASK SET FULL; the midlayer retries it, and the
 * retry goes on the ring as soon as there is room.
 */
TEST_F_TIMEOUT(fail, qfull_time_out_wait, 90)
{
	struct ring *r = &self->r;
	static const struct {
		const char *qfull;
		long min_ms, max_ms;
	} phase[] = {
		/* C rounds deadlines up to a whole second, then its work runs. */
		{ "2", 1500, 5000 },
		{ "-1", 2500, 6000 },	/* cmd_time_out */
	};
	uint16_t ids[QF_FILL];
	uint8_t cdb[10];
	char buf[64], d[256];

	dev_start_tmo(_metadata, self, QF_PARAMS, "3");
	fill_data_area(_metadata, self, ids, QF_FILL);

	for (unsigned int p = 0; p < ARRAY_SIZE(phase); p++) {
		unsigned int ncmds = r->ncmds;
		struct job *v;
		long first, err0;

		ASSERT_EQ(0, write_file(DEV "/attrib/qfull_time_out", phase[p].qfull));
		ASSERT_LT(0, read_raw(DEV "/attrib/qfull_time_out", buf, sizeof(buf)));
		EXPECT_EQ(0, strncmp(buf, phase[p].qfull, strlen(phase[p].qfull)));
		err0 = sdev_counter(self, "ioerr_cnt");
		cdb_rw10(cdb, 0x2a, 6000 + p * QF_BLOCKS, QF_BLOCKS);
		v = job_timed(self, cdb, 10, SG_DXFER_TO_DEV, QF_LEN, 30000);
		pat_fill(v->buf, 6000 + p * QF_BLOCKS, 512, QF_LEN);
		first = first_failure(self, v, 12000);
		TH_LOG("%s: qfull_time_out=%s: first TASK SET FULL after %ld ms", module_name(),
		       phase[p].qfull, first);
		TH_LOG("%s: qfull_time_out=%s: %ld failed attempts; the initiator %s",
		       module_name(), phase[p].qfull, sdev_counter(self, "ioerr_cnt") - err0,
		       job_done(v) ? job_str(v, d, sizeof(d)) : "still waits (midlayer retry)");
		EXPECT_LE(phase[p].min_ms, first)
			MSG("qfull_time_out=%s: first failure after %ld ms", phase[p].qfull,
			    first);
		EXPECT_GE(phase[p].max_ms, first)
			MSG("qfull_time_out=%s: first failure after %ld ms", phase[p].qfull,
			    first);
		EXPECT_FALSE(job_done(v)) MSG("qfull_time_out=%s: the midlayer did not retry: %s",
					      phase[p].qfull, job_str(v, d, sizeof(d)));
		EXPECT_EQ(ncmds, r->ncmds) MSG("the WRITE that does not fit reached the ring");

		/* Room for one WRITE: the retry goes on the ring. */
		free_kept(_metadata, ids[0]);
		ASSERT_EQ(1, wait_held(r, 1, 5000))
			MSG("qfull_time_out=%s: the retried WRITE did not reach the ring %s",
			    phase[p].qfull, "after free_kept_buf");
		pthread_mutex_lock(&r->lock);
		{
			uint8_t *got = malloc(QF_LEN);

			data_read(r, r->held[0], 0, got, QF_LEN);
			EXPECT_EQ(0, memcmp(got, v->buf, QF_LEN))
				MSG("the retried WRITE has the wrong data");
			free(got);
		}
		EXPECT_EQ(0, complete_good(r, r->held[0]));
		pthread_mutex_unlock(&r->lock);
		ASSERT_TRUE(job_wait(v, 5000));
		EXPECT_TRUE(job_ok(v)) MSG("qfull_time_out=%s: retried WRITE: %s", phase[p].qfull,
					   job_str(v, d, sizeof(d)));
		/* Full again. */
		fill_data_area(_metadata, self, ids, 1);
	}
	for (int i = 0; i < QF_FILL; i++)
		free_kept(_metadata, ids[i]);
	r->hold = 0;
	read_ok(_metadata, self, 11, "after free_kept_buf");
}

/* Waits until the handler has seen N TMR entries, at most MS ms; returns how many it saw. */
static unsigned int wait_tmrs(struct ring *r, unsigned int n, unsigned int ms)
{
	uint64_t end = now_ms() + ms;
	unsigned int got;

	for (;;) {
		pthread_mutex_lock(&r->lock);
		got = r->ntmrs;
		pthread_mutex_unlock(&r->lock);
		if (got >= n || now_ms() >= end)
			return got;
		sleep_ms(5);
	}
}

/*
 * tmr_notification: the midlayer aborts a READ the handler holds (its SG_IO timeout
 * expires: tcm_loop sends ABORT TASK) and later resets the LUN (SG_SCSI_RESET: LUN RESET).
 * With tmr_notification=0 the handler sees no TMR entry; with 1 it sees a TCMU_OP_TMR entry
 * with the TMR's type and the cmd_id of the command it holds. The TMR waits for that
 * command: the handler completes it, and the abort and the reset finish.
 */
TEST_F_TIMEOUT(fail, tmr_notification, 90)
{
	struct ring *r = &self->r;
	struct reset_job rj = { 0 };
	uint8_t cdb[10];
	uint16_t id;
	char d[256];
	struct job *a;

	dev_start(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	r->hold = 1;

	/* tmr_notification=0: ABORT TASK, no entry. */
	ASSERT_EQ(0, write_file(DEV "/attrib/tmr_notification", "0"));
	cdb_rw10(cdb, 0x28, 100, 8);
	a = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 1000);
	job_start(a);
	ASSERT_EQ(1, wait_held(r, 1, 5000));
	EXPECT_EQ(0, wait_tmrs(r, 1, 3000)) MSG("a TMR entry with tmr_notification=0");
	EXPECT_FALSE(job_done(a)) MSG("the aborted READ ended before the handler completed it: %s",
				      job_str(a, d, sizeof(d)));
	pthread_mutex_lock(&r->lock);
	EXPECT_EQ(0, complete_good(r, r->held[0]));
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(a, 10000))
		MSG("the aborted READ still pending 10 s after its completion");
	TH_LOG("%s: READ aborted by its SG_IO timeout (tmr_notification=0): %s", module_name(),
	       job_str(a, d, sizeof(d)));
	EXPECT_FALSE(job_ok(a)) MSG("the aborted READ succeeded: %s", d);

	/* tmr_notification=1: ABORT TASK with the held command's id. */
	ASSERT_EQ(0, write_file(DEV "/attrib/tmr_notification", "1"));
	cdb_rw10(cdb, 0x28, 200, 8);
	a = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 1000);
	job_start(a);
	ASSERT_EQ(1, wait_held(r, 1, 5000));
	ASSERT_EQ(1, wait_tmrs(r, 1, 10000))
		MSG("no TMR entry 10 s after the READ's SG_IO timeout");
	pthread_mutex_lock(&r->lock);
	id = r->held[0]->id;
	TH_LOG("%s: ABORT TASK: TMR entry type %u, %u ids (first %u), the held READ is %u",
	       module_name(), r->tmr_type, r->tmr_cnt, r->tmr_cnt ? r->tmr_ids[0] : 0, id);
	EXPECT_EQ(TCMU_TMR_ABORT_TASK, r->tmr_type);
	EXPECT_EQ(1, r->tmr_cnt);
	EXPECT_EQ(id, r->tmr_ids[0]) MSG("ABORT TASK names cmd_id %u, the held READ is %u",
					 r->tmr_ids[0], id);
	EXPECT_EQ(0, complete_good(r, r->held[0]));
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(a, 10000))
		MSG("the aborted READ still pending 10 s after its completion");
	EXPECT_FALSE(job_ok(a)) MSG("the aborted READ succeeded: %s", job_str(a, d, sizeof(d)));

	/* LUN RESET with a held command. */
	cdb_rw10(cdb, 0x28, 300, 8);
	a = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 3000);
	job_start(a);
	ASSERT_EQ(1, wait_held(r, 1, 5000));
	snprintf(rj.dev, sizeof(rj.dev), "%s", self->sg);
	ASSERT_EQ(0, pthread_create(&rj.th, NULL, reset_thread, &rj));
	EXPECT_EQ(2, wait_tmrs(r, 2, 10000)) MSG("no TMR entry 10 s after SG_SCSI_RESET");
	pthread_mutex_lock(&r->lock);
	id = r->held[0]->id;
	TH_LOG("%s: LUN RESET: TMR entry type %u, %u ids (first %u), the held READ is %u",
	       module_name(), r->tmr_type, r->tmr_cnt, r->tmr_cnt ? r->tmr_ids[0] : 0, id);
	if (r->ntmrs >= 2) {
		EXPECT_EQ(TCMU_TMR_LUN_RESET, r->tmr_type);
		EXPECT_EQ(1, r->tmr_cnt);
		EXPECT_EQ(id, r->tmr_ids[0]);
	}
	EXPECT_EQ(0, complete_good(r, r->held[0]));
	r->hold = 0;
	pthread_mutex_unlock(&r->lock);
	pthread_join(rj.th, NULL);
	TH_LOG("%s: SG_SCSI_RESET: rc %d (%s)", module_name(), rj.rc, strerror(rj.err));
	EXPECT_EQ(0, rj.rc) MSG("SG_SCSI_RESET_DEVICE: %s", strerror(rj.err));
	ASSERT_TRUE(job_wait(a, 20000)) MSG("the READ reset with the LUN still pending after 20 s");
	TH_LOG("%s: READ reset with the LUN: %s", module_name(), job_str(a, d, sizeof(d)));

	/*
	 * The next command reports the reset: UNIT ATTENTION, BUS DEVICE RESET FUNCTION
	 * OCCURRED.
	 */
	cdb_rw10(cdb, 0x28, 9, 8);
	a = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 10000);
	job_run(a);
	if (!job_ok(a)) {
		int k, q, c;

		sense_kaq(a, &k, &q, &c);
		EXPECT_TRUE(a->h.status == SAM_STAT_CHECK_CONDITION && k == 6 && q == 0x29)
			MSG("first READ after the LUN reset: %s", job_str(a, d, sizeof(d)));
	}
	read_ok(_metadata, self, 9, "after the LUN reset");
}

/*
 * action/block_dev: refused before the device is enabled; once blocked, new commands fail
 * with BUSY (TCM_LUN_BUSY) without reaching the ring, commands on the ring still complete;
 * unblocked, I/O works again; only 0 and 1 are accepted.
 */
TEST_F_TIMEOUT(fail, block_dev, 60)
{
	struct ring *r = &self->r;
	static const struct {
		const char *val;
		int err;
	} bad[] = {
		{ "2", EINVAL }, { "x", EINVAL }, { "-1", EINVAL }, { "256", ERANGE },
	};
	char buf[64], d[256];
	uint8_t cdb[10];
	unsigned int ncmds;
	struct job *a, *b;
	long first, err0;
	int ret;

	dev_make(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	ASSERT_LT(0, read_raw(DEV "/action/block_dev", buf, sizeof(buf)));
	EXPECT_STREQ("unblocked\n", buf) MSG("block_dev before enable");
	ret = write_file(DEV "/action/block_dev", "1");
	EXPECT_EQ(-EINVAL, ret) MSG("block_dev=1 before enable: %s", strerror(-ret));
	ret = write_file(DEV "/action/block_dev", "0");
	EXPECT_EQ(-EINVAL, ret) MSG("block_dev=0 before enable: %s", strerror(-ret));
	ret = write_file(DEV "/action/reset_ring", "1");
	EXPECT_EQ(-EINVAL, ret) MSG("reset_ring=1 before enable: %s", strerror(-ret));
	ret = write_file(DEV "/action/free_kept_buf", "1");
	EXPECT_EQ(-EINVAL, ret) MSG("free_kept_buf=1 before enable: %s", strerror(-ret));

	dev_enable(_metadata, self);
	ring_attach(_metadata, self);
	ring_start(_metadata, self);
	dev_export(_metadata, self);
	ASSERT_LT(0, read_raw(DEV "/action/block_dev", buf, sizeof(buf)));
	EXPECT_STREQ("unblocked\n", buf);

	/* A READ on the ring when the device gets blocked still completes. */
	r->hold = 1;
	cdb_rw10(cdb, 0x28, 100, 8);
	a = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 10000);
	job_start(a);
	ASSERT_EQ(1, wait_held(r, 1, 5000));
	ASSERT_EQ(0, write_file(DEV "/action/block_dev", "1"));
	ASSERT_LT(0, read_raw(DEV "/action/block_dev", buf, sizeof(buf)));
	EXPECT_STREQ("blocked\n", buf);
	pthread_mutex_lock(&r->lock);
	data_fill_pattern(r, r->held[0], 100, 4096);
	EXPECT_EQ(0, complete_good(r, r->held[0]));
	pthread_mutex_unlock(&r->lock);
	ASSERT_TRUE(job_wait(a, 5000)) MSG("READ on the ring not completed on a blocked device");
	EXPECT_TRUE(job_ok(a)) MSG("READ on the ring, completed on a blocked device: %s",
				   job_str(a, d, sizeof(d)));

	/* New commands: BUSY at once (retried by the midlayer until the 2 s SG_IO timeout). */
	ncmds = r->ncmds;
	err0 = sdev_counter(self, "ioerr_cnt");
	cdb_rw10(cdb, 0x28, 200, 8);
	b = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 2000);
	first = first_failure(self, b, 10000);
	ASSERT_TRUE(job_wait(b, 10000)) MSG("READ on a blocked device still pending after 10 s");
	TH_LOG("%s: blocked device: first failure after %ld ms, %ld failed attempts",
	       module_name(), first, sdev_counter(self, "ioerr_cnt") - err0);
	TH_LOG("%s: blocked device: initiator: %s (%s)", module_name(),
	       job_str(b, d, sizeof(d)), status_name(b->h.status));
	EXPECT_LE(0, first) MSG("READ on a blocked device never failed");
	EXPECT_GE(1000, first) MSG("READ on a blocked device: first failure after %ld ms", first);
	EXPECT_EQ(0, b->rc);
	/* C: TCM_LUN_BUSY -> BUSY, no sense. */
	EXPECT_EQ(SAM_STAT_BUSY, b->h.status) MSG("READ on a blocked device: %s", d);
	EXPECT_EQ(0, b->h.sb_len_wr) MSG("READ on a blocked device: %s", d);
	EXPECT_LE(1500, b->t_done - b->t_start);
	EXPECT_GE(8000, b->t_done - b->t_start);
	EXPECT_EQ(ncmds, r->ncmds) MSG("a command reached the ring of a blocked device");

	for (unsigned int i = 0; i < ARRAY_SIZE(bad); i++) {
		ret = write_file(DEV "/action/block_dev", bad[i].val);
		EXPECT_EQ(-bad[i].err, ret)
			MSG("block_dev=%s: %s (want %s)", bad[i].val,
			    ret ? strerror(-ret) : "accepted", strerror(bad[i].err));
	}
	ASSERT_LT(0, read_raw(DEV "/action/block_dev", buf, sizeof(buf)));
	EXPECT_STREQ("blocked\n", buf);
	EXPECT_EQ(0, write_file(DEV "/action/block_dev", "1"))
		MSG("block_dev=1 on a blocked device");

	ASSERT_EQ(0, write_file(DEV "/action/block_dev", "0\n"));
	ASSERT_LT(0, read_raw(DEV "/action/block_dev", buf, sizeof(buf)));
	EXPECT_STREQ("unblocked\n", buf);
	r->hold = 0;
	read_ok(_metadata, self, 13, "unblocked");
}

/* ----------------------------------------------------------------------------------- */
/* A handler that breaks the ring protocol                                              */

enum misbehaviour {
	MB_TAIL_MISALIGNED,
	MB_TAIL_BEYOND_RING,
	MB_TAIL_INSIDE_ENTRY,
	MB_ENTRY_OP_CHANGED,
	MB_ENTRY_LEN_CHANGED,
	MB_UNKNOWN_CMD_ID,
	MB_COMPLETED_TWICE,
	MB_READ_LEN_TOO_BIG,
};

static const struct {
	const char *what;
	/* The C module loops for ever in tcmu_handle_completions(). */
	int c_hangs;
	/*
	 * 1: the READ ends without GOOD (it was never completed properly); 0: it ends GOOD,
	 * with the data the handler put in the ring.
	 */
	int must_fail;
	/*
	 * The C module's reaction: the command's status (-1: not known), and whether a new
	 * command is accepted before the reset (-1: not known).
	 */
	int c_status, c_accepts;
} mb[] = {
	[MB_TAIL_MISALIGNED] = {
		"cmd_tail 4 bytes past the end of the entry (misaligned)", 1, 1, -1, -1
	},
	[MB_TAIL_BEYOND_RING] = { "cmd_tail beyond cmdr_size", 1, 1, -1, -1 },
	[MB_TAIL_INSIDE_ENTRY] = { "cmd_tail 8 bytes into the entry", 1, 1, -1, -1 },
	[MB_ENTRY_OP_CHANGED] = {
		"the entry's op changed from CMD to PAD, then cmd_tail past it", 0, 1,
		SAM_STAT_CHECK_CONDITION, 1
	},
	[MB_ENTRY_LEN_CHANGED] = {
		"the entry's length doubled, then cmd_tail past its real end", 1, 1, -1, -1
	},
	[MB_UNKNOWN_CMD_ID] = { "a completion with an unknown cmd_id", 0, 1,
				SAM_STAT_CHECK_CONDITION, 0 },
	[MB_COMPLETED_TWICE] = {
		"the entry completed, cmd_tail rewound and advanced over it again", 1, 0,
		SAM_STAT_GOOD, -1
	},
	[MB_READ_LEN_TOO_BIG] = {
		"READ completed with TCMU_UFLAG_READ_LEN and read_len 1 MiB > 4 KiB", 0, 0,
		SAM_STAT_GOOD, 1
	},
};

/* Writes a GOOD response into C's own entry (lock held). */
static void rsp_good(struct ring *r, struct cmd *c)
{
	struct tcmu_cmd_entry *e = (void *)(r->cmdr + c->off);

	e->hdr.uflags = 0;
	e->rsp.scsi_status = SAM_STAT_GOOD;
	e->rsp.read_len = 0;
	memset(e->rsp.sense_buffer, 0, TCMU_SENSE_BUFFERSIZE);
}

/* The READ a misbehaviour is played on: 8 blocks from MB_LBA. */
#define MB_LBA		100

/*
 * Completes the held READ C the way KIND breaks the protocol (lock held): its data and a
 * GOOD response, then the entry or cmd_tail made wrong (otherwise cmd_tail goes past the
 * entry, as for a proper completion), and the kick.
 */
static void mb_complete_badly(struct ring *r, struct cmd *c, enum misbehaviour kind)
{
	struct tcmu_cmd_entry *e = (void *)(r->cmdr + c->off);
	uint32_t tail = (c->off + c->len) % r->cmdr_size;

	data_fill_pattern(r, c, MB_LBA, 4096);
	rsp_good(r, c);
	switch (kind) {
	case MB_TAIL_MISALIGNED:
		tail = c->off + c->len + 4;
		break;
	case MB_TAIL_BEYOND_RING:
		tail = r->cmdr_size + 64;
		break;
	case MB_TAIL_INSIDE_ENTRY:
		tail = c->off + 8;
		break;
	case MB_ENTRY_OP_CHANGED:
		e->hdr.len_op = (e->hdr.len_op & ~TCMU_OP_MASK) | TCMU_OP_PAD;
		break;
	case MB_ENTRY_LEN_CHANGED:
		e->hdr.len_op = (e->hdr.len_op & TCMU_OP_MASK) | (2 * c->len);
		break;
	case MB_UNKNOWN_CMD_ID:
		e->hdr.cmd_id = c->id ^ 0x8000;
		break;
	case MB_COMPLETED_TWICE:	/* properly: misbehave() completes it again */
		break;
	case MB_READ_LEN_TOO_BIG:
		e->hdr.uflags = TCMU_UFLAG_READ_LEN;
		e->rsp.read_len = 1 << 20;
		break;
	}
	set_tail(r, tail);
	ring_kick(r);
}

/*
 * A READ of 8 blocks is completed in a way that breaks the protocol (KIND). The kernel must
 * survive it (the guest runner fails on any splat), the READ must end (fail, or time out:
 * cmd_time_out is 1 s), and after reset_ring the device must work again.
 */
static void misbehave(struct __test_metadata *_metadata, tdev_t *self, enum misbehaviour kind)
{
	struct ring *r = &self->r;
	const char *unsafe = getenv("TCMU_FAIL_UNSAFE");
	const char *what = mb[kind].what;
	uint8_t cdb[10], want[4096], tur[6] = { 0 };
	uint32_t off, len, head, tail;
	struct job *v, *probe;
	char d[256], pd[256];
	int c = is_c_module(), kfd, accepted, ret;
	struct cmd *vc;

	if (c && mb[kind].c_hangs && !(unsafe && *unsafe == '1'))
		SKIP(return, "%s",
		     "target_core_user loops for ever in tcmu_handle_completions() (soft lockup): it walks from cmdr_last_cleaned to cmd_tail and reads the zeroed ring past cmd_head as PAD entries of length 0 (TCMU_FAIL_UNSAFE=1 runs it anyway)");

	dev_start_tmo(_metadata, self, DEF_PARAMS, "1");
	kfd = kmsg_open();
	r->hold = 1;
	cdb_rw10(cdb, 0x28, MB_LBA, 8);
	v = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 30000);
	job_start(v);
	ASSERT_EQ(1, wait_held(r, 1, 5000));

	self->needs_reset = 1;
	pthread_mutex_lock(&r->lock);
	vc = r->held[0];
	off = vc->off;
	len = vc->len;
	EXPECT_EQ(off, ring_tail(r));
	EXPECT_EQ((off + len) % r->cmdr_size, ring_head(r));
	mb_complete_badly(r, vc, kind);
	held_drop(r, vc);
	r->hold = 0;
	pthread_mutex_unlock(&r->lock);

	ASSERT_TRUE(job_wait(v, 15000))
		MSG("%s: the READ still pending after 15 s (cmd_time_out 1)", what);
	if (kind == MB_COMPLETED_TWICE) {
		/* Completed once, properly; now the handler completes it again. */
		pthread_mutex_lock(&r->lock);
		set_tail(r, off);
		ring_kick(r);
		pthread_mutex_unlock(&r->lock);
		sleep_ms(50);
		pthread_mutex_lock(&r->lock);
		set_tail(r, (off + len) % r->cmdr_size);
		ring_kick(r);
		pthread_mutex_unlock(&r->lock);
		sleep_ms(50);
	}
	TH_LOG("%s: %s: the READ: %s (%s)", module_name(), what, job_str(v, d, sizeof(d)),
	       status_name(v->h.status));
	EXPECT_GE(10000, v->t_done - v->t_start)
		MSG("%s: the READ took %llu ms", what,
		    (unsigned long long)(v->t_done - v->t_start));
	if (mb[kind].must_fail) {
		EXPECT_FALSE(job_ok(v)) MSG("%s: the READ succeeded: %s", what, d);
	} else {
		EXPECT_TRUE(job_ok(v)) MSG("%s: the READ: %s", what, d);
		EXPECT_EQ(0, v->h.resid) MSG("%s: the READ: %s", what, d);
		pat_fill(want, MB_LBA, 512, sizeof(want));
		EXPECT_EQ(0, memcmp(want, v->buf, sizeof(want)))
			MSG("%s: the READ returned the wrong data", what);
	}

	/* Does the ring take new commands before the reset? (TEST UNIT READY, served.) */
	probe = job_timed(self, tur, 6, SG_DXFER_NONE, 0, PROBE_TIMEOUT_MS);
	job_run(probe);
	accepted = job_ok(probe);
	TH_LOG("%s: %s: before reset_ring, TEST UNIT READY: %s (%s): new commands %s",
	       module_name(), what, job_str(probe, pd, sizeof(pd)), status_name(probe->h.status),
	       accepted ? "accepted" : "refused");
	EXPECT_GE(PROBE_TIMEOUT_MS + 3000, probe->t_done - probe->t_start);
	if (!accepted)
		EXPECT_TRUE(is_lu_comm_failure(probe)) MSG("%s: TEST UNIT READY: %s", what, pd);

	/* The C module's reaction: expected on it, reported elsewhere. */
	if (c) {
		if (mb[kind].c_status >= 0)
			EXPECT_EQ(mb[kind].c_status, v->h.status) MSG("%s: the READ: %s", what, d);
		if (mb[kind].c_status == SAM_STAT_CHECK_CONDITION)
			EXPECT_TRUE(is_lu_comm_failure(v)) MSG("%s: the READ: %s", what, d);
		if (mb[kind].c_accepts >= 0)
			EXPECT_EQ(mb[kind].c_accepts, accepted)
				MSG("%s: TEST UNIT READY: %s", what, pd);
	} else {
		if (mb[kind].c_status >= 0 && v->h.status != mb[kind].c_status)
			TH_LOG("DIFFERENCE: %s: %s: the READ ends with %s; target_core_user: %s",
			       module_name(), what, status_name(v->h.status),
			       status_name(mb[kind].c_status));
		if (mb[kind].c_accepts >= 0 && accepted != mb[kind].c_accepts)
			TH_LOG("DIFFERENCE: %s: %s: new commands %s before reset_ring; %s",
			       module_name(), what, accepted ? "accepted" : "refused",
			       mb[kind].c_accepts ? "target_core_user: accepted" :
						    "target_core_user: refused");
	}
	kmsg_show(_metadata, kfd, what);

	/* reset_ring, and the device works again. */
	pthread_mutex_lock(&r->lock);
	ret = write_file(DEV "/action/reset_ring", "1");
	head = ring_head(r);
	tail = ring_tail(r);
	if (!ret) {
		r->rd = 0;
		while (r->nheld)
			held_drop(r, r->held[0]);
	}
	pthread_mutex_unlock(&r->lock);
	ASSERT_EQ(0, ret) MSG("%s: reset_ring: %s", what, strerror(-ret));
	self->needs_reset = 0;
	EXPECT_EQ(0, head) MSG("%s: cmd_head %u after reset_ring", what, head);
	EXPECT_EQ(0, tail) MSG("%s: cmd_tail %u after reset_ring", what, tail);
	read_ok(_metadata, self, 7, what);
	roundtrip(_metadata, self, 600, what);
}

TEST_F(fail, misbehave_tail_misaligned)
{
	misbehave(_metadata, self, MB_TAIL_MISALIGNED);
}

TEST_F(fail, misbehave_tail_beyond_ring)
{
	misbehave(_metadata, self, MB_TAIL_BEYOND_RING);
}

TEST_F(fail, misbehave_tail_inside_entry)
{
	misbehave(_metadata, self, MB_TAIL_INSIDE_ENTRY);
}

TEST_F(fail, misbehave_entry_op_changed)
{
	misbehave(_metadata, self, MB_ENTRY_OP_CHANGED);
}

TEST_F(fail, misbehave_entry_len_changed)
{
	misbehave(_metadata, self, MB_ENTRY_LEN_CHANGED);
}

TEST_F(fail, misbehave_unknown_cmd_id)
{
	misbehave(_metadata, self, MB_UNKNOWN_CMD_ID);
}

TEST_F(fail, misbehave_completed_twice)
{
	misbehave(_metadata, self, MB_COMPLETED_TWICE);
}

TEST_F(fail, misbehave_read_len_too_big)
{
	misbehave(_metadata, self, MB_READ_LEN_TOO_BIG);
}

/*
 * The handler breaks the ring (a completion with an unknown cmd_id) while a WRITE waits for
 * data space (the data area is full of kept buffers; qfull_time_out 5). tcmu_rs fails the
 * waiting WRITE at once, with LOGICAL UNIT COMMUNICATION FAILURE, as it refuses new commands
 * on a broken ring; target_core_user leaves it waiting until qfull_time_out (a deliberate
 * difference, checked on both). After reset_ring the device works again.
 */
TEST_F_TIMEOUT(fail, broken_ring_fails_waiting, 60)
{
	struct ring *r = &self->r;
	uint8_t cdb[10], vop[10] = { VENDOR_OP };
	uint16_t ids[QF_FILL];
	unsigned int ncmds;
	struct job *t, *w;
	char d[256];
	long first, err0;
	int c = is_c_module(), ret;

	dev_start_tmo(_metadata, self, QF_PARAMS, "30");
	ASSERT_EQ(0, write_file(DEV "/attrib/qfull_time_out", "5"));
	fill_data_area(_metadata, self, ids, QF_FILL);
	/* A command without data (no data blocks) on the ring, held. */
	t = job_timed(self, vop, 10, SG_DXFER_NONE, 0, 30000);
	job_start(t);
	ASSERT_EQ(1, wait_held(r, 1, 5000)) MSG("the vendor command did not reach the ring");
	ncmds = r->ncmds;
	/* A WRITE that waits for data space; then the handler breaks the ring. */
	cdb_rw10(cdb, 0x2a, 5000, QF_BLOCKS);
	w = job_timed(self, cdb, 10, SG_DXFER_TO_DEV, QF_LEN, 30000);
	job_start(w);
	sleep_ms(300);
	EXPECT_FALSE(job_done(w)) MSG("the WRITE did not wait: %s", job_str(w, d, sizeof(d)));
	self->needs_reset = 1;
	err0 = sdev_counter(self, "ioerr_cnt");
	pthread_mutex_lock(&r->lock);
	mb_complete_badly(r, r->held[0], MB_UNKNOWN_CMD_ID);
	held_drop(r, r->held[0]);
	r->hold = 0;
	pthread_mutex_unlock(&r->lock);
	/* Its first failure: it ends, or the midlayer counts an error and retries it. */
	first = -1;
	for (uint64_t t0 = now_ms(); now_ms() - t0 < 12000; sleep_ms(2)) {
		if (job_done(w) || sdev_counter(self, "ioerr_cnt") > err0) {
			first = now_ms() - t0;
			break;
		}
	}
	TH_LOG("%s: the waiting WRITE %ld ms after the ring broke: %s (%s)", module_name(), first,
	       job_done(w) ? job_str(w, d, sizeof(d)) : "an error, retried",
	       status_name(w->h.status));
	ASSERT_LE(0, first) MSG("the waiting WRITE has not failed 12 s after the ring broke");
	EXPECT_EQ(ncmds, r->ncmds) MSG("the waiting WRITE reached the broken ring");
	if (c) {
		EXPECT_LE(3500, first)
			MSG("target_core_user failed the waiting WRITE after %ld ms", first);
	} else {
		ASSERT_TRUE(job_wait(w, 1000)) MSG("the waiting WRITE was retried");
		job_str(w, d, sizeof(d));
		EXPECT_FALSE(job_ok(w)) MSG("the waiting WRITE succeeded on a broken ring");
		EXPECT_GE(2000, first)
			MSG("the waiting WRITE failed only %ld ms after the ring broke", first);
		EXPECT_TRUE(is_lu_comm_failure(w)) MSG("the waiting WRITE: %s", d);
	}
	/* The vendor command on the broken ring ends at the reset. */
	ret = ring_reset(self);
	ASSERT_EQ(0, ret) MSG("reset_ring: %s", strerror(-ret));
	self->needs_reset = 0;
	ASSERT_TRUE(job_wait(t, 5000)) MSG("the vendor command still pending after reset_ring");
	read_ok(_metadata, self, 7, "after the broken ring's reset");
}

/* ----------------------------------------------------------------------------------- */
/* Attributes                                                                           */

/* Reads attribute NAME of the device: its exact text must be WANT. */
#define ATTR_IS(name, want) do {						\
	const char *_name = (name), *_want = (want);				\
	char _p[256], _b[512], _v1[600], _v2[600];				\
	int _n;									\
										\
	snprintf(_p, sizeof(_p), DEV "/attrib/%s", _name);			\
	_n = read_raw(_p, _b, sizeof(_b));					\
	EXPECT_LE(0, _n) MSG("read attrib/%s: %s", _name, strerror(-_n));	\
	if (_n >= 0)								\
		EXPECT_STREQ(_want, _b)						\
			MSG("attrib/%s reads \"%s\", target_core_user \"%s\"", _name,	\
			    vis(_b, _v1, sizeof(_v1)), vis(_want, _v2, sizeof(_v2)));	\
} while (0)

/* Writes VAL to attribute NAME: the result must be -ERR (0: accepted). */
#define ATTR_WRITE(name, val, err) do {						\
	const char *_name = (name), *_val = (val);				\
	int _err = (err), _r;							\
	char _p[256];								\
										\
	snprintf(_p, sizeof(_p), DEV "/attrib/%s", _name);			\
	_r = write_file(_p, _val);						\
	EXPECT_EQ(-_err, _r)							\
		MSG("attrib/%s = \"%s\": %s, target_core_user: %s", _name, _val,	\
		    _r ? strerror(-_r) : "accepted", _err ? strerror(_err) : "accepted");	\
} while (0)

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in DIR, sorted, space-separated. */
static void dir_names(const char *dir, char *out, size_t len)
{
	char *names[64];
	struct dirent *de;
	int n = 0;
	size_t o = 0;
	DIR *d = opendir(dir);

	out[0] = 0;
	while (d && (de = readdir(d)) && n < 64)
		if (de->d_name[0] != '.')
			names[n++] = strdup(de->d_name);
	if (d)
		closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (int i = 0; i < n; i++) {
		o += snprintf(out + o, o < len ? len - o : 0, "%s%s", i ? " " : "", names[i]);
		free(names[i]);
	}
}

/* target_core_user: passthrough_attrib_attrs, passthrough_pr_attrib_attrs, tcmu_attrib_attrs. */
#define C_ATTRIB "alua_support cmd_ring_size_mb cmd_time_out data_pages_per_blk dev_config dev_size emulate_pr emulate_write_cache enforce_pr_isids force_pr_aptpl hw_block_size hw_max_sectors hw_pi_prot_type hw_queue_depth max_data_area_mb nl_reply_supported pgr_support qfull_time_out submit_type tmr_notification"
/* tcmu_rs adds the read-only attrib/stats (Documentation/target/tcmu-rs.rst). */
#define RS_ATTRIB "alua_support cmd_ring_size_mb cmd_time_out data_pages_per_blk dev_config dev_size emulate_pr emulate_write_cache enforce_pr_isids force_pr_aptpl hw_block_size hw_max_sectors hw_pi_prot_type hw_queue_depth max_data_area_mb nl_reply_supported pgr_support qfull_time_out stats submit_type tmr_notification"

/*
 * The device's attributes: the exact text read back, what is accepted and refused
 * (errno), before and after enable and export, as in the C module.
 */
TEST_F_TIMEOUT(fail, attributes, 60)
{
	struct ring *r = &self->r;
	static const char c_attrib[] = C_ATTRIB;
	static const char rs_attrib[] = RS_ATTRIB;
	static const char c_action[] = "block_dev free_kept_buf reset_ring";
	static const char info[] = "Config: " DEV_CONFIG
		" Size: 16777216 MaxDataAreaMB: 2 DataPagesPerBlk: 2 CmdRingSizeMB: 1\n";
	char names[1024], buf[512], v[600], longcfg[300];
	int ret, kfd;

	dev_make(_metadata, self, 512, DEF_SIZE,
		 "cmd_ring_size_mb=1,max_data_area_mb=2,data_pages_per_blk=2");

	dir_names(DEV "/attrib", names, sizeof(names));
	EXPECT_STREQ(is_c_module() ? c_attrib : rs_attrib, names) MSG("attrib/ has: %s", names);
	dir_names(DEV "/action", names, sizeof(names));
	EXPECT_STREQ(c_action, names) MSG("action/ has: %s", names);

	/* Before enable: defaults and the control string. */
	ATTR_IS("cmd_time_out", "30\n");
	ATTR_IS("qfull_time_out", "-1\n");
	ATTR_IS("max_data_area_mb", "2\n");
	ATTR_IS("data_pages_per_blk", "2\n");
	ATTR_IS("cmd_ring_size_mb", "1\n");
	ATTR_IS("nl_reply_supported", "-1\n");
	ATTR_IS("dev_config", DEV_CONFIG "\n");
	ATTR_IS("dev_size", "16777216\n");
	ATTR_IS("tmr_notification", "0\n");
	ATTR_IS("emulate_write_cache", "0\n");
	ASSERT_LT(0, read_raw(DEV "/info", buf, sizeof(buf)));
	EXPECT_NE(NULL, strstr(buf, info))
		MSG("info: %s", vis(buf, v, sizeof(v)));

	/* cmd_time_out: seconds, unsigned 32-bit. */
	ATTR_WRITE("cmd_time_out", "5", 0);
	ATTR_IS("cmd_time_out", "5\n");
	ATTR_WRITE("cmd_time_out", "0", 0);
	ATTR_IS("cmd_time_out", "0\n");
	ATTR_WRITE("cmd_time_out", "x", EINVAL);
	ATTR_WRITE("cmd_time_out", "-1", EINVAL);
	ATTR_WRITE("cmd_time_out", "4294967296", ERANGE);
	ATTR_IS("cmd_time_out", "0\n");
	ATTR_WRITE("cmd_time_out", "0x10\n", 0);
	ATTR_IS("cmd_time_out", "16\n");
	/* Not compared: the C module keeps cmd_time_out in ms in an unsigned int. */
	ATTR_WRITE("cmd_time_out", "4294968", 0);
	if (read_raw(DEV "/attrib/cmd_time_out", buf, sizeof(buf)) > 0)
		TH_LOG("%s: cmd_time_out 4294968 reads back %s (target_core_user: %s)",
		       module_name(), vis(buf, v, sizeof(v)), "0, its ms overflow 32 bits");
	ATTR_WRITE("cmd_time_out", "2", 0);

	/* qfull_time_out: seconds, or -1; nothing below. */
	ATTR_WRITE("qfull_time_out", "0", 0);
	ATTR_IS("qfull_time_out", "0\n");
	ATTR_WRITE("qfull_time_out", "5", 0);
	ATTR_IS("qfull_time_out", "5\n");
	kfd = kmsg_open();
	ATTR_WRITE("qfull_time_out", "-2", EINVAL);
	/* tcmu_rs names the device in its warnings (C: "Invalid qfull timeout value -2"). */
	if (!is_c_module())
		EXPECT_TRUE(kmsg_has(kfd, DEV_NAME ": invalid qfull_time_out -2"))
			MSG("no warning naming device " DEV_NAME " for qfull_time_out -2");
	if (kfd >= 0)
		close(kfd);
	ATTR_WRITE("qfull_time_out", "x", EINVAL);
	ATTR_WRITE("qfull_time_out", "2147483648", ERANGE);
	ATTR_IS("qfull_time_out", "5\n");
	/* Not compared: the C module keeps qfull_time_out in ms in an int. */
	ATTR_WRITE("qfull_time_out", "2147484", 0);
	if (read_raw(DEV "/attrib/qfull_time_out", buf, sizeof(buf)) > 0)
		TH_LOG("%s: qfull_time_out 2147484 reads back %s (target_core_user: %s)",
		       module_name(), vis(buf, v, sizeof(v)),
		       "-2147483296, its ms overflow an int");
	ATTR_WRITE("qfull_time_out", "-1", 0);
	ATTR_IS("qfull_time_out", "-1\n");

	/* nl_reply_supported: s8. */
	ATTR_WRITE("nl_reply_supported", "5", 0);
	ATTR_IS("nl_reply_supported", "5\n");
	ATTR_WRITE("nl_reply_supported", "128", ERANGE);
	ATTR_WRITE("nl_reply_supported", "x", EINVAL);
	ATTR_WRITE("nl_reply_supported", "-1", 0);
	ATTR_IS("nl_reply_supported", "-1\n");

	/* tmr_notification: 0 or 1. */
	ATTR_WRITE("tmr_notification", "1", 0);
	ATTR_IS("tmr_notification", "1\n");
	ATTR_WRITE("tmr_notification", "2", EINVAL);
	ATTR_WRITE("tmr_notification", "0", 0);
	ATTR_IS("tmr_notification", "0\n");

	/* Read-only and write-only ones. */
	ATTR_WRITE("max_data_area_mb", "3", EACCES);
	ATTR_WRITE("data_pages_per_blk", "1", EACCES);
	ATTR_WRITE("cmd_ring_size_mb", "2", EACCES);
	ATTR_IS("max_data_area_mb", "2\n");
	ret = read_raw(DEV "/action/reset_ring", buf, sizeof(buf));
	EXPECT_EQ(-EACCES, ret) MSG("read action/reset_ring: %s", ret < 0 ? strerror(-ret) : buf);
	ret = read_raw(DEV "/action/free_kept_buf", buf, sizeof(buf));
	EXPECT_EQ(-EACCES, ret)
		MSG("read action/free_kept_buf: %s", ret < 0 ? strerror(-ret) : buf);

	/* dev_config and dev_size before enable: just stored. */
	ATTR_WRITE("dev_size", "8388608", 0);
	ATTR_IS("dev_size", "8388608\n");
	ATTR_WRITE("dev_size", "x", EINVAL);
	ATTR_WRITE("dev_size", "16777216", 0);
	ATTR_WRITE("dev_config", "selftest/y", 0);
	ATTR_IS("dev_config", "selftest/y\n");
	memset(longcfg, 'c', sizeof(longcfg) - 1);
	longcfg[sizeof(longcfg) - 1] = 0;
	ATTR_WRITE("dev_config", longcfg, EINVAL);
	ATTR_IS("dev_config", "selftest/y\n");
	ATTR_WRITE("dev_config", DEV_CONFIG, 0);
	ATTR_IS("dev_config", DEV_CONFIG "\n");

	/* Enabled: the ring's geometry is fixed. */
	dev_enable(_metadata, self);
	ret = write_file(DEV "/control", "max_data_area_mb=4");
	EXPECT_EQ(-EINVAL, ret) MSG("control max_data_area_mb=4 after enable: %s",
				    ret ? strerror(-ret) : "accepted");
	ret = write_file(DEV "/control", "data_pages_per_blk=1");
	EXPECT_EQ(-EINVAL, ret) MSG("control data_pages_per_blk=1 after enable: %s",
				    ret ? strerror(-ret) : "accepted");
	ret = write_file(DEV "/control", "cmd_ring_size_mb=2");
	EXPECT_EQ(-EINVAL, ret) MSG("control cmd_ring_size_mb=2 after enable: %s",
				    ret ? strerror(-ret) : "accepted");
	ATTR_IS("max_data_area_mb", "2\n");
	ATTR_IS("data_pages_per_blk", "2\n");
	ATTR_IS("cmd_ring_size_mb", "1\n");
	ATTR_IS("nl_reply_supported", "-1\n");
	EXPECT_EQ(3u << 20, r->map_size) MSG("map size %zu (1 MiB ring + 2 MiB data)", r->map_size);
	ring_attach(_metadata, self);
	EXPECT_EQ((1u << 20) - 128, r->cmdr_size);
	ring_start(_metadata, self);
	dev_export(_metadata, self);

	/* Exported: cmd_time_out is frozen, qfull_time_out is not. */
	ATTR_WRITE("cmd_time_out", "7", EINVAL);
	ATTR_IS("cmd_time_out", "2\n");
	ATTR_WRITE("qfull_time_out", "3", 0);
	ATTR_IS("qfull_time_out", "3\n");
	/*
	 * Enabled: dev_size and dev_config changes go to the handler daemon (netlink
	 * RECONFIG_DEVICE). Nobody listens here: the C module gets ESRCH and keeps the value.
	 */
	ATTR_WRITE("dev_size", "8388608", ESRCH);
	ATTR_IS("dev_size", "16777216\n");
	ATTR_WRITE("dev_config", "selftest/z", ESRCH);
	ATTR_IS("dev_config", DEV_CONFIG "\n");
	read_ok(_metadata, self, 3, "attributes");
}

/* ----------------------------------------------------------------------------------- */
/* Regressions of the review defects (each failed on tcmu_rs before its fix)           */

/*
 * block_dev=1 fails the commands waiting for data space with BUSY and no sense (C's
 * tcmu_block_dev: run_qfull_queue(udev, true)), which tcmu-runner's recovery (block,
 * reset_ring, unblock) relies on; the midlayer retries BUSY until the SG_IO timeout.
 */
TEST_F_TIMEOUT(fail, block_dev_fails_waiting_busy, 60)
{
	struct ring *r = &self->r;
	uint16_t ids[QF_FILL];
	unsigned int ncmds;
	uint8_t cdb[10];
	char d[256];
	struct job *w;

	dev_start_tmo(_metadata, self, QF_PARAMS, "30");
	ASSERT_EQ(0, write_file(DEV "/attrib/qfull_time_out", "30"));
	fill_data_area(_metadata, self, ids, QF_FILL);
	ncmds = r->ncmds;
	cdb_rw10(cdb, 0x2a, 7000, QF_BLOCKS);
	w = job_timed(self, cdb, 10, SG_DXFER_TO_DEV, QF_LEN, 3000);
	job_start(w);
	sleep_ms(500);
	EXPECT_FALSE(job_done(w)) MSG("the WRITE did not wait for data space: %s",
				      job_str(w, d, sizeof(d)));
	ASSERT_EQ(0, write_file(DEV "/action/block_dev", "1"));
	ASSERT_TRUE(job_wait(w, 15000))
		MSG("the waiting WRITE still pending 15 s after block_dev=1");
	job_str(w, d, sizeof(d));
	TH_LOG("%s: the waiting WRITE after block_dev=1: %s (%s)", module_name(), d,
	       status_name(w->h.status));
	EXPECT_EQ(0, w->rc);
	EXPECT_EQ(SAM_STAT_BUSY, w->h.status) MSG("the waiting WRITE after block_dev=1: %s", d);
	EXPECT_EQ(0, w->h.sb_len_wr) MSG("the waiting WRITE after block_dev=1: %s", d);
	EXPECT_EQ(ncmds, r->ncmds) MSG("the waiting WRITE reached the ring of a blocked device");
	ASSERT_EQ(0, write_file(DEV "/action/block_dev", "0"));
	for (int i = 0; i < QF_FILL; i++)
		free_kept(_metadata, ids[i]);
	r->hold = 0;
	read_ok(_metadata, self, 15, "after block_dev=0");
}

/*
 * A command that waited for space (qfull_time_out 60) and then went on the ring times out
 * cmd_time_out (5 s) after that, not when its qfull deadline would have passed.
 */
TEST_F_TIMEOUT(fail, ring_timeout_after_waiting, 90)
{
	struct ring *r = &self->r;
	uint16_t ids[QF_FILL];
	uint8_t cdb[10];
	char d[256];
	struct job *w;
	uint64_t t0;
	long ms;

	dev_start_tmo(_metadata, self, QF_PARAMS, "5");
	ASSERT_EQ(0, write_file(DEV "/attrib/qfull_time_out", "60"));
	fill_data_area(_metadata, self, ids, QF_FILL);
	cdb_rw10(cdb, 0x2a, 7000, QF_BLOCKS);
	w = job_timed(self, cdb, 10, SG_DXFER_TO_DEV, QF_LEN, 40000);
	job_start(w);
	/*
	 * Past the timeout of the WRITEs that filled the data area: only its qfull deadline
	 * is due now.
	 */
	sleep_ms(6500);
	EXPECT_FALSE(job_done(w)) MSG("the WRITE did not wait for data space: %s",
				      job_str(w, d, sizeof(d)));
	/* Room for it: it goes on the ring, where the handler holds it. */
	free_kept(_metadata, ids[0]);
	ASSERT_EQ(1, wait_held(r, 1, 5000)) MSG("the waiting WRITE did not reach the ring");
	t0 = now_ms();
	ASSERT_TRUE(job_wait(w, 30000)) MSG("the WRITE on the ring did not time out in 30 s");
	ms = w->t_done - t0;
	TH_LOG("%s: the WRITE timed out %ld ms after it went on the ring: %s", module_name(), ms,
	       job_str(w, d, sizeof(d)));
	EXPECT_FALSE(job_ok(w)) MSG("the held WRITE succeeded: %s", d);
	/* C rounds deadlines up to a whole second, then its work runs. */
	EXPECT_LE(4000, ms) MSG("timed out after %ld ms", ms);
	EXPECT_GE(9000, ms) MSG("timed out after %ld ms (cmd_time_out is 5 s)", ms);
	/* The handler's late completion is ignored. */
	pthread_mutex_lock(&r->lock);
	EXPECT_EQ(0, complete_good(r, r->held[0]));
	pthread_mutex_unlock(&r->lock);
	for (int i = 1; i < QF_FILL; i++)
		free_kept(_metadata, ids[i]);
	r->hold = 0;
	read_ok(_metadata, self, 17, "after the timeout");
}

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(bus_jmp, 1);
}

/* Copies page P of MAP into OUT; returns 0, or -1 if the access raised SIGBUS. */
static int page_copy(const uint8_t *map, size_t p, uint8_t *out, size_t pg)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	int ret = 0;

	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(bus_jmp, 1))
		ret = -1;
	else
		memcpy(out, map + p * pg, pg);
	sigaction(SIGBUS, &old, NULL);
	return ret;
}

/*
 * What is left of a mapping after a split (here: munmap of its first page) shows the same
 * pages as a whole mapping of the device, never another page. DIFFERENCE: target_core_user
 * sends SIGBUS there (tcmu_find_mem_index() takes the split mapping's vm_pgoff for a map
 * index); tcmu_rs serves the right page.
 */
TEST_F_TIMEOUT(fail, mapping_split_same_pages, 60)
{
	struct ring *r = &self->r;
	size_t pg = sysconf(_SC_PAGESIZE), n = r->map_size / pg;
	uint8_t *b, *want = malloc(pg), *got = malloc(pg);
	int c = is_c_module();

	dev_start(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	n = r->map_size / pg;
	read_ok(_metadata, self, 21, "before the split");
	b = mmap(NULL, r->map_size, PROT_READ, MAP_SHARED, r->fd, 0);
	ASSERT_NE(MAP_FAILED, b) MSG("second mmap: %s", strerror(errno));
	ASSERT_EQ(0, munmap(b, pg));
	for (size_t p = 1; p < 4 && p < n; p++) {
		int bus;

		pthread_mutex_lock(&r->lock);
		memcpy(want, r->map + p * pg, pg);
		bus = page_copy(b, p, got, pg);
		pthread_mutex_unlock(&r->lock);
		if (bus) {
			TH_LOG("%s: page %zu of the split mapping: SIGBUS", module_name(), p);
			EXPECT_TRUE(c) MSG("page %zu of the split mapping: SIGBUS", p);
			continue;
		}
		EXPECT_EQ(0, memcmp(want, got, pg))
			MSG("page %zu of the split mapping shows another page", p);
	}
	munmap(b + pg, r->map_size - pg);
	free(want);
	free(got);
	read_ok(_metadata, self, 23, "after the split");
}

/* MemAvailable in KiB, or -1. */
static long mem_available_kb(void)
{
	char buf[4096], *p;
	int n = read_raw("/proc/meminfo", buf, sizeof(buf));

	if (n <= 0)
		return -1;
	p = strstr(buf, "MemAvailable:");
	if (!p)
		return -1;
	return strtol(p + 13, NULL, 10);
}

#define PB_CMDS	16

/*
 * data_pages_per_blk=256 (1 MiB blocks): a 4 KiB command takes one page of its block, not
 * 256 (C allocates only the pages the data reaches). 16 such commands held on the ring take
 * 16 pages (tcmu_rs: attrib/stats data_pages; both: MemAvailable drops far less than 16 MiB).
 */
TEST_F_TIMEOUT(fail, data_pages_partial_block, 60)
{
	struct ring *r = &self->r;
	struct job *j[PB_CMDS];
	char buf[4096], *p;
	long before, during;

	dev_start(_metadata, self, 512, DEF_SIZE,
		  "cmd_ring_size_mb=1,max_data_area_mb=64,data_pages_per_blk=256");
	read_ok(_metadata, self, 25, "warm-up");
	r->hold = 1;
	sleep_ms(200);
	before = mem_available_kb();
	for (int i = 0; i < PB_CMDS; i++) {
		uint8_t cdb[10];

		cdb_rw10(cdb, 0x28, 1000 + i * 64, 8);
		j[i] = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 20000);
		job_start(j[i]);
	}
	ASSERT_EQ(PB_CMDS, wait_held(r, PB_CMDS, 10000)) MSG("the READs did not reach the ring");
	during = mem_available_kb();
	TH_LOG("%s: %d READs of 4 KiB held in 1 MiB blocks: MemAvailable %ld -> %ld KiB",
	       module_name(), PB_CMDS, before, during);
	EXPECT_GT(8 * 1024, before - during) MSG("%d READs of 4 KiB took %ld KiB", PB_CMDS,
						 before - during);
	p = NULL;
	if (!is_c_module() && read_raw(DEV "/attrib/stats", buf, sizeof(buf)) > 0)
		p = strstr(buf, "\ndata_pages ");
	if (p) {
		long pages = strtol(p + 12, NULL, 10);

		TH_LOG("%s: data_pages %ld", module_name(), pages);
		EXPECT_GE(PB_CMDS, pages)
			MSG("%d READs of 4 KiB hold %ld data pages", PB_CMDS, pages);
	}
	ring_release_all(r);
	for (int i = 0; i < PB_CMDS; i++) {
		ASSERT_TRUE(job_wait(j[i], 10000));
		EXPECT_TRUE(job_ok(j[i])) MSG("READ %d", i);
	}
}

/*
 * Writes that end in a NUL byte (tcmu-runner writes its values with their terminator): the
 * kernel reads a configfs store as a C string, so the NUL ends the value and the write
 * succeeds with its full length, as C's kstrtou8()/strlen() on the page do.
 */
static int write_with_nul(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	ssize_t n, len = strlen(s) + 1;

	if (fd < 0)
		return -errno;
	n = write(fd, s, len);
	close(fd);
	return n < 0 ? -errno : n == len ? 0 : -EIO;
}

TEST_F_TIMEOUT(fail, nul_terminated_writes, 60)
{
	static const struct {
		const char *file, *val, *reads;
	} w[] = {
		{ DEV "/attrib/cmd_time_out", "7", "7" },
		{ DEV "/attrib/qfull_time_out", "3", "3" },
		{ DEV "/attrib/tmr_notification", "1", "1" },
		{ DEV "/action/block_dev", "1", "blocked" },
		{ DEV "/action/block_dev", "0", "unblocked" },
		{ DEV "/action/reset_ring", "1", NULL },
	};
	char buf[64];
	int ret;

	dev_create(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	for (size_t i = 0; i < ARRAY_SIZE(w); i++) {
		ret = write_with_nul(w[i].file, w[i].val);
		EXPECT_EQ(0, ret) MSG("\"%s\\0\" > %s: %s", w[i].val, w[i].file, strerror(-ret));
		if (!w[i].reads)
			continue;
		buf[0] = 0;
		read_file(w[i].file, buf, sizeof(buf));
		EXPECT_STREQ(w[i].reads, buf) MSG("%s after \"%s\\0\"", w[i].file, w[i].val);
	}
}

TEST_HARNESS_MAIN

/* Runs "CMD MODULE" with system(); returns its exit status, or -1. */
static int module_cmd(const char *cmd, const char *module)
{
	char buf[128];
	int st;

	snprintf(buf, sizeof(buf), "%s %s 2>/dev/null", cmd, module);
	st = system(buf);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * A handler keeps /dev/uioN open and mapped after its device and HBA are removed: touching
 * the mapping gives data or SIGBUS (a data page never allocated: SIGBUS), never an oops; the
 * module cannot be unloaded while the file is open (its fault handler backs the mapping), and
 * unloads once it is closed. The module is loaded again for the tests after this one.
 */
TEST_F_TIMEOUT(fail, uio_open_after_rmdir, 60)
{
	struct ring *r = &self->r;
	size_t pg = sysconf(_SC_PAGESIZE);
	const char *m = module_name();
	uint8_t *page = malloc(pg);
	uint32_t version;
	int bus, st;

	ASSERT_NE(NULL, page);
	dev_configure(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	ring_attach(_metadata, self);
	version = READ_ONCE(r->mb->version);
	ASSERT_EQ(0, rmdir(DEV)) MSG("rmdir %s with the UIO device open: %s", DEV, strerror(errno));
	self->dev_made = 0;
	ASSERT_EQ(0, rmdir(HBA)) MSG("rmdir %s: %s", HBA, strerror(errno));
	self->hba_made = 0;

	/* The mailbox (mapped before) still reads; the last page (data, never allocated) faults. */
	EXPECT_EQ(version, READ_ONCE(r->mb->version));
	bus = page_copy(r->map, r->cmdr_off / pg + 1, page, pg);
	TH_LOG("%s: a ring page after rmdir: %s", m, bus ? "SIGBUS" : "read");
	bus = page_copy(r->map, r->map_size / pg - 1, page, pg);
	EXPECT_EQ(-1, bus)
		MSG("%s: a data page never allocated read without SIGBUS after rmdir", m);

	st = module_cmd("rmmod", m);
	EXPECT_NE(0, st) MSG("%s unloaded while /dev/%s was open and mapped", m, r->uio);
	if (!st) {
		/* Do not touch the mapping again: its fault handler is gone. */
		ASSERT_EQ(0, module_cmd("modprobe", m));
	}
	munmap(r->map, r->map_size);
	self->mapped = 0;
	r->map = NULL;
	r->mb = NULL;
	close(r->fd);
	r->fd = -1;
	/* The release runs after close returns, in the last fput. */
	for (int i = 0; i < 50 && (st = module_cmd("rmmod", m)); i++)
		sleep_ms(100);
	EXPECT_EQ(0, st) MSG("rmmod %s after the UIO device was closed", m);
	EXPECT_EQ(0, module_cmd("modprobe", m)) MSG("modprobe %s again", m);
	free(page);
}

#define STORM_THREADS	6
#define STORM_MS	12000
#define STORM_ABORT_LBA	16384	/* READs from here on are held until they time out */

struct storm {
	char dev[64];
	int stop;			/* READ_ONCE()/WRITE_ONCE() */
	unsigned int seed;
	unsigned int reads, aborted, resets;
	pthread_t th;
};

/*
 * Keeps LUN RESETs apart from the ABORT TASKs of held READs. The target core aborts an
 * ABORT TASK that a LUN RESET of the same session overtakes without answering it, and
 * tcm_loop then waits for its answer forever (a hung scsi_tmf kworker, whichever backend
 * module: see Documentation/target/tcmu-rs.rst). A held READ's SG_IO returns only once its
 * ABORT TASK is done, so no LUN RESET starts while one is in flight.
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int held_in_flight, reset_pending;
} storm_gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };

/* A held READ starts unless a LUN RESET is pending. */
static void storm_held_enter(void)
{
	pthread_mutex_lock(&storm_gate.lock);
	while (storm_gate.reset_pending)
		pthread_cond_wait(&storm_gate.cond, &storm_gate.lock);
	storm_gate.held_in_flight++;
	pthread_mutex_unlock(&storm_gate.lock);
}

/* A LUN RESET stops new held READs, then waits for those in flight. */
static void storm_reset_enter(void)
{
	pthread_mutex_lock(&storm_gate.lock);
	storm_gate.reset_pending = 1;
	while (storm_gate.held_in_flight)
		pthread_cond_wait(&storm_gate.cond, &storm_gate.lock);
	pthread_mutex_unlock(&storm_gate.lock);
}

static void storm_gate_leave(int *count)
{
	pthread_mutex_lock(&storm_gate.lock);
	(*count)--;
	pthread_cond_broadcast(&storm_gate.cond);
	pthread_mutex_unlock(&storm_gate.lock);
}

/* An initiator: READs, one in four held by the handler past its 300 ms SG_IO timeout. */
static void *storm_reader(void *arg)
{
	struct storm *s = arg;
	uint8_t buf[4096];

	while (!READ_ONCE(s->stop)) {
		struct job j = { 0 };
		int abort = rand_r(&s->seed) % 4 == 0;
		uint32_t lba = (abort ? STORM_ABORT_LBA : 0) + rand_r(&s->seed) % 8192;

		snprintf(j.dev, sizeof(j.dev), "%s", s->dev);
		cdb_rw10(j.cdb, 0x28, lba, 8);
		j.cdb_len = 10;
		j.dir = SG_DXFER_FROM_DEV;
		j.buf = buf;
		j.len = sizeof(buf);
		j.timeout_ms = abort ? 300 : 20000;
		if (abort)
			storm_held_enter();
		job_run(&j);
		if (abort)
			storm_gate_leave(&storm_gate.held_in_flight);
		__atomic_add_fetch(abort ? &s->aborted : &s->reads, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* LUN RESETs now and then. */
static void *storm_resetter(void *arg)
{
	struct storm *s = arg;

	while (!READ_ONCE(s->stop)) {
		struct reset_job rj = { 0 };

		sleep_ms(700 + rand_r(&s->seed) % 600);
		snprintf(rj.dev, sizeof(rj.dev), "%s", s->dev);
		/* New held READs wait; the LUN RESET waits for those in flight. */
		storm_reset_enter();
		reset_thread(&rj);
		storm_gate_leave(&storm_gate.reset_pending);
		__atomic_add_fetch(&s->resets, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/*
 * TMRs racing submission and completion (tmr_notification=1): initiators keep READs coming,
 * a quarter of them held by the handler past their 300 ms SG_IO timeout (tcm_loop sends
 * ABORT TASK) and completed 200-1000 ms after they came, some while their abort is under
 * way; a thread resets the LUN every second or so (never while an ABORT TASK is in flight:
 * see storm_gate). Every cmd_id a TMR entry names must be of a command the handler had seen
 * on the ring before that entry, and an ABORT TASK may only name a held READ (a timed-out
 * one): a TMR that read the ids of its commands outside the ring lock could name a command
 * that was completed and whose id a new one took. (A guard of that invariant: the window
 * is too narrow for this test to hit it reliably.)
 */
TEST_F_TIMEOUT(fail, tmr_storm, 120)
{
	struct ring *r = &self->r;
	struct storm rd[STORM_THREADS], rs;
	uint8_t cdb[10];
	uint64_t end;

	dev_start(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	ASSERT_EQ(0, write_file(DEV "/attrib/tmr_notification", "1"));
	pthread_mutex_lock(&r->lock);
	r->hold = 1;
	r->hold_from_lba = STORM_ABORT_LBA;
	if (tmr_check_on(r, STORM_ABORT_LBA))
		r->hold = 0;
	pthread_mutex_unlock(&r->lock);
	ASSERT_NE(NULL, r->id_lba);

	memset(&rs, 0, sizeof(rs));
	snprintf(rs.dev, sizeof(rs.dev), "%s", self->sg);
	rs.seed = getpid();
	ASSERT_EQ(0, pthread_create(&rs.th, NULL, storm_resetter, &rs));
	for (int i = 0; i < STORM_THREADS; i++) {
		memset(&rd[i], 0, sizeof(rd[i]));
		snprintf(rd[i].dev, sizeof(rd[i].dev), "%s", self->sg);
		rd[i].seed = getpid() * 31 + i;
		ASSERT_EQ(0, pthread_create(&rd[i].th, NULL, storm_reader, &rd[i]));
	}
	/* The handler completes each held READ some time after it came. */
	end = now_ms() + STORM_MS;
	while (now_ms() < end) {
		uint64_t t = now_ms();

		pthread_mutex_lock(&r->lock);
		for (int i = 0; i < r->nheld;) {
			struct cmd *c = r->held[i];

			if (t - c->seen_ms >= 200 + (c->id * 37u) % 800)
				complete_good(r, c); /* drops it from held[] */
			else
				i++;
		}
		pthread_mutex_unlock(&r->lock);
		sleep_ms(10);
	}
	WRITE_ONCE(rs.stop, 1);
	for (int i = 0; i < STORM_THREADS; i++)
		WRITE_ONCE(rd[i].stop, 1);
	ring_release_all(r);
	pthread_join(rs.th, NULL);
	for (int i = 0; i < STORM_THREADS; i++) {
		pthread_join(rd[i].th, NULL);
		rs.reads += rd[i].reads;
		rs.aborted += rd[i].aborted;
	}
	pthread_mutex_lock(&r->lock);
	TH_LOG("%s: %u READs, %u timed out, %u LUN resets", module_name(), rs.reads, rs.aborted,
	       rs.resets);
	TH_LOG("%s: TMR entries: %u ABORT TASK, %u LUN RESET, %u ids, %u ring errors",
	       module_name(), r->ntmr_abort, r->ntmr_reset, r->ntmr_ids, r->nerr);
	EXPECT_LT(0, r->ntmr_abort) MSG("no ABORT TASK reached the handler");
	EXPECT_LT(0, r->ntmr_reset) MSG("no LUN RESET reached the handler");
	pthread_mutex_unlock(&r->lock);
	/* A UNIT ATTENTION of the last LUN RESET may be pending: this READ takes it. */
	cdb_rw10(cdb, 0x28, 9, 8);
	job_run(job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 4096, 10000));
	/* The teardown fails the test on any ring error (a TMR that named the wrong command). */
	read_ok(_metadata, self, 11, "after the storm");
}

/* Writes module parameter NAME of the module under test; returns 0, or -errno. */
static int module_param_write(const char *name, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/module/%s/parameters/%s", module_name(), name);
	return write_file(path, val) ? -errno : 0;
}

/* Sets tcmu_rs race-window delay NAME (CONFIG_TCM_USER_RS_RACE_DELAYS); -1 without it. */
static int race_delay(const char *name, unsigned int ms)
{
	char v[16];

	snprintf(v, sizeof(v), "%u", ms);
	return module_param_write(name, v);
}

/*
 * Fills the data area with RD_CMDS READs of 64 KiB held at once, then completes them: the
 * data pages stay allocated (free blocks keep their pages until a reclaim). Returns the map
 * offset of the first data block.
 */
#define RD_CMDS	24
static uint64_t fill_data_pages(struct __test_metadata *_metadata, tdev_t *self)
{
	struct ring *r = &self->r;
	struct job *j[RD_CMDS];
	uint64_t first = ~0ull;

	r->hold = 1;
	for (int i = 0; i < RD_CMDS; i++) {
		uint8_t cdb[10];

		cdb_rw10(cdb, 0x28, 4096 + i * 128, 128);
		j[i] = job_timed(self, cdb, 10, SG_DXFER_FROM_DEV, 65536, 20000);
		job_start(j[i]);
	}
	EXPECT_EQ(RD_CMDS, wait_held(r, RD_CMDS, 10000)) MSG("the READs did not reach the ring");
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < r->nheld; i++)
		for (uint32_t k = 0; k < r->held[i]->iov_cnt; k++) {
			uint64_t b = (uint64_t)(uintptr_t)r->held[i]->iov[k].iov_base;

			if (b < first)
				first = b;
		}
	pthread_mutex_unlock(&r->lock);
	ring_release_all(r);
	for (int i = 0; i < RD_CMDS; i++) {
		EXPECT_TRUE(job_wait(j[i], 10000));
		EXPECT_TRUE(job_ok(j[i])) MSG("READ %d", i);
	}
	return first;
}

/* The handler maps its device again: none of its data pages is mapped any more. */
static void ring_remap(struct __test_metadata *_metadata, tdev_t *self)
{
	struct ring *r = &self->r;
	uint8_t *m;

	WRITE_ONCE(r->stop, 1);
	pthread_join(r->th, NULL);
	r->th_running = 0;
	m = mmap(NULL, r->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	ASSERT_NE(MAP_FAILED, m) MSG("mmap again: %s", strerror(errno));
	munmap(r->map, r->map_size);
	r->map = m;
	r->mb = (void *)m;
	r->cmdr = m + r->cmdr_off;
	ring_start(_metadata, self);
}

struct toucher {
	pthread_t th;
	uint8_t *p;			/* READ_ONCE() */
	uint8_t v;
};

static void *touch_page(void *arg)
{
	struct toucher *t = arg;

	t->v = READ_ONCE(*t->p);
	return NULL;
}

/*
 * A reclaim must not free a data page that a fault of the handler found but has not yet
 * mapped (issue 21, item 4): the handler would keep a page the device no longer owns, and
 * the data it writes there for a later command would never reach the initiator. tcmu_rs
 * holds the fault open for 1.5 s (race_delay_fault_ms) while the global limit is lowered
 * to 1 MiB, which reclaims the idle device's pages; the next READ, given a fresh page of
 * the same block, must return the handler's data. (C is run without the delay.)
 */
TEST_F_TIMEOUT(fail, reclaim_waits_for_fault, 60)
{
	struct ring *r = &self->r;
	struct toucher t = { 0 };
	char saved[32] = "", buf[4096], *p;
	uint64_t first;
	int delayed;

	dev_start(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	first = fill_data_pages(_metadata, self);
	ASSERT_NE(~0ull, first);
	ring_remap(_metadata, self);
	delayed = race_delay("race_delay_fault_ms", 1500) == 0;
	if (!is_c_module())
		ASSERT_TRUE(delayed) MSG("tcmu_rs without CONFIG_TCM_USER_RS_RACE_DELAYS");
	t.p = r->map + first;
	ASSERT_EQ(0, pthread_create(&t.th, NULL, touch_page, &t));
	sleep_ms(300);
	{
		char path[128];

		snprintf(path, sizeof(path), "/sys/module/%s/parameters/global_max_data_area_mb",
			 module_name());
		ASSERT_LT(0, read_file(path, saved, sizeof(saved)));
	}
	ASSERT_EQ(0, module_param_write("global_max_data_area_mb", "1"));
	pthread_join(t.th, NULL);
	if (delayed)
		race_delay("race_delay_fault_ms", 0);
	sleep_ms(500);
	p = NULL;
	if (!is_c_module() && read_raw(DEV "/attrib/stats", buf, sizeof(buf)) > 0)
		p = strstr(buf, "\ndata_pages_reclaimed ");
	if (p) {
		long n = strtol(p + 22, NULL, 10);

		TH_LOG("%s: %ld data pages reclaimed", module_name(), n);
		EXPECT_LT(0, n) MSG("the reclaim did not run");
	}
	ASSERT_EQ(0, module_param_write("global_max_data_area_mb", saved));
	r->hold = 0;
	read_ok(_metadata, self, 31, "after a reclaim during a fault");
	read_ok(_metadata, self, 47, "once more");
}

static void *remove_all(void *arg)
{
	(void)arg;
	cleanup_configfs();
	return NULL;
}

/*
 * The handler closes /dev/uioN while its device is being removed, and a reclaim runs then
 * (issue 21, item 10): once the UIO device is unregistered its release is not reported, so
 * the address space of the closed file (freed with its inode) must already be forgotten, or
 * the reclaim unmaps through freed memory (KASAN on the debug kernel). tcmu_rs holds the
 * removal for 2 s after the unregistration (race_delay_unregister_ms); C runs without it.
 */
TEST_F_TIMEOUT(fail, uio_closed_during_removal, 60)
{
	struct ring *r = &self->r;
	char saved[32] = "", path[128];
	pthread_t rm;
	int delayed, gone = 0;

	dev_start(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	fill_data_pages(_metadata, self);
	snprintf(path, sizeof(path), "/sys/module/%s/parameters/global_max_data_area_mb",
		 module_name());
	ASSERT_LT(0, read_file(path, saved, sizeof(saved)));
	delayed = race_delay("race_delay_unregister_ms", 2000) == 0;
	if (!is_c_module())
		ASSERT_TRUE(delayed) MSG("tcmu_rs without CONFIG_TCM_USER_RS_RACE_DELAYS");
	WRITE_ONCE(r->stop, 1);
	pthread_join(r->th, NULL);
	r->th_running = 0;
	self->linked = 0;
	self->loop_made = 0;
	self->dev_made = 0;
	self->hba_made = 0;
	ASSERT_EQ(0, pthread_create(&rm, NULL, remove_all, NULL));
	snprintf(path, sizeof(path), "/sys/class/uio/%s", r->uio);
	for (int i = 0; i < 100 && !gone; i++) {
		gone = access(path, F_OK) != 0;
		if (!gone)
			sleep_ms(20);
	}
	EXPECT_TRUE(gone) MSG("%s still registered 2 s after the removal started", r->uio);
	munmap(r->map, r->map_size);
	self->mapped = 0;
	r->map = NULL;
	r->mb = NULL;
	close(r->fd);
	r->fd = -1;
	sleep_ms(300);
	/* Over the limit: the reclaim work takes the removed device's free pages. */
	EXPECT_EQ(0, module_param_write("global_max_data_area_mb", "1"));
	pthread_join(rm, NULL);
	if (delayed)
		race_delay("race_delay_unregister_ms", 0);
	EXPECT_EQ(0, module_param_write("global_max_data_area_mb", saved));
	EXPECT_NE(0, access(DEV, F_OK)) MSG("%s still there", DEV);
}

/*
 * dev_config is the handler's, in any encoding: bytes that are not UTF-8 are kept as they
 * are in attrib/dev_config, in info and in the UIO name the handler parses (as C).
 */
#define RAW_CONFIG	"selftest/\xff\xfe-\xc3(-\xe2\x82"
TEST_F_TIMEOUT(fail, dev_config_bytes, 30)
{
	char buf[512], want[256], path[300], v1[600], v2[600];
	struct dirent *de;
	int found = 0;
	DIR *d;

	ASSERT_EQ(0, mkdir(HBA, 0755)) MSG("mkdir %s: %s", HBA, strerror(errno));
	self->hba_made = 1;
	ASSERT_EQ(0, mkdir(DEV, 0755)) MSG("mkdir %s: %s", DEV, strerror(errno));
	self->dev_made = 1;
	ASSERT_EQ(0, write_file(DEV "/control", "dev_config=" RAW_CONFIG
				",dev_size=1048576,nl_reply_supported=-1"));
	ATTR_IS("dev_config", RAW_CONFIG "\n");
	ASSERT_LT(0, read_file(DEV "/info", buf, sizeof(buf)));
	EXPECT_NE(NULL, strstr(buf, "Config: " RAW_CONFIG " Size: 1048576 "))
		MSG("info: %s", vis(buf, v1, sizeof(v1)));
	ASSERT_EQ(0, write_file(DEV "/enable", "1"));
	snprintf(want, sizeof(want), "tcm-user/%d/" DEV_NAME "/" RAW_CONFIG, HBA_ID);
	d = opendir("/sys/class/uio");
	ASSERT_NE(NULL, d);
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "uio", 3)) {
			snprintf(path, sizeof(path), "/sys/class/uio/%s/name", de->d_name);
			if (read_file(path, buf, sizeof(buf)) > 0 && strstr(buf, "tcm-user/")) {
				TH_LOG("%s: %s name %s", module_name(), de->d_name,
				       vis(buf, v1, sizeof(v1)));
				found |= !strcmp(buf, want);
			}
		}
	closedir(d);
	EXPECT_TRUE(found) MSG("no UIO device named %s", vis(want, v2, sizeof(v2)));
	ATTR_WRITE("dev_config", "selftest/\x80", ESRCH);
}
