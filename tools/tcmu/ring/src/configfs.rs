// SPDX-License-Identifier: GPL-2.0

//! The configfs facts a handler needs about a TCMU device, from
//! `/sys/kernel/config/target/core/user_<hba>/<dev>`.

use std::io;
use std::path::{Path, PathBuf};

use crate::uio::UioName;

/// Default configfs directory of the target core.
pub const TARGET_CORE: &str = "/sys/kernel/config/target/core";

/// What the `info` file says about a TCMU device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevInfo {
    /// `dev_config`, `None` if not set (printed as `NULL`).
    pub config: Option<String>,
    /// `dev_size` in bytes.
    pub size: u64,
}

/// Parses the `info` file: the target core's status line, then the TCMU
/// part `Config: <cfg> Size: <n> MaxDataAreaMB: ...`.
pub fn parse_info(text: &str) -> Option<DevInfo> {
    let cfg_start = text.find("Config: ")? + "Config: ".len();
    let rest = &text[cfg_start..];
    let size_at = rest.rfind(" Size: ")?;
    let config = &rest[..size_at];
    let size_str = rest[size_at + " Size: ".len()..]
        .split_whitespace()
        .next()?;
    let size = size_str.parse().ok()?;
    let config = (config != "NULL").then(|| config.to_owned());
    Some(DevInfo { config, size })
}

/// Parses `wwn/vpd_unit_serial` (`T10 VPD Unit Serial Number: <serial>`).
pub fn parse_unit_serial(text: &str) -> Option<String> {
    let s = text
        .trim()
        .strip_prefix("T10 VPD Unit Serial Number:")?
        .trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// The configfs directory of one TCMU device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevConfigfs {
    /// `<root>/user_<hba>/<dev>`.
    pub dir: PathBuf,
}

fn invalid(what: &str, path: &Path, text: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("cannot parse {what} from {}: {text:?}", path.display()),
    )
}

impl DevConfigfs {
    /// The directory of device `dev` of HBA `hba` under `root` (normally
    /// [`TARGET_CORE`]).
    pub fn new(root: &Path, hba: u32, dev: &str) -> Self {
        DevConfigfs {
            dir: root.join(format!("user_{hba}")).join(dev),
        }
    }

    /// The directory of the device behind a UIO name.
    pub fn for_uio(root: &Path, name: &UioName) -> Self {
        Self::new(root, name.hba, &name.dev)
    }

    fn read(&self, rel: &str) -> io::Result<(PathBuf, String)> {
        let p = self.dir.join(rel);
        let s = std::fs::read_to_string(&p)?;
        Ok((p, s))
    }

    /// The `info` file, parsed.
    pub fn info(&self) -> io::Result<DevInfo> {
        let (p, s) = self.read("info")?;
        parse_info(&s).ok_or_else(|| invalid("Config/Size", &p, &s))
    }

    /// A numeric attribute, `attrib/<name>`.
    pub fn attrib(&self, name: &str) -> io::Result<u64> {
        let (p, s) = self.read(&format!("attrib/{name}"))?;
        s.trim().parse().map_err(|_| invalid(name, &p, &s))
    }

    /// `attrib/hw_block_size`.
    pub fn hw_block_size(&self) -> io::Result<u32> {
        let v = self.attrib("hw_block_size")?;
        u32::try_from(v).map_err(|_| invalid("hw_block_size", &self.dir, &v.to_string()))
    }

    /// `attrib/hw_max_sectors`.
    pub fn hw_max_sectors(&self) -> io::Result<u32> {
        let v = self.attrib("hw_max_sectors")?;
        u32::try_from(v).map_err(|_| invalid("hw_max_sectors", &self.dir, &v.to_string()))
    }

    /// `attrib/emulate_write_cache` as a boolean.
    pub fn emulate_write_cache(&self) -> io::Result<bool> {
        Ok(self.attrib("emulate_write_cache")? != 0)
    }

    /// The T10 unit serial number the target core generated
    /// (`wwn/vpd_unit_serial`), if any.
    pub fn unit_serial(&self) -> io::Result<Option<String>> {
        let (_, s) = self.read("wwn/vpd_unit_serial")?;
        Ok(parse_unit_serial(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info() {
        let t = "Status: DEACTIVATED  Max Queue Depth: 0  SectorSize: 512  HwMaxSectors: 128\n        Config: ram/x Size: 67108864 MaxDataAreaMB: 1024 DataPagesPerBlk: 1 CmdRingSizeMB: 8\n";
        assert_eq!(
            parse_info(t),
            Some(DevInfo {
                config: Some("ram/x".into()),
                size: 67108864
            })
        );
        let t = "Status: ACTIVATED  ...\n        Config: NULL Size: 0 MaxDataAreaMB: 1024 DataPagesPerBlk: 1 CmdRingSizeMB: 8\n";
        assert_eq!(
            parse_info(t),
            Some(DevInfo {
                config: None,
                size: 0
            })
        );
        let t = "Config: file//tmp/a Size: b Size: 4096 MaxDataAreaMB: 8";
        assert_eq!(
            parse_info(t),
            Some(DevInfo {
                config: Some("file//tmp/a Size: b".into()),
                size: 4096
            })
        );
        assert_eq!(parse_info("Config: x Size: -1 "), None);
        assert_eq!(parse_info("Size: 4096"), None);
        assert_eq!(parse_info(""), None);
    }

    #[test]
    fn serial() {
        assert_eq!(
            parse_unit_serial("T10 VPD Unit Serial Number: 1f2e3d4c-aaaa\n").as_deref(),
            Some("1f2e3d4c-aaaa")
        );
        assert_eq!(parse_unit_serial("T10 VPD Unit Serial Number: \n"), None);
        assert_eq!(parse_unit_serial("garbage"), None);
    }

    #[test]
    fn files() {
        let root = std::env::temp_dir().join(format!("tcmu-ring-cfs-{}", std::process::id()));
        let d = DevConfigfs::new(&root, 1, "h1");
        std::fs::create_dir_all(d.dir.join("attrib")).unwrap();
        std::fs::create_dir_all(d.dir.join("wwn")).unwrap();
        std::fs::write(
            d.dir.join("info"),
            "Status: x\n Config: null/ Size: 1048576 MaxDataAreaMB: 1\n",
        )
        .unwrap();
        std::fs::write(d.dir.join("attrib/hw_block_size"), "4096\n").unwrap();
        std::fs::write(d.dir.join("attrib/hw_max_sectors"), "128\n").unwrap();
        std::fs::write(d.dir.join("attrib/emulate_write_cache"), "0\n").unwrap();
        std::fs::write(
            d.dir.join("wwn/vpd_unit_serial"),
            "T10 VPD Unit Serial Number: abc\n",
        )
        .unwrap();
        assert_eq!(d.info().unwrap().size, 1048576);
        assert_eq!(d.hw_block_size().unwrap(), 4096);
        assert_eq!(d.hw_max_sectors().unwrap(), 128);
        assert!(!d.emulate_write_cache().unwrap());
        assert_eq!(d.unit_serial().unwrap().as_deref(), Some("abc"));
        assert!(d.attrib("missing").is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
