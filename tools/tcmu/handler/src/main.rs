// SPDX-License-Identifier: GPL-2.0

//! `tcmu-rs-handler`: serves TCMU devices with ram, file or null
//! backstores. See `tcmu-rs-handler --help`.

use tcmu_handler::daemon;

fn main() {
    let opts = match daemon::parse_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{}", daemon::USAGE);
            return;
        }
        Err(e) => {
            eprintln!("tcmu-rs-handler: {e}\n{}", daemon::USAGE);
            std::process::exit(2);
        }
    };
    std::process::exit(daemon::run(opts));
}
