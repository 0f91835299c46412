//! Test helpers shared by the expect tests: a small deterministic pseudo-random generator.
//!
//! Deterministic so a failing fuzz case fails the same way every run.

/// xorshift64*: tiny, deterministic, good enough to shake out panics.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Random bytes, biased towards the ones that matter to the line syntax.
    pub(crate) fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        const INTERESTING: &[u8] =
            b" \t\r\n\\()[].$>?*+xre-0123456789\x1b\x00\x7f\xff\xc3\xa9\xe2\x80\xae";
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| {
                if self.below(3) == 0 {
                    self.next() as u8
                } else {
                    *self.pick(INTERESTING)
                }
            })
            .collect()
    }
}
