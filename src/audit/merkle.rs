//! The RFC 9162 Merkle tree over audit records (R-LOG-2): leaf and node hashes, the compact
//! range the writer keeps while appending, proof generation for `audit proof` and `audit
//! export`, and proof verification.
//!
//! Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 in the generalised form of the Merkle
//! Tree Certificates draft (draft-davidben-tls-merkle-tree-certs, appendix B): one procedure
//! checks that a subtree `[start, end)` with a given hash sits in a tree of size `n`, and an
//! inclusion proof (subtree `[i, i+1)`) and a consistency proof (subtree `[0, m)`) are its two
//! common cases. It agrees with every vector of the transparency-dev test data
//! (`../shared/corpora/merkle/`), which `tests/merkle_vectors.rs` replays.

use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `SHA-256(0x00 || data)`: the hash of one record.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: an interior node.
pub fn node_hash(left: &[u8], right: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (`n >= 2`): where RFC 9162 splits a tree.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// `MTH(D[n])` over leaf hashes.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// The perfect subtrees a tree of `size` leaves decomposes into, left to right, as
/// `(start, height)`: one per set bit of `size`, largest first.
fn left_decomposition(size: u64) -> impl Iterator<Item = (u64, u32)> {
    let mut start = 0u64;
    (0..64u32)
        .rev()
        .filter(move |height| size & (1 << height) != 0)
        .map(move |height| {
            let s = start;
            start += 1 << height;
            (s, height)
        })
}

/// The aligned perfect subtrees that cover `[from, to)`, left to right, as `(start, height)`:
/// what a compact range of `[0, from)` needs appended to become one of `[0, to)`.
fn right_decomposition(from: u64, to: u64) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let align = if at == 0 { 63 } else { at.trailing_zeros() };
        let mut height = align.min(63);
        while height > 0 && at + (1u64 << height) > to {
            height -= 1;
        }
        out.push((at, height));
        at += 1 << height;
    }
    out
}

/// The Merkle tree of a log as the writer sees it while appending: only the roots of the
/// perfect subtrees the tree decomposes into (at most 64 hashes), so appending is O(log n)
/// and the root is always at hand for the next checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    /// One hash per set bit of `size`, largest subtree first.
    peaks: Vec<Hash>,
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        CompactRange::default()
    }

    /// A tree of `size` leaves from its peaks (as [`Self::peaks`] gives them), e.g. read back
    /// from a checkpoint record. `None` when the count does not match `size`.
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Option<Self> {
        (peaks.len() == size.count_ones() as usize).then_some(CompactRange { size, peaks })
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The peaks, largest subtree first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Append one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_subtree(0, leaf);
    }

    /// Append the root of a perfect subtree of `height` that starts at the current size.
    fn push_subtree(&mut self, height: u32, hash: Hash) {
        let mut hash = hash;
        let mut height = height;
        // The smallest peak has the height of the lowest set bit of `size`; equal heights merge.
        while self.size & (1 << height) != 0 {
            let Some(left) = self.peaks.pop() else { break };
            hash = node_hash(&left, &hash);
            self.size -= 1 << height;
            height += 1;
        }
        self.size += 1 << height;
        self.peaks.push(hash);
    }

    /// The root hash of the tree so far.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        match peaks.next() {
            None => empty_root(),
            Some(last) => peaks.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

/// `PATH(index, D[n])`: the inclusion proof of leaf `index` (RFC 9162 §2.1.3.1).
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Vec<Hash> {
    let mut proof = Vec::new();
    let (mut lo, mut hi, mut index) = (0, leaves.len(), index);
    // Walk down from the root, collecting siblings, then reverse: proofs run leaf to root.
    while hi - lo > 1 {
        let k = split_point((hi - lo) as u64) as usize;
        if index < k {
            proof.push(root_of(&leaves[lo + k..hi]));
            hi = lo + k;
        } else {
            proof.push(root_of(&leaves[lo..lo + k]));
            lo += k;
            index -= k;
        }
    }
    proof.reverse();
    proof
}

/// `PROOF(m, D[n])`: the consistency proof between the first `m` leaves and all of them
/// (RFC 9162 §2.1.4.1). Empty when `m` is 0 or `m == n`.
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Vec<Hash> {
    if m == 0 || m >= leaves.len() {
        return Vec::new();
    }
    let mut proof = Vec::new();
    subproof(m, leaves, true, &mut proof);
    proof
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, proof: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            proof.push(root_of(leaves));
        }
        return;
    }
    let k = split_point(n as u64) as usize;
    if m <= k {
        subproof(m, &leaves[..k], complete, proof);
        proof.push(root_of(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, proof);
        proof.push(root_of(&leaves[..k]));
    }
}

/// The hashes an export carries so that a contiguous run of records `[from, to)` can be
/// checked against the root of a tree of `size` leaves without the other records: the peaks
/// of `[0, from)` and the aligned subtrees covering `[to, size)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeProof {
    /// Peaks of the tree of the `from` leaves before the run.
    pub before: Vec<Hash>,
    /// Roots of the aligned subtrees after the run, left to right.
    pub after: Vec<Hash>,
}

/// The [`RangeProof`] for `[from, to)` in the tree of all `leaves`.
pub fn range_proof(leaves: &[Hash], from: u64, to: u64) -> RangeProof {
    let subtree = |(start, height): (u64, u32)| {
        let start = start as usize;
        root_of(&leaves[start..start + (1usize << height)])
    };
    RangeProof {
        before: left_decomposition(from).map(subtree).collect(),
        after: right_decomposition(to, leaves.len() as u64)
            .into_iter()
            .map(subtree)
            .collect(),
    }
}

/// The root of the tree of `size` leaves, given the leaves `[from, from + run.len())` and the
/// [`RangeProof`] for the rest; `None` when the proof has the wrong shape.
pub fn root_from_range(from: u64, run: &[Hash], size: u64, proof: &RangeProof) -> Option<Hash> {
    let to = from.checked_add(run.len() as u64)?;
    if to > size {
        return None;
    }
    let mut tree = CompactRange::from_peaks(from, proof.before.clone())?;
    for leaf in run {
        tree.push(*leaf);
    }
    let after = right_decomposition(to, size);
    if after.len() != proof.after.len() {
        return None;
    }
    for ((_, height), hash) in after.into_iter().zip(&proof.after) {
        tree.push_subtree(height, *hash);
    }
    (tree.size() == size).then(|| tree.root())
}

/// Check that the subtree `[start, end)` whose hash is `subtree_hash` sits in a tree of `size`
/// leaves, and return that tree's root as the proof implies it. The caller compares the root.
/// MTC draft appendix B.5; `None` on any malformed input.
fn root_from_subtree_proof(
    size: u64,
    start: u64,
    end: u64,
    proof: &[&[u8]],
    subtree_hash: &[u8],
) -> Option<Vec<u8>> {
    if !is_valid_subtree(start, end) || end > size {
        return None;
    }
    let (mut fn_, mut sn, mut tn) = (start, end - 1, size - 1);
    if sn == tn {
        while fn_ != sn {
            (fn_, sn, tn) = (fn_ >> 1, sn >> 1, tn >> 1);
        }
    } else {
        while fn_ != sn && sn & 1 == 1 {
            (fn_, sn, tn) = (fn_ >> 1, sn >> 1, tn >> 1);
        }
    }
    let mut proof = proof.iter();
    let (mut node, mut root): (Vec<u8>, Vec<u8>) = if fn_ == sn {
        (subtree_hash.to_vec(), subtree_hash.to_vec())
    } else {
        let first = proof.next().filter(|p| p.len() == 32)?;
        (first.to_vec(), first.to_vec())
    };
    for p in proof {
        if p.len() != 32 || tn == 0 {
            return None;
        }
        if sn & 1 == 1 || sn == tn {
            if fn_ < sn {
                node = node_hash(p, &node).to_vec();
            }
            root = node_hash(p, &root).to_vec();
            while sn & 1 == 0 {
                (fn_, sn, tn) = (fn_ >> 1, sn >> 1, tn >> 1);
            }
        } else {
            root = node_hash(&root, p).to_vec();
        }
        (fn_, sn, tn) = (fn_ >> 1, sn >> 1, tn >> 1);
    }
    (tn == 0 && node == subtree_hash).then_some(root)
}

/// A subtree `[start, end)` is one the tree's shape has: non-empty and aligned to the power of
/// two at or above its size.
fn is_valid_subtree(start: u64, end: u64) -> bool {
    start < end
        && (end - start)
            .checked_next_power_of_two()
            .is_some_and(|width| start.is_multiple_of(width))
}

/// Does `proof` show that the leaf with hash `leaf` is at `index` in the tree of `size`
/// leaves whose root is `root`? (RFC 9162 §2.1.3.2)
pub fn verify_inclusion(index: u64, size: u64, leaf: &[u8], proof: &[&[u8]], root: &[u8]) -> bool {
    index < size
        && leaf.len() == 32
        && root_from_subtree_proof(size, index, index + 1, proof, leaf).is_some_and(|r| r == root)
}

/// Does `proof` show that the tree of `size1` leaves with root `root1` is a prefix of the tree
/// of `size2` leaves with root `root2`? (RFC 9162 §2.1.4.2; an empty first tree proves
/// nothing and is refused.)
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &[u8],
    root2: &[u8],
    proof: &[&[u8]],
) -> bool {
    0 < size1
        && size1 <= size2
        && root_from_subtree_proof(size2, 0, size1, proof, root1).is_some_and(|r| r == root2)
}

/// Does `proof` show that the leaf at `index` is in the subtree `[start, end)` with hash
/// `subtree_hash`? (MTC draft §4.3)
pub fn verify_subtree_inclusion(
    index: u64,
    start: u64,
    end: u64,
    leaf: &[u8],
    proof: &[&[u8]],
    subtree_hash: &[u8],
) -> bool {
    is_valid_subtree(start, end)
        && (start..end).contains(&index)
        && verify_inclusion(index - start, end - start, leaf, proof, subtree_hash)
}

/// Does `proof` show that the subtree `[start, end)` with hash `subtree_hash` is part of the
/// tree of `size` leaves with root `root`? (MTC draft §4.4) The empty subtree is trivially
/// part of any tree, with the empty root as its hash and nothing to prove.
pub fn verify_subtree_consistency(
    start: u64,
    end: u64,
    size: u64,
    subtree_hash: &[u8],
    root: &[u8],
    proof: &[&[u8]],
) -> bool {
    if start == end {
        return end <= size && proof.is_empty() && subtree_hash == empty_root();
    }
    root_from_subtree_proof(size, start, end, proof, subtree_hash).is_some_and(|r| r == root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn refs(proof: &[Hash]) -> Vec<&[u8]> {
        proof.iter().map(|h| h.as_slice()).collect()
    }

    #[test]
    fn compact_range_root_equals_the_recursive_root() {
        let all = leaves(70);
        let mut tree = CompactRange::new();
        assert_eq!(tree.root(), empty_root());
        for (i, leaf) in all.iter().enumerate() {
            tree.push(*leaf);
            assert_eq!(tree.root(), root_of(&all[..=i]), "size {}", i + 1);
            assert_eq!(tree.peaks().len(), (i + 1).count_ones() as usize);
        }
    }

    #[test]
    fn generated_proofs_verify_and_tampered_ones_do_not() {
        let all = leaves(37);
        for n in 1..=all.len() {
            let root = root_of(&all[..n]);
            for i in 0..n {
                let proof = inclusion_proof(&all[..n], i);
                assert!(verify_inclusion(
                    i as u64,
                    n as u64,
                    &all[i],
                    &refs(&proof),
                    &root
                ));
                let other = (i + 1) % n;
                if other != i {
                    assert!(!verify_inclusion(
                        i as u64,
                        n as u64,
                        &all[other],
                        &refs(&proof),
                        &root
                    ));
                }
            }
            for m in 1..=n {
                let proof = consistency_proof(&all[..n], m);
                let old = root_of(&all[..m]);
                assert!(verify_consistency(
                    m as u64,
                    n as u64,
                    &old,
                    &root,
                    &refs(&proof)
                ));
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0][0] ^= 1;
                    assert!(
                        !verify_consistency(m as u64, n as u64, &old, &root, &refs(&bad)),
                        "{m} {n} {first:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_run_of_leaves_rebuilds_the_root_with_its_range_proof() {
        let all = leaves(45);
        for size in 1..=45u64 {
            let root = root_of(&all[..size as usize]);
            for from in 0..size {
                for to in from..=size {
                    let proof = range_proof(&all[..size as usize], from, to);
                    let run = &all[from as usize..to as usize];
                    assert_eq!(root_from_range(from, run, size, &proof), Some(root));
                }
            }
        }
        let proof = range_proof(&all[..20], 5, 9);
        let mut run = all[5..9].to_vec();
        run.swap(0, 1);
        assert_ne!(
            root_from_range(5, &run, 20, &proof),
            Some(root_of(&all[..20]))
        );
    }
}
