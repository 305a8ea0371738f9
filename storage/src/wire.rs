//! A reader of big-endian fixed-width fields, for the small binary formats the engine and the
//! node keep (producer snapshots, committed-offset records). Every read is bounds-checked and
//! returns `None` past the end, so a damaged file or record is refused, never trusted.

/// Reads fields from the front of a byte slice.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    pub fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    pub fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    pub fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
    pub fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }

    /// A string with an `i16` length (Kafka's `STRING`); `None` if negative, short or not UTF-8.
    pub fn str(&mut self) -> Option<String> {
        let n = usize::try_from(self.i16()?).ok()?;
        let (s, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        String::from_utf8(s.to_vec()).ok()
    }

    /// Kafka's `NULLABLE_STRING`: length -1 is null (`Some(None)`).
    pub fn nullable_str(&mut self) -> Option<Option<String>> {
        if self.0.starts_with(&[0xff, 0xff]) {
            self.i16()?;
            return Some(None);
        }
        self.str().map(Some)
    }

    /// Kafka's `BYTES`: an `i32` length, then that many bytes; `None` if negative or short.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.i32()?).ok()?;
        let (b, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_refuses_short_input() {
        let mut r = Reader::new(&[0, 2, b'h', b'i', 0, 0, 0, 7, 1]);
        assert_eq!(r.str().as_deref(), Some("hi"));
        assert_eq!(r.i32(), Some(7));
        assert_eq!(r.u8(), Some(1));
        assert!(r.is_empty());
        assert_eq!(r.u8(), None);
        assert_eq!(Reader::new(&[0, 5, b'x']).str(), None, "declared longer than what is there");
        assert_eq!(Reader::new(&[0xff, 0xff]).str(), None, "negative length");
        let mut r =
            Reader::new(&[0xff, 0xff, 0, 1, b'a', 0, 0, 0, 2, 9, 8, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.nullable_str(), Some(None));
        assert_eq!(r.nullable_str(), Some(Some("a".to_owned())));
        assert_eq!(r.bytes(), Some(&[9u8, 8][..]));
        assert_eq!(r.bytes(), None, "negative length");
        assert_eq!(
            Reader::new(&[0, 0, 0, 3, 1]).bytes(),
            None,
            "declared longer than what is there"
        );
    }
}
