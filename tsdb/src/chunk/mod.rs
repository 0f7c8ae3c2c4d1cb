//! Chunk codecs. The head appends into [`adaptive::HeadChunk`]s: a decimal chunk ([`dec`]) while
//! every value is an integer or a short decimal, else a Gorilla/XOR chunk ([`xor`]),
//! byte-compatible with Prometheus' XOR chunks.

pub mod adaptive;
pub mod bits;
pub mod dec;
pub mod xor;

/// The encoding of a chunk, as one byte on disk. Codes follow Prometheus' `chunkenc.Encoding`
/// where the encodings are the same (XOR is 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Encoding {
    /// Gorilla: delta-of-delta timestamps, XOR values.
    Xor = 1,
}

impl Encoding {
    /// The byte written to disk.
    pub fn to_code(self) -> u8 {
        self as u8
    }

    /// The encoding for a byte read from disk; `None` for an unknown one.
    pub fn try_from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Encoding::Xor),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_back_and_only_known_codes_exist() {
        let known: Vec<Encoding> = (0..=255u8).filter_map(Encoding::try_from_code).collect();
        assert_eq!(known, vec![Encoding::Xor]);
        for e in known {
            assert_eq!(Encoding::try_from_code(e.to_code()), Some(e));
        }
    }
}
