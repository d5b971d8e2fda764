// SPDX-License-Identifier: GPL-2.0

//! `tcmu-rs-fuzzer`: a hostile TCMU handler.
//!
//! It attaches to a TCMU device's UIO ring like `tcmu-rs-handler` and
//! serves its commands (ram backstore, so I/O progresses), but a seeded
//! PRNG makes it misbehave: wrong responses, broken ring protocol, garbage
//! in shared memory the kernel must not trust (see [`mutation`]). Every so
//! often, and whenever I/O stalls, it recovers with `action/reset_ring`.
//!
//! * [`rng`]: the PRNG (deterministic per seed).
//! * [`mutation`]: the mutation kinds, their selection and value
//!   generators.
//! * [`engine`]: the fuzzing handler, over a [`engine::Port`].
//! * [`port`]: the port to the real kernel (UIO device and configfs).
//! * [`cli`]: command line.

pub mod cli;
pub mod engine;
pub mod mutation;
pub mod port;
pub mod rng;
