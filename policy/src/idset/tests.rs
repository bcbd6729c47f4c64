use super::IdSet;

#[test]
fn an_index_beyond_the_capacity_grows_the_set_instead_of_being_dropped() {
    let mut set = IdSet::empty(10);
    set.insert(3);
    set.insert(200);
    assert!(set.contains(3) && set.contains(200) && !set.contains(199));
    assert_eq!(set.iter().collect::<Vec<_>>(), [3, 200]);
}

#[test]
fn a_union_with_a_larger_set_keeps_every_index() {
    let mut small = IdSet::empty(64);
    small.insert(1);
    let mut large = IdSet::empty(10_000);
    large.insert(9_999);
    small.union_with(&large);
    assert_eq!(small.iter().collect::<Vec<_>>(), [1, 9_999]);
}
