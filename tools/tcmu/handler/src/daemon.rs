// SPDX-License-Identifier: GPL-2.0

//! Command line, device attachment and the event loop of
//! `tcmu-rs-handler`.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tcmu_ring::configfs::{self, DevConfigfs};
use tcmu_ring::uio::{self, UioDevice, UioInfo};
use tcmu_ring::{Entry, RingError};

use crate::backstore::{self, StoreSpec};
use crate::device::Device;
use crate::scsi::LunParams;

/// Usage text.
pub const USAGE: &str = "\
usage: tcmu-rs-handler [-v]... [--dev uioN] [--once-device] [--wait]
                       [--sysfs DIR] [--devdir DIR] [--configfs DIR]

Serves the TCMU (target_core_user) devices whose dev_config is ram/...,
file/<path> or null/... .

  -v             more logging (-vv logs every command)
  --dev uioN     only this UIO device
  --once-device  serve one device, exit when it goes away
  --wait         wait for devices to appear (rescan every 100 ms) instead
                 of exiting when there is none
  --sysfs DIR    UIO sysfs class directory (default /sys/class/uio)
  --devdir DIR   device node directory (default /dev)
  --configfs DIR target core configfs directory
                 (default /sys/kernel/config/target/core)

Without --wait, exits when no device is left (status 1 if none was found).
SIGTERM and SIGINT stop it cleanly.";

/// Command line options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Verbosity.
    pub verbose: u8,
    /// Only this `uioN`.
    pub dev: Option<u32>,
    /// Serve one device only, exit when it goes away.
    pub once_device: bool,
    /// Rescan for new devices every 100 ms.
    pub wait: bool,
    /// UIO class directory.
    pub sysfs: PathBuf,
    /// Device node directory.
    pub dev_dir: PathBuf,
    /// Target core configfs directory.
    pub configfs: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            verbose: 0,
            dev: None,
            once_device: false,
            wait: false,
            sysfs: uio::SYSFS_UIO.into(),
            dev_dir: uio::DEV_DIR.into(),
            configfs: configfs::TARGET_CORE.into(),
        }
    }
}

/// Parses `uio3`, `/dev/uio3` or `3`.
pub fn parse_uio_arg(s: &str) -> Option<u32> {
    let s = s.strip_prefix("/dev/").unwrap_or(s);
    s.strip_prefix("uio").unwrap_or(s).parse().ok()
}

/// Parses the arguments (without the program name). `Ok(None)` for
/// `--help`.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
    let mut o = Options::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--once-device" => o.once_device = true,
            "--wait" => o.wait = true,
            "--dev" => {
                let v = value("--dev")?;
                o.dev = Some(parse_uio_arg(&v).ok_or_else(|| format!("bad --dev {v:?}"))?);
            }
            "--sysfs" => o.sysfs = value("--sysfs")?.into(),
            "--devdir" => o.dev_dir = value("--devdir")?.into(),
            "--configfs" => o.configfs = value("--configfs")?.into(),
            v if v.len() > 1
                && v.starts_with('-')
                && !v.starts_with("--")
                && v[1..].bytes().all(|b| b == b'v') =>
            {
                o.verbose = o.verbose.saturating_add((v.len() - 1) as u8);
            }
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(Some(o))
}

/// Builds the device (backstore and SCSI parameters) for a UIO device from
/// its name and configfs attributes.
pub fn make_device(info: &UioInfo, opts: &Options) -> Result<Device, String> {
    let cfg = info.name.config.as_deref().unwrap_or("");
    let spec =
        backstore::parse_config(cfg).ok_or_else(|| format!("unsupported dev_config {cfg:?}"))?;
    let cfs = DevConfigfs::for_uio(&opts.configfs, &info.name);
    let dinfo = cfs
        .info()
        .map_err(|e| format!("{}: {e}", cfs.dir.display()))?;
    let block_size = match cfs.hw_block_size() {
        Ok(0) | Err(_) => 512,
        Ok(n) => n,
    };
    if dinfo.size < block_size as u64 {
        return Err(format!(
            "dev_size {} is smaller than one block of {block_size}",
            dinfo.size
        ));
    }
    let store =
        backstore::open(&spec, dinfo.size).map_err(|e| format!("backstore {spec:?}: {e}"))?;
    let mut lun = LunParams::new(block_size, dinfo.size / block_size as u64);
    lun.max_sectors = cfs.hw_max_sectors().ok().filter(|&n| n > 0).unwrap_or(128);
    lun.write_cache = store.volatile_cache() || cfs.emulate_write_cache().unwrap_or(false);
    lun.non_rotational = store.non_rotational();
    lun.serial = cfs
        .unit_serial()
        .ok()
        .flatten()
        .unwrap_or_else(|| format!("tcmu-rs-{}-{}", info.name.hba, info.name.dev));
    lun.product = match spec {
        StoreSpec::Ram => "tcmu-rs ram",
        StoreSpec::File(_) => "tcmu-rs file",
        StoreSpec::Null => "tcmu-rs null",
    }
    .into();
    let name = format!("{} ({})", info.uio(), info.raw_name);
    let mut d = Device::new(name, lun, store);
    d.verbose = opts.verbose;
    Ok(d)
}

/// Whether the UIO device is one this handler serves (by config prefix).
pub fn wants(info: &UioInfo, opts: &Options) -> bool {
    if opts.dev.is_some_and(|d| d != info.index) {
        return false;
    }
    info.name
        .config
        .as_deref()
        .and_then(backstore::parse_config)
        .is_some()
}

struct Attached {
    uio: UioDevice,
    dev: Device,
}

/// Processes all new entries of one device; completions are announced to
/// the kernel every 32 commands and at the end.
fn service(att: &mut Attached) -> Result<(), String> {
    let mut done = 0u32;
    loop {
        let next = att.uio.ring_mut().next_entry();
        match next {
            Ok(Some(Entry::Cmd(c))) => {
                att.dev
                    .handle(att.uio.ring_mut(), &c)
                    .map_err(|e| e.to_string())?;
                done += 1;
                if done.is_multiple_of(32) {
                    att.uio.notify_if_needed().map_err(|e| e.to_string())?;
                }
            }
            Ok(Some(Entry::Tmr(t))) => {
                // Commands are completed synchronously: nothing to abort.
                if att.dev.verbose > 0 {
                    eprintln!(
                        "tcmu-rs-handler: {}: TMR {:?} for {:?}",
                        att.dev.name, t.tmr_type, t.cmd_ids
                    );
                }
            }
            Ok(Some(Entry::Unknown { op, .. })) => {
                eprintln!(
                    "tcmu-rs-handler: {}: skipped entry with unknown opcode {op}",
                    att.dev.name
                );
            }
            Ok(None) => break,
            Err(RingError::Reset { .. }) => {
                eprintln!(
                    "tcmu-rs-handler: {}: ring was reset, resynchronising",
                    att.dev.name
                );
                att.uio.ring_mut().resync().map_err(|e| e.to_string())?;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    att.uio.notify_if_needed().map_err(|e| e.to_string())?;
    Ok(())
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signals() -> io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to
        // an atomic (async-signal-safe). No SA_RESTART: poll returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, core::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

struct Daemon {
    opts: Options,
    devs: Vec<Attached>,
    /// Last attach error per UIO index, to log each failure once.
    failures: HashMap<u32, String>,
    attached_any: bool,
}

impl Daemon {
    fn log(&self, level: u8, msg: &str) {
        if self.opts.verbose >= level {
            eprintln!("tcmu-rs-handler: {msg}");
        }
    }

    fn scan_attach(&mut self) -> io::Result<()> {
        if self.opts.once_device && self.attached_any {
            return Ok(());
        }
        for info in uio::scan(&self.opts.sysfs)? {
            if !wants(&info, &self.opts)
                || self.devs.iter().any(|a| a.uio.info().index == info.index)
            {
                continue;
            }
            let res = make_device(&info, &self.opts).and_then(|dev| {
                let uio = UioDevice::open(&info, &self.opts.dev_dir).map_err(|e| {
                    format!("{}: {e}", self.opts.dev_dir.join(info.uio()).display())
                })?;
                Ok(Attached { uio, dev })
            });
            match res {
                Ok(att) => {
                    let g = att.uio.ring().geometry();
                    self.log(
                        0,
                        &format!(
                            "attached {}: {} blocks of {} bytes, {} backstore, ring {:#x}+{:#x}, map {:#x}, flags {:#x}",
                            att.dev.name,
                            att.dev.lun.num_blocks,
                            att.dev.lun.block_size,
                            att.dev.store.kind(),
                            g.cmdr_off,
                            g.cmdr_size,
                            g.map_len,
                            g.flags
                        ),
                    );
                    self.failures.remove(&info.index);
                    self.devs.push(att);
                    self.attached_any = true;
                    if self.opts.once_device {
                        break;
                    }
                }
                Err(e) => {
                    if self.failures.get(&info.index) != Some(&e) {
                        eprintln!(
                            "tcmu-rs-handler: cannot attach {} ({}): {e}",
                            info.uio(),
                            info.raw_name
                        );
                        self.failures.insert(info.index, e);
                    }
                }
            }
        }
        Ok(())
    }

    fn detach(&mut self, i: usize, why: &str) {
        let att = self.devs.swap_remove(i);
        let s = att.dev.stats;
        self.log(
            0,
            &format!(
                "detached {}: {why} ({} commands, {} errors, {} bytes read, {} written)",
                att.dev.name, s.cmds, s.errors, s.read_bytes, s.written_bytes
            ),
        );
    }

    fn poll_once(&mut self) -> io::Result<()> {
        let mut pfds: Vec<libc::pollfd> = self
            .devs
            .iter()
            .map(|a| libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&a.uio)),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `pfds` is a valid array of pollfds.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 100) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            for p in &mut pfds {
                p.revents = 0;
            }
        }
        let mut dead: Vec<(usize, String)> = Vec::new();
        for (i, att) in self.devs.iter_mut().enumerate() {
            let rev = pfds[i].revents;
            if rev & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                dead.push((i, "device removed".into()));
                continue;
            }
            if rev & libc::POLLIN != 0 {
                if let Err(e) = att.uio.ack_event() {
                    dead.push((i, format!("read: {e}")));
                    continue;
                }
            }
            // Check every device on every wakeup: cheap (one read of
            // cmd_head) and robust against missed events.
            if let Err(e) = service(att) {
                dead.push((i, e));
            }
        }
        for (i, why) in dead.into_iter().rev() {
            if why != "device removed" {
                eprintln!("tcmu-rs-handler: {}: {why}", self.devs[i].dev.name);
            }
            self.detach(i, &why);
        }
        Ok(())
    }
}

/// Runs the daemon; returns the exit status.
pub fn run(opts: Options) -> i32 {
    if let Err(e) = install_signals() {
        eprintln!("tcmu-rs-handler: sigaction: {e}");
        return 1;
    }
    let mut d = Daemon {
        opts,
        devs: Vec::new(),
        failures: HashMap::new(),
        attached_any: false,
    };
    if let Err(e) = d.scan_attach() {
        eprintln!("tcmu-rs-handler: scanning {}: {e}", d.opts.sysfs.display());
        return 1;
    }
    if d.devs.is_empty() && !d.opts.wait {
        eprintln!("tcmu-rs-handler: no matching TCMU device (use --wait to wait for one)");
        return 1;
    }
    let mut last_scan = Instant::now();
    let mut status = 0;
    while !STOP.load(Ordering::SeqCst) {
        if let Err(e) = d.poll_once() {
            eprintln!("tcmu-rs-handler: poll: {e}");
            status = 1;
            break;
        }
        if d.devs.is_empty() && d.attached_any && (d.opts.once_device || !d.opts.wait) {
            d.log(1, "no device left, exiting");
            break;
        }
        if d.opts.wait && last_scan.elapsed() >= Duration::from_millis(100) {
            last_scan = Instant::now();
            if let Err(e) = d.scan_attach() {
                eprintln!("tcmu-rs-handler: scanning {}: {e}", d.opts.sysfs.display());
            }
        }
    }
    if STOP.load(Ordering::SeqCst) {
        d.log(0, "signal received, exiting");
    }
    while !d.devs.is_empty() {
        d.detach(d.devs.len() - 1, "exiting");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<Options>, String> {
        parse_args(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn arguments() {
        assert_eq!(args("").unwrap(), Some(Options::default()));
        let o = args("-v -vv --dev uio3 --once-device --wait --configfs /x")
            .unwrap()
            .unwrap();
        assert_eq!(o.verbose, 3);
        assert_eq!(o.dev, Some(3));
        assert!(o.once_device && o.wait);
        assert_eq!(o.configfs, PathBuf::from("/x"));
        assert_eq!(args("--dev /dev/uio12").unwrap().unwrap().dev, Some(12));
        assert_eq!(args("--help").unwrap(), None);
        assert!(args("--dev").is_err());
        assert!(args("--dev sda").is_err());
        assert!(args("-x").is_err());
        assert!(args("--verbose").is_err());
    }
}
