// SPDX-License-Identifier: GPL-2.0

//! Data area block allocator.

use proptest::prelude::*;
use tcmu_logic::abi::Iovec;
use tcmu_logic::blocks::*;

fn alloc(max: u32) -> BlockAlloc<Vec<u64>> {
    BlockAlloc::new(max, vec![!0u64; bitmap_words(max)]).unwrap()
}

/// The C algorithm (tcmu_alloc_data_space + tcmu_get_empty_block and the
/// unmap work) on a Vec<bool>.
#[derive(Debug, Clone)]
struct Model {
    bits: Vec<bool>,
    thresh: u32,
    dbi_max: u32,
}

impl Model {
    fn alloc(&mut self, n: u32) -> Option<Vec<u32>> {
        if n == 0 {
            return Some(vec![]);
        }
        let max = self.bits.len() as u32;
        let space = self.thresh
            - self.bits[..self.thresh as usize]
                .iter()
                .filter(|&&b| b)
                .count() as u32;
        if space < n {
            let left = (max - self.thresh) + space;
            if left < n {
                return None;
            }
            self.thresh = (self.thresh + n).min(max);
        }
        let mut out = vec![];
        for _ in 0..n {
            let dbi = (0..self.thresh).find(|&i| !self.bits[i as usize]).unwrap();
            self.bits[dbi as usize] = true;
            self.dbi_max = self.dbi_max.max(dbi);
            out.push(dbi);
        }
        Some(out)
    }

    fn reclaim(&mut self) -> Option<Reclaim> {
        if self.thresh == 0 {
            return None;
        }
        let end = self.dbi_max + 1;
        let last = (0..end).rev().find(|&i| self.bits[i as usize]);
        let start = match last {
            Some(b) if b == self.dbi_max => return None,
            Some(b) => {
                self.thresh = b + 1;
                self.dbi_max = b;
                b + 1
            }
            None => {
                self.thresh = 0;
                self.dbi_max = 0;
                0
            }
        };
        Some(Reclaim { start, end })
    }
}

#[test]
fn new_checks_storage_and_clears() {
    assert_eq!(bitmap_words(0), 0);
    assert_eq!(bitmap_words(1), 1);
    assert_eq!(bitmap_words(64), 1);
    assert_eq!(bitmap_words(65), 2);
    assert_eq!(bitmap_words(u32::MAX), 67_108_864);
    assert!(BlockAlloc::new(65, vec![0u64; 1]).is_none());
    let a = alloc(65);
    assert_eq!(
        (a.used(), a.free_count(), a.thresh(), a.dbi_max()),
        (0, 65, 0, 0)
    );
    assert!((0..70).all(|i| !a.is_used(i)));
}

#[test]
fn alloc_grows_thresh_like_c() {
    let mut a = alloc(100);
    let mut out = [0u32; 100];
    a.alloc(3, &mut out).unwrap();
    assert_eq!(&out[..3], &[0, 1, 2]);
    assert_eq!((a.thresh(), a.dbi_max(), a.used()), (3, 2, 3));
    a.alloc(2, &mut out).unwrap();
    assert_eq!(&out[..2], &[3, 4]);
    assert_eq!(a.thresh(), 5);
    assert_eq!(a.free(&[1, 3]), 0);
    assert_eq!(a.free_below_thresh(), 2);
    // Enough below thresh: reuse the holes, thresh unchanged.
    a.alloc(2, &mut out).unwrap();
    assert_eq!(&out[..2], &[1, 3]);
    assert_eq!(a.thresh(), 5);
    // One hole, need 3: thresh grows by 3 (not by 2), as in C.
    a.free(&[2]);
    a.alloc(3, &mut out).unwrap();
    assert_eq!(&out[..3], &[2, 5, 6]);
    assert_eq!(a.thresh(), 8);
    // Capped at max_blocks.
    a.alloc(92, &mut out).unwrap();
    assert_eq!(a.thresh(), 100);
    assert_eq!(a.used(), 99);
    assert_eq!(a.alloc(2, &mut out), None);
    a.alloc(1, &mut out).unwrap();
    assert_eq!(out[0], 99);
    assert_eq!(a.alloc(1, &mut out), None);
    assert_eq!(a.free_count(), 0);
    assert_eq!(a.dbi_max(), 99);
}

#[test]
fn alloc_failure_changes_nothing() {
    let mut a = alloc(10);
    let mut out = [0u32; 20];
    a.alloc(8, &mut out).unwrap();
    assert_eq!(a.alloc(3, &mut out), None);
    assert_eq!((a.used(), a.thresh()), (8, 8));
    // out too short
    assert_eq!(a.alloc(2, &mut out[..1]), None);
    assert_eq!((a.used(), a.thresh()), (8, 8));
    assert_eq!(a.alloc(0, &mut []), Some(()));
}

#[test]
fn free_counts_bad_indices() {
    let mut a = alloc(10);
    let mut out = [0u32; 4];
    a.alloc(4, &mut out).unwrap();
    assert_eq!(a.free(&[0, 0, 9, 10, u32::MAX, 3]), 4);
    assert_eq!(a.used(), 2);
    assert!(a.is_used(1) && a.is_used(2) && !a.is_used(0) && !a.is_used(3));
}

#[test]
fn reclaim_like_unmap_work() {
    let mut a = alloc(200);
    let mut out = [0u32; 200];
    assert_eq!(a.reclaim(), None); // idle
    a.alloc(150, &mut out).unwrap();
    assert_eq!(a.reclaim(), None); // last used == dbi_max
    let high: Vec<u32> = (70..150).collect();
    a.free(&high);
    a.free(&[10, 20]);
    assert_eq!(a.highest_used(), Some(69));
    assert_eq!(
        a.reclaim(),
        Some(Reclaim {
            start: 70,
            end: 150
        })
    );
    assert_eq!((a.thresh(), a.dbi_max()), (70, 69));
    assert_eq!(a.reclaim(), None);
    let all: Vec<u32> = (0..70).collect();
    a.free(&all);
    assert_eq!(a.highest_used(), None);
    assert_eq!(a.reclaim(), Some(Reclaim { start: 0, end: 70 }));
    assert_eq!((a.thresh(), a.dbi_max()), (0, 0));
    assert_eq!(a.reclaim(), None);
    a.alloc(1, &mut out).unwrap();
    a.clear();
    assert_eq!((a.used(), a.thresh(), a.dbi_max()), (0, 0, 0));
}

#[test]
fn iovec_merging() {
    assert_eq!(iov_count(&[]), 0);
    assert_eq!(iov_count(&[0, 1, 2, 5, 6, 9]), 3);
    assert_eq!(iov_count(&[3, 2, 1]), 3);
    assert_eq!(iov_count(&[u32::MAX, 0]), 2);
    let mut out = [Iovec::default(); 4];
    // 5.5 blocks of 4096 in blocks 0,1,2,5,6,9: last block partial.
    let len = 5 * 4096 + 2048;
    let n = fill_iovecs(&[0, 1, 2, 5, 6, 9], len, 4096, 0x80_0000, &mut out).unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        &out[..3],
        &[
            Iovec {
                base: 0x80_0000,
                len: 3 * 4096
            },
            Iovec {
                base: 0x80_0000 + 5 * 4096,
                len: 2 * 4096
            },
            Iovec {
                base: 0x80_0000 + 9 * 4096,
                len: 2048
            },
        ]
    );
    // Partial last block merged into the previous run.
    let n = fill_iovecs(&[7, 8], 4097, 4096, 0, &mut out).unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        out[0],
        Iovec {
            base: 7 * 4096,
            len: 4097
        }
    );
    // Wrong block count, short output, zero block size, overflow.
    assert_eq!(fill_iovecs(&[0, 1], 4096, 4096, 0, &mut out), None);
    assert_eq!(fill_iovecs(&[0], 4097, 4096, 0, &mut out), None);
    assert_eq!(
        fill_iovecs(&[0, 2, 4, 6, 8], 5 * 4096, 4096, 0, &mut out),
        None
    );
    assert_eq!(fill_iovecs(&[], 1, 0, 0, &mut out), None);
    assert_eq!(
        fill_iovecs(&[u32::MAX], 1, u32::MAX, u64::MAX, &mut out),
        None
    );
    assert_eq!(fill_iovecs(&[], 0, 4096, 0, &mut out), Some(0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random allocations, frees and reclaims behave exactly like the C
    /// algorithm and never hand out a block twice.
    #[test]
    fn matches_c_model(
        max in 1u32..300,
        ops in proptest::collection::vec((0u8..3, 0u32..40, any::<u64>()), 1..150),
    ) {
        let mut a = alloc(max);
        let mut m = Model { bits: vec![false; max as usize], thresh: 0, dbi_max: 0 };
        let mut owned: Vec<Vec<u32>> = vec![];
        let mut out = vec![0u32; 64];
        for (kind, n, pick) in ops {
            match kind {
                0 => {
                    let got = a.alloc(n, &mut out).map(|()| out[..n as usize].to_vec());
                    let want = m.alloc(n);
                    prop_assert_eq!(&got, &want);
                    if let Some(v) = got {
                        for &d in &v {
                            prop_assert!(owned.iter().all(|o| !o.contains(&d)), "double alloc {}", d);
                        }
                        owned.push(v);
                    }
                }
                1 => {
                    if !owned.is_empty() {
                        let v = owned.swap_remove((pick % owned.len() as u64) as usize);
                        prop_assert_eq!(a.free(&v), 0);
                        for d in v {
                            m.bits[d as usize] = false;
                        }
                    } else {
                        prop_assert_eq!(a.free(&[pick as u32]), 1);
                    }
                }
                _ => {
                    prop_assert_eq!(a.reclaim(), m.reclaim());
                }
            }
            let used = m.bits.iter().filter(|&&b| b).count() as u32;
            prop_assert_eq!(a.used(), used);
            prop_assert_eq!(a.free_count(), max - used);
            prop_assert_eq!((a.thresh(), a.dbi_max()), (m.thresh, m.dbi_max));
            for i in 0..max {
                prop_assert_eq!(a.is_used(i), m.bits[i as usize]);
            }
            prop_assert!(m.bits.iter().enumerate().all(|(i, &b)| !b || (i as u32) < m.thresh));
        }
    }

    /// Iovecs cover exactly the data, block by block.
    #[test]
    fn iovecs_cover_data(
        mut dbis in proptest::collection::vec(0u32..64, 0..20),
        blk in prop_oneof![Just(512u32), Just(4096), 1u32..10000],
        tail in 0u32..10000,
        data_off in 0u64..(1 << 40),
    ) {
        dbis.dedup();
        let len = if dbis.is_empty() {
            0
        } else {
            (dbis.len() as u64 - 1) * u64::from(blk) + u64::from(tail % blk + 1)
        };
        let mut out = vec![Iovec::default(); 20];
        let n = fill_iovecs(&dbis, len, blk, data_off, &mut out).unwrap();
        prop_assert_eq!(n, iov_count(&dbis));
        prop_assert_eq!(out[..n].iter().map(|i| i.len).sum::<u64>(), len);
        // Expand the iovecs back into per-block byte ranges.
        let mut want = vec![];
        let mut left = len;
        for &d in &dbis {
            let c = left.min(u64::from(blk));
            want.push((data_off + u64::from(d) * u64::from(blk), c));
            left -= c;
        }
        let mut got = vec![];
        for iov in &out[..n] {
            let mut b = iov.base;
            let mut l = iov.len;
            while l > 0 {
                let c = l.min(u64::from(blk));
                got.push((b, c));
                b += c;
                l -= c;
            }
        }
        prop_assert_eq!(got, want);
        if n > 0 {
            prop_assert_eq!(fill_iovecs(&dbis, len, blk, data_off, &mut out[..n - 1]), None);
        }
    }
}
