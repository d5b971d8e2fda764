// SPDX-License-Identifier: GPL-2.0

#include <linux/completion.h>
#include <linux/device.h>
#include <scsi/scsi_common.h>
#include <target/target_core_backend.h>

unsigned int rust_helper_scsi_command_size(const unsigned char *cmnd)
{
	return scsi_command_size(cmnd);
}

bool rust_helper_target_dev_configured(struct se_device *se_dev)
{
	return target_dev_configured(se_dev);
}
