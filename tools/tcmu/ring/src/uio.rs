// SPDX-License-Identifier: GPL-2.0

//! Discovery of TCMU UIO devices and access to `/dev/uioN`.
//!
//! TCMU names its UIO devices `tcm-user/<hba>/<dev>/<config>` (or
//! `tcm-user/<hba>/<dev>` without a `dev_config`); the handler maps
//! `maps/map0` (mailbox, ring and data area) and waits for kernel
//! notifications by reading 4 bytes from the device, and notifies the
//! kernel of completions by writing 4 bytes.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use crate::mem::Region;
use crate::ring::Ring;

/// Default sysfs directory of UIO devices.
pub const SYSFS_UIO: &str = "/sys/class/uio";
/// Default directory of the UIO device nodes.
pub const DEV_DIR: &str = "/dev";
/// Prefix of the UIO names of TCMU devices.
pub const TCMU_UIO_PREFIX: &str = "tcm-user";

/// A parsed TCMU UIO name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UioName {
    /// HBA number: the configfs directory is `core/user_<hba>`.
    pub hba: u32,
    /// Device name: the configfs directory `core/user_<hba>/<dev>`.
    pub dev: String,
    /// The `dev_config` string (`<subtype>/<path>`), if set.
    pub config: Option<String>,
}

/// Parses `tcm-user/<hba>/<dev>[/<config>]`; `None` if the name is not a
/// TCMU one. The config string may itself contain `/`.
pub fn parse_uio_name(name: &str) -> Option<UioName> {
    let name = name.trim_end_matches('\n');
    let rest = name.strip_prefix(TCMU_UIO_PREFIX)?.strip_prefix('/')?;
    let mut it = rest.splitn(3, '/');
    let hba = it.next()?;
    if hba.is_empty() || !hba.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hba = hba.parse().ok()?;
    let dev = it.next()?;
    if dev.is_empty() {
        return None;
    }
    let config = it.next().filter(|c| !c.is_empty()).map(str::to_owned);
    Some(UioName {
        hba,
        dev: dev.to_owned(),
        config,
    })
}

/// Parses a sysfs number (`0x...` hex as printed by `%pa`, or decimal).
pub fn parse_sysfs_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A TCMU UIO device found in sysfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UioInfo {
    /// `N` of `uioN`.
    pub index: u32,
    /// The parsed name.
    pub name: UioName,
    /// The raw name.
    pub raw_name: String,
    /// Size of `map0`.
    pub map_size: u64,
}

impl UioInfo {
    /// `uioN`.
    pub fn uio(&self) -> String {
        format!("uio{}", self.index)
    }
}

fn read_trimmed(p: &Path) -> io::Result<String> {
    Ok(std::fs::read_to_string(p)?
        .trim_end_matches('\n')
        .to_owned())
}

/// Reads the description of `uioN` under `sysfs` (normally
/// [`SYSFS_UIO`]); `Ok(None)` if it is not a TCMU device.
pub fn probe(sysfs: &Path, index: u32) -> io::Result<Option<UioInfo>> {
    let dir = sysfs.join(format!("uio{index}"));
    let raw_name = read_trimmed(&dir.join("name"))?;
    let Some(name) = parse_uio_name(&raw_name) else {
        return Ok(None);
    };
    let size_s = read_trimmed(&dir.join("maps/map0/size"))?;
    let map_size = parse_sysfs_u64(&size_s).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad map0 size {size_s:?} of uio{index}"),
        )
    })?;
    Ok(Some(UioInfo {
        index,
        name,
        raw_name,
        map_size,
    }))
}

/// Lists the TCMU UIO devices under `sysfs` (normally [`SYSFS_UIO`]),
/// sorted by index. Devices that vanish while scanning are skipped.
pub fn scan(sysfs: &Path) -> io::Result<Vec<UioInfo>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(sysfs) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for ent in rd {
        let ent = ent?;
        let fname = ent.file_name();
        let Some(idx) = fname
            .to_str()
            .and_then(|n| n.strip_prefix("uio"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        match probe(sysfs, idx) {
            Ok(Some(info)) => out.push(info),
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|i| i.index);
    Ok(out)
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// An open TCMU UIO device with its mapped ring.
#[derive(Debug)]
pub struct UioDevice {
    file: File,
    ring: Ring,
    info: UioInfo,
    path: PathBuf,
}

impl UioDevice {
    /// Opens `/dev/uioN` (under `dev_dir`, normally [`DEV_DIR`]) in
    /// non-blocking mode and maps `map0`. The kernel allows one opener at
    /// a time (`EBUSY` otherwise).
    pub fn open(info: &UioInfo, dev_dir: &Path) -> io::Result<Self> {
        let path = dev_dir.join(info.uio());
        let file = File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)?;
        let len = usize::try_from(info.map_size).map_err(invalid)?;
        if len == 0 {
            return Err(invalid("map0 has size 0"));
        }
        // SAFETY: plain mmap call; the result is checked below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| invalid("mmap returned NULL"))?;
        // SAFETY: a fresh, page-aligned, read-write shared mapping of `len`
        // bytes, owned by the region from now on.
        let region = unsafe { Region::from_mmap(ptr, len) };
        let ring = Ring::new(region).map_err(invalid)?;
        Ok(UioDevice {
            file,
            ring,
            info: info.clone(),
            path,
        })
    }

    /// The device description.
    pub fn info(&self) -> &UioInfo {
        &self.info
    }

    /// Path of the device node.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The command ring.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The command ring, mutably.
    pub fn ring_mut(&mut self) -> &mut Ring {
        &mut self.ring
    }

    /// Consumes a pending kernel notification without blocking; returns
    /// whether there was one. `EIO` means the device was removed.
    pub fn ack_event(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 4];
        match self.file.read(&mut buf) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits up to `timeout_ms` (-1: forever) for a kernel notification
    /// and consumes it; returns whether there was one.
    pub fn wait(&mut self, timeout_ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        if r == 0 {
            return Ok(false);
        }
        self.ack_event()
    }

    /// Tells the kernel to reap completions (4-byte write).
    pub fn notify(&mut self) -> io::Result<()> {
        let n = self.file.write(&0u32.to_ne_bytes())?;
        if n != 4 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write to the UIO device",
            ));
        }
        Ok(())
    }

    /// Notifies the kernel if the tail moved since the last notification.
    pub fn notify_if_needed(&mut self) -> io::Result<bool> {
        if self.ring.take_tail_moved() {
            self.notify()?;
            return Ok(true);
        }
        Ok(false)
    }
}

impl AsFd for UioDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse_uio_name("tcm-user/1/h1/ram/x\n"),
            Some(UioName {
                hba: 1,
                dev: "h1".into(),
                config: Some("ram/x".into())
            })
        );
        assert_eq!(
            parse_uio_name("tcm-user/12/disk/file//var/tmp/a b"),
            Some(UioName {
                hba: 12,
                dev: "disk".into(),
                config: Some("file//var/tmp/a b".into())
            })
        );
        assert_eq!(
            parse_uio_name("tcm-user/3/d"),
            Some(UioName {
                hba: 3,
                dev: "d".into(),
                config: None
            })
        );
        assert_eq!(
            parse_uio_name("tcm-user/3/d/"),
            Some(UioName {
                hba: 3,
                dev: "d".into(),
                config: None
            })
        );
        for bad in [
            "uio_pdrv",
            "tcm-user",
            "tcm-user/",
            "tcm-user/x/d",
            "tcm-user/1",
            "tcm-user/1/",
            "tcm-userX/1/d",
            "tcm-user/-1/d",
        ] {
            assert_eq!(parse_uio_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn sysfs_numbers() {
        assert_eq!(parse_sysfs_u64("0x0000000040800000\n"), Some(0x4080_0000));
        assert_eq!(parse_sysfs_u64("512\n"), Some(512));
        assert_eq!(parse_sysfs_u64("0xzz"), None);
        assert_eq!(parse_sysfs_u64(""), None);
    }

    #[test]
    fn scan_fake_sysfs() {
        let dir = std::env::temp_dir().join(format!("tcmu-ring-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (n, name, size) in [
            (0, "uio_pdrv_genirq", "0x1000"),
            (3, "tcm-user/1/h1/ram/x", "0x0000000040800000"),
            (2, "tcm-user/2/f/file//tmp/img", "0x2000"),
        ] {
            let d = dir.join(format!("uio{n}"));
            std::fs::create_dir_all(d.join("maps/map0")).unwrap();
            std::fs::write(d.join("name"), format!("{name}\n")).unwrap();
            std::fs::write(d.join("maps/map0/size"), format!("{size}\n")).unwrap();
        }
        std::fs::create_dir_all(dir.join("notuio")).unwrap();
        let found = scan(&dir).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].index, 2);
        assert_eq!(found[0].name.config.as_deref(), Some("file//tmp/img"));
        assert_eq!(found[0].map_size, 0x2000);
        assert_eq!(found[1].uio(), "uio3");
        assert_eq!(found[1].map_size, 0x4080_0000);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(scan(&dir).unwrap().is_empty());
    }
}
