// SPDX-License-Identifier: GPL-2.0

//! The real kernel behind `/dev/uioN` and configfs.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tcmu_ring::abi;
use tcmu_ring::uio::UioDevice;
use tcmu_ring::Ring;

use crate::engine::{BadIo, Mapping, Port, Touch};
use crate::rng::Rng;

/// A TCMU device opened through UIO, with its configfs directory for
/// `action/reset_ring`.
pub struct UioPort {
    /// The device.
    pub uio: UioDevice,
    /// `/sys/kernel/config/target/core/user_<hba>/<dev>`.
    pub cfs_dir: PathBuf,
    /// Data-page touches so far (one in [`FORK_EVERY`] runs in a forked
    /// child, the others in a `CLONE_VM` one).
    touches: u64,
}

/// One touch in this many forks (the device's VMA copied into a new address
/// space and unmapped again); the others share the fuzzer's address space.
const FORK_EVERY: u64 = 8;

fn page_size() -> usize {
    // SAFETY: plain sysconf call.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p <= 0 {
        4096
    } else {
        p as usize
    }
}

impl UioPort {
    /// The port of device `uio`, configured under `cfs_dir`.
    pub fn new(uio: UioDevice, cfs_dir: PathBuf) -> Self {
        Self {
            uio,
            cfs_dir,
            touches: 0,
        }
    }

    fn fd(&self) -> i32 {
        self.uio.as_fd().as_raw_fd()
    }

    /// mmap of the device; `Err(errno)` on failure.
    fn map(&self, len: usize, off: i64, flags: i32, prot: i32) -> Result<*mut u8, i32> {
        // SAFETY: plain mmap call, checked below.
        let p = unsafe { libc::mmap(core::ptr::null_mut(), len, prot, flags, self.fd(), off) };
        if p == libc::MAP_FAILED {
            Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(p.cast())
        }
    }
}

/// How a page-touching child shares the fuzzer's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChildKind {
    /// `fork`: a copy of the address space (the device's VMA is duplicated
    /// and closed again, which the kernel must handle too). Expensive: about
    /// 5 ms a touch on the base guest, far more under KASAN.
    Fork,
    /// `clone(CLONE_VM)`: the same address space, no page tables copied; a
    /// SIGBUS still kills only the child (a separate thread group).
    SharedVm,
}

/// Stack of a `CLONE_VM` child: the touch, its fault and a default-action
/// signal need little.
const CHILD_STACK: usize = 64 << 10;

/// Runs `f` in a child and reports how it ended (5 s at most).
///
/// `f` must not allocate, lock or unwind: with [`ChildKind::SharedVm`] it
/// runs on a small stack of its own, in the fuzzer's memory, beside the
/// parent's thread-local state.
fn in_child(kind: ChildKind, f: impl FnOnce() -> i32) -> Touch {
    if kind == ChildKind::SharedVm {
        return clone_vm(f);
    }
    // SAFETY: the fuzzer is single-threaded; the child only runs `f` (plain
    // memory accesses) and `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Touch::Other(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        let rc = f();
        // SAFETY: leaving the child without running destructors or atexit
        // handlers of the parent's state.
        unsafe { libc::_exit(rc) };
    }
    wait_child(pid)
}

/// Runs `f` in a `CLONE_VM` child and reports how it ended.
fn clone_vm<F: FnOnce() -> i32>(f: F) -> Touch {
    extern "C" fn trampoline<F: FnOnce() -> i32>(arg: *mut libc::c_void) -> libc::c_int {
        // Default actions for the faults: the child dies of them without
        // entering the Rust runtime's handler (which would read the parent's
        // thread-local guard-page data).
        // SAFETY: plain signal-disposition calls; without CLONE_SIGHAND the
        // child's dispositions are its own.
        unsafe {
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        }
        // SAFETY: `arg` points to the `Option<F>` of `clone_vm`, which
        // outlives the child (the parent reaps it before returning) and which
        // the parent does not touch meanwhile.
        let slot = unsafe { &mut *arg.cast::<Option<F>>() };
        let rc = match slot.take() {
            Some(f) => f(),
            None => 4,
        };
        // SAFETY: exit(2) of this task only: no atexit handlers, no
        // destructors run on the shared memory.
        unsafe { libc::syscall(libc::SYS_exit, rc) };
        rc
    }
    let mut stack = vec![0u8; CHILD_STACK];
    let mut slot = Some(f);
    // The stack grows down from its 16-byte aligned end.
    let top = ((stack.as_mut_ptr() as usize + CHILD_STACK) & !15) as *mut libc::c_void;
    // SAFETY: `top` is the aligned end of a live buffer that only the child
    // uses; `slot` and `stack` live until the child is reaped below; SIGCHLD
    // makes it an ordinary child for waitpid.
    let pid = unsafe {
        libc::clone(
            trampoline::<F>,
            top,
            libc::CLONE_VM | libc::SIGCHLD,
            (&mut slot as *mut Option<F>).cast(),
        )
    };
    if pid < 0 {
        return Touch::Other(format!("clone: {}", io::Error::last_os_error()));
    }
    let t = wait_child(pid);
    drop(slot);
    drop(stack);
    t
}

/// Waits for child `pid` (5 s at most, then kills it) and tells how it ended.
fn wait_child(pid: libc::pid_t) -> Touch {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut nap = Duration::from_micros(20);
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            if libc::WIFEXITED(status) {
                return match libc::WEXITSTATUS(status) {
                    0 => Touch::Mapped,
                    c => Touch::Other(format!("child exited with {c}")),
                };
            }
            if libc::WIFSIGNALED(status) {
                return match libc::WTERMSIG(status) {
                    libc::SIGBUS => Touch::Sigbus,
                    s => Touch::Other(format!("child killed by signal {s}")),
                };
            }
            return Touch::Other(format!("child status {status:#x}"));
        }
        if r < 0 {
            return Touch::Other(format!("waitpid: {}", io::Error::last_os_error()));
        }
        if Instant::now() >= deadline {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Touch::Other("child stuck for 5 s in a page access".into());
        }
        // A touch takes microseconds: poll fast first, then back off to 1 ms.
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(1));
    }
}

impl Port for UioPort {
    fn ring(&mut self) -> &mut Ring {
        self.uio.ring_mut()
    }

    fn notify(&mut self) -> io::Result<()> {
        self.uio.notify()
    }

    fn wait(&mut self, timeout_ms: i32) -> io::Result<bool> {
        self.uio.wait(timeout_ms)
    }

    fn reset_ring(&mut self, level: u8) -> io::Result<()> {
        let p = self.cfs_dir.join("action/reset_ring");
        let mut f = std::fs::OpenOptions::new().write(true).open(&p)?;
        f.write_all(format!("{level}\n").as_bytes())
    }

    fn free_kept_buf(&mut self, id: u16) -> io::Result<()> {
        let p = self.cfs_dir.join("action/free_kept_buf");
        let mut f = std::fs::OpenOptions::new().write(true).open(&p)?;
        f.write_all(format!("{id}\n").as_bytes())
    }

    fn touch(&mut self, off: u64, write: Option<u8>) -> Touch {
        let kind = if self.touches.is_multiple_of(FORK_EVERY) {
            ChildKind::Fork
        } else {
            ChildKind::SharedVm
        };
        self.touches += 1;
        let ring = self.uio.ring_mut();
        in_child(kind, move || {
            let m = ring.region_mut();
            let r = match write {
                Some(v) => m.write_u8(off, v),
                None => m.read_u8(off).map(|_| ()),
            };
            if r.is_ok() {
                0
            } else {
                3
            }
        })
    }

    fn bad_io(&mut self, rng: &mut Rng) -> BadIo {
        const SIZES: [usize; 7] = [0, 1, 2, 3, 5, 8, 64];
        let n = *rng.pick(&SIZES);
        let mut buf = [0u8; 64];
        rng.fill(&mut buf);
        let write = rng.chance(1, 2);
        // SAFETY: `buf` is valid for 64 bytes.
        let r = unsafe {
            if write {
                libc::write(self.fd(), buf.as_ptr().cast(), n)
            } else {
                libc::read(self.fd(), buf.as_mut_ptr().cast(), n)
            }
        };
        let what = if write { "write" } else { "read" };
        if r >= 0 {
            return BadIo::Unexpected(format!("{what} of {n} bytes returned {r}"));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL) => BadIo::Einval,
            _ => BadIo::Unexpected(format!("{what} of {n} bytes: {e}")),
        }
    }

    fn extra_mapping(&mut self, rng: &mut Rng) -> Mapping {
        let pg = page_size();
        let len = self.uio.ring().region().len();
        let pages = len / pg;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let tail_off = abi::MAILBOX_CMD_TAIL_OFFSET;
        match rng.below(4) {
            0 => {
                // Larger than map0: must fail.
                let extra = rng.range(1, 16) as usize;
                match self.map(len + extra * pg, 0, libc::MAP_SHARED, rw) {
                    Err(_) => Mapping::Refused,
                    Ok(p) => {
                        // SAFETY: unmapping what we just mapped.
                        unsafe { libc::munmap(p.cast(), len + extra * pg) };
                        Mapping::Unexpected(format!(
                            "mmap of {} pages more than map0 worked",
                            extra
                        ))
                    }
                }
            }
            1 => {
                // Offset of a map that does not exist (map1..): must fail.
                let idx = rng.range(1, 4) as i64;
                match self.map(pg, idx * pg as i64, libc::MAP_SHARED, rw) {
                    Err(_) => Mapping::Refused,
                    Ok(p) => {
                        // SAFETY: unmapping what we just mapped.
                        unsafe { libc::munmap(p.cast(), pg) };
                        Mapping::Unexpected(format!("mmap of map{idx} worked"))
                    }
                }
            }
            2 => {
                // A smaller mapping: refused, or the same memory.
                let n = rng.range(1, pages.saturating_sub(1).max(1) as u64) as usize;
                match self.map(n * pg, 0, libc::MAP_SHARED, rw) {
                    Err(_) => Mapping::Refused,
                    Ok(p) => {
                        // SAFETY: the mailbox page is in the mapping.
                        let t = unsafe { p.add(tail_off).cast::<u32>().read_volatile() };
                        // SAFETY: unmapping what we just mapped.
                        unsafe { libc::munmap(p.cast(), n * pg) };
                        let ours = self
                            .uio
                            .ring()
                            .region()
                            .read_u32(tail_off as u64)
                            .unwrap_or(0);
                        if t == ours {
                            Mapping::Fine
                        } else {
                            Mapping::Unexpected(format!(
                                "second mapping shows cmd_tail {t:#x}, the first {ours:#x}"
                            ))
                        }
                    }
                }
            }
            _ => {
                // A full second mapping, shared or private, split by a
                // partial munmap, then touched and dropped.
                let private = rng.chance(1, 3);
                let flags = if private {
                    libc::MAP_PRIVATE
                } else {
                    libc::MAP_SHARED
                };
                let p = match self.map(len, 0, flags, rw) {
                    Err(e) => {
                        return if private {
                            Mapping::Refused
                        } else {
                            Mapping::Unexpected(format!("second full mapping refused (errno {e})"))
                        }
                    }
                    Ok(p) => p,
                };
                // SAFETY: the mailbox page is in the mapping.
                let t = unsafe { p.add(tail_off).cast::<u32>().read_volatile() };
                if private {
                    // Copy-on-write of the mailbox page (padding byte).
                    // SAFETY: inside the private mapping.
                    unsafe { p.add(abi::MAILBOX_CMD_HEAD_OFFSET + 8).write_volatile(0x5a) };
                }
                let ours = self
                    .uio
                    .ring()
                    .region()
                    .read_u32(tail_off as u64)
                    .unwrap_or(0);
                if pages > 2 {
                    let hole = rng.range(1, pages as u64 - 2) as usize;
                    // SAFETY: unmapping one page inside our own mapping.
                    unsafe { libc::munmap(p.add(hole * pg).cast(), pg) };
                }
                // SAFETY: unmapping the whole range (holes included is fine).
                unsafe { libc::munmap(p.cast(), len) };
                if t == ours || private {
                    Mapping::Fine
                } else {
                    Mapping::Unexpected(format!(
                        "second mapping shows cmd_tail {t:#x}, the first {ours:#x}"
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared mapping of an empty file: any access raises SIGBUS.
    fn sigbus_page() -> *mut u8 {
        let f = std::fs::File::from(tempfile_fd());
        // SAFETY: plain mmap of our own file, checked below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        p.cast()
    }

    fn tempfile_fd() -> std::os::fd::OwnedFd {
        let name = std::ffi::CString::new("fuzzer-port-test").unwrap();
        // SAFETY: memfd_create with a valid name; the fd is owned below.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
        assert!(fd >= 0);
        // SAFETY: a fresh descriptor we own.
        unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
    }

    #[test]
    fn children_report_mapped_and_sigbus() {
        let p = sigbus_page() as usize;
        for kind in [ChildKind::Fork, ChildKind::SharedVm] {
            let mut cell = 0u8;
            let addr = &mut cell as *mut u8 as usize;
            // SAFETY (in the closures): `addr` is a live local, `p` a live
            // mapping.
            let t = in_child(kind, move || {
                unsafe { core::ptr::write_volatile(addr as *mut u8, 7) };
                0
            });
            assert!(matches!(t, Touch::Mapped), "{kind:?}: {t:?}");
            // Only a CLONE_VM child writes into our memory.
            let seen = unsafe { core::ptr::read_volatile(addr as *const u8) };
            assert_eq!(seen, if kind == ChildKind::SharedVm { 7 } else { 0 });
            let t = in_child(kind, move || {
                unsafe { core::ptr::read_volatile(p as *const u8) };
                0
            });
            assert!(matches!(t, Touch::Sigbus), "{kind:?}: {t:?}");
            let t = in_child(kind, || 3);
            assert!(matches!(t, Touch::Other(_)), "{kind:?}: {t:?}");
        }
    }
}
