// SPDX-License-Identifier: GPL-2.0

//! Command deadlines: the ring's timer, and the expiry of commands on the ring or waiting for
//! space.

use crate::ringstate::{Ring, RingState};
use core::sync::atomic::Ordering;
use kernel::{
    pr_warn_ratelimited,
    sync::Arc,
    target,
    time::{msecs_to_jiffies, Jiffies},
    timer::{jiffies, time_after, ArcTimer, ArcTimerCallback, ArcWork},
};

/// `jiffies` `ms` from now.
pub(crate) fn deadline_in(ms: u64) -> Jiffies {
    jiffies().wrapping_add(msecs_to_jiffies(ms.min(u32::MAX as u64) as u32))
}

/// The earlier of two optional deadlines.
fn earlier(a: Option<Jiffies>, b: Jiffies) -> Option<Jiffies> {
    match a {
        Some(a) if !time_after(a, b) => Some(a),
        _ => Some(b),
    }
}

impl ArcTimerCallback for Ring {
    fn expired(this: Arc<Self>) {
        this.expire_due.store(true, Ordering::Release);
        ArcWork::schedule(this);
    }
}

impl Ring {
    /// Makes the timer fire by `deadline` (unless the ring is dead: `shutdown` stopped it).
    /// Under the ring lock, so that no deadline set meanwhile is left without a timer.
    pub(crate) fn arm_deadline(self: &Arc<Self>, st: &RingState, deadline: Jiffies) {
        if !st.dead {
            ArcTimer::arm_earlier(self, deadline);
        }
    }

    /// Fails the commands whose deadline passed (run from the timer's work) and re-arms the
    /// timer for the next deadline.
    pub(crate) fn expire(self: &Arc<Self>) {
        let mut st = self.st.lock();
        if st.dead {
            return;
        }
        let now = jiffies();
        let mut next = None;
        let mut expired = 0u32;
        for inf in st.cmds.iter_mut() {
            let (Some(d), true) = (inf.deadline, inf.cmd.is_some()) else {
                continue;
            };
            if time_after(d, now) {
                next = earlier(next, d);
            } else if let Some(cmd) = inf.cmd.take() {
                expired += 1;
                cmd.complete(target::SAM_STAT_CHECK_CONDITION);
            }
        }
        let mut qexpired = 0u64;
        st.qfull.take_where(
            |q| !time_after(q.deadline, now),
            |q| {
                qexpired += 1;
                q.cmd.complete(target::SAM_STAT_TASK_SET_FULL)
            },
        );
        st.stats.timed_out += u64::from(expired) + qexpired;
        for q in st.qfull.iter() {
            next = earlier(next, q.deadline);
        }
        drop(st);
        if expired > 0 {
            pr_warn_ratelimited!(
                "{}: {} command(s) timed out on the ring\n",
                &*self.name,
                expired
            );
        }
        // Not `arm`: a command queued since the lock was dropped may have armed it earlier.
        if let Some(d) = next {
            ArcTimer::arm_earlier(self, d);
        }
    }
}
