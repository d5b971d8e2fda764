// SPDX-License-Identifier: GPL-2.0

//! `tcmu-rs-fuzzer`: a hostile TCMU handler. See `tcmu-rs-fuzzer --help`
//! and the library documentation.

use std::sync::atomic::{AtomicBool, Ordering};

use tcmu_fuzzer::cli::{self, Options};
use tcmu_fuzzer::engine::{Config, Engine};
use tcmu_fuzzer::mutation::Mutation;
use tcmu_fuzzer::port::UioPort;
use tcmu_ring::configfs::DevConfigfs;
use tcmu_ring::uio::{self, UioDevice};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signals() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to
        // an atomic. No SA_RESTART: poll returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, core::ptr::null_mut());
        }
    }
}

fn default_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (t ^ (std::process::id() as u64).rotate_left(32)) % 1_000_000_000
}

fn run(o: Options) -> Result<i32, String> {
    let devs: Vec<_> = uio::scan(&o.sysfs)
        .map_err(|e| format!("scanning {}: {e}", o.sysfs.display()))?
        .into_iter()
        .filter(|i| o.dev.is_none_or(|d| d == i.index))
        .collect();
    let info = match devs.as_slice() {
        [one] => one.clone(),
        [] => return Err("no tcm-user UIO device found".into()),
        _ => {
            return Err(format!(
                "{} tcm-user UIO devices: choose one with --dev",
                devs.len()
            ))
        }
    };
    let hopts = tcmu_handler::daemon::Options {
        configfs: o.configfs.clone(),
        ..Default::default()
    };
    let dev = tcmu_handler::daemon::make_device(&info, &hopts)?;
    let uio = UioDevice::open(&info, &o.dev_dir)
        .map_err(|e| format!("{}: {e}", o.dev_dir.join(info.uio()).display()))?;
    let cfs_dir = DevConfigfs::for_uio(&o.configfs, &info.name).dir;
    let seed = o.seed.unwrap_or_else(default_seed);
    let g = *uio.ring().geometry();
    eprintln!(
        "tcmu-rs-fuzzer: {} ({}): ring {:#x}+{:#x}, map {:#x}, flags {:#x}; seed {seed}, {} mutations{}",
        info.uio(),
        info.raw_name,
        g.cmdr_off,
        g.cmdr_size,
        g.map_len,
        g.flags,
        o.mutations,
        o.time.map(|t| format!(", {:.0} s at most", t.as_secs_f64())).unwrap_or_default()
    );
    let cfg = Config {
        mutations: o.mutations,
        time: o.time,
        recover_every: o.recover_every,
        tick_ms: o.tick_ms.into(),
        only: o.only.clone(),
        verbose: o.verbose,
        ..Config::default()
    };
    let mut e = Engine::new(UioPort::new(uio, cfs_dir), dev, cfg, seed);
    install_signals();
    let stop = || STOP.load(Ordering::SeqCst);
    let res = e.fuzz(&stop);
    e.final_recovery();
    for l in e.report(seed) {
        println!("{l}");
    }
    if let Err(err) = res {
        return Err(format!("device: {err} (seed {seed})"));
    }
    let served = e.stats.completions;
    e.settle(o.settle, &stop)
        .map_err(|err| format!("device: {err}"))?;
    println!(
        "fuzzer: settled: {} commands served correctly after the final recovery",
        e.stats.completions - served
    );
    Ok(if e.stats.anomalies.is_empty() { 0 } else { 3 })
}

fn main() {
    let o = match cli::parse_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{}", cli::USAGE);
            return;
        }
        Err(e) => {
            eprintln!("tcmu-rs-fuzzer: {e}\n{}", cli::USAGE);
            std::process::exit(2);
        }
    };
    if o.list {
        for m in Mutation::ALL {
            println!("{:<20} {:?}", m.name(), m.class());
        }
        return;
    }
    match run(o) {
        Ok(rc) => std::process::exit(rc),
        Err(e) => {
            eprintln!("tcmu-rs-fuzzer: {e}");
            std::process::exit(1);
        }
    }
}
