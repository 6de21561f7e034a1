//! The batch row format shared by the durable backends: a write's messages
//! stored as one value.
//!
//! ```text
//! +-------------+-------------+---------+-------------+---------+-----
//! | count u32LE | len u32LE   | bytes   | len u32LE   | bytes   | ...
//! +-------------+-------------+---------+-------------+---------+-----
//!                 message 1               message 2
//! ```
//!
//! A row's sequence numbers are kept beside it (its key), not in it. A row
//! that does not decode is [`StorageErrorKind::Corrupt`], never a panic:
//! every length is checked against what is left of the row before it is
//! used.

use bytes::Bytes;

use crate::error::{StorageError, StorageErrorKind};

/// Encodes payloads as one batch row: `count: u32 LE`, then `len: u32 LE`
/// and the bytes of each.
pub(crate) fn encode_batch(payloads: &[Bytes]) -> Result<Vec<u8>, StorageError> {
    let too_large = || {
        StorageError::new(
            StorageErrorKind::Io,
            "a batch or payload over 4 GiB cannot be stored",
        )
    };
    let count = u32::try_from(payloads.len()).map_err(|_| too_large())?;
    let size = 4 + payloads.iter().map(|p| 4 + p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&count.to_le_bytes());
    for payload in payloads {
        let len = u32::try_from(payload.len()).map_err(|_| too_large())?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(payload);
    }
    Ok(out)
}

/// The number of messages in a batch row (at least one).
pub(crate) fn batch_count(row: &[u8]) -> Result<u64, StorageError> {
    let head: [u8; 4] = row
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| corrupt("a batch row shorter than its header"))?;
    match u32::from_le_bytes(head) {
        0 => Err(corrupt("an empty batch row")),
        n => Ok(u64::from(n)),
    }
}

/// The payloads of a batch row. `row` is one buffer read from the store;
/// the payloads are slices of it, not copies.
pub(crate) fn decode_batch(row: Bytes) -> Result<Vec<Bytes>, StorageError> {
    let count = batch_count(&row)?;
    // At least four bytes per message: a count larger than the row allows
    // is corrupt, and must not size an allocation.
    if count > (row.len() as u64) / 4 {
        return Err(corrupt("a batch row with more messages than bytes"));
    }
    let mut at = 4;
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len: [u8; 4] = row
            .get(at..at + 4)
            .and_then(|l| l.try_into().ok())
            .ok_or_else(|| corrupt("a truncated batch row"))?;
        let len = u32::from_le_bytes(len) as usize;
        let start = at + 4;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= row.len())
            .ok_or_else(|| corrupt("a truncated batch row"))?;
        out.push(row.slice(start..end));
        at = end;
    }
    if at != row.len() {
        return Err(corrupt("bytes after the last message of a batch row"));
    }
    Ok(out)
}

/// The first sequence number of a batch of `count` ending at `last`.
pub(crate) fn first_seq(last: u64, count: u64) -> Result<u64, StorageError> {
    (last + 1)
        .checked_sub(count)
        .filter(|&first| first >= 1)
        .ok_or_else(|| corrupt("a batch row with more messages than its key allows"))
}

pub(crate) fn corrupt(what: &'static str) -> StorageError {
    StorageError::new(StorageErrorKind::Corrupt, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_corrupt() {
        let payloads = vec![
            Bytes::from_static(b"a"),
            Bytes::new(),
            Bytes::from(vec![7; 300]),
        ];
        let row = encode_batch(&payloads).unwrap();
        assert_eq!(batch_count(&row).unwrap(), 3);
        assert_eq!(decode_batch(Bytes::from(row.clone())).unwrap(), payloads);
        for cut in 0..row.len() {
            let e = decode_batch(Bytes::copy_from_slice(&row[..cut])).unwrap_err();
            assert_eq!(e.kind(), StorageErrorKind::Corrupt, "cut at {cut}");
        }
        let mut long = row.clone();
        long.push(0);
        assert!(decode_batch(Bytes::from(long)).is_err());
        let huge = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert!(decode_batch(Bytes::copy_from_slice(&huge)).is_err());
        assert!(first_seq(2, 3).is_err());
        assert_eq!(first_seq(5, 3).unwrap(), 3);
    }
}
