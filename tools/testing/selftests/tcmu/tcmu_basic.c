// SPDX-License-Identifier: GPL-2.0
/*
 * Basic tests of the TCMU backstore through configfs: the "user" backend is registered,
 * HBAs and devices can be created and removed, and the C and Rust modules exclude each
 * other. Run with the module under test loaded; TCMU_OTHER_MODULE names the other one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest_harness.h"

#define CORE "/sys/kernel/config/target/core"

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

FIXTURE(hba) {
	char hba[128];
	char dev[192];
};

FIXTURE_SETUP(hba)
{
	snprintf(self->hba, sizeof(self->hba), CORE "/user_%d", 4000 + getpid() % 1000);
	snprintf(self->dev, sizeof(self->dev), "%s/d0", self->hba);
	ASSERT_EQ(0, mkdir(self->hba, 0755)) TH_LOG("mkdir %s: %s", self->hba, strerror(errno));
}

FIXTURE_TEARDOWN(hba)
{
	rmdir(self->dev);
	EXPECT_EQ(0, rmdir(self->hba)) TH_LOG("rmdir %s: %s", self->hba, strerror(errno));
}

TEST(backend_listed)
{
	char hba[128], bogus[128], path[160], buf[4096];

	/*
	 * The target core makes an HBA only for a registered backend and names the backend in
	 * the HBA's hba_info: ours must be there as "user", and a name nobody registered must
	 * be refused (or this test would pass on any target core).
	 */
	ASSERT_LT(0, read_file("/sys/kernel/config/target/version", buf, sizeof(buf)));
	snprintf(hba, sizeof(hba), CORE "/user_%d", 5000 + getpid() % 1000);
	ASSERT_EQ(0, mkdir(hba, 0755)) TH_LOG("mkdir %s: %s", hba, strerror(errno));
	snprintf(path, sizeof(path), "%s/hba_info", hba);
	EXPECT_LT(0, read_file(path, buf, sizeof(buf)));
	EXPECT_NE(NULL, strstr(buf, " plugin: user ")) TH_LOG("hba_info: %s", buf);
	EXPECT_EQ(0, rmdir(hba));
	/* "<backend>_<index>": a well-formed name whose backend nobody registered. */
	snprintf(bogus, sizeof(bogus), CORE "/nosuchbackend_%d", getpid() % 1000);
	EXPECT_NE(0, mkdir(bogus, 0755)) {
		rmdir(bogus);
		TH_LOG("an HBA of an unregistered backend was made");
	}
}

TEST_F(hba, device_mkdir_rmdir)
{
	struct stat st;

	ASSERT_EQ(0, mkdir(self->dev, 0755)) TH_LOG("mkdir %s: %s", self->dev, strerror(errno));
	ASSERT_EQ(0, stat(self->dev, &st));
	EXPECT_TRUE(S_ISDIR(st.st_mode));
	EXPECT_EQ(0, rmdir(self->dev));
	EXPECT_NE(0, stat(self->dev, &st));
}

TEST_F(hba, device_info_and_attrib)
{
	char path[256], buf[4096];

	ASSERT_EQ(0, mkdir(self->dev, 0755));
	snprintf(path, sizeof(path), "%s/info", self->dev);
	ASSERT_LT(0, read_file(path, buf, sizeof(buf)));
	EXPECT_NE(NULL, strstr(buf, "Config:")) TH_LOG("info: %s", buf);
	/* LIO's passthrough attributes are there. */
	snprintf(path, sizeof(path), "%s/attrib/hw_block_size", self->dev);
	EXPECT_LT(0, read_file(path, buf, sizeof(buf)));
	snprintf(path, sizeof(path), "%s/attrib/hw_max_sectors", self->dev);
	EXPECT_LT(0, read_file(path, buf, sizeof(buf)));
	/* Not enabled: no device is configured yet. */
	snprintf(path, sizeof(path), "%s/enable", self->dev);
	ASSERT_LT(0, read_file(path, buf, sizeof(buf)));
	EXPECT_EQ('0', buf[0]);
}

TEST_F(hba, two_devices)
{
	char dev2[256];

	snprintf(dev2, sizeof(dev2), "%s/d1", self->hba);
	ASSERT_EQ(0, mkdir(self->dev, 0755));
	ASSERT_EQ(0, mkdir(dev2, 0755));
	EXPECT_EQ(-1, mkdir(dev2, 0755));
	EXPECT_EQ(EEXIST, errno);
	EXPECT_EQ(0, rmdir(dev2));
}

TEST(other_module_refused)
{
	const char *other = getenv("TCMU_OTHER_MODULE");
	char cmd[256], path[256];
	int status;

	if (!other)
		SKIP(return, "TCMU_OTHER_MODULE not set");
	/*
	 * The other module's init fails with EEXIST (backend "user" already registered),
	 * which modprobe reports as "already loaded", i.e. success: check it is absent.
	 */
	snprintf(cmd, sizeof(cmd), "modprobe %s 2>/dev/null", other);
	status = system(cmd);
	(void)status;
	snprintf(path, sizeof(path), "/sys/module/%s", other);
	EXPECT_NE(0, access(path, F_OK)) TH_LOG("%s loaded next to the module under test", other);
	if (access(path, F_OK) == 0) {
		snprintf(cmd, sizeof(cmd), "rmmod %s", other);
		(void)system(cmd);
	}
}

TEST(control_write_accepted)
{
	char hba[128], dev[192], path[256];

	snprintf(hba, sizeof(hba), CORE "/user_%d", 5000 + getpid() % 1000);
	snprintf(dev, sizeof(dev), "%s/d0", hba);
	ASSERT_EQ(0, mkdir(hba, 0755));
	ASSERT_EQ(0, mkdir(dev, 0755));
	snprintf(path, sizeof(path), "%s/control", dev);
	EXPECT_EQ(0, write_file(path, "dev_size=1048576"));
	EXPECT_EQ(0, rmdir(dev));
	EXPECT_EQ(0, rmdir(hba));
}

TEST_HARNESS_MAIN
