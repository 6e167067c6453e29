//! An ordered set that also answers "how many elements are smaller than this one"
//! in O(log n) expected time: a treap whose nodes know the size of their subtree.
//!
//! The standard `BTreeSet` cannot count a range without walking it, and a waiting
//! TaskRun's queue position must not cost a walk over the whole queue.

use std::fmt;

type Link<K> = Option<Box<Node<K>>>;

#[derive(Clone)]
struct Node<K> {
    key: K,
    priority: u64,
    size: usize,
    left: Link<K>,
    right: Link<K>,
}

impl<K> Node<K> {
    fn update(&mut self) {
        self.size = 1 + size(&self.left) + size(&self.right);
    }
}

fn size<K>(link: &Link<K>) -> usize {
    link.as_ref().map_or(0, |n| n.size)
}

/// Splits into (keys before `key`, the rest); with `inclusive`, `key` itself goes left.
fn split<K: Ord>(link: Link<K>, key: &K, inclusive: bool) -> (Link<K>, Link<K>) {
    let Some(mut node) = link else {
        return (None, None);
    };
    let goes_left = if inclusive {
        node.key <= *key
    } else {
        node.key < *key
    };
    if goes_left {
        let (left, right) = split(node.right.take(), key, inclusive);
        node.right = left;
        node.update();
        (Some(node), right)
    } else {
        let (left, right) = split(node.left.take(), key, inclusive);
        node.left = right;
        node.update();
        (left, Some(node))
    }
}

/// Joins two treaps where every key of `a` is smaller than every key of `b`.
fn merge<K>(a: Link<K>, b: Link<K>) -> Link<K> {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(mut a), Some(mut b)) => {
            if a.priority > b.priority {
                a.right = merge(a.right.take(), Some(b));
                a.update();
                Some(a)
            } else {
                b.left = merge(Some(a), b.left.take());
                b.update();
                Some(b)
            }
        }
    }
}

/// An ordered set with O(log n) expected insert, remove and rank.
#[derive(Clone)]
pub(crate) struct RankSet<K> {
    root: Link<K>,
    /// Source of node priorities (a SplitMix64 sequence: deterministic, well spread).
    seed: u64,
}

impl<K> Default for RankSet<K> {
    fn default() -> Self {
        RankSet {
            root: None,
            seed: 0x853c_49e6_748f_ea9b,
        }
    }
}

impl<K: Ord> RankSet<K> {
    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        size(&self.root)
    }

    fn next_priority(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Whether `key` is in the set.
    pub(crate) fn contains(&self, key: &K) -> bool {
        let mut link = &self.root;
        while let Some(node) = link {
            match key.cmp(&node.key) {
                std::cmp::Ordering::Less => link = &node.left,
                std::cmp::Ordering::Greater => link = &node.right,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    /// Adds `key` and returns its position (how many elements are smaller); `None`
    /// when it was already there.
    pub(crate) fn insert(&mut self, key: K) -> Option<usize> {
        if self.contains(&key) {
            return None;
        }
        let priority = self.next_priority();
        let (left, right) = split(self.root.take(), &key, false);
        // The split already counted the smaller elements: no second descent for
        // the position.
        let position = size(&left);
        let node = Some(Box::new(Node {
            key,
            priority,
            size: 1,
            left: None,
            right: None,
        }));
        self.root = merge(merge(left, node), right);
        Some(position)
    }

    /// Removes `key`; false when it was not there.
    pub(crate) fn remove(&mut self, key: &K) -> bool {
        let (left, rest) = split(self.root.take(), key, false);
        let (found, right) = split(rest, key, true);
        self.root = merge(left, right);
        found.is_some()
    }

    /// How many elements are smaller than `key` (its 0-based position when present).
    pub(crate) fn rank(&self, key: &K) -> usize {
        let mut smaller = 0;
        let mut link = &self.root;
        while let Some(node) = link {
            if node.key < *key {
                smaller += size(&node.left) + 1;
                link = &node.right;
            } else {
                link = &node.left;
            }
        }
        smaller
    }

    /// The elements in order.
    pub(crate) fn iter(&self) -> Iter<'_, K> {
        let mut iter = Iter { stack: Vec::new() };
        iter.push_left(&self.root);
        iter
    }
}

/// In-order iterator over a [`RankSet`].
pub(crate) struct Iter<'a, K> {
    stack: Vec<&'a Node<K>>,
}

impl<'a, K> Iter<'a, K> {
    fn push_left(&mut self, mut link: &'a Link<K>) {
        while let Some(node) = link {
            self.stack.push(node);
            link = &node.left;
        }
    }
}

impl<'a, K> Iterator for Iter<'a, K> {
    type Item = &'a K;
    fn next(&mut self) -> Option<&'a K> {
        let node = self.stack.pop()?;
        self.push_left(&node.right);
        Some(&node.key)
    }
}

/// Equal when the elements are; the tree shape (which depends on the insertion
/// history) does not matter.
impl<K: Ord> PartialEq for RankSet<K> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<K: Ord> Eq for RankSet<K> {}

impl<K: Ord + fmt::Debug> fmt::Debug for RankSet<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn basic_operations() {
        let mut set = RankSet::default();
        for (k, position) in [(5, 0), (1, 0), (9, 2), (3, 1), (7, 3)] {
            assert_eq!(set.insert(k), Some(position));
        }
        assert_eq!(set.insert(3), None);
        assert_eq!(set.len(), 5);
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), [1, 3, 5, 7, 9]);
        assert_eq!(set.rank(&1), 0);
        assert_eq!(set.rank(&7), 3);
        assert_eq!(set.rank(&8), 4);
        assert_eq!(set.rank(&100), 5);
        assert!(set.remove(&5));
        assert!(!set.remove(&5));
        assert_eq!(set.rank(&7), 2);
        assert!(!set.contains(&5) && set.contains(&7));
    }

    #[test]
    fn equality_ignores_shape() {
        let mut a = RankSet::default();
        let mut b = RankSet::default();
        for k in 0..50 {
            a.insert(k);
            b.insert(49 - k);
        }
        assert_eq!(a, b);
        b.remove(&10);
        assert_ne!(a, b);
    }

    #[test]
    fn stays_shallow_on_sorted_input() {
        // Waiters mostly arrive in creation order: the worst case of a plain BST.
        let mut set = RankSet::default();
        for k in 0..100_000u32 {
            set.insert(k);
        }
        fn depth<K>(link: &Link<K>) -> usize {
            link.as_ref()
                .map_or(0, |n| 1 + depth(&n.left).max(depth(&n.right)))
        }
        assert!(depth(&set.root) < 60, "depth {}", depth(&set.root));
        assert_eq!(set.rank(&50_000), 50_000);
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreeset(ops in proptest::collection::vec((any::<bool>(), 0u8..40), 0..200)) {
            let mut set = RankSet::default();
            let mut model = BTreeSet::new();
            for (insert, k) in ops {
                if insert {
                    let position = model.insert(k).then(|| model.range(..k).count());
                    prop_assert_eq!(set.insert(k), position);
                } else {
                    prop_assert_eq!(set.remove(&k), model.remove(&k));
                }
                prop_assert_eq!(set.len(), model.len());
                for probe in 0u8..41 {
                    prop_assert_eq!(set.rank(&probe), model.range(..probe).count());
                }
            }
            prop_assert!(set.iter().eq(model.iter()));
        }
    }
}
