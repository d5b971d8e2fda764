// SPDX-License-Identifier: GPL-2.0

//! Command ids: lowest free first, 1..=0xffff.

use std::collections::BTreeSet;

use proptest::prelude::*;
use tcmu_logic::ids::*;

fn map() -> IdMap<Vec<u64>> {
    IdMap::new(vec![!0u64; ID_WORDS]).unwrap()
}

#[test]
fn starts_at_one_and_reuses_lowest() {
    let mut m = map();
    assert_eq!(m.lowest_free(), Some(1));
    assert!(!m.is_set(0));
    assert!(!m.set(0), "id 0 is reserved");
    assert!(!m.clear(0));
    for id in 1..=200u16 {
        assert_eq!(m.lowest_free(), Some(id));
        assert!(m.set(id));
    }
    assert!(!m.set(100), "already in use");
    assert!(m.clear(130));
    assert!(m.clear(7));
    assert!(!m.clear(7), "already free");
    assert_eq!(m.lowest_free(), Some(7));
    assert!(m.set(7));
    assert_eq!(m.lowest_free(), Some(130));
    assert_eq!(m.used(), 199);
}

#[test]
fn exhausts_at_max_id() {
    let mut m = map();
    for id in 1..=MAX_ID {
        assert!(m.set(id));
    }
    assert_eq!(m.lowest_free(), None);
    assert_eq!(m.used(), u32::from(MAX_ID));
    assert!(m.clear(MAX_ID));
    assert_eq!(m.lowest_free(), Some(MAX_ID));
    assert!(m.clear(1));
    assert_eq!(m.lowest_free(), Some(1));
}

#[test]
fn refuses_short_storage() {
    assert!(IdMap::new(vec![0u64; ID_WORDS - 1]).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random sets and clears agree with a set model: the lowest free id is the smallest
    /// id (>= 1) not in the model, and `set`/`clear` report exactly the changes.
    #[test]
    fn matches_set_model(ops in proptest::collection::vec((any::<bool>(), 0u16..300), 1..400)) {
        let mut m = map();
        let mut model = BTreeSet::new();
        for (alloc, id) in ops {
            if alloc {
                let want = (1..=MAX_ID).find(|i| !model.contains(i));
                prop_assert_eq!(m.lowest_free(), want);
                if let Some(id) = want {
                    prop_assert!(m.set(id));
                    model.insert(id);
                }
            } else {
                prop_assert_eq!(m.clear(id), model.remove(&id));
            }
            prop_assert_eq!(m.used() as usize, model.len());
            prop_assert_eq!(m.is_set(id), model.contains(&id));
        }
    }
}
