// SPDX-License-Identifier: GPL-2.0

//! Command line of `tcmu-rs-fuzzer`.

use std::path::PathBuf;
use std::time::Duration;

use tcmu_ring::configfs;
use tcmu_ring::uio;

use crate::mutation::Mutation;

/// Usage text.
pub const USAGE: &str = "\
usage: tcmu-rs-fuzzer [-v]... [--dev uioN] [--mutations N] [--seed S]
                      [--time SECONDS] [--recover-every N] [--settle SECONDS]
                      [--tick MS]
                      [--only KIND,...] [--list]
                      [--sysfs DIR] [--devdir DIR] [--configfs DIR]

A hostile TCMU handler: serves the device (ram backstore) while corrupting
the shared memory protocol on purpose, recovering with action/reset_ring.

  --dev uioN          the device (default: the only tcm-user UIO device)
  --mutations N       stop after N mutations (default 20000)
  --seed S            PRNG seed (default: from the clock; printed at the end)
  --time SECONDS      stop after this long (default: no limit)
  --recover-every N   reset_ring after N mutations without one (default 2000)
  --settle SECONDS    after the final reset_ring, serve correctly this long
                      (default 3; SIGTERM/SIGINT end it early)
  --tick MS           while fuzzing, wait at most MS ms for the kernel between
                      rounds of ring-level mutations (default 5, 1..1000): a
                      shorter tick means more mutations per second
  --only KIND,...     only these mutation kinds (see --list)
  --list              list the mutation kinds
  -v                  log recoveries (-vv: every mutation)

Prints `fuzzer: N mutations, M recoveries, seed S` and details. Exit status
0, 1 on setup errors, 3 if something looked like a kernel bug (ANOMALY
lines).";

/// Options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Verbosity.
    pub verbose: u8,
    /// `uioN`.
    pub dev: Option<u32>,
    /// Mutation budget.
    pub mutations: u64,
    /// Seed.
    pub seed: Option<u64>,
    /// Time limit.
    pub time: Option<Duration>,
    /// Periodic recovery.
    pub recover_every: u64,
    /// Correct service after the final recovery.
    pub settle: Duration,
    /// Longest wait for the kernel between rounds while fuzzing (ms).
    pub tick_ms: u16,
    /// Restrict the mutation kinds.
    pub only: Vec<Mutation>,
    /// List the kinds and exit.
    pub list: bool,
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
            mutations: 20_000,
            seed: None,
            time: None,
            recover_every: 2_000,
            settle: Duration::from_secs(3),
            tick_ms: 5,
            only: Vec::new(),
            list: false,
            sysfs: uio::SYSFS_UIO.into(),
            dev_dir: uio::DEV_DIR.into(),
            configfs: configfs::TARGET_CORE.into(),
        }
    }
}

fn secs(name: &str, v: &str) -> Result<Duration, String> {
    let f: f64 = v.parse().map_err(|_| format!("bad {name} {v:?}"))?;
    if !(0.0..1e9).contains(&f) {
        return Err(format!("bad {name} {v:?}"));
    }
    Ok(Duration::from_secs_f64(f))
}

fn num(name: &str, v: &str) -> Result<u64, String> {
    let r = if let Some(h) = v.strip_prefix("0x") {
        u64::from_str_radix(h, 16)
    } else {
        v.parse()
    };
    r.map_err(|_| format!("bad {name} {v:?}"))
}

/// Parses the arguments (without the program name); `Ok(None)` for
/// `--help`.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
    let mut o = Options::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--list" => o.list = true,
            "--dev" => {
                let v = value("--dev")?;
                o.dev = Some(
                    tcmu_handler::daemon::parse_uio_arg(&v)
                        .ok_or_else(|| format!("bad --dev {v:?}"))?,
                );
            }
            "--mutations" => o.mutations = num("--mutations", &value("--mutations")?)?,
            "--seed" => o.seed = Some(num("--seed", &value("--seed")?)?),
            "--time" => o.time = Some(secs("--time", &value("--time")?)?),
            "--recover-every" => {
                o.recover_every = num("--recover-every", &value("--recover-every")?)?
            }
            "--settle" => o.settle = secs("--settle", &value("--settle")?)?,
            "--tick" => {
                let v = value("--tick")?;
                o.tick_ms = match num("--tick", &v)? {
                    t @ 1..=1000 => t as u16,
                    _ => return Err(format!("bad --tick {v:?} (1..1000)")),
                };
            }
            "--only" => {
                for k in value("--only")?.split(',').filter(|k| !k.is_empty()) {
                    o.only.push(
                        Mutation::from_name(k)
                            .ok_or_else(|| format!("unknown mutation {k:?} (see --list)"))?,
                    );
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<Options>, String> {
        parse_args(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn arguments() {
        assert_eq!(args("").unwrap(), Some(Options::default()));
        let o = args("-vv --dev uio3 --mutations 1000000 --seed 0x2a --time 1.5 --recover-every 7 --settle 0 --tick 1 --only hold,bad-cmd-id")
            .unwrap()
            .unwrap();
        assert_eq!(o.verbose, 2);
        assert_eq!(o.dev, Some(3));
        assert_eq!(o.mutations, 1_000_000);
        assert_eq!(o.seed, Some(42));
        assert_eq!(o.time, Some(Duration::from_millis(1500)));
        assert_eq!(o.recover_every, 7);
        assert_eq!(o.settle, Duration::ZERO);
        assert_eq!(o.tick_ms, 1);
        assert!(args("--tick 0").is_err());
        assert!(args("--tick 1001").is_err());
        assert_eq!(o.only, vec![Mutation::HoldCommand, Mutation::BadCmdId]);
        assert_eq!(args("--help").unwrap(), None);
        assert!(args("--only nonsense").is_err());
        assert!(args("--seed").is_err());
        assert!(args("--time -1").is_err());
        assert!(args("--mutations x").is_err());
        assert!(args("-x").is_err());
    }
}
