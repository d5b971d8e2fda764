// SPDX-License-Identifier: GPL-2.0

#include <linux/scatterlist.h>

struct page *rust_helper_sg_page(struct scatterlist *sg)
{
	return sg_page(sg);
}

void *rust_helper_sg_virt(struct scatterlist *sg)
{
	return sg_virt(sg);
}
