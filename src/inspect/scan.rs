//! Byte scans over whole values, written so that the compiler vectorises them.
//!
//! Inspection asks of every value whether it holds any of a few bytes before it runs the
//! costlier steps. Written as `bytes.iter().any(…)`, each question is a branch per byte;
//! values run to megabytes (a base64 attachment in a FHIR `Attachment.data`), so these ask
//! 64 bytes at a time, with no early exit inside a block.

/// Block size: long enough for the vector loop, short enough to stop soon after a hit.
const BLOCK: usize = 64;

/// Whether any byte of `bytes` is one `picked` selects.
#[inline]
pub fn any_byte(bytes: &[u8], picked: impl Fn(u8) -> bool) -> bool {
    bytes
        .chunks(BLOCK)
        .any(|block| block.iter().fold(false, |seen, &b| seen | picked(b)))
}

/// Where the first byte `picked` selects is: a block at a time until one holds it.
#[inline]
pub fn first_byte(bytes: &[u8], picked: impl Fn(u8) -> bool) -> Option<usize> {
    let mut start = 0;
    for block in bytes.chunks(BLOCK) {
        if block.iter().fold(false, |seen, &b| seen | picked(b)) {
            return block.iter().position(|&b| picked(b)).map(|at| start + at);
        }
        start += block.len();
    }
    None
}

/// Whether at least `n` bytes of `bytes` are ones `picked` selects.
#[inline]
pub fn at_least(bytes: &[u8], n: usize, picked: impl Fn(u8) -> bool) -> bool {
    if n == 0 {
        return true;
    }
    let mut count = 0;
    for block in bytes.chunks(BLOCK) {
        // A block's count fits a byte; byte-wide sums vectorise, wider ones much less.
        let in_block = block.iter().fold(0u8, |c, &b| c + u8::from(picked(b)));
        count += usize::from(in_block);
        if count >= n {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_byte_finds_a_byte_in_any_block_and_only_picked_ones() {
        let mut long = vec![b'y'; 1000];
        assert!(!any_byte(&long, |b| b == b'%'));
        for at in [0, 63, 64, 999] {
            long[at] = b'%';
            assert!(any_byte(&long, |b| b == b'%'), "{at}");
            long[at] = b'y';
        }
        assert!(!any_byte(b"", |_| true));
    }

    #[test]
    fn first_byte_finds_the_first_in_any_block() {
        let mut long = vec![b'y'; 300];
        assert_eq!(first_byte(&long, |b| b == b'%'), None);
        long[299] = b'%';
        for at in [0, 63, 64, 200, 299] {
            long[at] = b'%';
            assert_eq!(first_byte(&long, |b| b == b'%'), Some(at), "{at}");
            if at != 299 {
                long[at] = b'y';
            }
        }
        assert_eq!(first_byte(b"", |_| true), None);
    }

    #[test]
    fn at_least_counts_across_blocks() {
        let mut long = vec![b'y'; 300];
        long[10] = b'A';
        long[100] = b'B';
        assert!(!at_least(&long, 3, |b| b.is_ascii_uppercase()));
        long[299] = b'C';
        assert!(at_least(&long, 3, |b| b.is_ascii_uppercase()));
        assert!(at_least(b"", 0, |_| false));
    }
}
