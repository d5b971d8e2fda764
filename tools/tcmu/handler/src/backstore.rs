// SPDX-License-Identifier: GPL-2.0

//! Backstores: where the blocks live.
//!
//! The device's `dev_config` (the part of the UIO name after
//! `tcm-user/<hba>/<dev>/`) selects one:
//!
//! * `ram/...`: zeroed anonymous memory of `dev_size` bytes;
//! * `file/<path>`: `pread`/`pwrite` on `<path>` (made absolute: `file/tmp/x`
//!   and `file//tmp/x` both mean `/tmp/x`), created if missing; reads past
//!   its end return zeros; SYNCHRONIZE CACHE and FUA do `fdatasync`;
//! * `null/...`: reads return zeros, writes are dropped.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A parsed `dev_config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// `ram/...`.
    Ram,
    /// `file/<path>`.
    File(PathBuf),
    /// `null/...`.
    Null,
}

/// Parses a `dev_config` string; `None` if it is not for this handler.
pub fn parse_config(cfg: &str) -> Option<StoreSpec> {
    let (kind, rest) = match cfg.split_once('/') {
        Some((k, r)) => (k, Some(r)),
        None => (cfg, None),
    };
    match kind {
        "ram" => Some(StoreSpec::Ram),
        "null" => Some(StoreSpec::Null),
        "file" => {
            let path = rest?.trim_start_matches('/');
            if path.is_empty() {
                return None;
            }
            Some(StoreSpec::File(Path::new("/").join(path)))
        }
        _ => None,
    }
}

/// Block storage behind a logical unit. Offsets and lengths are in bytes
/// and already checked against the device size.
pub trait Backstore {
    /// Fills `buf` with the bytes at `off`.
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Stores `buf` at `off`.
    fn write_at(&mut self, off: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes written data durable.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Whether writes sit in a volatile cache until [`Backstore::flush`]
    /// (reported as WCE in the caching mode page).
    fn volatile_cache(&self) -> bool {
        false
    }
    /// Whether the medium is non-rotating.
    fn non_rotational(&self) -> bool {
        true
    }
    /// Short name for logs.
    fn kind(&self) -> &'static str;
}

fn range(data: &[u8], off: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
    let start = usize::try_from(off).ok();
    match start.and_then(|s| s.checked_add(len).map(|e| s..e)) {
        Some(r) if r.end <= data.len() => Ok(r),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "access beyond the end of the ram backstore",
        )),
    }
}

/// Zeroed memory of the device size (an anonymous private mapping, so
/// pages are only allocated when written).
pub struct RamStore {
    ptr: *mut u8,
    len: usize,
}

impl RamStore {
    /// Maps `size` bytes of zeroed memory.
    pub fn new(size: u64) -> io::Result<Self> {
        let len = usize::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::ENOMEM))?;
        if len == 0 {
            return Ok(RamStore {
                ptr: core::ptr::NonNull::dangling().as_ptr(),
                len: 0,
            });
        }
        // SAFETY: anonymous mapping, result checked.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RamStore { ptr: p.cast(), len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a private mapping of `len` bytes owned by self
        // (or dangling with len 0).
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes it exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for RamStore {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: our mapping.
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
        }
    }
}

impl Backstore for RamStore {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let r = range(self.bytes(), off, buf.len())?;
        buf.copy_from_slice(&self.bytes()[r]);
        Ok(())
    }

    fn write_at(&mut self, off: u64, buf: &[u8]) -> io::Result<()> {
        let r = range(self.bytes(), off, buf.len())?;
        self.bytes_mut()[r].copy_from_slice(buf);
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "ram"
    }
}

/// Reads zeros, drops writes.
pub struct NullStore;

impl Backstore for NullStore {
    fn read_at(&mut self, _off: u64, buf: &mut [u8]) -> io::Result<()> {
        buf.fill(0);
        Ok(())
    }

    fn write_at(&mut self, _off: u64, _buf: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "null"
    }
}

/// A file (or block device) accessed with `pread`/`pwrite`.
pub struct FileStore {
    file: File,
    path: PathBuf,
}

impl FileStore {
    /// Opens (creating if needed) `path` for reading and writing.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        Ok(FileStore {
            file,
            path: path.to_owned(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Backstore for FileStore {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], off + done as u64) {
                Ok(0) => {
                    // Past the end of the file: zeros.
                    buf[done..].fill(0);
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn write_at(&mut self, off: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, off)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn volatile_cache(&self) -> bool {
        true
    }

    fn non_rotational(&self) -> bool {
        false
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}

/// Opens the backstore for `spec` with `size` bytes.
pub fn open(spec: &StoreSpec, size: u64) -> io::Result<Box<dyn Backstore>> {
    Ok(match spec {
        StoreSpec::Ram => Box::new(RamStore::new(size)?),
        StoreSpec::Null => Box::new(NullStore),
        StoreSpec::File(p) => Box::new(FileStore::open(p)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs() {
        assert_eq!(parse_config("ram/x"), Some(StoreSpec::Ram));
        assert_eq!(parse_config("ram"), Some(StoreSpec::Ram));
        assert_eq!(parse_config("null/"), Some(StoreSpec::Null));
        assert_eq!(
            parse_config("file//tmp/a"),
            Some(StoreSpec::File("/tmp/a".into()))
        );
        assert_eq!(
            parse_config("file/tmp/a b"),
            Some(StoreSpec::File("/tmp/a b".into()))
        );
        assert_eq!(parse_config("file/"), None);
        assert_eq!(parse_config("file"), None);
        assert_eq!(parse_config("glfs/vol@host/x"), None);
        assert_eq!(parse_config("ramx/"), None);
        assert_eq!(parse_config(""), None);
    }

    #[test]
    fn ram() {
        let mut r = RamStore::new(8192).unwrap();
        let mut b = [1u8; 16];
        r.read_at(100, &mut b).unwrap();
        assert_eq!(b, [0; 16]);
        r.write_at(8180, &[7; 12]).unwrap();
        r.read_at(8176, &mut b).unwrap();
        assert_eq!(&b[..4], &[0; 4]);
        assert_eq!(&b[4..], &[7; 12]);
        assert!(r.write_at(8190, &[0; 4]).is_err());
        assert!(r.read_at(u64::MAX, &mut b).is_err());
        let mut z = RamStore::new(0).unwrap();
        assert!(z.read_at(0, &mut []).is_ok());
    }

    #[test]
    fn null() {
        let mut n = NullStore;
        let mut b = [9u8; 8];
        n.write_at(0, &[1; 8]).unwrap();
        n.read_at(0, &mut b).unwrap();
        assert_eq!(b, [0; 8]);
    }

    #[test]
    fn file() {
        let p = std::env::temp_dir().join(format!("tcmu-handler-file-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let mut f = FileStore::open(&p).unwrap();
        let mut b = [5u8; 8];
        f.read_at(4096, &mut b).unwrap();
        assert_eq!(b, [0; 8]);
        f.write_at(10, b"abcdef").unwrap();
        f.flush().unwrap();
        let mut b = [5u8; 8];
        f.read_at(12, &mut b).unwrap();
        assert_eq!(&b, b"cdef\0\0\0\0");
        assert!(f.volatile_cache());
        drop(f);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 16);
        std::fs::remove_file(&p).unwrap();
    }
}
