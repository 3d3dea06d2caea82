//! Internet-IDs: nine digits people read over the phone, shown as `123 456 789`.
//!
//! Eight digits are assigned by the server; the ninth is a Damm check digit. The Damm
//! algorithm detects every single-digit substitution and every transposition of two adjacent
//! digits, so a mistyped ID is reported as a typo at the keyboard instead of as "not found"
//! after a round trip to the server (or, worse, as someone else's machine).

use std::fmt;
use std::str::FromStr;

/// The Damm quasigroup of order 10 (totally anti-symmetric, zero diagonal).
const DAMM: [[u8; 10]; 10] = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

/// Largest payload (eight digits).
pub const MAX_PAYLOAD: u32 = 99_999_999;

/// A valid Internet-ID (payload and check digit), stored as its nine-digit number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InternetId(u32);

/// Why a string is not an Internet-ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InternetIdError {
    /// Something other than digits, spaces and dashes.
    #[error("an Internet-ID has only digits (spaces and dashes allowed), found {found:?}")]
    BadCharacter {
        /// The offending character.
        found: char,
    },
    /// Not nine digits.
    #[error("an Internet-ID has 9 digits, this has {digits}; check the number you were given")]
    WrongLength {
        /// How many digits were found.
        digits: usize,
    },
    /// Nine digits whose check digit does not match: a typo.
    #[error("{input} is not a valid Internet-ID (check digit mismatch): probably a typo, check each digit")]
    Typo {
        /// The digits as typed.
        input: String,
    },
    /// A payload larger than eight digits.
    #[error("Internet-ID payload {payload} has more than 8 digits")]
    PayloadTooLarge {
        /// The payload.
        payload: u32,
    },
}

fn damm_digits(digits: impl IntoIterator<Item = u8>) -> u8 {
    digits
        .into_iter()
        .fold(0u8, |interim, d| DAMM[interim as usize][d as usize])
}

fn digits_of(n: u32, count: usize) -> Vec<u8> {
    let mut out = vec![0u8; count];
    let mut n = n;
    for slot in out.iter_mut().rev() {
        *slot = (n % 10) as u8;
        n /= 10;
    }
    out
}

impl InternetId {
    /// Builds the ID for an eight-digit payload by appending its check digit.
    pub fn from_payload(payload: u32) -> Result<Self, InternetIdError> {
        if payload > MAX_PAYLOAD {
            return Err(InternetIdError::PayloadTooLarge { payload });
        }
        let check = damm_digits(digits_of(payload, 8));
        Ok(Self(payload * 10 + u32::from(check)))
    }

    /// The eight-digit payload the server assigned.
    pub fn payload(self) -> u32 {
        self.0 / 10
    }

    /// The nine-digit number, check digit last.
    pub fn as_u32(self) -> u32 {
        self.0
    }

    /// Checks a nine-digit number (as sent on the wire) and wraps it.
    pub fn from_u32(n: u32) -> Result<Self, InternetIdError> {
        if n > 999_999_999 {
            return Err(InternetIdError::WrongLength {
                digits: n.to_string().len(),
            });
        }
        if damm_digits(digits_of(n, 9)) != 0 {
            return Err(InternetIdError::Typo {
                input: format!("{n:09}"),
            });
        }
        Ok(Self(n))
    }
}

impl fmt::Display for InternetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = format!("{:09}", self.0);
        write!(f, "{} {} {}", &s[0..3], &s[3..6], &s[6..9])
    }
}

impl FromStr for InternetId {
    type Err = InternetIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut digits = Vec::with_capacity(9);
        for c in s.trim().chars() {
            match c {
                '0'..='9' => digits.push(c as u8 - b'0'),
                ' ' | '-' => {}
                other => return Err(InternetIdError::BadCharacter { found: other }),
            }
            if digits.len() > 9 {
                return Err(InternetIdError::WrongLength {
                    digits: s.chars().filter(char::is_ascii_digit).count(),
                });
            }
        }
        if digits.len() != 9 {
            return Err(InternetIdError::WrongLength {
                digits: digits.len(),
            });
        }
        if damm_digits(digits.iter().copied()) != 0 {
            let input: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            return Err(InternetIdError::Typo { input });
        }
        let n = digits.iter().fold(0u32, |acc, d| acc * 10 + u32::from(*d));
        Ok(Self(n))
    }
}

impl serde::Serialize for InternetId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for InternetId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        Self::from_u32(n).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn display_and_parse() {
        let id = InternetId::from_payload(12_345_678).unwrap();
        let shown = id.to_string();
        assert_eq!(shown.len(), 11);
        assert_eq!(&shown[..7], "123 456");
        assert_eq!(shown.parse::<InternetId>().unwrap(), id);
        let dashed = shown.replace(' ', "-");
        assert_eq!(dashed.parse::<InternetId>().unwrap(), id);
        let packed = shown.replace(' ', "");
        assert_eq!(packed.parse::<InternetId>().unwrap(), id);
    }

    #[test]
    fn bad_inputs_are_typed() {
        assert!(matches!(
            "12a 456 789".parse::<InternetId>(),
            Err(InternetIdError::BadCharacter { found: 'a' })
        ));
        assert!(matches!(
            "123 456".parse::<InternetId>(),
            Err(InternetIdError::WrongLength { digits: 6 })
        ));
        assert!(matches!(
            "123 456 789 0".parse::<InternetId>(),
            Err(InternetIdError::WrongLength { digits: 10 })
        ));
        assert!(InternetId::from_payload(100_000_000).is_err());
    }

    fn assert_typo(s: &str) {
        match s.parse::<InternetId>() {
            Err(InternetIdError::Typo { .. }) => {}
            other => panic!("{s}: expected a typo, got {other:?}"),
        }
    }

    fn check_all_typos(id: InternetId) {
        let s = format!("{:09}", id.as_u32());
        let digits: Vec<u8> = s.bytes().collect();
        for i in 0..9 {
            for d in b'0'..=b'9' {
                if d != digits[i] {
                    let mut t = digits.clone();
                    t[i] = d;
                    assert_typo(std::str::from_utf8(&t).unwrap());
                }
            }
            if i + 1 < 9 && digits[i] != digits[i + 1] {
                let mut t = digits.clone();
                t.swap(i, i + 1);
                assert_typo(std::str::from_utf8(&t).unwrap());
            }
        }
    }

    #[test]
    fn every_single_typo_and_transposition_is_detected_for_fixed_ids() {
        for payload in [
            0, 1, 12_345_678, 99_999_999, 10_000_000, 55_555_555, 90_817_263,
        ] {
            check_all_typos(InternetId::from_payload(payload).unwrap());
        }
    }

    proptest! {
        #[test]
        fn every_single_typo_and_transposition_is_detected(payload in 0u32..=MAX_PAYLOAD) {
            let id = InternetId::from_payload(payload).unwrap();
            prop_assert_eq!(id.payload(), payload);
            prop_assert_eq!(id.to_string().parse::<InternetId>().unwrap(), id);
            check_all_typos(id);
        }
    }
}
