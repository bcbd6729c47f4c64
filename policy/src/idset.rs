//! Small bit sets over the indices of a snapshot's scopes and servers.

#[cfg(test)]
mod tests;

/// A set of indices below the capacity it was made with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdSet(Box<[u64]>);

impl IdSet {
    pub fn empty(capacity: usize) -> IdSet {
        IdSet(vec![0; capacity.div_ceil(64)].into_boxed_slice())
    }

    pub fn full(capacity: usize) -> IdSet {
        let mut set = IdSet::empty(capacity);
        for i in 0..capacity {
            set.insert(i);
        }
        set
    }

    /// Adds `index`, growing the set if it lies beyond the capacity (never dropped silently).
    pub fn insert(&mut self, index: usize) {
        let word = index / 64;
        if word >= self.0.len() {
            let mut grown = self.0.to_vec();
            grown.resize(word + 1, 0);
            self.0 = grown.into_boxed_slice();
        }
        self.0[word] |= 1 << (index % 64);
    }

    pub fn contains(&self, index: usize) -> bool {
        self.0
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    pub fn union_with(&mut self, other: &IdSet) {
        if other.0.len() > self.0.len() {
            let mut grown = self.0.to_vec();
            grown.resize(other.0.len(), 0);
            self.0 = grown.into_boxed_slice();
        }
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, word)| {
            (0..64).filter_map(move |bit| (word & (1 << bit) != 0).then_some(w * 64 + bit))
        })
    }
}
