// SPDX-License-Identifier: GPL-2.0
/*
 * The TCM-USER generic netlink family of the TCMU backstore ("user" backend), run against
 * whichever module provides it: target_core_user (C) or tcmu_rs (Rust). The test is the
 * handler's netlink side, with raw generic netlink sockets (no libnl):
 *
 *  - the family: name TCM-USER, version 2, multicast group "config", admin-only commands;
 *  - the events a device's life multicasts to "config": ADDED_DEVICE at enable,
 *    RECONFIG_DEVICE when dev_config, dev_size or emulate_write_cache of an enabled device
 *    is written, REMOVED_DEVICE at rmdir, with the device's UIO name, UIO minor and index;
 *  - the reply handshake: after SET_FEATURES(SUPP_KERN_CMD_REPLY=1) the configfs write
 *    that caused an event waits for the handler's *_DONE (CMD_STATUS, DEVICE_ID) and
 *    returns its status; bad replies get an error in the netlink ack;
 *  - the module parameters block_netlink and reset_netlink (skipped when absent).
 *
 * The C module's behaviour is the expectation. Every message names the module it ran on;
 * where a module legitimately reacts unlike the C module (tcmu_rs stops waiting for a
 * reply after 30 s, and on a signal), a "DIFFERENCE" line says how.
 *
 * Writes that wait for a reply are done by forked children (the C module waits
 * uninterruptibly): every wait of the test is bounded, and the teardown answers or resets
 * what is still pending, turns replies off again (the setting is global to the module) and
 * removes the devices.
 */
/* The ring fixture of tcmu_util.h is not used here; only its small helpers. */
#define TDEV_FIXTURE nl_unused
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tcmu_util.h"
#pragma GCC diagnostic pop

#include <linux/capability.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdalign.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#define NL_HBA_ID	7073
#define NL_HBA		CORE "/user_7073"
#define NL_DEV_CONFIG	"nltest/x"
#define NL_DEV_SIZE	1048576
#define NL_CONTROL	"dev_config=" NL_DEV_CONFIG ",dev_size=1048576"
#define MAX_DEVS	3
#define MAX_WRITERS	16

#define EVENT_MS	5000	/* an event arrives within */
#define QUIET_MS	300	/* no event arrives within (when none is expected) */
#define BLOCK_MS	500	/* a write that waits for a reply is still waiting after */
#define DONE_MS		5000	/* a write ends within, once answered */
#define NOWAIT_MS	10000	/* a write that is not to wait for a reply ends within */
#define STILL_WAITS	(-EINPROGRESS)	/* it did not */
#define RS_REPLY_TIMEOUT_MS 30000	/* tcmu_rs's netlink::REPLY_TIMEOUT_MS */

/* Prefixes a message with the module it ran on. */
#define MSG(fmt, ...)	TH_LOG("[%s] " fmt, module_name(), ##__VA_ARGS__)

static int is_c_module(void)
{
	return !access("/sys/module/target_core_user", F_OK);
}

static const char *cmd_name(int cmd)
{
	switch (cmd) {
	case TCMU_CMD_ADDED_DEVICE: return "ADDED_DEVICE";
	case TCMU_CMD_REMOVED_DEVICE: return "REMOVED_DEVICE";
	case TCMU_CMD_RECONFIG_DEVICE: return "RECONFIG_DEVICE";
	case TCMU_CMD_ADDED_DEVICE_DONE: return "ADDED_DEVICE_DONE";
	case TCMU_CMD_REMOVED_DEVICE_DONE: return "REMOVED_DEVICE_DONE";
	case TCMU_CMD_RECONFIG_DEVICE_DONE: return "RECONFIG_DEVICE_DONE";
	case TCMU_CMD_SET_FEATURES: return "SET_FEATURES";
	}
	return "?";
}

static const char *err_name(int e)
{
	static char buf[64];

	if (e == 0)
		return "0";
	if (e == STILL_WAITS) {
		snprintf(buf, sizeof(buf), "still waiting after %d ms", NOWAIT_MS);
		return buf;
	}
	snprintf(buf, sizeof(buf), "%d (%s)", e, strerror(e < 0 ? -e : e));
	return buf;
}

/* ----------------------------------------------------------------------------------- */
/* Raw generic netlink                                                                  */

#define NL_BUF		8192

struct family {
	uint16_t id;
	uint32_t version, hdrsize, maxattr;
	uint32_t grp;			/* id of the group "config"; 0: none */
	int nops;
	uint32_t op_id[16], op_flags[16];
	int ngrps;
	char grp_names[256];		/* for the log */
};

struct event {
	int cmd;			/* 0: none */
	uint16_t type;
	int version;
	int has_dev, has_minor, has_id, has_cfg, has_size, has_wc;
	char dev[256], cfg[256];
	uint32_t minor, id;
	uint64_t size;
	uint8_t wc;
};

static uint32_t nl_seq = 1;

/* A generic netlink socket (extended acks, acks without the request's payload). */
static int nl_open(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC), one = 1, e;

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		e = -errno;
		close(fd);
		return e;
	}
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	return fd;
}

static struct nlmsghdr *msg_init(void *buf, uint16_t type, uint16_t flags, uint8_t cmd,
				 uint8_t version)
{
	struct nlmsghdr *nh = buf;
	struct genlmsghdr *gh;

	memset(buf, 0, NLMSG_HDRLEN + GENL_HDRLEN);
	nh->nlmsg_len = NLMSG_HDRLEN + GENL_HDRLEN;
	nh->nlmsg_type = type;
	nh->nlmsg_flags = flags;
	nh->nlmsg_seq = nl_seq++;
	gh = NLMSG_DATA(nh);
	gh->cmd = cmd;
	gh->version = version;
	return nh;
}

static void msg_put(struct nlmsghdr *nh, uint16_t type, const void *data, uint16_t len)
{
	struct nlattr *a = (struct nlattr *)((char *)nh + NLMSG_ALIGN(nh->nlmsg_len));

	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	memcpy((char *)a + NLA_HDRLEN, data, len);
	memset((char *)a + NLA_HDRLEN + len, 0, NLA_ALIGN(len) - len);
	nh->nlmsg_len = NLMSG_ALIGN(nh->nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static void msg_put_u32(struct nlmsghdr *nh, uint16_t type, uint32_t v)
{
	msg_put(nh, type, &v, sizeof(v));
}

/* Indexes the attributes in [DATA, DATA + LEN) by type (at most MAX). */
static void attrs_parse(const void *data, int len, const struct nlattr **tb, int max)
{
	const struct nlattr *a = data;

	memset(tb, 0, (max + 1) * sizeof(*tb));
	while (len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= len) {
		int type = a->nla_type & NLA_TYPE_MASK;

		if (type <= max)
			tb[type] = a;
		len -= NLA_ALIGN(a->nla_len);
		a = (const struct nlattr *)((const char *)a + NLA_ALIGN(a->nla_len));
	}
}

static const void *nla_data(const struct nlattr *a)
{
	return (const char *)a + NLA_HDRLEN;
}

static int nla_len(const struct nlattr *a)
{
	return a->nla_len - NLA_HDRLEN;
}

static uint32_t nla_u32(const struct nlattr *a)
{
	uint32_t v = 0;

	memcpy(&v, nla_data(a), nla_len(a) < 4 ? nla_len(a) : 4);
	return v;
}

/* Receives into BUF within MS ms; returns the length or -errno (-ETIMEDOUT). */
static int nl_recv(int fd, void *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;
	int r;

	r = poll(&p, 1, ms);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	n = recv(fd, buf, len, MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	return n;
}

/* The text of an extended ack's NLMSGERR_ATTR_MSG, if any. */
static void extack_msg(const struct nlmsghdr *nh, char *ext, size_t exlen)
{
	const struct nlmsgerr *e = NLMSG_DATA(nh);
	const struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];
	int off = NLMSG_HDRLEN + sizeof(*e);

	if (!ext || !exlen)
		return;
	ext[0] = 0;
	if (!(nh->nlmsg_flags & NLM_F_ACK_TLVS) || (int)nh->nlmsg_len <= off)
		return;
	attrs_parse((const char *)nh + off, nh->nlmsg_len - off, tb, NLMSGERR_ATTR_MAX);
	if (tb[NLMSGERR_ATTR_MSG])
		snprintf(ext, exlen, "%.*s", nla_len(tb[NLMSGERR_ATTR_MSG]),
			 (const char *)nla_data(tb[NLMSGERR_ATTR_MSG]));
}

/*
 * Sends NH (with NLM_F_ACK) and returns the error of its ack (0 or -errno), -ETIMEDOUT when
 * none came within MS ms. The kernel's extended ack message goes to EXT.
 */
static int nl_transact(int fd, struct nlmsghdr *nh, char *ext, size_t exlen, int ms)
{
	alignas(8) char buf[NL_BUF];
	uint64_t end = now_ms() + ms;
	uint32_t seq = nh->nlmsg_seq;

	if (ext && exlen)
		ext[0] = 0;
	nh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	if (send(fd, nh, nh->nlmsg_len, 0) != (ssize_t)nh->nlmsg_len)
		return -errno;
	for (;;) {
		int64_t left = (int64_t)(end - now_ms());
		int n = nl_recv(fd, buf, sizeof(buf), left > 0 ? left : 0);
		struct nlmsghdr *h;

		if (n < 0)
			return n;
		for (h = (void *)buf; NLMSG_OK(h, (unsigned int)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR)
				continue;
			extack_msg(h, ext, exlen);
			return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
		}
	}
}

/* A nest of CTRL_ATTR_OPS: (OP_ID, OP_FLAGS). */
static void family_op(struct family *f, const struct nlattr *a)
{
	const struct nlattr *ob[CTRL_ATTR_OP_MAX + 1];

	attrs_parse(nla_data(a), nla_len(a), ob, CTRL_ATTR_OP_MAX);
	if (ob[CTRL_ATTR_OP_ID]) {
		f->op_id[f->nops] = nla_u32(ob[CTRL_ATTR_OP_ID]);
		f->op_flags[f->nops] = ob[CTRL_ATTR_OP_FLAGS] ?
			nla_u32(ob[CTRL_ATTR_OP_FLAGS]) : 0;
		f->nops++;
	}
}

/* A nest of CTRL_ATTR_MCAST_GROUPS: (GRP_NAME, GRP_ID). */
static void family_grp(struct family *f, const struct nlattr *a)
{
	const struct nlattr *gb[CTRL_ATTR_MCAST_GRP_MAX + 1];
	const char *g;
	size_t o;

	attrs_parse(nla_data(a), nla_len(a), gb, CTRL_ATTR_MCAST_GRP_MAX);
	if (!gb[CTRL_ATTR_MCAST_GRP_NAME] || !gb[CTRL_ATTR_MCAST_GRP_ID])
		return;
	g = nla_data(gb[CTRL_ATTR_MCAST_GRP_NAME]);
	o = strlen(f->grp_names);
	f->ngrps++;
	snprintf(f->grp_names + o, sizeof(f->grp_names) - o, "%s%.*s", o ? "," : "",
		 nla_len(gb[CTRL_ATTR_MCAST_GRP_NAME]), g);
	if (!strcmp(g, "config"))
		f->grp = nla_u32(gb[CTRL_ATTR_MCAST_GRP_ID]);
}

/* CTRL_CMD_GETFAMILY NAME: fills F; returns 0 or -errno. */
static int family_get(int fd, const char *name, struct family *f)
{
	alignas(8) char buf[NL_BUF];
	struct nlmsghdr *nh = msg_init(buf, GENL_ID_CTRL, NLM_F_REQUEST, CTRL_CMD_GETFAMILY, 1);
	uint32_t seq = nh->nlmsg_seq;
	uint64_t end = now_ms() + EVENT_MS;

	memset(f, 0, sizeof(*f));
	msg_put(nh, CTRL_ATTR_FAMILY_NAME, name, strlen(name) + 1);
	if (send(fd, nh, nh->nlmsg_len, 0) != (ssize_t)nh->nlmsg_len)
		return -errno;
	for (;;) {
		int64_t left = (int64_t)(end - now_ms());
		int n = nl_recv(fd, buf, sizeof(buf), left > 0 ? left : 0);
		struct nlmsghdr *h;

		if (n < 0)
			return n;
		for (h = (void *)buf; NLMSG_OK(h, (unsigned int)n); h = NLMSG_NEXT(h, n)) {
			const struct nlattr *tb[CTRL_ATTR_MAX + 1], *a;
			int len, left2;

			if (h->nlmsg_seq != seq)
				continue;
			if (h->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
			if (h->nlmsg_type != GENL_ID_CTRL)
				continue;
			len = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN;
			attrs_parse((char *)NLMSG_DATA(h) + GENL_HDRLEN, len, tb, CTRL_ATTR_MAX);
			if (!tb[CTRL_ATTR_FAMILY_ID])
				return -EPROTO;
			f->id = *(const uint16_t *)nla_data(tb[CTRL_ATTR_FAMILY_ID]);
			if (tb[CTRL_ATTR_VERSION])
				f->version = nla_u32(tb[CTRL_ATTR_VERSION]);
			if (tb[CTRL_ATTR_HDRSIZE])
				f->hdrsize = nla_u32(tb[CTRL_ATTR_HDRSIZE]);
			if (tb[CTRL_ATTR_MAXATTR])
				f->maxattr = nla_u32(tb[CTRL_ATTR_MAXATTR]);
			/* CTRL_ATTR_OPS: nests of (OP_ID, OP_FLAGS). */
			if (tb[CTRL_ATTR_OPS]) {
				a = nla_data(tb[CTRL_ATTR_OPS]);
				left2 = nla_len(tb[CTRL_ATTR_OPS]);
				while (left2 >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN &&
				       a->nla_len <= left2 && f->nops < 16) {
					family_op(f, a);
					left2 -= NLA_ALIGN(a->nla_len);
					a = (const void *)((const char *)a + NLA_ALIGN(a->nla_len));
				}
			}
			/* CTRL_ATTR_MCAST_GROUPS: nests of (GRP_NAME, GRP_ID). */
			if (tb[CTRL_ATTR_MCAST_GROUPS]) {
				a = nla_data(tb[CTRL_ATTR_MCAST_GROUPS]);
				left2 = nla_len(tb[CTRL_ATTR_MCAST_GROUPS]);
				while (left2 >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN &&
				       a->nla_len <= left2) {
					family_grp(f, a);
					left2 -= NLA_ALIGN(a->nla_len);
					a = (const void *)((const char *)a + NLA_ALIGN(a->nla_len));
				}
			}
			return 0;
		}
	}
}

static int nl_subscribe(int fd, uint32_t grp)
{
	return setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &grp, sizeof(grp)) ? -errno : 0;
}

/* SET_FEATURES(SUPP_KERN_CMD_REPLY = ON); returns the ack's error. */
static int set_features(int fd, const struct family *f, uint8_t on, char *ext, size_t exlen)
{
	alignas(8) char buf[256];
	struct nlmsghdr *nh = msg_init(buf, f->id, 0, TCMU_CMD_SET_FEATURES, 2);

	msg_put(nh, TCMU_ATTR_SUPP_KERN_CMD_REPLY, &on, 1);
	return nl_transact(fd, nh, ext, exlen, EVENT_MS);
}

/* Reply flags: which attributes a *_DONE carries. */
#define R_STATUS	1
#define R_ID		2
#define R_BOTH		(R_STATUS | R_ID)
#define R_SHORT_STATUS	4	/* CMD_STATUS of 1 byte instead of 4 */

/* Sends command CMD (a *_DONE) with STATUS and ID as FLAGS say; returns the ack's error. */
static int send_done(int fd, const struct family *f, int cmd, int flags, int32_t status,
		     uint32_t id, char *ext, size_t exlen)
{
	alignas(8) char buf[256];
	struct nlmsghdr *nh = msg_init(buf, f->id, 0, cmd, 2);
	int8_t s8 = status;

	if (flags & R_STATUS)
		msg_put(nh, TCMU_ATTR_CMD_STATUS, &status, sizeof(status));
	if (flags & R_SHORT_STATUS)
		msg_put(nh, TCMU_ATTR_CMD_STATUS, &s8, 1);
	if (flags & R_ID)
		msg_put_u32(nh, TCMU_ATTR_DEVICE_ID, id);
	return nl_transact(fd, nh, ext, exlen, EVENT_MS);
}

/* Parses the TCM-USER message H into E (0) or returns -1 when it is none. */
static int event_parse(const struct family *f, const struct nlmsghdr *h, struct event *e)
{
	const struct genlmsghdr *gh = NLMSG_DATA(h);
	const struct nlattr *tb[TCMU_ATTR_MAX + 1];
	int len = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN;

	if (h->nlmsg_type != f->id || len < 0)
		return -1;
	memset(e, 0, sizeof(*e));
	e->cmd = gh->cmd;
	e->type = h->nlmsg_type;
	e->version = gh->version;
	attrs_parse((const char *)gh + GENL_HDRLEN, len, tb, TCMU_ATTR_MAX);
	if (tb[TCMU_ATTR_DEVICE]) {
		e->has_dev = 1;
		snprintf(e->dev, sizeof(e->dev), "%.*s", nla_len(tb[TCMU_ATTR_DEVICE]),
			 (const char *)nla_data(tb[TCMU_ATTR_DEVICE]));
	}
	if (tb[TCMU_ATTR_MINOR] && nla_len(tb[TCMU_ATTR_MINOR]) == 4) {
		e->has_minor = 1;
		e->minor = nla_u32(tb[TCMU_ATTR_MINOR]);
	}
	if (tb[TCMU_ATTR_DEVICE_ID] && nla_len(tb[TCMU_ATTR_DEVICE_ID]) == 4) {
		e->has_id = 1;
		e->id = nla_u32(tb[TCMU_ATTR_DEVICE_ID]);
	}
	if (tb[TCMU_ATTR_DEV_CFG]) {
		e->has_cfg = 1;
		snprintf(e->cfg, sizeof(e->cfg), "%.*s", nla_len(tb[TCMU_ATTR_DEV_CFG]),
			 (const char *)nla_data(tb[TCMU_ATTR_DEV_CFG]));
	}
	if (tb[TCMU_ATTR_DEV_SIZE] && nla_len(tb[TCMU_ATTR_DEV_SIZE]) == 8) {
		e->has_size = 1;
		memcpy(&e->size, nla_data(tb[TCMU_ATTR_DEV_SIZE]), 8);
	}
	if (tb[TCMU_ATTR_WRITECACHE] && nla_len(tb[TCMU_ATTR_WRITECACHE]) >= 1) {
		e->has_wc = 1;
		e->wc = *(const uint8_t *)nla_data(tb[TCMU_ATTR_WRITECACHE]);
	}
	return 0;
}

static const char *event_str(const struct event *e, char *buf, size_t len)
{
	int o = snprintf(buf, len, "%s(v%d)", cmd_name(e->cmd), e->version);

	if (e->has_dev)
		o += snprintf(buf + o, len - o, " DEVICE=%s", e->dev);
	if (e->has_minor)
		o += snprintf(buf + o, len - o, " MINOR=%u", e->minor);
	if (e->has_id)
		o += snprintf(buf + o, len - o, " DEVICE_ID=%u", e->id);
	if (e->has_cfg)
		o += snprintf(buf + o, len - o, " DEV_CFG=%s", e->cfg);
	if (e->has_size)
		o += snprintf(buf + o, len - o, " DEV_SIZE=%llu", (unsigned long long)e->size);
	if (e->has_wc)
		snprintf(buf + o, len - o, " WRITECACHE=%u", e->wc);
	return buf;
}

/* ----------------------------------------------------------------------------------- */
/* Writers: configfs writes (or rmdirs) from forked children                            */

enum { OP_WRITE, OP_RMDIR };

struct writer {
	pid_t pid;
	int fd;				/* the pipe the result comes through */
	int done;
	int res;			/* 0 or -errno */
	int signaled;			/* it died of a signal (no result) */
	uint64_t t0, t1;
	char what[200];
};

/* ----------------------------------------------------------------------------------- */
/* The fixture                                                                          */

FIXTURE(nl) {
	int ctl;			/* requests */
	int ev;				/* subscribed to "config" */
	struct family fam;
	int hba_made;
	int dev_made[MAX_DEVS];
	struct writer w[MAX_WRITERS];
	int nw;
	struct event last;		/* the last event seen (the teardown answers it) */
	int block_set;			/* block_netlink was written */
	uint64_t t0;
};

/* The fixture's data, for the helpers (as tdev_t in tcmu_util.h). */
#define nl_t		FIXTURE_DATA(nl)

static void param_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "/sys/module/%s/parameters/%s", module_name(), name);
}

static int has_param(const char *name)
{
	char p[256];

	param_path(p, sizeof(p), name);
	return !access(p, F_OK);
}

static int param_write(const char *name, const char *val)
{
	char p[256];

	param_path(p, sizeof(p), name);
	return write_file(p, val);
}

static int param_read(const char *name, char *buf, size_t len)
{
	char p[256];

	param_path(p, sizeof(p), name);
	return read_file(p, buf, len);
}

static void dev_dir(char *buf, size_t len, int i)
{
	snprintf(buf, len, NL_HBA "/nl%d", i);
}

static void dev_attr(char *buf, size_t len, int i, const char *attr)
{
	snprintf(buf, len, NL_HBA "/nl%d/%s", i, attr);
}

/* The UIO name of device I with DEV_CONFIG. */
static void uio_name_of(char *buf, size_t len, int i, const char *cfg)
{
	snprintf(buf, len, "tcm-user/%d/nl%d/%s", NL_HBA_ID, i, cfg);
}

/* statistics/scsi_dev/indx of device I (its se_device dev_index), or -1. */
static long dev_index(int i)
{
	char p[256], buf[64];

	dev_attr(p, sizeof(p), i, "statistics/scsi_dev/indx");
	if (read_file(p, buf, sizeof(buf)) <= 0)
		return -1;
	return strtol(buf, NULL, 0);
}

/* The name of /sys/class/uio/uio<MINOR>, or "" when there is none. */
static void uio_name_by_minor(uint32_t minor, char *buf, size_t len)
{
	char p[128];

	snprintf(p, sizeof(p), "/sys/class/uio/uio%u/name", minor);
	if (read_file(p, buf, len) < 0)
		buf[0] = 0;
}

/* Whether some /sys/class/uio/ * /name is NAME. */
static int uio_exists(const char *name)
{
	char p[512], buf[512];
	struct dirent *de;
	int found = 0;
	DIR *d = opendir("/sys/class/uio");

	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, "uio", 3))
			continue;
		snprintf(p, sizeof(p), "/sys/class/uio/%s/name", de->d_name);
		if (read_file(p, buf, sizeof(buf)) > 0 && !strcmp(buf, name))
			found = 1;
	}
	if (d)
		closedir(d);
	return found;
}

static struct writer *writer_start(nl_t *self, int op, const char *path,
				   const char *val)
{
	struct writer *w;
	int p[2];

	if (self->nw >= MAX_WRITERS)
		return NULL;
	w = &self->w[self->nw];
	memset(w, 0, sizeof(*w));
	if (op == OP_RMDIR)
		snprintf(w->what, sizeof(w->what), "rmdir %s", path);
	else
		snprintf(w->what, sizeof(w->what), "%s <- '%s'", path, val);
	if (pipe2(p, O_CLOEXEC))
		return NULL;
	w->t0 = now_ms();
	w->pid = fork();
	if (w->pid < 0) {
		close(p[0]);
		close(p[1]);
		return NULL;
	}
	if (w->pid == 0) {
		int res;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(p[0]);
		close(self->ev);
		close(self->ctl);
		if (op == OP_RMDIR)
			res = rmdir(path) ? -errno : 0;
		else
			res = write_file(path, val);
		if (write(p[1], &res, sizeof(res)) != sizeof(res))
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	w->fd = p[0];
	self->nw++;
	return w;
}

/* Waits at most MS ms for W to end; returns whether it did. */
static int writer_wait(struct writer *w, int ms)
{
	struct pollfd p = { .fd = w->fd, .events = POLLIN };
	int status;

	if (w->done)
		return 1;
	if (poll(&p, 1, ms) <= 0)
		return 0;
	if (read(w->fd, &w->res, sizeof(w->res)) != sizeof(w->res)) {
		w->res = -EPIPE;
		w->signaled = 1;
	}
	w->t1 = now_ms();
	close(w->fd);
	w->fd = -1;
	waitpid(w->pid, &status, 0);
	if (WIFSIGNALED(status))
		w->signaled = 1;
	w->done = 1;
	return 1;
}

/*
 * Writes VAL to PATH (VAL NULL: removes PATH) where no reply is to be waited for, from a
 * writer: its result, or STILL_WAITS when it has not ended after NOWAIT_MS (the teardown
 * ends it).
 */
static int write_nowait(nl_t *self, const char *path, const char *val)
{
	struct writer *w = writer_start(self, val ? OP_WRITE : OP_RMDIR, path, val);

	if (!w)
		return -ENOMEM;
	if (!writer_wait(w, NOWAIT_MS))
		return STILL_WAITS;
	return w->res;
}

/*
 * Waits for an event CMD on the "config" socket, at most MS ms: 0 and *E, or -ETIMEDOUT.
 * Other events on the way are logged and counted in *STRAY.
 */
static int ev_wait(struct __test_metadata *_metadata, nl_t *self, int cmd,
		   int ms, struct event *e, int *stray)
{
	alignas(8) char buf[NL_BUF];
	char s[600];
	uint64_t end = now_ms() + ms;

	for (;;) {
		int64_t left = (int64_t)(end - now_ms());
		int n = nl_recv(self->ev, buf, sizeof(buf), left > 0 ? left : 0);
		struct nlmsghdr *h;
		int found = 0;

		if (n < 0)
			return n;
		for (h = (void *)buf; NLMSG_OK(h, (unsigned int)n); h = NLMSG_NEXT(h, n)) {
			struct event x;

			if (event_parse(&self->fam, h, &x))
				continue;
			self->last = x;
			if (x.cmd == cmd && !found) {
				*e = x;
				found = 1;
				continue;
			}
			MSG("unexpected event %s", event_str(&x, s, sizeof(s)));
			if (stray)
				(*stray)++;
		}
		if (found)
			return 0;
	}
}

/* The events that arrive within MS ms (the first in *E); 0 when none. */
static int ev_count(struct __test_metadata *_metadata, nl_t *self, int ms,
		    struct event *e)
{
	alignas(8) char buf[NL_BUF];
	char s[600];
	uint64_t end = now_ms() + ms;
	int count = 0;

	memset(e, 0, sizeof(*e));
	for (;;) {
		int64_t left = (int64_t)(end - now_ms());
		int n = nl_recv(self->ev, buf, sizeof(buf), left > 0 ? left : 0);
		struct nlmsghdr *h;

		if (n < 0)
			return count;
		for (h = (void *)buf; NLMSG_OK(h, (unsigned int)n); h = NLMSG_NEXT(h, n)) {
			struct event x;

			if (event_parse(&self->fam, h, &x))
				continue;
			self->last = x;
			if (!count++)
				*e = x;
			MSG("event %s", event_str(&x, s, sizeof(s)));
		}
	}
}

/* Reads what is queued on the event socket (for the teardown's answer). */
static void ev_drain(nl_t *self, int ms)
{
	alignas(8) char buf[NL_BUF];
	int n;

	while ((n = nl_recv(self->ev, buf, sizeof(buf), ms)) > 0) {
		struct nlmsghdr *h;

		for (h = (void *)buf; NLMSG_OK(h, (unsigned int)n); h = NLMSG_NEXT(h, n)) {
			struct event x;

			if (!event_parse(&self->fam, h, &x))
				self->last = x;
		}
	}
}

/* Creates device I (and the HBA) and writes its control parameters. */
static void dev_new(struct __test_metadata *_metadata, nl_t *self, int i)
{
	char p[256];

	if (!self->hba_made) {
		ASSERT_EQ(0, mkdir(NL_HBA, 0755)) MSG("mkdir %s: %s", NL_HBA, strerror(errno));
		self->hba_made = 1;
	}
	dev_dir(p, sizeof(p), i);
	ASSERT_EQ(0, mkdir(p, 0755)) MSG("mkdir %s: %s", p, strerror(errno));
	self->dev_made[i] = 1;
	dev_attr(p, sizeof(p), i, "control");
	ASSERT_EQ(0, write_file(p, NL_CONTROL)) MSG("control '%s' refused", NL_CONTROL);
}

/* Checks an event's device attributes against device I (its dev_config CFG). */
static void check_event_dev(struct __test_metadata *_metadata, const struct event *e, int i,
			    const char *cfg, int uio_gone)
{
	char want[256], uio[256], s[600];
	long idx = dev_index(i);

	uio_name_of(want, sizeof(want), i, cfg);
	EXPECT_EQ(2, e->version) MSG("%s: generic netlink version", event_str(e, s, sizeof(s)));
	EXPECT_TRUE(e->has_dev) MSG("%s: no TCMU_ATTR_DEVICE", cmd_name(e->cmd));
	EXPECT_STREQ(want, e->dev) MSG("%s: TCMU_ATTR_DEVICE", cmd_name(e->cmd));
	EXPECT_TRUE(e->has_minor) MSG("%s: no TCMU_ATTR_MINOR", cmd_name(e->cmd));
	EXPECT_TRUE(e->has_id) MSG("%s: no TCMU_ATTR_DEVICE_ID", cmd_name(e->cmd));
	if (idx >= 0)
		EXPECT_EQ(idx, (long)e->id)
			MSG("%s: TCMU_ATTR_DEVICE_ID vs statistics/scsi_dev/indx",
			    cmd_name(e->cmd));
	if (!uio_gone && e->has_minor) {
		uio_name_by_minor(e->minor, uio, sizeof(uio));
		EXPECT_STREQ(want, uio) MSG("%s: /sys/class/uio/uio%u/name", cmd_name(e->cmd),
					    e->minor);
	}
}

/* Turns replies on (SET_FEATURES); ASSERTs it. */
static void replies_on(struct __test_metadata *_metadata, nl_t *self)
{
	char ext[256];
	int r = set_features(self->ctl, &self->fam, 1, ext, sizeof(ext));

	ASSERT_EQ(0, r) MSG("SET_FEATURES(SUPP_KERN_CMD_REPLY=1): %s %s", err_name(r), ext);
}

static int reply(nl_t *self, int cmd, int32_t status, uint32_t id)
{
	return send_done(self->ctl, &self->fam, cmd, R_BOTH, status, id, NULL, 0);
}

/*
 * Writes VAL to attribute ATTR of device I (or removes it: ATTR NULL) from a writer with
 * replies on: expects event EV_CMD, that the write waits for the reply, answers STATUS and
 * expects the write to end with WANT. Returns the event in *E.
 */
static void handshake(struct __test_metadata *_metadata, nl_t *self, int i,
		      const char *attr, const char *val, int ev_cmd, int32_t status, int want,
		      struct event *e)
{
	struct writer *w;
	char p[256], s[600];
	int r;

	if (attr)
		dev_attr(p, sizeof(p), i, attr);
	else
		dev_dir(p, sizeof(p), i);
	w = writer_start(self, attr ? OP_WRITE : OP_RMDIR, p, val);
	ASSERT_NE(NULL, w);
	r = ev_wait(_metadata, self, ev_cmd, EVENT_MS, e, NULL);
	ASSERT_EQ(0, r) MSG("%s: no %s event: %s", w->what, cmd_name(ev_cmd), err_name(r));
	MSG("%s: %s", w->what, event_str(e, s, sizeof(s)));
	EXPECT_FALSE(writer_wait(w, BLOCK_MS))
		MSG("%s did not wait for the reply: ended with %s", w->what, err_name(w->res));
	if (w->done)
		return;
	r = reply(self, ev_cmd + 3, status, e->id);
	EXPECT_EQ(0, r) MSG("%s(%d) for device %u: ack %s", cmd_name(ev_cmd + 3), status,
			    e->id, err_name(r));
	ASSERT_TRUE(writer_wait(w, DONE_MS))
		MSG("%s still waits %d ms after the reply", w->what, DONE_MS);
	EXPECT_EQ(want, w->res) MSG("%s after %s(%d): %s", w->what, cmd_name(ev_cmd + 3), status,
				    err_name(w->res));
	/* Answered: a second answer finds nothing waiting. */
	r = reply(self, ev_cmd + 3, 0, e->id);
	EXPECT_EQ(-ENODEV, r) MSG("second %s for device %u: ack %s", cmd_name(ev_cmd + 3), e->id,
				  err_name(r));
}

/*
 * The reconfigurations of an enabled device, each a change from NL_CONTROL's values:
 * writing VAL to ATTR multicasts RECONFIG_DEVICE with the netlink attribute NLA
 * (holding VAL) and neither of the other two. reply_reconfig refuses each once with REFUSE.
 */
static const struct reconfig {
	const char *attr;
	const char *val;
	int nla;
	int32_t refuse;
} reconfigs[] = {
	{ "attrib/dev_size", "2097152", TCMU_ATTR_DEV_SIZE, -EINVAL },
	{ "attrib/emulate_write_cache", "1", TCMU_ATTR_WRITECACHE, -ENOTSUP },
	{ "attrib/dev_config", "nltest/y", TCMU_ATTR_DEV_CFG, -EPERM },
};

/*
 * Checks the RECONFIG_DEVICE event E that writing RC to device I (UIO minor MINOR) sent
 * (none: NULL), and the device after the write: ATTR reads NOW (RC's value, or the
 * old one when the write was refused), and the UIO device has the dev_config in place.
 */
static void check_reconfig(struct __test_metadata *_metadata, const struct event *e, int i,
			   uint32_t minor, const struct reconfig *rc, const char *now)
{
	char p[256], buf[256], want[256];

	if (e) {
		EXPECT_EQ(rc->nla == TCMU_ATTR_DEV_SIZE, e->has_size)
			MSG("%s: RECONFIG_DEVICE %s TCMU_ATTR_DEV_SIZE", rc->attr,
			    e->has_size ? "with" : "without");
		EXPECT_EQ(rc->nla == TCMU_ATTR_WRITECACHE, e->has_wc)
			MSG("%s: RECONFIG_DEVICE %s TCMU_ATTR_WRITECACHE", rc->attr,
			    e->has_wc ? "with" : "without");
		EXPECT_EQ(rc->nla == TCMU_ATTR_DEV_CFG, e->has_cfg)
			MSG("%s: RECONFIG_DEVICE %s TCMU_ATTR_DEV_CFG", rc->attr,
			    e->has_cfg ? "with" : "without");
		if (rc->nla == TCMU_ATTR_DEV_SIZE && e->has_size)
			EXPECT_EQ(strtoull(rc->val, NULL, 10), e->size)
				MSG("%s: TCMU_ATTR_DEV_SIZE", rc->attr);
		if (rc->nla == TCMU_ATTR_WRITECACHE && e->has_wc)
			EXPECT_EQ(atoi(rc->val), e->wc) MSG("%s: TCMU_ATTR_WRITECACHE", rc->attr);
		if (rc->nla == TCMU_ATTR_DEV_CFG && e->has_cfg)
			EXPECT_STREQ(rc->val, e->cfg) MSG("%s: TCMU_ATTR_DEV_CFG", rc->attr);
	}
	dev_attr(p, sizeof(p), i, rc->attr);
	EXPECT_LT(0, read_file(p, buf, sizeof(buf))) MSG("read %s", p);
	EXPECT_STREQ(now, buf) MSG("%s after writing '%s'", rc->attr, rc->val);
	if (rc->nla == TCMU_ATTR_DEV_CFG) {
		uio_name_of(want, sizeof(want), i, now);
		uio_name_by_minor(minor, buf, sizeof(buf));
		EXPECT_STREQ(want, buf) MSG("/sys/class/uio/uio%u/name after writing '%s'", minor,
					    rc->val);
	}
}

FIXTURE_SETUP(nl)
{
	char p[256];
	int r;

	self->t0 = now_ms();
	self->ev = -1;
	self->ctl = -1;
	self->ctl = nl_open();
	ASSERT_LE(0, self->ctl) MSG("netlink socket: %s", strerror(-self->ctl));
	r = family_get(self->ctl, "TCM-USER", &self->fam);
	ASSERT_EQ(0, r) MSG("no generic netlink family TCM-USER: %s", err_name(r));
	self->ev = nl_open();
	ASSERT_LE(0, self->ev) MSG("netlink socket: %s", strerror(-self->ev));
	ASSERT_NE(0u, self->fam.grp)
		MSG("TCM-USER has no group \"config\" (%s)", self->fam.grp_names);
	r = nl_subscribe(self->ev, self->fam.grp);
	ASSERT_EQ(0, r) MSG("join group config (%u): %s", self->fam.grp, err_name(r));
	/* A known state: replies off, no devices left by an earlier (killed) run. */
	r = set_features(self->ctl, &self->fam, 0, NULL, 0);
	ASSERT_EQ(0, r) MSG("SET_FEATURES(SUPP_KERN_CMD_REPLY=0): %s", err_name(r));
	for (int i = 0; i < MAX_DEVS; i++) {
		dev_dir(p, sizeof(p), i);
		rmdir(p);
	}
	rmdir(NL_HBA);
	ev_drain(self, 100);
	memset(&self->last, 0, sizeof(self->last));
}

FIXTURE_TEARDOWN(nl)
{
	char p[256];
	int stuck = 0;

	/*
	 * Writers still waiting: answer the event they wait for (the last one seen; a *_DONE of
	 * another kind would make the C module drop it and wait for ever), then reset_netlink,
	 * then a signal (enough for tcmu_rs).
	 */
	for (int i = 0; i < self->nw; i++) {
		struct writer *w = &self->w[i];

		if (writer_wait(w, 0))
			continue;
		ev_drain(self, 200);
		if (self->last.cmd >= TCMU_CMD_ADDED_DEVICE &&
		    self->last.cmd <= TCMU_CMD_RECONFIG_DEVICE && self->last.has_id)
			reply(self, self->last.cmd + 3, 0, self->last.id);
		if (writer_wait(w, 2000))
			continue;
		if (has_param("reset_netlink")) {
			param_write("block_netlink", "1");
			param_write("reset_netlink", "1");
			param_write("block_netlink", "0");
			if (writer_wait(w, 2000))
				continue;
		}
		kill(w->pid, SIGKILL);
		if (writer_wait(w, 3000))
			continue;
		stuck++;
		MSG("teardown: %s still waits (pid %d)", w->what, w->pid);
	}
	EXPECT_EQ(0, stuck) MSG("%d configfs writes never ended", stuck);
	if (self->block_set)
		EXPECT_EQ(0, param_write("block_netlink", "0"));
	if (self->ctl >= 0)
		EXPECT_EQ(0, set_features(self->ctl, &self->fam, 0, NULL, 0))
			MSG("teardown: SET_FEATURES(SUPP_KERN_CMD_REPLY=0) failed");
	for (int i = 0; i < MAX_DEVS; i++) {
		if (!self->dev_made[i])
			continue;
		dev_dir(p, sizeof(p), i);
		if (rmdir(p) && errno != ENOENT)
			EXPECT_EQ(0, -errno) MSG("teardown: rmdir %s: %s", p, strerror(errno));
	}
	if (self->hba_made)
		EXPECT_EQ(0, rmdir(NL_HBA)) MSG("teardown: rmdir %s: %s", NL_HBA, strerror(errno));
	if (self->ev >= 0)
		close(self->ev);
	if (self->ctl >= 0)
		close(self->ctl);
	MSG("%llu ms", (unsigned long long)(now_ms() - self->t0));
}

/* ----------------------------------------------------------------------------------- */
/* The tests                                                                            */

/* The family as CTRL_CMD_GETFAMILY describes it. */
TEST_F(nl, family)
{
	static const int cmds[] = { TCMU_CMD_ADDED_DEVICE_DONE, TCMU_CMD_REMOVED_DEVICE_DONE,
				    TCMU_CMD_RECONFIG_DEVICE_DONE, TCMU_CMD_SET_FEATURES };
	struct family f;
	int r;

	MSG("TCM-USER: id %u version %u hdrsize %u maxattr %u groups %s, %d ops",
	    self->fam.id, self->fam.version, self->fam.hdrsize, self->fam.maxattr,
	    self->fam.grp_names, self->fam.nops);
	EXPECT_EQ(2u, self->fam.version) MSG("family version");
	EXPECT_EQ(0u, self->fam.hdrsize) MSG("family hdrsize");
	EXPECT_EQ((uint32_t)TCMU_ATTR_MAX, self->fam.maxattr) MSG("family maxattr");
	EXPECT_EQ(1, self->fam.ngrps) MSG("groups: %s", self->fam.grp_names);
	EXPECT_STREQ("config", self->fam.grp_names);
	EXPECT_EQ(4, self->fam.nops) MSG("number of commands");
	for (unsigned int c = 0; c < ARRAY_SIZE(cmds); c++) {
		uint32_t flags;
		int found = -1;

		for (int i = 0; i < self->fam.nops; i++)
			if (self->fam.op_id[i] == (uint32_t)cmds[c])
				found = i;
		EXPECT_LE(0, found) MSG("command %s missing", cmd_name(cmds[c]));
		if (found < 0)
			continue;
		flags = self->fam.op_flags[found];
		/*
		 * GENL_ADMIN_PERM | GENL_CMD_CAP_DO (| GENL_CMD_CAP_HASPOL: the family's policy).
		 */
		EXPECT_EQ((uint32_t)(GENL_ADMIN_PERM | GENL_CMD_CAP_DO),
			  flags & (GENL_ADMIN_PERM | GENL_CMD_CAP_DO | GENL_CMD_CAP_DUMP))
			MSG("%s: flags %#x", cmd_name(cmds[c]), flags);
		if (flags != (GENL_ADMIN_PERM | GENL_CMD_CAP_DO | GENL_CMD_CAP_HASPOL))
			MSG("DIFFERENCE: %s flags %#x (C: %#x)", cmd_name(cmds[c]), flags,
			    GENL_ADMIN_PERM | GENL_CMD_CAP_DO | GENL_CMD_CAP_HASPOL);
	}
	/* Names are exact. */
	r = family_get(self->ctl, "TCM-USE", &f);
	EXPECT_EQ(-ENOENT, r) MSG("family TCM-USE: %s", err_name(r));
}

/*
 * Replies off: enable, reconfiguration and removal multicast their events and do not wait;
 * writes before enable send none.
 */
TEST_F(nl, events)
{
	char p[256], buf[256], want[256];
	const char *cfg = NL_DEV_CONFIG;
	struct event e;
	uint32_t minor, id;
	int r;

	dev_new(_metadata, self, 0);
	/* Not enabled yet: the attributes are just stored. */
	dev_attr(p, sizeof(p), 0, "attrib/dev_size");
	EXPECT_EQ(0, write_file(p, "1048576"));
	dev_attr(p, sizeof(p), 0, "attrib/emulate_write_cache");
	EXPECT_EQ(0, write_file(p, "0"));
	EXPECT_EQ(0, ev_count(_metadata, self, QUIET_MS, &e)) MSG("events before enable");

	dev_attr(p, sizeof(p), 0, "enable");
	r = write_nowait(self, p, "1");
	ASSERT_EQ(0, r) MSG("enable, replies off: %s", err_name(r));
	ASSERT_EQ(0, ev_wait(_metadata, self, TCMU_CMD_ADDED_DEVICE, EVENT_MS, &e, NULL))
		MSG("no ADDED_DEVICE");
	MSG("enable: %s", event_str(&e, buf, sizeof(buf)));
	check_event_dev(_metadata, &e, 0, NL_DEV_CONFIG, 0);
	EXPECT_FALSE(e.has_cfg || e.has_size || e.has_wc)
		MSG("ADDED_DEVICE with reconfig attributes");
	minor = e.minor;
	id = e.id;
	dev_attr(p, sizeof(p), 0, "attrib/nl_reply_supported");
	EXPECT_LT(0, read_file(p, buf, sizeof(buf)));
	EXPECT_STREQ("0", buf) MSG("attrib/nl_reply_supported after enable with replies off");

	/* The event names the device by its UIO name before a dev_config change renames it. */
	for (unsigned int k = 0; k < ARRAY_SIZE(reconfigs); k++) {
		const struct reconfig *rc = &reconfigs[k];

		dev_attr(p, sizeof(p), 0, rc->attr);
		r = write_nowait(self, p, rc->val);
		EXPECT_EQ(0, r) MSG("%s: %s", rc->attr, err_name(r));
		r = ev_wait(_metadata, self, TCMU_CMD_RECONFIG_DEVICE, EVENT_MS, &e, NULL);
		EXPECT_EQ(0, r) MSG("%s: no RECONFIG_DEVICE: %s", rc->attr, err_name(r));
		if (!r) {
			MSG("%s: %s", rc->attr, event_str(&e, buf, sizeof(buf)));
			check_event_dev(_metadata, &e, 0, cfg, rc->nla == TCMU_ATTR_DEV_CFG);
			EXPECT_EQ(minor, e.minor) MSG("%s: TCMU_ATTR_MINOR", rc->attr);
			EXPECT_EQ(id, e.id) MSG("%s: TCMU_ATTR_DEVICE_ID", rc->attr);
		}
		check_reconfig(_metadata, r ? NULL : &e, 0, minor, rc, rc->val);
		if (rc->nla == TCMU_ATTR_DEV_CFG)
			cfg = rc->val;
	}

	/* rmdir */
	dev_dir(p, sizeof(p), 0);
	r = write_nowait(self, p, NULL);
	ASSERT_EQ(0, r) MSG("rmdir, replies off: %s", err_name(r));
	self->dev_made[0] = 0;
	r = ev_wait(_metadata, self, TCMU_CMD_REMOVED_DEVICE, EVENT_MS, &e, NULL);
	ASSERT_EQ(0, r) MSG("rmdir: no REMOVED_DEVICE: %s", err_name(r));
	MSG("rmdir: %s", event_str(&e, buf, sizeof(buf)));
	uio_name_of(want, sizeof(want), 0, cfg);
	EXPECT_STREQ(want, e.dev) MSG("REMOVED_DEVICE: TCMU_ATTR_DEVICE");
	EXPECT_EQ(minor, e.minor) MSG("REMOVED_DEVICE: TCMU_ATTR_MINOR");
	EXPECT_EQ(id, e.id) MSG("REMOVED_DEVICE: TCMU_ATTR_DEVICE_ID");
	EXPECT_EQ(2, e.version);
	EXPECT_FALSE(uio_exists(want)) MSG("the UIO device outlives rmdir");
	EXPECT_EQ(0, ev_count(_metadata, self, QUIET_MS, &e)) MSG("events after REMOVED_DEVICE");
}

/*
 * Nobody in the group: enable and rmdir go on (a handler may start later), a
 * reconfiguration fails with ESRCH (the event could not be delivered).
 */
TEST_F(nl, no_listener)
{
	char p[256];
	int r;

	close(self->ev);
	self->ev = -1;
	dev_new(_metadata, self, 0);
	dev_attr(p, sizeof(p), 0, "enable");
	r = write_nowait(self, p, "1");
	ASSERT_EQ(0, r) MSG("enable with no listener: %s", err_name(r));
	dev_attr(p, sizeof(p), 0, "attrib/dev_size");
	r = write_nowait(self, p, "2097152");
	EXPECT_EQ(-ESRCH, r) MSG("dev_size with no listener: %s", err_name(r));
	/* Replies on: still no wait (nobody could answer) but the same error. */
	replies_on(_metadata, self);
	dev_attr(p, sizeof(p), 0, "attrib/nl_reply_supported");
	ASSERT_EQ(0, write_file(p, "1"));
	dev_attr(p, sizeof(p), 0, "attrib/emulate_write_cache");
	r = write_nowait(self, p, "1");
	EXPECT_EQ(-ESRCH, r) MSG("emulate_write_cache with no listener, replies on: %s",
				 err_name(r));
	EXPECT_EQ(0, set_features(self->ctl, &self->fam, 0, NULL, 0));
	dev_dir(p, sizeof(p), 0);
	r = write_nowait(self, p, NULL);
	ASSERT_EQ(0, r) MSG("rmdir with no listener: %s", err_name(r));
	self->dev_made[0] = 0;
}

/* Replies on: enable and rmdir wait for ADDED_DEVICE_DONE / REMOVED_DEVICE_DONE. */
TEST_F(nl, reply_ok)
{
	char p[256], buf[64];
	struct event e;

	replies_on(_metadata, self);
	dev_new(_metadata, self, 0);
	handshake(_metadata, self, 0, "enable", "1", TCMU_CMD_ADDED_DEVICE, 0, 0, &e);
	check_event_dev(_metadata, &e, 0, NL_DEV_CONFIG, 0);
	dev_attr(p, sizeof(p), 0, "attrib/nl_reply_supported");
	EXPECT_LT(0, read_file(p, buf, sizeof(buf)));
	EXPECT_STREQ("1", buf) MSG("attrib/nl_reply_supported after enable with replies on");
	dev_attr(p, sizeof(p), 0, "enable");
	EXPECT_LT(0, read_file(p, buf, sizeof(buf)));
	EXPECT_STREQ("1", buf);

	handshake(_metadata, self, 0, NULL, NULL, TCMU_CMD_REMOVED_DEVICE, 0, 0, &e);
	dev_dir(p, sizeof(p), 0);
	EXPECT_NE(0, access(p, F_OK)) MSG("%s still there", p);
	self->dev_made[0] = 0;
	check_event_dev(_metadata, &e, 0, NL_DEV_CONFIG, 1);
}

/*
 * A negative status fails the enable with it (no device, no REMOVED_DEVICE later); the
 * status of REMOVED_DEVICE_DONE does not stop the removal.
 */
TEST_F(nl, reply_error)
{
	char p[256], want[256];
	struct event e;
	int n;

	replies_on(_metadata, self);
	dev_new(_metadata, self, 0);
	handshake(_metadata, self, 0, "enable", "1", TCMU_CMD_ADDED_DEVICE, -ENOSPC, -ENOSPC, &e);
	uio_name_of(want, sizeof(want), 0, NL_DEV_CONFIG);
	EXPECT_FALSE(uio_exists(want)) MSG("UIO device %s after a failed enable", want);
	dev_dir(p, sizeof(p), 0);
	n = write_nowait(self, p, NULL);
	EXPECT_EQ(0, n) MSG("rmdir of the device that was not enabled: %s", err_name(n));
	self->dev_made[0] = 0;
	n = ev_count(_metadata, self, QUIET_MS, &e);
	EXPECT_EQ(0, n) MSG("events at rmdir of a device whose enable failed");

	dev_new(_metadata, self, 1);
	handshake(_metadata, self, 1, "enable", "1", TCMU_CMD_ADDED_DEVICE, 0, 0, &e);
	handshake(_metadata, self, 1, NULL, NULL, TCMU_CMD_REMOVED_DEVICE, -EIO, 0, &e);
	dev_dir(p, sizeof(p), 1);
	EXPECT_NE(0, access(p, F_OK)) MSG("%s still there", p);
	self->dev_made[1] = 0;
	uio_name_of(want, sizeof(want), 1, NL_DEV_CONFIG);
	EXPECT_FALSE(uio_exists(want)) MSG("UIO device %s after rmdir", want);
}

/*
 * RECONFIG_DEVICE with replies on (turned on after enable: the device's
 * attrib/nl_reply_supported is set by hand): the write waits and returns the status;
 * a failed one leaves the attribute as it was.
 */
TEST_F(nl, reply_reconfig)
{
	char p[256], buf[256];
	struct event e;
	uint32_t minor;
	int r;

	dev_new(_metadata, self, 0);
	dev_attr(p, sizeof(p), 0, "enable");
	ASSERT_EQ(0, (r = write_nowait(self, p, "1"))) MSG("enable: %s", err_name(r));
	ASSERT_EQ(0, ev_wait(_metadata, self, TCMU_CMD_ADDED_DEVICE, EVENT_MS, &e, NULL));
	minor = e.minor;
	replies_on(_metadata, self);

	/* The device decided at enable (replies were off): writes do not wait. */
	dev_attr(p, sizeof(p), 0, "attrib/dev_size");
	EXPECT_EQ(0, (r = write_nowait(self, p, "4194304"))) MSG("dev_size: %s", err_name(r));
	EXPECT_EQ(0, ev_wait(_metadata, self, TCMU_CMD_RECONFIG_DEVICE, EVENT_MS, &e, NULL));

	dev_attr(p, sizeof(p), 0, "attrib/nl_reply_supported");
	ASSERT_EQ(0, write_file(p, "1"));
	EXPECT_LT(0, read_file(p, buf, sizeof(buf)));
	EXPECT_STREQ("1", buf);

	/*
	 * Each reconfiguration refused (the write fails with the status, nothing changes), then
	 * accepted.
	 */
	for (unsigned int k = 0; k < ARRAY_SIZE(reconfigs); k++) {
		const struct reconfig *rc = &reconfigs[k];
		char before[256];

		dev_attr(p, sizeof(p), 0, rc->attr);
		ASSERT_LT(0, read_file(p, before, sizeof(before))) MSG("read %s", p);
		handshake(_metadata, self, 0, rc->attr, rc->val, TCMU_CMD_RECONFIG_DEVICE,
			  rc->refuse, rc->refuse, &e);
		check_reconfig(_metadata, &e, 0, minor, rc, before);
		handshake(_metadata, self, 0, rc->attr, rc->val, TCMU_CMD_RECONFIG_DEVICE, 0, 0,
			  &e);
		check_reconfig(_metadata, &e, 0, minor, rc, rc->val);
	}

	/* A device with nl_reply_supported 0 (or -1) does not wait. */
	dev_attr(p, sizeof(p), 0, "attrib/nl_reply_supported");
	ASSERT_EQ(0, write_file(p, "-1"));
	dev_attr(p, sizeof(p), 0, "attrib/emulate_write_cache");
	EXPECT_EQ(0, (r = write_nowait(self, p, "0"))) MSG("emulate_write_cache: %s", err_name(r));
	EXPECT_EQ(0, ev_wait(_metadata, self, TCMU_CMD_RECONFIG_DEVICE, EVENT_MS, &e, NULL));
	/* ... nor at rmdir (the teardown turns replies off only after this). */
	dev_dir(p, sizeof(p), 0);
	EXPECT_EQ(0, (r = write_nowait(self, p, NULL))) MSG("rmdir: %s", err_name(r));
	self->dev_made[0] = 0;
	EXPECT_EQ(0, ev_wait(_metadata, self, TCMU_CMD_REMOVED_DEVICE, EVENT_MS, &e, NULL));
}

/* Replies for nothing, with missing or bad attributes, or to the wrong device: errors. */
TEST_F(nl, bad_replies)
{
	char p[256], ext[256], s[600];
	struct writer *w;
	struct event e;
	int r;

	/* Nothing waits. */
	for (int cmd = TCMU_CMD_ADDED_DEVICE_DONE; cmd <= TCMU_CMD_RECONFIG_DEVICE_DONE; cmd++) {
		r = send_done(self->ctl, &self->fam, cmd, R_BOTH, 0, 4242, ext, sizeof(ext));
		EXPECT_EQ(-ENODEV, r) MSG("%s for no pending event: %s %s", cmd_name(cmd),
					  err_name(r), ext);
	}
	r = send_done(self->ctl, &self->fam, TCMU_CMD_ADDED_DEVICE_DONE, R_ID, 0, 4242, ext,
		      sizeof(ext));
	EXPECT_EQ(-EINVAL, r) MSG("ADDED_DEVICE_DONE without CMD_STATUS: %s %s", err_name(r), ext);
	r = send_done(self->ctl, &self->fam, TCMU_CMD_REMOVED_DEVICE_DONE, R_STATUS, 0, 0, ext,
		      sizeof(ext));
	EXPECT_EQ(-EINVAL, r) MSG("REMOVED_DEVICE_DONE without DEVICE_ID: %s %s", err_name(r), ext);
	r = send_done(self->ctl, &self->fam, TCMU_CMD_RECONFIG_DEVICE_DONE, 0, 0, 0, ext,
		      sizeof(ext));
	EXPECT_EQ(-EINVAL, r) MSG("RECONFIG_DEVICE_DONE without attributes: %s %s", err_name(r),
				  ext);
	r = send_done(self->ctl, &self->fam, TCMU_CMD_ADDED_DEVICE_DONE, R_SHORT_STATUS | R_ID, 0,
		      4242, ext, sizeof(ext));
	EXPECT_EQ(-ERANGE, r) MSG("ADDED_DEVICE_DONE with a 1-byte CMD_STATUS: %s %s",
				  err_name(r), ext);
	/* Events are not commands; nor is an unknown number. */
	r = send_done(self->ctl, &self->fam, TCMU_CMD_ADDED_DEVICE, R_BOTH, 0, 4242, ext,
		      sizeof(ext));
	EXPECT_EQ(-EOPNOTSUPP, r) MSG("ADDED_DEVICE sent to the kernel: %s %s", err_name(r), ext);
	r = send_done(self->ctl, &self->fam, 99, R_BOTH, 0, 4242, ext, sizeof(ext));
	EXPECT_EQ(-EOPNOTSUPP, r) MSG("command 99: %s %s", err_name(r), ext);

	/* An enable waits: bad replies leave it waiting. */
	replies_on(_metadata, self);
	dev_new(_metadata, self, 0);
	dev_attr(p, sizeof(p), 0, "enable");
	w = writer_start(self, OP_WRITE, p, "1");
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, ev_wait(_metadata, self, TCMU_CMD_ADDED_DEVICE, EVENT_MS, &e, NULL));
	MSG("pending: %s", event_str(&e, s, sizeof(s)));
	r = send_done(self->ctl, &self->fam, TCMU_CMD_ADDED_DEVICE_DONE, R_BOTH, 0, e.id + 1000,
		      ext, sizeof(ext));
	EXPECT_EQ(-ENODEV, r) MSG("ADDED_DEVICE_DONE for device %u instead of %u: %s %s",
				  e.id + 1000, e.id, err_name(r), ext);
	r = send_done(self->ctl, &self->fam, TCMU_CMD_ADDED_DEVICE_DONE, R_ID, 0, e.id, ext,
		      sizeof(ext));
	EXPECT_EQ(-EINVAL, r) MSG("ADDED_DEVICE_DONE without CMD_STATUS: %s %s", err_name(r), ext);
	r = send_done(self->ctl, &self->fam, TCMU_CMD_ADDED_DEVICE_DONE, R_STATUS, 0, e.id, ext,
		      sizeof(ext));
	EXPECT_EQ(-EINVAL, r) MSG("ADDED_DEVICE_DONE without DEVICE_ID: %s %s", err_name(r), ext);
	r = send_done(self->ctl, &self->fam, TCMU_CMD_ADDED_DEVICE_DONE, R_SHORT_STATUS | R_ID, 0,
		      e.id, ext, sizeof(ext));
	EXPECT_EQ(-ERANGE, r) MSG("ADDED_DEVICE_DONE with a 1-byte CMD_STATUS: %s %s",
				  err_name(r), ext);
	if (is_c_module()) {
		/*
		 * tcmu_genl_cmd_done() takes the pending command off its list before it checks
		 * the kind of reply: a wrong kind leaves the write waiting for ever.
		 */
		MSG("%s",
		    "not sent: a *_DONE of the wrong kind (it would leave the enable waiting for ever)");
	} else {
		r = send_done(self->ctl, &self->fam, TCMU_CMD_RECONFIG_DEVICE_DONE, R_BOTH, 0, e.id,
			      ext, sizeof(ext));
		EXPECT_EQ(-EINVAL, r) MSG("RECONFIG_DEVICE_DONE while ADDED_DEVICE waits: %s %s",
					  err_name(r), ext);
		MSG("%s",
		    "DIFFERENCE: a *_DONE of the wrong kind is refused with EINVAL and the event still waits (the C module drops it: the write waits for ever)");
	}
	EXPECT_FALSE(writer_wait(w, BLOCK_MS)) MSG("enable ended after bad replies: %s",
						   err_name(w->res));
	r = reply(self, TCMU_CMD_ADDED_DEVICE_DONE, 0, e.id);
	EXPECT_EQ(0, r) MSG("ADDED_DEVICE_DONE: %s", err_name(r));
	ASSERT_TRUE(writer_wait(w, DONE_MS)) MSG("enable still waits after the reply");
	EXPECT_EQ(0, w->res) MSG("enable: %s", err_name(w->res));
}

/* Drops CAP_NET_ADMIN (effective and permitted) from the calling process. */
static int drop_net_admin(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -errno;
	d[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
	d[CAP_NET_ADMIN / 32].permitted &= ~(1u << (CAP_NET_ADMIN % 32));
	d[CAP_NET_ADMIN / 32].inheritable &= ~(1u << (CAP_NET_ADMIN % 32));
	if (syscall(SYS_capset, &h, d))
		return -errno;
	return 0;
}

/* The commands need CAP_NET_ADMIN; resolving the family and listening do not. */
TEST_F(nl, not_admin)
{
	struct res { int drop, fam, sub, setf, done; } res = { 1, 1, 1, 1, 1 };
	struct event e;
	char p[256];
	int pp[2], status, r;
	pid_t pid;

	ASSERT_EQ(0, pipe(pp));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct family f;
		int fd;

		close(pp[0]);
		res.drop = drop_net_admin();
		fd = nl_open();
		res.fam = fd < 0 ? fd : family_get(fd, "TCM-USER", &f);
		if (!res.fam) {
			int ev = nl_open();

			res.sub = ev < 0 ? ev : nl_subscribe(ev, f.grp);
			res.setf = set_features(fd, &f, 1, NULL, 0);
			res.done = send_done(fd, &f, TCMU_CMD_ADDED_DEVICE_DONE, R_BOTH, 0, 4242,
					     NULL, 0);
		}
		if (write(pp[1], &res, sizeof(res)) != sizeof(res))
			_exit(2);
		_exit(0);
	}
	close(pp[1]);
	{
		struct pollfd pf = { .fd = pp[0], .events = POLLIN };

		ASSERT_EQ(1, poll(&pf, 1, 10000)) MSG("the unprivileged child never answered");
		ASSERT_EQ((ssize_t)sizeof(res), read(pp[0], &res, sizeof(res)));
	}
	close(pp[0]);
	waitpid(pid, &status, 0);
	ASSERT_EQ(0, res.drop) MSG("capset: %s", err_name(res.drop));
	EXPECT_EQ(0, res.fam) MSG("GETFAMILY without CAP_NET_ADMIN: %s", err_name(res.fam));
	EXPECT_EQ(0, res.sub) MSG("joining config without CAP_NET_ADMIN: %s", err_name(res.sub));
	EXPECT_EQ(-EPERM, res.setf) MSG("SET_FEATURES without CAP_NET_ADMIN: %s",
					err_name(res.setf));
	EXPECT_EQ(-EPERM, res.done) MSG("ADDED_DEVICE_DONE without CAP_NET_ADMIN: %s",
					err_name(res.done));

	/* The refused SET_FEATURES changed nothing: an enable does not wait. */
	dev_new(_metadata, self, 0);
	dev_attr(p, sizeof(p), 0, "enable");
	r = write_nowait(self, p, "1");
	EXPECT_EQ(0, r) MSG("enable after the refused SET_FEATURES: %s", err_name(r));
	EXPECT_EQ(0, ev_wait(_metadata, self, TCMU_CMD_ADDED_DEVICE, EVENT_MS, &e, NULL));
}

/*
 * Nobody answers. The C module waits for ever (uninterruptibly; until reset_netlink);
 * tcmu_rs gives up after 30 s with ETIMEDOUT.
 */
TEST_F_TIMEOUT(nl, reply_timeout, 75)
{
	char p[256];
	struct writer *w;
	struct event e;
	bool ended;
	int r;

	replies_on(_metadata, self);
	dev_new(_metadata, self, 0);
	dev_attr(p, sizeof(p), 0, "enable");
	w = writer_start(self, OP_WRITE, p, "1");
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, ev_wait(_metadata, self, TCMU_CMD_ADDED_DEVICE, EVENT_MS, &e, NULL));
	/* Each module must take its own branch: tcmu_rs times out, C waits on. */
	ended = writer_wait(w, RS_REPLY_TIMEOUT_MS + 5000);
	if (!is_c_module())
		ASSERT_TRUE(ended)
			MSG("tcmu_rs: enable still waits %d ms after a request with no reply",
			    RS_REPLY_TIMEOUT_MS + 5000);
	if (ended) {
		MSG("DIFFERENCE: with no reply, enable ended after %llu ms with %s %s",
		    (unsigned long long)(w->t1 - w->t0), err_name(w->res),
		    "(the C module waits for ever)");
		ASSERT_FALSE(is_c_module()) MSG("the C module's enable ended without a reply");
		EXPECT_EQ(-ETIMEDOUT, w->res);
		EXPECT_LE(RS_REPLY_TIMEOUT_MS - 1000, (long)(w->t1 - w->t0));
		r = reply(self, TCMU_CMD_ADDED_DEVICE_DONE, 0, e.id);
		EXPECT_EQ(-ENODEV, r) MSG("late ADDED_DEVICE_DONE: %s", err_name(r));
		return;
	}
	MSG("enable still waits after %d ms", RS_REPLY_TIMEOUT_MS + 5000);
	r = reply(self, TCMU_CMD_ADDED_DEVICE_DONE, 0, e.id);
	EXPECT_EQ(0, r) MSG("ADDED_DEVICE_DONE: %s", err_name(r));
	ASSERT_TRUE(writer_wait(w, DONE_MS)) MSG("enable still waits after the reply");
	EXPECT_EQ(0, w->res) MSG("enable: %s", err_name(w->res));
}

/* SIGKILL to a write that waits: tcmu_rs stops waiting; the C module waits on. */
TEST_F(nl, signal)
{
	char p[256];
	struct writer *w;
	struct event e;
	int r;

	replies_on(_metadata, self);
	dev_new(_metadata, self, 0);
	dev_attr(p, sizeof(p), 0, "enable");
	w = writer_start(self, OP_WRITE, p, "1");
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, ev_wait(_metadata, self, TCMU_CMD_ADDED_DEVICE, EVENT_MS, &e, NULL));
	ASSERT_FALSE(writer_wait(w, BLOCK_MS));
	kill(w->pid, SIGKILL);
	if (writer_wait(w, 2000)) {
		if (is_c_module())
			MSG("the killed enable ended (C waits uninterruptibly?)");
		else
			MSG("%s",
			    "DIFFERENCE: SIGKILL ends a write that waits for a reply (the C module waits uninterruptibly)");
		EXPECT_TRUE(w->signaled);
		r = reply(self, TCMU_CMD_ADDED_DEVICE_DONE, 0, e.id);
		EXPECT_EQ(-ENODEV, r) MSG("ADDED_DEVICE_DONE after the writer died: %s",
					  err_name(r));
		dev_attr(p, sizeof(p), 0, "enable");
		{
			char buf[16];

			EXPECT_LT(0, read_file(p, buf, sizeof(buf)));
			EXPECT_STREQ("0", buf) MSG("enable after the interrupted enable");
		}
		return;
	}
	EXPECT_TRUE(is_c_module()) MSG("SIGKILL does not end the wait");
	MSG("the killed enable waits on (uninterruptibly) until the reply");
	r = reply(self, TCMU_CMD_ADDED_DEVICE_DONE, 0, e.id);
	EXPECT_EQ(0, r) MSG("ADDED_DEVICE_DONE: %s", err_name(r));
	ASSERT_TRUE(writer_wait(w, DONE_MS)) MSG("the killed enable still waits after the reply");
	EXPECT_TRUE(w->signaled);
}

/* block_netlink=1: an event that would wait fails at once with EAGAIN. */
TEST_F(nl, block_netlink)
{
	char p[256], buf[64];
	struct writer *w;
	struct event e;
	int r;

	if (!has_param("block_netlink"))
		SKIP(return, "[%s] no module parameter block_netlink", module_name());
	EXPECT_LT(0, param_read("block_netlink", buf, sizeof(buf)));
	EXPECT_STREQ("unblocked", buf);
	EXPECT_EQ(-EINVAL, param_write("block_netlink", "2"));
	EXPECT_EQ(-EINVAL, param_write("block_netlink", "x"));
	self->block_set = 1;
	ASSERT_EQ(0, param_write("block_netlink", "1"));
	EXPECT_LT(0, param_read("block_netlink", buf, sizeof(buf)));
	EXPECT_STREQ("blocked", buf);

	/* Replies off: nothing waits, nothing is blocked. */
	dev_new(_metadata, self, 0);
	dev_attr(p, sizeof(p), 0, "enable");
	r = write_nowait(self, p, "1");
	EXPECT_EQ(0, r) MSG("enable, blocked, replies off: %s", err_name(r));
	EXPECT_EQ(0, ev_wait(_metadata, self, TCMU_CMD_ADDED_DEVICE, EVENT_MS, &e, NULL));

	/* Replies on: the enable fails at once, without an event. */
	replies_on(_metadata, self);
	dev_new(_metadata, self, 1);
	dev_attr(p, sizeof(p), 1, "enable");
	w = writer_start(self, OP_WRITE, p, "1");
	ASSERT_NE(NULL, w);
	ASSERT_TRUE(writer_wait(w, DONE_MS)) MSG("blocked: enable waits");
	EXPECT_EQ(-EAGAIN, w->res) MSG("blocked: enable: %s", err_name(w->res));
	EXPECT_EQ(0, ev_count(_metadata, self, QUIET_MS, &e)) MSG("blocked: events");
	/* ... and so does a reconfiguration of a device that waits for replies. */
	dev_attr(p, sizeof(p), 0, "attrib/nl_reply_supported");
	ASSERT_EQ(0, write_file(p, "1"));
	dev_attr(p, sizeof(p), 0, "attrib/dev_size");
	r = write_nowait(self, p, "2097152");
	EXPECT_EQ(-EAGAIN, r) MSG("blocked: dev_size: %s", err_name(r));
	EXPECT_EQ(0, ev_count(_metadata, self, QUIET_MS, &e)) MSG("blocked: events");

	/* Unblocked: the enable waits for its reply again. */
	ASSERT_EQ(0, param_write("block_netlink", "0"));
	EXPECT_LT(0, param_read("block_netlink", buf, sizeof(buf)));
	EXPECT_STREQ("unblocked", buf);
	dev_new(_metadata, self, 2);
	handshake(_metadata, self, 2, "enable", "1", TCMU_CMD_ADDED_DEVICE, 0, 0, &e);
}

/* reset_netlink=1 wakes the writes that wait with EINTR, if netlink is blocked. */
TEST_F(nl, reset_netlink)
{
	char p[256];
	struct writer *w;
	struct event e;
	int r;

	if (!has_param("reset_netlink"))
		SKIP(return, "[%s] no module parameter reset_netlink", module_name());
	ASSERT_TRUE(has_param("block_netlink"));
	EXPECT_EQ(-EINVAL, param_write("reset_netlink", "0"));
	EXPECT_EQ(-EINVAL, param_write("reset_netlink", "2"));
	/* Nothing waits: nothing to do, blocked or not. */
	EXPECT_EQ(0, (r = param_write("reset_netlink", "1"))) MSG("reset, idle: %s", err_name(r));

	replies_on(_metadata, self);
	dev_new(_metadata, self, 0);
	dev_attr(p, sizeof(p), 0, "enable");
	w = writer_start(self, OP_WRITE, p, "1");
	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, ev_wait(_metadata, self, TCMU_CMD_ADDED_DEVICE, EVENT_MS, &e, NULL));
	ASSERT_FALSE(writer_wait(w, BLOCK_MS)) MSG("enable did not wait: %s", err_name(w->res));

	/* Not blocked: refused. */
	r = param_write("reset_netlink", "1");
	EXPECT_EQ(-EBUSY, r) MSG("reset, not blocked, an enable waits: %s", err_name(r));
	EXPECT_FALSE(writer_wait(w, BLOCK_MS)) MSG("enable ended after a refused reset: %s",
						   err_name(w->res));

	/* Blocked: the enable fails with EINTR. */
	self->block_set = 1;
	ASSERT_EQ(0, param_write("block_netlink", "1"));
	r = param_write("reset_netlink", "1");
	EXPECT_EQ(0, r) MSG("reset, blocked: %s", err_name(r));
	ASSERT_TRUE(writer_wait(w, DONE_MS)) MSG("enable still waits after reset_netlink");
	EXPECT_EQ(-EINTR, w->res) MSG("enable after reset_netlink: %s", err_name(w->res));
	EXPECT_EQ(0, param_write("block_netlink", "0"));
	r = reply(self, TCMU_CMD_ADDED_DEVICE_DONE, 0, e.id);
	EXPECT_EQ(-ENODEV, r) MSG("ADDED_DEVICE_DONE after the reset: %s", err_name(r));

	/* The next event waits as usual. */
	dev_new(_metadata, self, 1);
	handshake(_metadata, self, 1, "enable", "1", TCMU_CMD_ADDED_DEVICE, 0, 0, &e);
}

TEST_HARNESS_MAIN
