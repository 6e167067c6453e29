//! Go's `sort.SliceStable`, step for step.
//!
//! Strategic merge orders list items with a comparator that is not a strict weak order when
//! an item is missing from the order list (it then answers "less" both ways). Any stable sort
//! agrees with Go's when the comparator is consistent; only Go's own sequence of comparisons
//! and swaps gives the API server's answer when it is not, so this is a port of
//! `insertionSort`/`symMerge`/`rotate` from Go's `sort/zsortfunc.go`.

/// Sorts `data` the way Go's `sort.SliceStable(data, less)` does; `less` compares the items
/// at their current positions.
pub fn slice_stable<T>(data: &mut [T], less: impl Fn(&T, &T) -> bool) {
    let n = data.len();
    let less_at = |d: &[T], i: usize, j: usize| less(&d[i], &d[j]);
    let mut block = 20;
    let (mut a, mut b) = (0, block);
    while b <= n {
        insertion_sort(data, a, b, &less_at);
        a = b;
        b += block;
    }
    insertion_sort(data, a, n, &less_at);
    while block < n {
        let (mut a, mut b) = (0, 2 * block);
        while b <= n {
            sym_merge(data, a, a + block, b, &less_at);
            a = b;
            b += 2 * block;
        }
        let m = a + block;
        if m < n {
            sym_merge(data, a, m, n, &less_at);
        }
        block *= 2;
    }
}

type Less<'a, T> = &'a dyn Fn(&[T], usize, usize) -> bool;

fn insertion_sort<T>(data: &mut [T], a: usize, b: usize, less: Less<'_, T>) {
    for i in a + 1..b {
        let mut j = i;
        while j > a && less(data, j, j - 1) {
            data.swap(j, j - 1);
            j -= 1;
        }
    }
}

fn sym_merge<T>(data: &mut [T], a: usize, m: usize, b: usize, less: Less<'_, T>) {
    if m - a == 1 {
        let (mut i, mut j) = (m, b);
        while i < j {
            let h = (i + j) / 2;
            if less(data, h, a) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        for k in a..i.saturating_sub(1) {
            data.swap(k, k + 1);
        }
        return;
    }
    if b - m == 1 {
        let (mut i, mut j) = (a, m);
        while i < j {
            let h = (i + j) / 2;
            if !less(data, m, h) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        let mut k = m;
        while k > i {
            data.swap(k, k - 1);
            k -= 1;
        }
        return;
    }
    let mid = (a + b) / 2;
    let n = mid + m;
    let (mut start, mut r) = if m > mid { (n - b, mid) } else { (a, m) };
    let p = n - 1;
    while start < r {
        let c = (start + r) / 2;
        if !less(data, p - c, c) {
            start = c + 1;
        } else {
            r = c;
        }
    }
    let end = n - start;
    if start < m && m < end {
        rotate(data, start, m, end);
    }
    if a < start && start < mid {
        sym_merge(data, a, start, mid, less);
    }
    if mid < end && end < b {
        sym_merge(data, mid, end, b, less);
    }
}

fn rotate<T>(data: &mut [T], a: usize, m: usize, b: usize) {
    let (mut i, mut j) = (m - a, b - m);
    while i != j {
        if i > j {
            swap_range(data, m - i, m, j);
            i -= j;
        } else {
            swap_range(data, m - i, m + j - i, i);
            j -= i;
        }
    }
    swap_range(data, m - i, m, i);
}

fn swap_range<T>(data: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        data.swap(a + i, b + i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// With a consistent comparator it is a stable sort (ties keep their order).
        #[test]
        fn sorts_stably(v in proptest::collection::vec((0u8..5, 0u16..1000), 0..90)) {
            let mut go = v.clone();
            slice_stable(&mut go, |a, b| a.0 < b.0);
            let mut std = v.clone();
            std.sort_by_key(|x| x.0);
            prop_assert_eq!(go, std);
        }
    }

    #[test]
    fn always_less_reverses_a_short_slice() {
        // Go's insertion sort with a comparator that always answers "less".
        let mut v = vec![1, 2, 3, 4];
        slice_stable(&mut v, |_, _| true);
        assert_eq!(v, vec![4, 3, 2, 1]);
    }
}
