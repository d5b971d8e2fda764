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

void rust_helper_vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vm_flags_set(vma, flags);
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
