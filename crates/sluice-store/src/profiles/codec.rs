//! The byte encoding the change log and the snapshot share: little-endian integers and
//! length-prefixed text, written into a `Vec<u8>` and read back from a slice.
//!
//! A reader never trusts a length: every read is checked against what is left, so a damaged
//! file gives [`StoreError::Corrupt`], not a panic or a huge allocation.

use sluice_identity::Collection;

use super::state::Names;
use crate::StoreError;

/// Appends values to a buffer.
pub(crate) struct Writer<'a> {
    pub(crate) out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    pub(crate) fn u8(&mut self, value: u8) {
        self.out.push(value);
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn i64(&mut self, value: i64) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    /// A length that fits in 32 bits (every list and text here is bounded far below that).
    pub(crate) fn len(&mut self, value: usize) {
        self.u32(u32::try_from(value).unwrap_or(u32::MAX));
    }

    pub(crate) fn text(&mut self, value: &str) {
        self.len(value.len());
        self.out.extend_from_slice(value.as_bytes());
    }

    /// Absent text is written as length `u32::MAX`.
    pub(crate) fn opt_text(&mut self, value: Option<&str>) {
        match value {
            Some(text) => self.text(text),
            None => self.u32(u32::MAX),
        }
    }

    pub(crate) fn collection(&mut self, collection: Collection) {
        self.u8(match collection {
            Collection::Users => 0,
            Collection::Accounts => 1,
        });
    }

    pub(crate) fn opt_i64(&mut self, value: Option<i64>) {
        match value {
            Some(number) => {
                self.u8(1);
                self.i64(number);
            }
            None => self.u8(0),
        }
    }
}

/// Reads values back, checking every length.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// What is being read, for the error message.
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { bytes, at: 0, what }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn corrupt(&self, detail: &str) -> StoreError {
        StoreError::Corrupt(format!("{} at byte {}: {detail}", self.what, self.at))
    }

    pub(crate) fn take(&mut self, count: usize) -> Result<&'a [u8], StoreError> {
        let end = self
            .at
            .checked_add(count)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.corrupt("ends early"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A list length, checked against the bytes left (each item takes at least `min_item`).
    pub(crate) fn len(&mut self, min_item: usize) -> Result<usize, StoreError> {
        let count = self.u32()? as usize;
        if count.saturating_mul(min_item.max(1)) > self.bytes.len() - self.at {
            return Err(self.corrupt("list longer than the data"));
        }
        Ok(count)
    }

    pub(crate) fn text(&mut self) -> Result<&'a str, StoreError> {
        let count = self.u32()? as usize;
        let bytes = self.take(count)?;
        std::str::from_utf8(bytes).map_err(|_| self.corrupt("text is not UTF-8"))
    }

    pub(crate) fn opt_text(&mut self) -> Result<Option<&'a str>, StoreError> {
        let count = self.u32()?;
        if count == u32::MAX {
            return Ok(None);
        }
        let bytes = self.take(count as usize)?;
        std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|_| self.corrupt("text is not UTF-8"))
    }

    pub(crate) fn collection(&mut self) -> Result<Collection, StoreError> {
        match self.u8()? {
            0 => Ok(Collection::Users),
            1 => Ok(Collection::Accounts),
            other => Err(self.corrupt(&format!("collection {other}"))),
        }
    }

    /// A name's number, which `names` must define already.
    pub(crate) fn name(&mut self, names: &Names) -> Result<u32, StoreError> {
        let id = self.u32()?;
        if !names.contains(id) {
            return Err(self.corrupt(&format!("name {id} is not defined")));
        }
        Ok(id)
    }

    pub(crate) fn opt_i64(&mut self) -> Result<Option<i64>, StoreError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.i64()?)),
            _ => Err(self.corrupt("bad option tag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_written_and_short_input_is_an_error() {
        let mut out = Vec::new();
        let mut writer = Writer { out: &mut out };
        writer.u8(7);
        writer.u32(70_000);
        writer.i64(-5);
        writer.u64(u64::MAX);
        writer.text("héllo");
        writer.opt_text(None);
        writer.opt_text(Some(""));
        writer.opt_i64(Some(9));
        writer.opt_i64(None);
        let mut reader = Reader::new(&out, "test");
        assert_eq!(reader.u8().unwrap(), 7);
        assert_eq!(reader.u32().unwrap(), 70_000);
        assert_eq!(reader.i64().unwrap(), -5);
        assert_eq!(reader.u64().unwrap(), u64::MAX);
        assert_eq!(reader.text().unwrap(), "héllo");
        assert_eq!(reader.opt_text().unwrap(), None);
        assert_eq!(reader.opt_text().unwrap(), Some(""));
        assert_eq!(reader.opt_i64().unwrap(), Some(9));
        assert_eq!(reader.opt_i64().unwrap(), None);
        assert!(reader.is_empty());

        let mut short = Reader::new(&out[..3], "test");
        assert_eq!(short.u8().unwrap(), 7);
        let error = short.u32().unwrap_err().to_string();
        assert!(error.contains("test at byte 1: ends early"), "{error}");

        let mut huge = Vec::new();
        Writer { out: &mut huge }.u32(1_000_000);
        assert!(Reader::new(&huge, "test").len(8).is_err());
    }
}
