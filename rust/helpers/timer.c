// SPDX-License-Identifier: GPL-2.0

#include <linux/smp.h>
#include <linux/timer.h>

void rust_helper_timer_setup(struct timer_list *timer,
			     void (*func)(struct timer_list *), unsigned int flags)
{
	timer_setup(timer, func, flags);
}

int rust_helper_raw_smp_processor_id(void)
{
	return raw_smp_processor_id();
}
