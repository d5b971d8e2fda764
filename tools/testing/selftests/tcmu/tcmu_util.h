/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the TCMU kselftests that are their own userspace handler (tcmu_ring.c,
 * tcmu_fail.c): a user device created through configfs, its UIO ring mapped and served
 * from a thread (include/uapi/linux/target_core_user.h), initiator threads sending SCSI
 * commands with SG_IO to the /dev/sgN node of a tcm_loop LUN exporting the device.
 *
 * The handler thread answers what the SCSI midlayer and sd send on their own (INQUIRY,
 * READ CAPACITY, reads of the partition table, ...). In "hold" mode it keeps the commands
 * the tests send (READ(10)/WRITE(10) tagged with group number TAG_GROUP, and the vendor
 * opcode 0xc0) for the test to complete, in the order and with the status it chooses.
 * Completions are written libtcmu-style: into the first CMD slot at cmd_tail, whatever
 * command occupied that slot, then cmd_tail is advanced and 4 bytes are written to the
 * UIO device.
 *
 * The including file names the fixture this defines (its data is tdev_t) before it
 * includes this header:
 *	#define TDEV_FIXTURE ring
 *
 * Needs tcm_loop (CONFIG_LOOPBACK_TARGET), sd and sg. Run with the module under test
 * loaded (TCMU_MODULE may name it, for the log only).
 */
#ifndef TCMU_UTIL_H
#define TCMU_UTIL_H

#ifndef TDEV_FIXTURE
#error "define TDEV_FIXTURE (the fixture name) before including this header"
#endif

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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
#include <sys/wait.h>
#include <scsi/sg.h>

#include "../kselftest_harness.h"

/* M(TDEV_FIXTURE) with TDEV_FIXTURE expanded first: FIXTURE(ring), FIXTURE_SETUP(ring)... */
#define TDEV_EXPAND_(m, f)	m(f)
#define tdev_t			TDEV_EXPAND_(FIXTURE_DATA, TDEV_FIXTURE)

/*
 * For what another thread, a forked handler or the kernel (the mailbox) changes under us:
 * each access is made, once and whole, as with the kernel's macros (relaxed atomics here).
 */
#ifndef READ_ONCE
#define READ_ONCE(x)		__atomic_load_n(&(x), __ATOMIC_RELAXED)
#endif
#ifndef WRITE_ONCE
#define WRITE_ONCE(x, val)	__atomic_store_n(&(x), (val), __ATOMIC_RELAXED)
#endif

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
#define MAX_TMR_IDS	16
#define MAX_JOBS	32
#define SG_TIMEOUT_MS	60000

#define SAM_STAT_GOOD			0x00
#define SAM_STAT_CHECK_CONDITION	0x02
#define SAM_STAT_BUSY			0x08
#define SAM_STAT_TASK_SET_FULL		0x28
#define NOT_READY		0x02
#define MEDIUM_ERROR		0x03
#define ILLEGAL_REQUEST		0x05

/* offsetof(struct tcmu_cmd_entry, req.iov[0]): the iovecs follow the request header. */
#define ENTRY_IOV_OFF	offsetof(struct tcmu_cmd_entry, req.iov)

/* ----------------------------------------------------------------------------------- */
/* Small helpers                                                                        */

/* The text of PATH exactly as read (no trimming); returns its length or -errno. */
static int read_raw(const char *path, char *buf, size_t len)
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
	return n;
}

/* As read_raw(), without trailing newlines and spaces. */
static int read_file(const char *path, char *buf, size_t len)
{
	int n = read_raw(path, buf, len);

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
	uint64_t seen_ms;		/* when the handler parsed it */
};

struct ring {
	int fd;
	char uio[32];
	uint8_t *map;
	size_t map_size;
	struct tcmu_mailbox *mb;	/* READ_ONCE() or atomics only */
	uint8_t *cmdr;
	uint32_t cmdr_off, cmdr_size;
	uint32_t rd;			/* next entry to look at */
	uint32_t bs;
	uint64_t size;
	char model[17];

	/*
	 * Guards the ring and what follows. No ASSERT_*() while holding it: the teardown
	 * takes it.
	 */
	pthread_mutex_t lock;
	pthread_t th;
	int th_running;
	int stop;			/* READ_ONCE()/WRITE_ONCE() */

	int hold;			/* keep the tests' commands */
	uint64_t hold_from_lba;		/* ... only those from this LBA on (0: all) */
	struct cmd *held[MAX_HELD];
	int nheld;

	/*
	 * TMR checking (tmr_check_on()): the LBA + 1 of the latest command seen with each
	 * cmd_id (~0 for one without an LBA, 0 for an id never seen). Every id a TMR entry
	 * names must have been seen; an ABORT TASK may only name commands from
	 * abort_from_lba on (those the test lets time out).
	 */
	uint64_t *id_lba;
	uint64_t abort_from_lba;
	unsigned int ntmr_abort, ntmr_reset, ntmr_ids;

	uint64_t last_ms;		/* when the last entry was seen */
	unsigned int ncmds, npads, ntmrs, nrc16, nauto;
	/* The last TMR entry: its type, command count and (the first MAX_TMR_IDS) ids. */
	uint8_t tmr_type;
	uint32_t tmr_cnt;
	uint16_t tmr_ids[MAX_TMR_IDS];
	/* The last PAD, and the entry that followed it. */
	uint32_t pad_off, pad_len, pad_id, pad_flags;
	int after_pad_pending;
	uint32_t after_pad_off, after_pad_len;

	int nerr;
	char err[1024];
};

static void ring_err(struct ring *r, const char *fmt, ...)
	__printf(2, 3);

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

/* Forgets a held command without completing it (lock held), and frees it. */
static void held_drop(struct ring *r, struct cmd *c)
{
	for (int i = 0; i < r->nheld; i++) {
		if (r->held[i] != c)
			continue;
		memmove(&r->held[i], &r->held[i + 1], (r->nheld - i - 1) * sizeof(r->held[0]));
		r->nheld--;
		break;
	}
	free(c->iov);
	free(c);
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
	held_drop(r, c);
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
	uint64_t blocks = r->size / r->bs, lba = 0;
	uint32_t n = 0;
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
		c->iov_cnt = 0;
		c->iov_bidi_cnt = 0;
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

/* With hold_from_lba, only READs and WRITEs from that LBA on are held. */
static int held_wanted(struct ring *r, const struct cmd *c)
{
	uint64_t lba;
	uint32_t blocks;

	return !r->hold_from_lba || (rw_decode(c->cdb, &lba, &blocks) && lba >= r->hold_from_lba);
}

/* Checks TMR entries against the commands seen (see struct ring): allocates the table. */
static inline int tmr_check_on(struct ring *r, uint64_t abort_from_lba)
{
	r->id_lba = calloc(65536, sizeof(r->id_lba[0]));
	r->abort_from_lba = abort_from_lba;
	return r->id_lba ? 0 : -1;
}

static void tmr_check_cmd(struct ring *r, const struct cmd *c)
{
	uint64_t lba;
	uint32_t blocks;

	r->id_lba[c->id] = rw_decode(c->cdb, &lba, &blocks) ? lba + 1 : ~0ULL;
}

static void tmr_check_entry(struct ring *r, const struct tcmu_tmr_entry *t, uint32_t cnt)
{
	if (t->tmr_type == TCMU_TMR_ABORT_TASK)
		r->ntmr_abort++;
	else if (t->tmr_type == TCMU_TMR_LUN_RESET)
		r->ntmr_reset++;
	for (uint32_t i = 0; i < cnt; i++) {
		uint16_t id = t->cmd_ids[i];
		uint64_t l = r->id_lba[id];

		r->ntmr_ids++;
		if (!l)
			ring_err(r, "TMR type %u names cmd_id %u, never on the ring before it",
				 t->tmr_type, id);
		else if (t->tmr_type == TCMU_TMR_ABORT_TASK &&
			 (l == ~0ULL || l - 1 < r->abort_from_lba))
			ring_err(r, "ABORT TASK names cmd_id %u, whose command (LBA %lld) nobody aborted",
				 id, l == ~0ULL ? -1LL : (long long)(l - 1));
	}
}

/* Looks at every new entry (lock held). */
static void ring_process(struct ring *r)
{
	uint32_t head = ring_head(r);

	if (head % TCMU_OP_ALIGN_SIZE || head >= r->cmdr_size) {
		ring_err(r, "cmd_head %u: not 8-aligned or beyond the ring (%u)", head,
			 r->cmdr_size);
		WRITE_ONCE(r->stop, 1);
		return;
	}
	while (r->rd != head) {
		struct tcmu_cmd_entry_hdr *h = (void *)(r->cmdr + r->rd);
		uint32_t len = tcmu_hdr_get_len(h->len_op), op = tcmu_hdr_get_op(h->len_op);
		struct cmd *c;

		if (!len || len % TCMU_OP_ALIGN_SIZE || r->rd + len > r->cmdr_size) {
			ring_err(r, "entry at %u: bad length %u (op %u, ring %u)", r->rd, len, op,
				 r->cmdr_size);
			WRITE_ONCE(r->stop, 1);
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
			c->seen_ms = now_ms();
			r->last_ms = c->seen_ms;
			if (r->id_lba)
				tmr_check_cmd(r, c);
			if (r->hold && is_test_cmd(c) && r->nheld < MAX_HELD && held_wanted(r, c))
				r->held[r->nheld++] = c;
			else
				serve(r, c);
			continue;
		case TCMU_OP_TMR: {
			struct tcmu_tmr_entry *t = (void *)h;
			uint32_t cnt = t->cmd_cnt;

			if (len < sizeof(*t) || (len - sizeof(*t)) / sizeof(t->cmd_ids[0]) < cnt) {
				ring_err(r, "TMR entry at %u: %u ids do not fit its length %u",
					 r->rd, cnt, len);
				cnt = 0;
			}
			r->tmr_type = t->tmr_type;
			r->tmr_cnt = t->cmd_cnt;
			for (uint32_t i = 0; i < cnt && i < MAX_TMR_IDS; i++)
				r->tmr_ids[i] = t->cmd_ids[i];
			r->ntmrs++;
			if (r->id_lba)
				tmr_check_entry(r, t, cnt);
			break;
		}
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

	while (!READ_ONCE(r->stop)) {
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
	unsigned int timeout_ms;	/* SG_IO timeout; 0: SG_TIMEOUT_MS */
	uint64_t t_start, t_done;	/* now_ms() around the ioctl */
	int done;			/* atomics only */
};

static void job_run(struct job *j)
{
	int fd = open(j->dev, O_RDWR);

	j->t_start = now_ms();
	j->t_done = j->t_start;
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
	j->h.timeout = j->timeout_ms ? j->timeout_ms : SG_TIMEOUT_MS;
	j->t_start = now_ms();
	j->rc = ioctl(fd, SG_IO, &j->h);
	j->err = j->rc ? errno : 0;
	j->t_done = now_ms();
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

static inline int job_ok(struct job *j)
{
	return j->rc == 0 && j->h.status == SAM_STAT_GOOD && j->h.host_status == 0;
}

/* A LUN reset from a thread (SG_SCSI_RESET_DEVICE: tcm_loop sends TMR LUN_RESET). */
struct reset_job {
	pthread_t th;
	char dev[64];
	int rc, err;
	int done;			/* atomics only */
};

static inline void *reset_thread(void *arg)
{
	struct reset_job *rj = arg;
	int op = SG_SCSI_RESET_DEVICE, fd = open(rj->dev, O_RDWR | O_NONBLOCK);

	rj->rc = fd < 0 ? -1 : ioctl(fd, SG_SCSI_RESET, &op);
	rj->err = rj->rc ? errno : 0;
	if (fd >= 0)
		close(fd);
	__atomic_store_n(&rj->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* ----------------------------------------------------------------------------------- */
/* The fixture: a user device, its ring, a tcm_loop LUN                                */

TDEV_EXPAND_(FIXTURE, TDEV_FIXTURE) {
	struct ring r;
	int hba_made, dev_made, mapped, loop_made, linked;
	char sg[64];			/* the node the initiators open */
	char sgname[32];		/* sgN */
	char sd[32];
	struct job *jobs[MAX_JOBS];
	int njobs;
	uint64_t t0;
	pid_t child;			/* a forked handler to kill at teardown */
	int needs_reset;		/* the ring may be in a bad state: reset it at teardown */
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

TDEV_EXPAND_(FIXTURE_SETUP, TDEV_FIXTURE)
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

static struct job *job_new(tdev_t *self, const uint8_t *cdb, int cdb_len, int dir,
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
		WRITE_ONCE(j->done, 1);
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
static inline struct job *sg_cmd(tdev_t *self, const uint8_t *cdb, int cdb_len, int dir,
				 uint32_t len)
{
	struct job *j = job_new(self, cdb, cdb_len, dir, len);

	job_run(j);
	return j;
}

static inline void job_log(struct __test_metadata *_metadata, const char *what, struct job *j)
{
	char sense[32];

	snprintf(sense, sizeof(sense), "%02x/%02x/%02x (%u bytes)", j->sense[2] & 0xf,
		 j->sense[12], j->sense[13], j->h.sb_len_wr);
	TH_LOG("%s: rc %d (%s) status %#x host %#x driver %#x resid %d sense %s",
	       what, j->rc, strerror(j->err), j->h.status, j->h.host_status, j->h.driver_status,
	       j->h.resid, sense);
}

static const char *module_name(void)
{
	const char *m = getenv("TCMU_MODULE");

	if (m && *m)
		return m;
	if (!access("/sys/module/target_core_user", F_OK))
		return "target_core_user";
	if (!access("/sys/module/tcmu_rs", F_OK))
		return "tcmu_rs";
	return "?";
}

/* Creates the user device and writes its control parameters (plus EXTRA). */
static void dev_make(struct __test_metadata *_metadata, tdev_t *self,
		     uint32_t bs, uint64_t size, const char *extra)
{
	struct ring *r = &self->r;
	char buf[512];

	r->bs = bs;
	r->size = size;
	snprintf(r->model, sizeof(r->model), "ring%u", getpid() % 100000);

	ASSERT_EQ(0, mkdir(HBA, 0755)) TH_LOG("mkdir %s: %s", HBA, strerror(errno));
	self->hba_made = 1;
	ASSERT_EQ(0, mkdir(DEV, 0755)) TH_LOG("mkdir %s: %s", DEV, strerror(errno));
	self->dev_made = 1;
	snprintf(buf, sizeof(buf), "dev_config=" DEV_CONFIG
		 ",dev_size=%llu,hw_block_size=%u,nl_reply_supported=-1,%s",
		 (unsigned long long)size, bs, extra);
	ASSERT_EQ(0, write_file(DEV "/control", buf)) TH_LOG("control '%s' refused", buf);
}

/* Enables the device and finds its UIO device (nobody has it open yet). */
static void dev_enable(struct __test_metadata *_metadata, tdev_t *self)
{
	struct ring *r = &self->r;
	char path[512], buf[512], want[256];
	struct dirent *de;
	DIR *d;

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
}

/* Creates the user device with EXTRA control parameters and enables it. */
static void dev_configure(struct __test_metadata *_metadata, tdev_t *self,
			  uint32_t bs, uint64_t size, const char *extra)
{
	dev_make(_metadata, self, bs, size, extra);
	dev_enable(_metadata, self);
}

/*
 * Opens and maps R's UIO device and reads the mailbox; returns 0 or -errno (no ASSERT: a
 * forked handler uses it too). The handler resumes from cmd_tail.
 */
static int ring_map(struct ring *r)
{
	char path[64];
	int err;

	snprintf(path, sizeof(path), "/dev/%s", r->uio);
	r->fd = open(path, O_RDWR);
	if (r->fd < 0)
		return -errno;
	r->map = mmap(NULL, r->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (r->map == MAP_FAILED) {
		err = -errno;
		r->map = NULL;
		close(r->fd);
		r->fd = -1;
		return err;
	}
	r->mb = (void *)r->map;
	r->cmdr_off = READ_ONCE(r->mb->cmdr_off);
	r->cmdr_size = READ_ONCE(r->mb->cmdr_size);
	if (r->cmdr_off % 8 || !r->cmdr_size || r->cmdr_size % 8 ||
	    (uint64_t)r->cmdr_off + r->cmdr_size > r->map_size)
		return -EPROTO;
	r->cmdr = r->map + r->cmdr_off;
	r->rd = ring_tail(r) % r->cmdr_size;
	r->last_ms = now_ms();
	return 0;
}

/* The handler attaches: opens and maps the UIO device. */
static void ring_attach(struct __test_metadata *_metadata, tdev_t *self)
{
	struct ring *r = &self->r;
	int ret = ring_map(r);

	if (r->map)
		self->mapped = 1;
	ASSERT_EQ(0, ret) TH_LOG("open/mmap /dev/%s (%zu bytes, cmdr_off %u cmdr_size %u): %s",
				 r->uio, r->map_size, r->cmdr_off, r->cmdr_size, strerror(-ret));
}

/* Starts the handler thread on the mapped ring. */
static void ring_start(struct __test_metadata *_metadata, tdev_t *self)
{
	struct ring *r = &self->r;

	WRITE_ONCE(r->stop, 0);
	ASSERT_EQ(0, pthread_create(&r->th, NULL, ring_thread, r));
	r->th_running = 1;
}

/* The handler goes away: stops its thread, unmaps and closes the UIO device. */
static inline void ring_detach(tdev_t *self)
{
	struct ring *r = &self->r;

	if (r->th_running) {
		WRITE_ONCE(r->stop, 1);
		pthread_join(r->th, NULL);
		r->th_running = 0;
	}
	while (r->nheld) {
		struct cmd *c = r->held[--r->nheld];

		free(c->iov);
		free(c);
	}
	if (self->mapped)
		munmap(r->map, r->map_size);
	self->mapped = 0;
	r->map = NULL;
	r->mb = NULL;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

/*
 * Creates and enables the user device with EXTRA control parameters, maps its ring and
 * starts the handler thread.
 */
static void dev_create(struct __test_metadata *_metadata, tdev_t *self,
		       uint32_t bs, uint64_t size, const char *extra)
{
	dev_configure(_metadata, self, bs, size, extra);
	ring_attach(_metadata, self);
	ring_start(_metadata, self);
}

/* Exports the device through tcm_loop and waits for its sg (and sd) node. */
static void dev_export(struct __test_metadata *_metadata, tdev_t *self)
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
	snprintf(self->sgname, sizeof(self->sgname), "%s", sgname);
	snprintf(self->sg, sizeof(self->sg), "/dev/%s", sgname);
	if (stat(self->sg, &st)) {
		unsigned int maj, min;
		int n;

		snprintf(path, sizeof(path), "/sys/class/scsi_generic/%s/dev", sgname);
		ASSERT_LT(0, read_file(path, buf, sizeof(buf)));
		n = sscanf(buf, "%u:%u", &maj, &min);
		ASSERT_EQ(2, n);
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
	/*
	 * (A handler other than the thread waits for the probe to end itself.) The probe's
	 * commands come in bursts; TCMU_QUIET_MS (default 300) is the gap that ends it, longer
	 * on slow kernels, where a late probe command would land in the middle of a test.
	 */
	if (self->r.th_running) {
		const char *q = getenv("TCMU_QUIET_MS");
		unsigned int quiet = q ? strtoul(q, NULL, 10) : 300;

		ASSERT_EQ(0, wait_quiet(&self->r, quiet, 10000 + quiet))
			TH_LOG("ring never went quiet after the probe");
	}
	TH_LOG("%s: %s %s, %s, map %zu bytes, ring %u bytes, %u probe commands, setup %llu ms",
	       module_name(), self->r.uio, self->sg, self->sd, self->r.map_size,
	       self->r.cmdr_size, self->r.ncmds, (unsigned long long)(now_ms() - self->t0));
}

static inline void dev_start(struct __test_metadata *_metadata, tdev_t *self,
			     uint32_t bs, uint64_t size, const char *extra)
{
	dev_create(_metadata, self, bs, size, extra);
	dev_export(_metadata, self);
}

/*
 * action/reset_ring (1: commands on the ring complete with BUSY) with the handler thread
 * kept out; the handler then starts over at offset 0 and forgets the commands it held.
 * Returns 0 or -errno.
 */
static inline int ring_reset_level(tdev_t *self, const char *level)
{
	struct ring *r = &self->r;
	int ret;

	pthread_mutex_lock(&r->lock);
	ret = write_file(DEV "/action/reset_ring", level);
	if (!ret) {
		r->rd = 0;
		while (r->nheld) {
			struct cmd *c = r->held[--r->nheld];

			free(c->iov);
			free(c);
		}
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static int ring_reset(tdev_t *self)
{
	return ring_reset_level(self, "1");
}

TDEV_EXPAND_(FIXTURE_TEARDOWN, TDEV_FIXTURE)
{
	struct ring *r = &self->r;
	int stuck = 0;

	if (self->child > 0) {
		kill(self->child, SIGKILL);
		waitpid(self->child, NULL, 0);
		self->child = 0;
	}
	/* A ring the test left in a bad state: the kernel fails what is on it. */
	if (self->needs_reset)
		ring_reset(self);
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
		WRITE_ONCE(r->stop, 1);
		pthread_join(r->th, NULL);
		/* Commands served after the initiators finished (sd's remove path). */
		ring_release_all(r);
	}
	EXPECT_EQ(0, r->nerr) TH_LOG("ring errors: %s", r->err);
	free(r->id_lba);
	r->id_lba = NULL;
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

#endif /* TCMU_UTIL_H */
