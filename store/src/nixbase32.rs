//! Nix's base-32 encoding ("nix-base32").
//!
//! Grammar: an encoded string of `n` bytes has `ceil(n * 8 / 5)` characters drawn
//! from the alphabet `0123456789abcdfghijklmnpqrsvwxyz` (no `e`, `o`, `u`, `t`).
//! Unlike RFC 4648 the bits are taken from the *end* of the byte string: the
//! first character encodes the most significant 5-bit group of the last byte.
//! There is no padding. Decoding rejects characters outside the alphabet, wrong
//! lengths, and encodings whose unused high bits are not zero, so every byte
//! string has exactly one encoding.

use crate::error::Nixbase32Error;

const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// The length of the encoding of `len` bytes.
pub const fn encoded_len(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (len * 8 - 1) / 5 + 1
    }
}

/// The number of bytes an encoding of `len` characters decodes to.
pub const fn decoded_len(len: usize) -> usize {
    len * 5 / 8
}

/// Encode bytes as nix-base32.
pub fn encode(input: &[u8]) -> String {
    let len = encoded_len(input.len());
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let lo = input[i] as u16 >> j;
        let hi = if i + 1 < input.len() {
            (input[i + 1] as u16) << (8 - j)
        } else {
            0
        };
        out.push(ALPHABET[((lo | hi) & 0x1f) as usize] as char);
    }
    out
}

fn digit(c: u8) -> Option<u8> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u8)
}

/// Decode a nix-base32 string. Never panics: bad characters, impossible lengths
/// and non-canonical encodings are errors.
pub fn decode(input: &str) -> Result<Vec<u8>, Nixbase32Error> {
    let bytes = input.as_bytes();
    let out_len = decoded_len(bytes.len());
    if encoded_len(out_len) != bytes.len() {
        return Err(Nixbase32Error::Length {
            length: bytes.len(),
        });
    }
    let mut out = vec![0u8; out_len];
    for (n, &c) in bytes.iter().rev().enumerate() {
        let d = digit(c).ok_or(Nixbase32Error::Character {
            character: c as char,
            position: bytes.len() - 1 - n,
        })? as u16;
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let v = d << j;
        out[i] |= (v & 0xff) as u8;
        let carry = (v >> 8) as u8;
        if i + 1 < out_len {
            out[i + 1] |= carry;
        } else if carry != 0 {
            return Err(Nixbase32Error::TrailingBits);
        }
    }
    Ok(out)
}

/// Decode into a fixed-size array, checking the length.
pub fn decode_fixed<const N: usize>(input: &str) -> Result<[u8; N], Nixbase32Error> {
    if input.len() != encoded_len(N) {
        return Err(Nixbase32Error::Length {
            length: input.len(),
        });
    }
    let v = decode(input)?;
    let mut out = [0u8; N];
    out.copy_from_slice(&v);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from Nix's own test suite (src/libutil/tests/hash.cc) and from
    // `nix hash to-base32` on the digests of well-known strings.
    #[test]
    fn sha256_of_abc_matches_nix() {
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let bytes = hex::decode(hex).unwrap();
        assert_eq!(
            encode(&bytes),
            "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"
        );
        assert_eq!(
            decode("1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s").unwrap(),
            bytes
        );
    }

    #[test]
    fn sha256_of_empty_string_matches_nix() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            encode(&hex::decode(hex).unwrap()),
            "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
        );
    }

    #[test]
    fn small_values_match_reference_encoding() {
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0x1f]), "0z");
        assert_eq!(encode(&[0x00]), "00");
        assert_eq!(encode(&[0xff]), "7z");
        assert_eq!(decode("0z").unwrap(), vec![0x1f]);
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn round_trips_every_length_up_to_64() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let s = encode(&bytes);
            assert_eq!(s.len(), encoded_len(len));
            assert_eq!(decode(&s).unwrap(), bytes, "length {len}");
        }
    }

    #[test]
    fn decode_rejects_bad_characters_without_panicking() {
        for bad in ["e", "0e", "0o", "0u", "0t", "0A", "0\u{e9}"] {
            assert!(decode(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn decode_rejects_impossible_lengths() {
        // 1 char cannot encode a whole byte; 3 chars is not ceil(n*8/5) for any n.
        assert!(matches!(decode("0"), Err(Nixbase32Error::Length { .. })));
        assert!(matches!(decode("000"), Err(Nixbase32Error::Length { .. })));
        assert!(decode_fixed::<32>("00").is_err());
    }

    #[test]
    fn decode_rejects_non_canonical_high_bits() {
        // "8z" would need a 9th bit in a one-byte value.
        assert!(matches!(decode("8z"), Err(Nixbase32Error::TrailingBits)));
        assert!(decode("7z").is_ok());
    }
}
