//! Incremental UTF-8 decoding of a byte stream that arrives in pieces.

/// Decodes UTF-8 that may be split anywhere across calls. Invalid bytes become U+FFFD
/// (one per maximal invalid subpart, as `String::from_utf8_lossy` does), and the result does
/// not depend on where the stream was split.
#[derive(Clone, Debug, Default)]
pub struct Utf8Decoder {
    pending: [u8; 4],
    len: usize,
}

impl Utf8Decoder {
    /// A decoder with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether bytes of an incomplete character are held back.
    pub fn has_pending(&self) -> bool {
        self.len > 0
    }

    /// The held-back bytes of an incomplete character.
    pub fn pending(&self) -> &[u8] {
        &self.pending[..self.len]
    }

    /// Decodes `input`, appending to `out`; an incomplete character at the end is held back.
    pub fn decode(&mut self, mut input: &[u8], out: &mut String) {
        if self.len > 0 {
            let old = self.len;
            let take = input.len().min(4);
            let mut tmp = [0u8; 8];
            tmp[..old].copy_from_slice(&self.pending[..old]);
            tmp[old..old + take].copy_from_slice(&input[..take]);
            let tmp = &tmp[..old + take];
            let mut pos = 0;
            while pos < old {
                match first_char(&tmp[pos..]) {
                    First::Char(c, n) => {
                        out.push(c);
                        pos += n;
                    }
                    First::Invalid(n) => {
                        out.push('\u{FFFD}');
                        pos += n;
                    }
                    First::Incomplete => {
                        // Only possible when all of `input` fitted in `tmp`.
                        let rest = &tmp[pos..];
                        self.pending[..rest.len()].copy_from_slice(rest);
                        self.len = rest.len();
                        return;
                    }
                }
            }
            self.len = 0;
            input = &input[pos - old..];
        }
        loop {
            match std::str::from_utf8(input) {
                Ok(s) => {
                    out.push_str(s);
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&input[..valid]).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            input = &input[valid + n..];
                        }
                        None => {
                            let rest = &input[valid..];
                            let n = rest.len().min(4);
                            self.pending[..n].copy_from_slice(&rest[..n]);
                            self.len = n;
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: a held-back incomplete character becomes U+FFFD.
    pub fn finish(&mut self, out: &mut String) {
        if self.len > 0 {
            out.push('\u{FFFD}');
            self.len = 0;
        }
    }
}

enum First {
    Char(char, usize),
    Invalid(usize),
    Incomplete,
}

fn first_char(b: &[u8]) -> First {
    let upto = b.len().min(4);
    match std::str::from_utf8(&b[..upto]) {
        Ok(s) => match s.chars().next() {
            Some(c) => First::Char(c, c.len_utf8()),
            None => First::Incomplete,
        },
        Err(e) if e.valid_up_to() > 0 => {
            let s = std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default();
            match s.chars().next() {
                Some(c) => First::Char(c, c.len_utf8()),
                None => First::Invalid(1),
            }
        }
        Err(e) => match e.error_len() {
            Some(n) => First::Invalid(n),
            None => First::Incomplete,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn decode_split(bytes: &[u8], cuts: &[usize]) -> String {
        let mut d = Utf8Decoder::new();
        let mut out = String::new();
        let mut prev = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        for c in cuts {
            d.decode(&bytes[prev..c], &mut out);
            prev = c;
        }
        d.decode(&bytes[prev..], &mut out);
        d.finish(&mut out);
        out
    }

    proptest! {
        #[test]
        fn split_anywhere_equals_lossy(
            bytes in proptest::collection::vec(prop_oneof![any::<u8>(), Just(0xe2u8), Just(0x82), Just(0xac), Just(0xf0), Just(0x9f)], 0..64),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let expected = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert_eq!(decode_split(&bytes, &cuts), expected);
        }
    }

    #[test]
    fn euro_sign_split_three_ways() {
        assert_eq!(decode_split("a€b".as_bytes(), &[2, 3]), "a€b");
        assert_eq!(decode_split(b"\xe2\x82", &[1]), "\u{FFFD}");
    }
}
