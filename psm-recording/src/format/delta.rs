//! Output deltas: an output record written as the bytes that changed since the previous
//! output of the same channel and stream. Programs that redraw the whole screen again and
//! again (`top`, `watch`, dashboards, progress displays) write nearly the same bytes each
//! time; the delta keeps only what changed, and the reader rebuilds the exact bytes.
//!
//! A delta is a list of `(copy, insert)` operations over the reference: copy `copy` bytes of
//! the reference, then take `insert` bytes from the record's values in place of as many
//! reference bytes; after the last operation, copy the reference up to the output's length.

use super::codec::{Dec, put_uvarint};
use crate::error::RecordingError;

/// Outputs longer than this are never a reference (so a reader keeps at most this much).
pub(crate) const MAX_REFERENCE: usize = 64 << 10;
/// Outputs shorter than this are never written as deltas.
const MIN_DELTA: usize = 64;
/// Equal runs shorter than this between two changes are folded into one insert (an
/// operation costs about as much as two bytes).
const MERGE_GAP: usize = 3;

/// The previous output record of a group: the reference of the next delta.
#[derive(Debug, Default)]
pub(crate) struct OutputRef {
    key: Option<(u32, u8)>,
    data: Vec<u8>,
}

impl OutputRef {
    /// Forgets the reference (a new group starts).
    pub(crate) fn clear(&mut self) {
        self.key = None;
        self.data.clear();
    }

    /// Forgets the reference and frees its memory.
    pub(crate) fn release(&mut self) {
        self.key = None;
        self.data = Vec::new();
    }

    /// Bytes held.
    pub(crate) fn capacity(&self) -> usize {
        self.data.capacity()
    }

    /// Records `data` as the latest output of `(channel, stream)`.
    pub(crate) fn set(&mut self, channel: u32, stream: u8, data: &[u8]) {
        self.data.clear();
        if data.len() > MAX_REFERENCE {
            self.key = None;
            if self.data.capacity() > MAX_REFERENCE {
                self.data = Vec::new();
            }
            return;
        }
        self.key = Some((channel, stream));
        self.data.extend_from_slice(data);
    }

    /// The reference for an output on `(channel, stream)`, if the previous output was on it.
    pub(crate) fn get(&self, channel: u32, stream: u8) -> Option<&[u8]> {
        (self.key == Some((channel, stream))).then_some(self.data.as_slice())
    }
}

/// Computes a delta of `data` against `reference`: appends the operations (as `copy`,
/// `insert` varint pairs) to `ops` and the inserted bytes to `values`, and returns the number
/// of operations, or `None` (with `ops` and `values` unspecified) when the delta would not
/// be at most half the size of `data`.
pub(crate) fn diff(
    reference: &[u8],
    data: &[u8],
    ops: &mut Vec<u8>,
    values: &mut Vec<u8>,
) -> Option<u64> {
    if data.len() < MIN_DELTA || reference.len() < MIN_DELTA {
        return None;
    }
    // Lengths far apart, or a sample of positions mostly different: not a redraw.
    let (short, long) = if data.len() < reference.len() {
        (data.len(), reference.len())
    } else {
        (reference.len(), data.len())
    };
    if long - short > long / 4 {
        return None;
    }
    let probes = 16;
    let same = (0..probes)
        .map(|i| i * short / probes)
        .filter(|&p| reference[p] == data[p])
        .count();
    if same < probes / 2 {
        return None;
    }
    let budget = data.len() / 2;
    let n = short;
    let mut cost = 0usize;
    let mut count = 0u64;
    let mut last = 0usize;
    let mut i = 0usize;
    while i < n {
        // Skip equal bytes, eight at a time while possible.
        while i + 8 <= n && reference[i..i + 8] == data[i..i + 8] {
            i += 8;
        }
        while i < n && reference[i] == data[i] {
            i += 1;
        }
        if i >= n {
            break;
        }
        let start = i;
        let mut end = i;
        loop {
            while end < n && reference[end] != data[end] {
                end += 1;
            }
            let mut k = end;
            while k < n && k - end < MERGE_GAP && reference[k] == data[k] {
                k += 1;
            }
            if k < n && k - end < MERGE_GAP {
                end = k;
            } else {
                break;
            }
        }
        put_uvarint(ops, (start - last) as u64);
        put_uvarint(ops, (end - start) as u64);
        values.extend_from_slice(&data[start..end]);
        count += 1;
        cost += 2 + (end - start);
        if cost > budget {
            return None;
        }
        last = end;
        i = end;
    }
    if data.len() > n {
        put_uvarint(ops, (n - last) as u64);
        put_uvarint(ops, (data.len() - n) as u64);
        values.extend_from_slice(&data[n..]);
        count += 1;
        cost += 2 + data.len() - n;
        if cost > budget {
            return None;
        }
    }
    Some(count)
}

/// Rebuilds an output of `len` bytes from `reference` and a delta body positioned at the
/// operation count (the rest of `d` is the operations, then the inserted bytes).
pub(crate) fn apply(
    reference: &[u8],
    len: usize,
    d: &mut Dec<'_>,
) -> Result<Vec<u8>, RecordingError> {
    let count = d.uvarint("delta operation count")?;
    if count > (d.remaining() / 2) as u64 {
        return Err(d.err(
            "delta operation count",
            format!("{count} operations cannot fit in {} bytes", d.remaining()),
        ));
    }
    // First pass: the operations, to find where the inserted bytes start.
    let mut ops = Vec::with_capacity(count as usize);
    let mut inserted = 0u64;
    for _ in 0..count {
        let copy = d.uvarint("delta copy length")?;
        let insert = d.uvarint("delta insert length")?;
        inserted = inserted.saturating_add(insert);
        ops.push((copy, insert));
    }
    let values = d.rest();
    if inserted != values.len() as u64 {
        return Err(d.err(
            "delta values",
            format!(
                "the operations insert {inserted} bytes, the record has {}",
                values.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(len);
    let mut p = 0usize; // position in the reference
    let mut v = 0usize; // position in the values
    let past = |what: &'static str, d: &Dec<'_>| {
        d.err(what, "the delta reads past its reference or its length")
    };
    for (copy, insert) in ops {
        let copy = usize::try_from(copy).map_err(|_| past("delta copy length", d))?;
        let insert = usize::try_from(insert).map_err(|_| past("delta insert length", d))?;
        let end = p
            .checked_add(copy)
            .filter(|e| *e <= reference.len())
            .ok_or_else(|| past("delta copy length", d))?;
        if out.len() + copy + insert > len {
            return Err(past("delta insert length", d));
        }
        out.extend_from_slice(&reference[p..end]);
        out.extend_from_slice(&values[v..v + insert]);
        v += insert;
        p = end.saturating_add(insert);
    }
    let rest = len - out.len();
    if rest > 0 {
        let end = p
            .checked_add(rest)
            .filter(|e| *e <= reference.len())
            .ok_or_else(|| past("delta length", d))?;
        out.extend_from_slice(&reference[p..end]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::Place;
    use proptest::prelude::*;

    fn round_trip(reference: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        let mut ops = Vec::new();
        let mut values = Vec::new();
        let count = diff(reference, data, &mut ops, &mut values)?;
        let mut body = Vec::new();
        put_uvarint(&mut body, count);
        body.extend_from_slice(&ops);
        body.extend_from_slice(&values);
        let mut d = Dec::new(&body, Place::Chunk(0), 0);
        Some(apply(reference, data.len(), &mut d).unwrap())
    }

    #[test]
    fn a_redraw_with_a_few_changed_digits_is_small_and_exact() {
        let a = b"top - 10:00:01 up 12 days, load average: 0.51, 0.42, 0.40\r\n  PID USER %CPU\r\n  301 root  12.5\r\n".repeat(3);
        let mut b = a.clone();
        b[13] = b'2';
        b[100] = b'7';
        b[101] = b'9';
        let mut ops = Vec::new();
        let mut values = Vec::new();
        let n = diff(&a, &b, &mut ops, &mut values).unwrap();
        assert_eq!(n, 2);
        assert_eq!(values, b"279");
        assert_eq!(round_trip(&a, &b).unwrap(), b);
    }

    #[test]
    fn unrelated_output_is_not_a_delta() {
        let a: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let b: Vec<u8> = (0..4096u32).map(|i| (i * 13 % 241) as u8).collect();
        assert!(round_trip(&a, &b).is_none());
        assert!(round_trip(b"short", b"shorter").is_none());
    }

    proptest! {
        #[test]
        fn any_delta_rebuilds_the_exact_bytes(
            reference in proptest::collection::vec(any::<u8>(), 0..600),
            edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..40),
            resize in -80i32..80,
        ) {
            let mut data = reference.clone();
            for (at, b) in edits {
                if !data.is_empty() {
                    let i = at as usize % data.len();
                    data[i] = b;
                }
            }
            let len = (data.len() as i32 + resize).max(0) as usize;
            data.resize(len, b'x');
            if let Some(back) = round_trip(&reference, &data) {
                prop_assert_eq!(back, data);
            }
        }

        #[test]
        fn hostile_deltas_never_panic_or_overrun(
            reference in proptest::collection::vec(any::<u8>(), 0..100),
            body in proptest::collection::vec(any::<u8>(), 0..100),
            len in 0usize..300,
        ) {
            let mut d = Dec::new(&body, Place::Chunk(0), 0);
            if let Ok(out) = apply(&reference, len, &mut d) {
                prop_assert_eq!(out.len(), len);
            }
        }
    }
}
