//! Transparent huge pages for the parser's big buffers: the cell list and the copy of the text.
//!
//! A big notebook's `Vec<Cell>` is tens of megabytes, written once, front to back. Backed by
//! 4 KiB pages that is thousands of page faults, which on a virtual machine cost as much as
//! building the cells; backed by 2 MiB pages it is a few dozen. The kernel only does that for
//! memory it is told about (`madvise`) before it is written, so the list grows here: into a
//! new buffer, advised, then filled. Small buffers are left alone.

/// The size of a huge page.
const HUGE_PAGE: usize = 2 << 20;

/// Makes room for at least one more item, doubling the capacity as `Vec` does; a large list
/// moves to a buffer backed by huge pages.
pub fn grow<T>(list: &mut Vec<T>) {
    let capacity = list.capacity().saturating_mul(2).max(4);
    let bytes = capacity.saturating_mul(std::mem::size_of::<T>());
    // Past a quarter GiB (only a hostile notebook gets there) the copy would briefly need the
    // old and the new buffer at once: let `Vec` reallocate instead, which can move the pages.
    if !(2 * HUGE_PAGE..=256 << 20).contains(&bytes) {
        list.reserve_exact(capacity - list.len());
        return;
    }
    let mut grown = Vec::with_capacity(capacity);
    advise(&grown);
    grown.append(list);
    *list = grown;
}

/// Asks for huge pages under the whole 2 MiB pages of `list`'s buffer. Advice only: the
/// contents are unchanged, and where huge pages are off or unsupported nothing happens.
pub fn advise<T>(list: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        let start = list.as_ptr() as usize;
        let bytes = list.capacity().saturating_mul(std::mem::size_of::<T>());
        let Some(end) = start.checked_add(bytes) else {
            return;
        };
        let Some(first) = start
            .checked_add(HUGE_PAGE - 1)
            .map(|a| a & !(HUGE_PAGE - 1))
        else {
            return;
        };
        let len = end.saturating_sub(first) & !(HUGE_PAGE - 1);
        if len == 0 {
            return;
        }
        // SAFETY: `first..first + len` lies inside the vector's allocation, which this function
        // borrows; MADV_HUGEPAGE changes how the kernel backs those pages, not their contents,
        // and its result (an error where huge pages are unsupported) changes nothing either.
        unsafe {
            libc::madvise(first as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = list;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_keeps_the_items_and_doubles() {
        let mut list: Vec<[u64; 64]> = Vec::new();
        let mut capacities = Vec::new();
        for n in 0..20_000u64 {
            if list.len() == list.capacity() {
                grow(&mut list);
                capacities.push(list.capacity());
            }
            list.push([n; 64]);
        }
        assert!(
            list.iter()
                .enumerate()
                .all(|(n, item)| item[0] == n as u64 && item[63] == n as u64)
        );
        assert_eq!(capacities[0], 4);
        assert!(
            capacities.windows(2).all(|w| w[1] == w[0] * 2),
            "{capacities:?}"
        );
        // The last growths went through a new, advised buffer (at least 4 MiB of 512-byte items).
        assert!(capacities.last().unwrap() * 512 >= 4 << 20);
    }
}
