// SPDX-License-Identifier: GPL-2.0
/*
 * Ring ABI tests of the TCMU backstore ("user" backend), run against whichever module
 * provides it: target_core_user (C) or tcmu_rs (Rust). The test is its own userspace
 * handler: it creates a user device through configfs, maps its UIO region and serves the
 * command ring (include/uapi/linux/target_core_user.h) from a thread, while initiator
 * threads send SCSI commands with SG_IO to the /dev/sgN node of a tcm_loop LUN exporting
 * the device.
 *
 * The handler thread answers what the SCSI midlayer and sd send on their own (INQUIRY,
 * READ CAPACITY, reads of the partition table, ...). In "hold" mode it keeps the commands
 * the tests send (READ(10)/WRITE(10) tagged with group number TAG_GROUP, and the vendor
 * opcode 0xc0) for the test to complete, in the order and with the status it chooses.
 * Completions are written libtcmu-style: into the first CMD slot at cmd_tail, whatever
 * command occupied that slot, then cmd_tail is advanced and 4 bytes are written to the
 * UIO device.
 *
 * Needs tcm_loop (CONFIG_LOOPBACK_TARGET), sd and sg. Run with the module under test
 * loaded (TCMU_MODULE may name it, for the log only).
 */
#define _GNU_SOURCE
/* First: its <linux/uio.h> struct iovec stands in for glibc's (same layout). */
#include <linux/target_core_user.h>
#define __iovec_defined 1
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <scsi/sg.h>

#include "../kselftest_harness.h"

#define CFG		"/sys/kernel/config/target"
#define CORE		CFG "/core"
#define LOOP		CFG "/loopback"
#define WWN		"naa.50014051e57ee001"
#define INITIATOR	"naa.50014051e57ee0ff"
#define TPG		LOOP "/" WWN "/tpgt_1"
#define LUN		TPG "/lun/lun_0"
#define LUN_LINK	LUN "/ring"
#define HBA_ID		7071
#define HBA		CORE "/user_7071"
#define DEV_NAME	"ring"
#define DEV		HBA "/" DEV_NAME
#define DEV_CONFIG	"selftest/x"
#define VENDOR		"TCMURING"

#define TAG_GROUP	0x15	/* READ(10)/WRITE(10) byte 6: marks the tests' own commands */
#define VENDOR_OP	0xc0	/* an opcode no handler implements */
#define MAX_HELD	64
#define MAX_JOBS	32
#define SG_TIMEOUT_MS	60000

#define SAM_STAT_GOOD			0x00
#define SAM_STAT_CHECK_CONDITION	0x02
#define NOT_READY		0x02
#define MEDIUM_ERROR		0x03
#define ILLEGAL_REQUEST		0x05

/* offsetof(struct tcmu_cmd_entry, req.iov[0]): the iovecs follow the request header. */
#define ENTRY_IOV_OFF	offsetof(struct tcmu_cmd_entry, req.iov)

/* ----------------------------------------------------------------------------------- */
/* Small helpers                                                                        */

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return n;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n < 0 ? -errno : 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	usleep(ms * 1000);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, v >> 32);
	put_be32(p + 4, v);
}

static uint32_t get_be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* scsi_command_size() */
static int cdb_size(const uint8_t *cdb)
{
	static const int len[8] = { 6, 10, 10, 12, 16, 12, 10, 10 };

	if (cdb[0] == 0x7f)
		return cdb[7] + 8;
	return len[(cdb[0] >> 5) & 7];
}

/* The data the handler returns for block LBA, byte I (keyed by LBA, no MBR signature). */
static uint8_t pat(uint64_t lba, uint32_t i)
{
	return (uint8_t)(lba * 13 + (lba >> 8) * 5 + i * 7 + (i >> 8) * 3 + 1);
}

static void pat_fill(uint8_t *buf, uint64_t lba, uint32_t bs, size_t len)
{
	for (size_t o = 0; o < len; o++)
		buf[o] = pat(lba + o / bs, o % bs);
}

static void sense_fixed(uint8_t *s, uint8_t key, uint8_t asc, uint8_t ascq)
{
	memset(s, 0, 18);
	s[0] = 0x70;
	s[2] = key;
	s[7] = 10;
	s[12] = asc;
	s[13] = ascq;
}

static void cdb_rw10(uint8_t *cdb, uint8_t op, uint32_t lba, uint16_t blocks)
{
	memset(cdb, 0, 10);
	cdb[0] = op;
	put_be32(cdb + 2, lba);
	cdb[6] = TAG_GROUP;
	put_be16(cdb + 7, blocks);
}

/* ----------------------------------------------------------------------------------- */
/* The handler: ring state and its thread                                              */

struct cmd {
	uint16_t id;
	uint32_t off, len, len_op;	/* ring slot */
	uint32_t iov_cnt, iov_bidi_cnt, iov_dif_cnt;
	uint64_t cdb_off;
	uint8_t cdb[16];
	struct iovec *iov;		/* iov_cnt + iov_bidi_cnt (offsets into the map) */
	uint64_t data_len;		/* sum of the iov_cnt iovecs */
};

struct ring {
	int fd;
	char uio[32];
	uint8_t *map;
	size_t map_size;
	volatile struct tcmu_mailbox *mb;
	uint8_t *cmdr;
	uint32_t cmdr_off, cmdr_size;
	uint32_t rd;			/* next entry to look at */
	uint32_t bs;
	uint64_t size;
	char model[17];

	/* Guards the ring and what follows. No ASSERT_*() while holding it: the teardown takes it. */
	pthread_mutex_t lock;
	pthread_t th;
	int th_running;
	volatile int stop;

	int hold;			/* keep the tests' commands */
	struct cmd *held[MAX_HELD];
	int nheld;

	uint64_t last_ms;		/* when the last entry was seen */
	unsigned int ncmds, npads, ntmrs, nrc16, nauto;
	/* The last PAD, and the entry that followed it. */
	uint32_t pad_off, pad_len, pad_id, pad_flags;
	int after_pad_pending;
	uint32_t after_pad_off, after_pad_len;

	int nerr;
	char err[1024];
};

static void ring_err(struct ring *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void ring_err(struct ring *r, const char *fmt, ...)
{
	size_t n = strlen(r->err);
	va_list ap;

	r->nerr++;
	if (n + 2 >= sizeof(r->err))
		return;
	if (n)
		r->err[n++] = ';', r->err[n++] = ' ';
	va_start(ap, fmt);
	vsnprintf(r->err + n, sizeof(r->err) - n, fmt, ap);
	va_end(ap);
}

static uint32_t ring_head(struct ring *r)
{
	return __atomic_load_n(&r->mb->cmd_head, __ATOMIC_ACQUIRE);
}

static uint32_t ring_tail(struct ring *r)
{
	return __atomic_load_n(&r->mb->cmd_tail, __ATOMIC_ACQUIRE);
}

/* Copies between a command's data buffer (its iovecs) and BUF, from byte OFF on. */
static void data_io(struct ring *r, struct cmd *c, uint64_t off, void *buf, size_t len, int to_map)
{
	uint8_t *b = buf;

	for (uint32_t i = 0; i < c->iov_cnt && len; i++) {
		uint64_t base = (uint64_t)(uintptr_t)c->iov[i].iov_base, l = c->iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		l -= off;
		if (l > len)
			l = len;
		if (to_map)
			memcpy(r->map + base + off, b, l);
		else
			memcpy(b, r->map + base + off, l);
		b += l;
		len -= l;
		off = 0;
	}
}

static void data_fill(struct ring *r, struct cmd *c, uint64_t off, const void *buf, size_t len)
{
	data_io(r, c, off, (void *)buf, len, 1);
}

static void data_read(struct ring *r, struct cmd *c, uint64_t off, void *buf, size_t len)
{
	data_io(r, c, off, buf, len, 0);
}

/* Fills the data-in buffer with the pattern of the blocks from LBA on. */
static void data_fill_pattern(struct ring *r, struct cmd *c, uint64_t lba, uint64_t len)
{
	uint8_t *blk = malloc(r->bs);

	if (len > c->data_len)
		len = c->data_len;
	for (uint64_t o = 0; o < len; o += r->bs) {
		size_t n = len - o < r->bs ? len - o : r->bs;

		pat_fill(blk, lba + o / r->bs, r->bs, r->bs);
		data_fill(r, c, o, blk, n);
	}
	free(blk);
}

/*
 * Completes C (lock held): the response goes into the first CMD entry at cmd_tail, which
 * may be another command's slot (out-of-order completion, as libtcmu does).
 */
static int ring_complete(struct ring *r, struct cmd *c, uint8_t status, uint8_t uflags,
			 uint32_t read_len, const uint8_t *sense, size_t sense_len)
{
	uint32_t t = ring_tail(r), one = 1;
	struct tcmu_cmd_entry *e;

	while (t != r->rd) {
		struct tcmu_cmd_entry_hdr *h = (void *)(r->cmdr + t);

		if (tcmu_hdr_get_op(h->len_op) == TCMU_OP_CMD)
			break;
		t = (t + tcmu_hdr_get_len(h->len_op)) % r->cmdr_size;
	}
	if (t == r->rd) {
		ring_err(r, "completion of cmd %u: no CMD entry between tail and head", c->id);
		return -1;
	}
	e = (void *)(r->cmdr + t);
	e->hdr.cmd_id = c->id;
	e->hdr.uflags = uflags;
	e->rsp.scsi_status = status;
	e->rsp.read_len = read_len;
	memset(e->rsp.sense_buffer, 0, TCMU_SENSE_BUFFERSIZE);
	if (sense)
		memcpy(e->rsp.sense_buffer, sense, sense_len);
	__atomic_store_n(&r->mb->cmd_tail, (t + tcmu_hdr_get_len(e->hdr.len_op)) % r->cmdr_size,
			 __ATOMIC_RELEASE);
	if (write(r->fd, &one, sizeof(one)) != sizeof(one))
		ring_err(r, "write to %s: %s", r->uio, strerror(errno));

	for (int i = 0; i < r->nheld; i++) {
		if (r->held[i] != c)
			continue;
		memmove(&r->held[i], &r->held[i + 1], (r->nheld - i - 1) * sizeof(r->held[0]));
		r->nheld--;
		break;
	}
	free(c->iov);
	free(c);
	return 0;
}

static int complete_good(struct ring *r, struct cmd *c)
{
	return ring_complete(r, c, SAM_STAT_GOOD, 0, 0, NULL, 0);
}

static int complete_sense(struct ring *r, struct cmd *c, uint8_t key, uint8_t asc, uint8_t ascq)
{
	uint8_t s[18];

	sense_fixed(s, key, asc, ascq);
	return ring_complete(r, c, SAM_STAT_CHECK_CONDITION, 0, 0, s, sizeof(s));
}

static int rw_decode(const uint8_t *cdb, uint64_t *lba, uint32_t *blocks)
{
	switch (cdb[0]) {
	case 0x08: case 0x0a:
		*lba = (uint32_t)(cdb[1] & 0x1f) << 16 | get_be16(cdb + 2);
		*blocks = cdb[4] ? cdb[4] : 256;
		return 1;
	case 0x28: case 0x2a:
		*lba = get_be32(cdb + 2);
		*blocks = get_be16(cdb + 7);
		return 1;
	case 0xa8: case 0xaa:
		*lba = get_be32(cdb + 2);
		*blocks = get_be32(cdb + 6);
		return 1;
	case 0x88: case 0x8a:
		*lba = get_be64(cdb + 2);
		*blocks = get_be32(cdb + 10);
		return 1;
	}
	return 0;
}

/* Serves C like a minimal disk: the midlayer's and sd's commands, and the tests' ones. */
static void serve(struct ring *r, struct cmd *c)
{
	const uint8_t *cdb = c->cdb;
	uint8_t buf[64] = { 0 };
	uint64_t blocks = r->size / r->bs, lba;
	uint32_t n;
	size_t len;

	r->nauto++;
	switch (cdb[0]) {
	case 0x12: /* INQUIRY */
		if (cdb[1] & 1) {
			if (cdb[2] != 0x00) {
				complete_sense(r, c, ILLEGAL_REQUEST, 0x24, 0x00);
				return;
			}
			/* Supported VPD pages: only this one. */
			buf[3] = 1;
			len = 5;
		} else {
			buf[2] = 6;	/* SPC-4 */
			buf[3] = 2;
			buf[4] = 31;
			buf[7] = 0x02;	/* CmdQue */
			memcpy(buf + 8, VENDOR, 8);
			memset(buf + 16, ' ', 16);
			memcpy(buf + 16, r->model, strlen(r->model));
			memcpy(buf + 32, "0001", 4);
			len = 36;
		}
		break;
	case 0x25: /* READ CAPACITY(10) */
		put_be32(buf, blocks - 1 > 0xffffffffull ? 0xffffffff : blocks - 1);
		put_be32(buf + 4, r->bs);
		len = 8;
		break;
	case 0x9e: /* SERVICE ACTION IN(16) */
		if ((cdb[1] & 0x1f) != 0x10) {
			complete_sense(r, c, ILLEGAL_REQUEST, 0x24, 0x00);
			return;
		}
		r->nrc16++;
		put_be64(buf, blocks - 1);
		put_be32(buf + 8, r->bs);
		len = 32;
		break;
	case 0x00: /* TEST UNIT READY */
	case 0x1b: /* START STOP UNIT */
	case 0x1e: /* PREVENT ALLOW MEDIUM REMOVAL */
	case 0x2f: /* VERIFY(10) */
	case 0x35: /* SYNCHRONIZE CACHE(10) */
	case 0x91: /* SYNCHRONIZE CACHE(16) */
	case 0x0a: case 0x2a: case 0xaa: case 0x8a: /* WRITE */
		complete_good(r, c);
		return;
	case 0x08: case 0x28: case 0xa8: case 0x88: /* READ */
		rw_decode(cdb, &lba, &n);
		data_fill_pattern(r, c, lba, (uint64_t)n * r->bs);
		complete_good(r, c);
		return;
	case VENDOR_OP:
		ring_complete(r, c, SAM_STAT_GOOD, TCMU_UFLAG_UNKNOWN_OP, 0, NULL, 0);
		return;
	default: /* MODE SENSE and everything else */
		complete_sense(r, c, ILLEGAL_REQUEST, 0x20, 0x00);
		return;
	}
	/* Data-in responses: zero the whole buffer, then the reply. */
	if (c->data_len) {
		uint8_t *z = calloc(1, c->data_len);

		data_fill(r, c, 0, z, c->data_len);
		free(z);
		data_fill(r, c, 0, buf, len < c->data_len ? len : c->data_len);
	}
	complete_good(r, c);
}

static int is_test_cmd(const struct cmd *c)
{
	switch (c->cdb[0]) {
	case 0x28: case 0x2a:
		return c->cdb[6] == TAG_GROUP;
	case VENDOR_OP:
		return 1;
	}
	return 0;
}

/* Parses the CMD entry at r->rd (lock held). */
static struct cmd *parse_cmd(struct ring *r, uint32_t len)
{
	struct tcmu_cmd_entry *e = (void *)(r->cmdr + r->rd);
	uint64_t ent_start = r->cmdr_off + r->rd, data_off = r->cmdr_off + r->cmdr_size;
	struct cmd *c = calloc(1, sizeof(*c));
	uint32_t n;

	c->id = e->hdr.cmd_id;
	c->off = r->rd;
	c->len = len;
	c->len_op = e->hdr.len_op;
	c->iov_cnt = e->req.iov_cnt;
	c->iov_bidi_cnt = e->req.iov_bidi_cnt;
	c->iov_dif_cnt = e->req.iov_dif_cnt;
	c->cdb_off = e->req.cdb_off;
	n = c->iov_cnt + c->iov_bidi_cnt;
	if (n > (len - ENTRY_IOV_OFF) / sizeof(struct iovec)) {
		ring_err(r, "entry at %u (len %u): %u iovecs do not fit", r->rd, len, n);
		n = 0;
		c->iov_cnt = c->iov_bidi_cnt = 0;
	}
	c->iov = calloc(n + 1, sizeof(struct iovec));
	memcpy(c->iov, (uint8_t *)e + ENTRY_IOV_OFF, n * sizeof(struct iovec));
	for (uint32_t i = 0; i < n; i++) {
		uint64_t b = (uint64_t)(uintptr_t)c->iov[i].iov_base, l = c->iov[i].iov_len;

		if (b < data_off || b + l > r->map_size || b + l < b) {
			ring_err(r, "cmd %u: iov[%u] = {%#llx, %llu} outside the data area [%#llx, %#zx)",
				 c->id, i, (unsigned long long)b, (unsigned long long)l,
				 (unsigned long long)data_off, r->map_size);
			c->iov[i].iov_len = 0;
		} else if (i < c->iov_cnt) {
			c->data_len += l;
		}
	}
	/* The CDB lies inside the entry, after the iovecs. */
	if (c->cdb_off < ent_start + ENTRY_IOV_OFF + n * sizeof(struct iovec) ||
	    c->cdb_off + 6 > ent_start + len) {
		ring_err(r, "cmd %u: cdb_off %llu outside its entry [%llu, %llu)", c->id,
			 (unsigned long long)c->cdb_off, (unsigned long long)ent_start,
			 (unsigned long long)(ent_start + len));
		return c;
	}
	memcpy(c->cdb, r->map + c->cdb_off, 6);
	n = cdb_size(c->cdb);
	if (n > 16 || c->cdb_off + n > ent_start + len)
		ring_err(r, "cmd %u: cdb (%u bytes at %llu) does not fit its entry", c->id, n,
			 (unsigned long long)c->cdb_off);
	else
		memcpy(c->cdb, r->map + c->cdb_off, n);
	return c;
}

/* Looks at every new entry (lock held). */
static void ring_process(struct ring *r)
{
	uint32_t head = ring_head(r);

	if (head % TCMU_OP_ALIGN_SIZE || head >= r->cmdr_size) {
		ring_err(r, "cmd_head %u: not 8-aligned or beyond the ring (%u)", head, r->cmdr_size);
		r->stop = 1;
		return;
	}
	while (r->rd != head) {
		struct tcmu_cmd_entry_hdr *h = (void *)(r->cmdr + r->rd);
		uint32_t len = tcmu_hdr_get_len(h->len_op), op = tcmu_hdr_get_op(h->len_op);
		struct cmd *c;

		if (!len || len % TCMU_OP_ALIGN_SIZE || r->rd + len > r->cmdr_size) {
			ring_err(r, "entry at %u: bad length %u (op %u, ring %u)", r->rd, len, op,
				 r->cmdr_size);
			r->stop = 1;
			return;
		}
		if (r->after_pad_pending) {
			r->after_pad_pending = 0;
			r->after_pad_off = r->rd;
			r->after_pad_len = len;
		}
		switch (op) {
		case TCMU_OP_PAD:
			r->npads++;
			r->pad_off = r->rd;
			r->pad_len = len;
			r->pad_id = h->cmd_id;
			r->pad_flags = h->kflags << 8 | h->uflags;
			r->after_pad_pending = 1;
			if (r->rd + len != r->cmdr_size)
				ring_err(r, "PAD at %u, length %u does not end at the ring end %u",
					 r->rd, len, r->cmdr_size);
			break;
		case TCMU_OP_CMD:
			r->ncmds++;
			c = parse_cmd(r, len);
			r->rd = (r->rd + len) % r->cmdr_size;
			r->last_ms = now_ms();
			if (r->hold && is_test_cmd(c) && r->nheld < MAX_HELD)
				r->held[r->nheld++] = c;
			else
				serve(r, c);
			continue;
		case TCMU_OP_TMR:
			r->ntmrs++;
			break;
		default:
			ring_err(r, "entry at %u: unknown op %u", r->rd, op);
			break;
		}
		r->rd = (r->rd + len) % r->cmdr_size;
		r->last_ms = now_ms();
	}
}

static void *ring_thread(void *arg)
{
	struct ring *r = arg;

	while (!r->stop) {
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		uint32_t count;

		if (poll(&p, 1, 20) > 0 && (p.revents & POLLIN)) {
			if (read(r->fd, &count, sizeof(count)) != sizeof(count) && errno != EAGAIN)
				sleep_ms(5);
		}
		pthread_mutex_lock(&r->lock);
		ring_process(r);
		pthread_mutex_unlock(&r->lock);
	}
	return NULL;
}

/* Serves every held command (no more holding): used to unblock initiators. */
static void ring_release_all(struct ring *r)
{
	pthread_mutex_lock(&r->lock);
	r->hold = 0;
	while (r->nheld)
		serve(r, r->held[0]);
	pthread_mutex_unlock(&r->lock);
}

/* Waits until at least N commands are held; returns how many are. */
static int wait_held(struct ring *r, int n, unsigned int ms)
{
	uint64_t end = now_ms() + ms;
	int got;

	pthread_mutex_lock(&r->lock);
	while (r->nheld < n && now_ms() < end) {
		pthread_mutex_unlock(&r->lock);
		sleep_ms(2);
		pthread_mutex_lock(&r->lock);
	}
	got = r->nheld;
	pthread_mutex_unlock(&r->lock);
	return got;
}

/* Waits until no entry arrived for QUIET ms (at most MS ms); returns 0 if it did. */
static int wait_quiet(struct ring *r, unsigned int quiet, unsigned int ms)
{
	uint64_t end = now_ms() + ms;

	for (;;) {
		uint64_t t = now_ms();
		int idle;

		pthread_mutex_lock(&r->lock);
		idle = ring_head(r) == r->rd && t - r->last_ms >= quiet;
		pthread_mutex_unlock(&r->lock);
		if (idle)
			return 0;
		if (t >= end)
			return -1;
		sleep_ms(10);
	}
}

/* ----------------------------------------------------------------------------------- */
/* Initiator side: SG_IO from threads                                                  */

struct job {
	pthread_t th;
	char dev[64];
	uint8_t cdb[16];
	int cdb_len;
	int dir;
	uint8_t *buf;
	uint32_t len;
	uint8_t sense[96];
	struct sg_io_hdr h;
	int rc, err;
	int started, joined;
	volatile int done;
};

static void job_run(struct job *j)
{
	int fd = open(j->dev, O_RDWR);

	if (fd < 0) {
		j->rc = -1;
		j->err = errno;
		__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
		return;
	}
	memset(&j->h, 0, sizeof(j->h));
	j->h.interface_id = 'S';
	j->h.cmdp = j->cdb;
	j->h.cmd_len = j->cdb_len;
	j->h.dxfer_direction = j->dir;
	j->h.dxferp = j->buf;
	j->h.dxfer_len = j->len;
	j->h.sbp = j->sense;
	j->h.mx_sb_len = sizeof(j->sense);
	j->h.timeout = SG_TIMEOUT_MS;
	j->rc = ioctl(fd, SG_IO, &j->h);
	j->err = j->rc ? errno : 0;
	close(fd);
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
}

static void *job_thread(void *arg)
{
	job_run(arg);
	return NULL;
}

static int job_done(struct job *j)
{
	return __atomic_load_n(&j->done, __ATOMIC_ACQUIRE);
}

static int job_ok(struct job *j)
{
	return j->rc == 0 && j->h.status == SAM_STAT_GOOD && j->h.host_status == 0;
}

/* ----------------------------------------------------------------------------------- */
/* The fixture: a user device, its ring, a tcm_loop LUN                                */

FIXTURE(ring) {
	struct ring r;
	int hba_made, dev_made, mapped, loop_made, linked;
	char sg[64];
	char sd[32];
	struct job *jobs[MAX_JOBS];
	int njobs;
	uint64_t t0;
};

/* Best-effort removal of what this test (or an earlier, killed one) left. */
static void cleanup_configfs(void)
{
	DIR *d;
	struct dirent *de;
	char path[512];

	d = opendir(LUN);
	if (d) {
		while ((de = readdir(d))) {
			struct stat st;

			snprintf(path, sizeof(path), LUN "/%s", de->d_name);
			if (!lstat(path, &st) && S_ISLNK(st.st_mode))
				unlink(path);
		}
		closedir(d);
		rmdir(LUN);
	}
	if (!access(TPG, F_OK)) {
		write_file(TPG "/nexus", "NULL");
		rmdir(TPG);
	}
	rmdir(LOOP "/" WWN);
	rmdir(LOOP);
	rmdir(DEV);
	rmdir(HBA);
}

FIXTURE_SETUP(ring)
{
	int ret;

	memset(self, 0, sizeof(*self));
	self->r.fd = -1;
	self->t0 = now_ms();
	pthread_mutex_init(&self->r.lock, NULL);
	cleanup_configfs();
	ret = system("modprobe tcm_loop 2>/dev/null");
	(void)ret;
}

static struct job *job_new(FIXTURE_DATA(ring) *self, const uint8_t *cdb, int cdb_len, int dir,
			   uint32_t len)
{
	struct job *j = calloc(1, sizeof(*j));

	snprintf(j->dev, sizeof(j->dev), "%s", self->sg);
	memcpy(j->cdb, cdb, cdb_len);
	j->cdb_len = cdb_len;
	j->dir = dir;
	j->len = len;
	if (len && posix_memalign((void **)&j->buf, 4096, len) == 0)
		memset(j->buf, 0x11, len);
	if (self->njobs < MAX_JOBS)
		self->jobs[self->njobs++] = j;
	return j;
}

static void job_start(struct job *j)
{
	j->started = !pthread_create(&j->th, NULL, job_thread, j);
	if (!j->started) {
		j->rc = -1;
		j->err = EAGAIN;
		j->done = 1;
	}
}

/* Waits for J at most MS ms; returns whether it finished. */
static int job_wait(struct job *j, unsigned int ms)
{
	uint64_t end = now_ms() + ms;

	while (!job_done(j) && now_ms() < end)
		sleep_ms(1);
	if (!job_done(j))
		return 0;
	if (j->started && !j->joined) {
		pthread_join(j->th, NULL);
		j->joined = 1;
	}
	return 1;
}

/* Runs one command synchronously from the calling thread. */
static struct job *sg_cmd(FIXTURE_DATA(ring) *self, const uint8_t *cdb, int cdb_len, int dir,
			  uint32_t len)
{
	struct job *j = job_new(self, cdb, cdb_len, dir, len);

	job_run(j);
	return j;
}

static void job_log(struct __test_metadata *_metadata, const char *what, struct job *j)
{
	TH_LOG("%s: rc %d (%s) status %#x host %#x driver %#x resid %d sense %02x/%02x/%02x (%u bytes)",
	       what, j->rc, strerror(j->err), j->h.status, j->h.host_status, j->h.driver_status,
	       j->h.resid, j->sense[2] & 0xf, j->sense[12], j->sense[13], j->h.sb_len_wr);
}

static const char *module_name(void)
{
	const char *m = getenv("TCMU_MODULE");

	return m ? m : "?";
}

/*
 * Creates and enables the user device with EXTRA control parameters, maps its ring and
 * starts the handler thread.
 */
static void dev_create(struct __test_metadata *_metadata, FIXTURE_DATA(ring) *self,
		       uint32_t bs, uint64_t size, const char *extra)
{
	struct ring *r = &self->r;
	char path[512], buf[512], want[256];
	struct dirent *de;
	DIR *d;

	r->bs = bs;
	r->size = size;
	snprintf(r->model, sizeof(r->model), "ring%u", getpid() % 100000);

	ASSERT_EQ(0, mkdir(HBA, 0755)) TH_LOG("mkdir %s: %s", HBA, strerror(errno));
	self->hba_made = 1;
	ASSERT_EQ(0, mkdir(DEV, 0755)) TH_LOG("mkdir %s: %s", DEV, strerror(errno));
	self->dev_made = 1;
	snprintf(buf, sizeof(buf),
		 "dev_config=" DEV_CONFIG ",dev_size=%llu,hw_block_size=%u,nl_reply_supported=-1,%s",
		 (unsigned long long)size, bs, extra);
	ASSERT_EQ(0, write_file(DEV "/control", buf)) TH_LOG("control '%s' refused", buf);
	ASSERT_EQ(0, write_file(DEV "/enable", "1")) TH_LOG("enable failed");

	/* Our UIO device, by name. */
	snprintf(want, sizeof(want), "tcm-user/%d/" DEV_NAME "/" DEV_CONFIG, HBA_ID);
	d = opendir("/sys/class/uio");
	ASSERT_NE(NULL, d);
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "uio", 3))
			continue;
		snprintf(path, sizeof(path), "/sys/class/uio/%s/name", de->d_name);
		if (read_file(path, buf, sizeof(buf)) > 0 && !strcmp(buf, want)) {
			snprintf(r->uio, sizeof(r->uio), "%.31s", de->d_name);
			break;
		}
	}
	closedir(d);
	ASSERT_NE(0, r->uio[0]) TH_LOG("no /sys/class/uio/*/name == %s", want);

	snprintf(path, sizeof(path), "/sys/class/uio/%s/maps/map0/size", r->uio);
	ASSERT_LT(0, read_file(path, buf, sizeof(buf)));
	r->map_size = strtoull(buf, NULL, 0);
	ASSERT_LT(0, r->map_size);
	snprintf(path, sizeof(path), "/dev/%s", r->uio);
	r->fd = open(path, O_RDWR);
	ASSERT_LE(0, r->fd) TH_LOG("open %s: %s", path, strerror(errno));
	r->map = mmap(NULL, r->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	ASSERT_NE(MAP_FAILED, r->map) TH_LOG("mmap %s (%zu bytes): %s", path, r->map_size,
					     strerror(errno));
	self->mapped = 1;
	r->mb = (void *)r->map;
	r->cmdr_off = r->mb->cmdr_off;
	r->cmdr_size = r->mb->cmdr_size;
	ASSERT_EQ(0, r->cmdr_off % 8);
	ASSERT_LT(0, r->cmdr_size);
	ASSERT_LE((uint64_t)r->cmdr_off + r->cmdr_size, r->map_size);
	r->cmdr = r->map + r->cmdr_off;
	/* A fresh ring starts empty; the handler resumes from cmd_tail anyway. */
	r->rd = ring_tail(r) % r->cmdr_size;
	r->last_ms = now_ms();
	ASSERT_EQ(0, pthread_create(&r->th, NULL, ring_thread, r));
	r->th_running = 1;
}

/* Exports the device through tcm_loop and waits for its sg (and sd) node. */
static void dev_export(struct __test_metadata *_metadata, FIXTURE_DATA(ring) *self)
{
	char path[512], buf[256], sgname[32] = "";
	uint64_t end;
	struct stat st;

	ASSERT_EQ(0, access(LOOP, F_OK) && mkdir(LOOP, 0755))
		TH_LOG("mkdir %s: %s (is tcm_loop available?)", LOOP, strerror(errno));
	self->loop_made = 1;
	ASSERT_EQ(0, mkdir(LOOP "/" WWN, 0755)) TH_LOG("mkdir %s: %s", WWN, strerror(errno));
	ASSERT_EQ(0, mkdir(TPG, 0755)) TH_LOG("mkdir %s: %s", TPG, strerror(errno));
	ASSERT_EQ(0, mkdir(LUN, 0755)) TH_LOG("mkdir %s: %s", LUN, strerror(errno));
	ASSERT_EQ(0, write_file(TPG "/nexus", INITIATOR));
	/* Linking scans the LUN (INQUIRY...): the handler thread answers. */
	ASSERT_EQ(0, symlink(DEV, LUN_LINK)) TH_LOG("symlink: %s", strerror(errno));
	self->linked = 1;

	for (end = now_ms() + 20000; !sgname[0] && now_ms() < end; sleep_ms(20)) {
		DIR *d = opendir("/sys/class/scsi_generic");
		struct dirent *de;

		while (d && (de = readdir(d))) {
			if (strncmp(de->d_name, "sg", 2))
				continue;
			snprintf(path, sizeof(path), "/sys/class/scsi_generic/%s/device/vendor",
				 de->d_name);
			if (read_file(path, buf, sizeof(buf)) <= 0 || strcmp(buf, VENDOR))
				continue;
			snprintf(path, sizeof(path), "/sys/class/scsi_generic/%s/device/model",
				 de->d_name);
			if (read_file(path, buf, sizeof(buf)) <= 0 || strcmp(buf, self->r.model))
				continue;
			snprintf(sgname, sizeof(sgname), "%.31s", de->d_name);
		}
		if (d)
			closedir(d);
	}
	ASSERT_NE(0, sgname[0]) TH_LOG("no sg device with vendor %s model %s", VENDOR,
				       self->r.model);
	snprintf(self->sg, sizeof(self->sg), "/dev/%s", sgname);
	if (stat(self->sg, &st)) {
		unsigned int maj, min;

		snprintf(path, sizeof(path), "/sys/class/scsi_generic/%s/dev", sgname);
		ASSERT_LT(0, read_file(path, buf, sizeof(buf)));
		ASSERT_EQ(2, sscanf(buf, "%u:%u", &maj, &min));
		snprintf(self->sg, sizeof(self->sg), "/tmp/tcmu_ring_%s", sgname);
		unlink(self->sg);
		ASSERT_EQ(0, mknod(self->sg, S_IFCHR | 0600, makedev(maj, min)));
	}

	/* The disk sd makes of it (sd probes asynchronously, then reads partitions). */
	for (end = now_ms() + 20000; !self->sd[0] && now_ms() < end; sleep_ms(20)) {
		DIR *d;
		struct dirent *de;

		snprintf(path, sizeof(path), "/sys/class/scsi_generic/%s/device/block", sgname);
		d = opendir(path);
		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.')
				snprintf(self->sd, sizeof(self->sd), "%.31s", de->d_name);
		if (d)
			closedir(d);
	}
	ASSERT_NE(0, self->sd[0]) TH_LOG("no sd disk on %s", sgname);
	ASSERT_EQ(0, wait_quiet(&self->r, 300, 10000)) TH_LOG("ring never went quiet after the probe");
	TH_LOG("%s: %s %s, %s, map %zu bytes, ring %u bytes, %u probe commands, setup %llu ms",
	       module_name(), self->r.uio, self->sg, self->sd, self->r.map_size,
	       self->r.cmdr_size, self->r.ncmds, (unsigned long long)(now_ms() - self->t0));
}

static void dev_start(struct __test_metadata *_metadata, FIXTURE_DATA(ring) *self,
		      uint32_t bs, uint64_t size, const char *extra)
{
	dev_create(_metadata, self, bs, size, extra);
	dev_export(_metadata, self);
}

FIXTURE_TEARDOWN(ring)
{
	struct ring *r = &self->r;
	int stuck = 0;

	/* Unblock the initiators: whatever is held gets served, new commands too. */
	if (r->th_running)
		ring_release_all(r);
	for (int i = 0; i < self->njobs; i++) {
		struct job *j = self->jobs[i];

		if (j->started && !job_wait(j, 15000)) {
			stuck++;
			continue;
		}
		free(j->buf);
		free(j);
	}
	EXPECT_EQ(0, stuck) TH_LOG("%d initiator commands never completed", stuck);
	if (self->linked)
		EXPECT_EQ(0, unlink(LUN_LINK)) TH_LOG("unlink LUN: %s", strerror(errno));
	if (self->loop_made) {
		rmdir(LUN);
		write_file(TPG "/nexus", "NULL");
		rmdir(TPG);
		rmdir(LOOP "/" WWN);
		rmdir(LOOP);
	}
	if (r->th_running) {
		r->stop = 1;
		pthread_join(r->th, NULL);
		/* Commands served after the initiators finished (sd's remove path). */
		ring_release_all(r);
	}
	EXPECT_EQ(0, r->nerr) TH_LOG("ring errors: %s", r->err);
	if (self->mapped)
		munmap(r->map, r->map_size);
	if (r->fd >= 0)
		close(r->fd);
	if (self->dev_made)
		EXPECT_EQ(0, rmdir(DEV)) TH_LOG("rmdir %s: %s", DEV, strerror(errno));
	if (self->hba_made)
		EXPECT_EQ(0, rmdir(HBA)) TH_LOG("rmdir %s: %s", HBA, strerror(errno));
	if (self->sg[0] && !strncmp(self->sg, "/tmp/", 5))
		unlink(self->sg);
	TH_LOG("%s: %llu ms", module_name(), (unsigned long long)(now_ms() - self->t0));
}

#define DEF_SIZE	(16ull << 20)
#define DEF_PARAMS	"cmd_ring_size_mb=1,max_data_area_mb=4"

/* ----------------------------------------------------------------------------------- */
/* Tests                                                                                */

/* The mailbox of a fresh device, and the ring state after sd's probe. */
TEST_F(ring, mailbox)
{
	struct ring *r = &self->r;
	char buf[512];

	dev_create(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	TH_LOG("%s: mailbox version %u flags %#x (OOOC %d READ_LEN %d TMR %d KEEP_BUF %d) cmdr_off %u cmdr_size %u map %zu",
	       module_name(), r->mb->version, r->mb->flags,
	       !!(r->mb->flags & TCMU_MAILBOX_FLAG_CAP_OOOC),
	       !!(r->mb->flags & TCMU_MAILBOX_FLAG_CAP_READ_LEN),
	       !!(r->mb->flags & TCMU_MAILBOX_FLAG_CAP_TMR),
	       !!(r->mb->flags & TCMU_MAILBOX_FLAG_CAP_KEEP_BUF),
	       r->cmdr_off, r->cmdr_size, r->map_size);
	EXPECT_EQ(TCMU_MAILBOX_VERSION, r->mb->version);
	EXPECT_EQ(sizeof(struct tcmu_mailbox), r->cmdr_off);
	EXPECT_EQ(128, r->cmdr_off);
	EXPECT_EQ((1u << 20) - 128, r->cmdr_size);
	EXPECT_TRUE(r->mb->flags & TCMU_MAILBOX_FLAG_CAP_OOOC);
	EXPECT_TRUE(r->mb->flags & TCMU_MAILBOX_FLAG_CAP_READ_LEN);
	/*
	 * Only defined capabilities. (The C module advertises all four; CAP_TMR and
	 * CAP_KEEP_BUF are optional: logged above, not required.)
	 */
	EXPECT_EQ(0, r->mb->flags & ~(TCMU_MAILBOX_FLAG_CAP_OOOC | TCMU_MAILBOX_FLAG_CAP_READ_LEN |
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
		if (!r->npads) {
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
	TH_LOG("%s: %u commands in %llu ms; entries: TUR %u, READ(10) %u bytes; PAD at %u len %u, next entry at %u len %u",
	       module_name(), sent, (unsigned long long)(now_ms() - t0), tur_len, rd_len,
	       r->pad_off, r->pad_len, r->after_pad_off, r->after_pad_len);
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
	uint64_t lba;
	uint32_t n;
	int held;

	dev_start(_metadata, self, 512, DEF_SIZE, DEF_PARAMS);
	if (!(r->mb->flags & TCMU_MAILBOX_FLAG_CAP_OOOC))
		SKIP(return, "no CAP_OOOC");
	r->hold = 1;
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
	EXPECT_EQ(ca->off, ring_tail(r)) TH_LOG("first entry is not at the tail");
	TH_LOG("cmd %u at %u, cmd %u at %u: completing %u first", ca->id, ca->off, cb->id,
	       cb->off, cb->id);
	data_fill_pattern(r, cb, 200, 4096);
	EXPECT_EQ(0, complete_good(r, cb));
	pthread_mutex_unlock(&r->lock);

	EXPECT_TRUE(job_wait(b, 5000)) TH_LOG("second READ not completed by its out-of-order completion");
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
	/* C: target_complete_cmd(CHECK CONDITION) -> NOT READY, LOGICAL UNIT COMMUNICATION FAILURE. */
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
	if (!(r->mb->flags & TCMU_MAILBOX_FLAG_CAP_READ_LEN))
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
		EXPECT_EQ(0, ring_complete(r, c, SAM_STAT_GOOD, TCMU_UFLAG_READ_LEN, 2048, NULL, 0));
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
		EXPECT_TRUE(base + len <= bb || base >= bb + blk) TH_LOG("iov[%u] overlaps B's buffer", i);
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
	EXPECT_EQ(0, memcmp(got, c->buf, 4 * blk)) TH_LOG("data in the ring differs from the WRITE's");
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
		EXPECT_FALSE(job_done(jobs[i])) TH_LOG("WRITE %d completed without the handler", i);
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
