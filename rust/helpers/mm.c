// SPDX-License-Identifier: GPL-2.0

#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/pagemap.h>

void rust_helper_get_page(struct page *page)
{
	get_page(page);
}

void rust_helper_put_page(struct page *page)
{
	put_page(page);
}

void *rust_helper_page_address(const struct page *page)
{
	return page_address(page);
}

void rust_helper_vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vm_flags_set(vma, flags);
}

void rust_helper_flush_dcache_page(struct page *page)
{
	flush_dcache_page(page);
}

void rust_helper_smp_mb(void)
{
	smp_mb();
}

void rust_helper_smp_rmb(void)
{
	smp_rmb();
}

void rust_helper_smp_wmb(void)
{
	smp_wmb();
}

unsigned long rust_helper_vma_pages(struct vm_area_struct *vma)
{
	return vma_pages(vma);
}

void rust_helper_lock_page(struct page *page)
{
	lock_page(page);
}

void rust_helper_unlock_page(struct page *page)
{
	unlock_page(page);
}
