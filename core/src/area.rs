//! What a viewer watches: one monitor of the host, or its whole desktop.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One monitor (an index into [`crate::wire::session::Accepted::monitors`], primary first)
/// or the whole desktop (every monitor's bounding box). Each viewer watches one; the host
/// runs one capture and one encode per area someone watches, shared by all who watch it.
///
/// In a config file and on the command line: the monitor's number, or `desktop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Spelled", into = "Spelled")]
pub enum Area {
    /// Monitor N.
    Monitor(u8),
    /// The whole desktop.
    Desktop,
}

impl Area {
    /// The number media messages carry for it (`monitor` in a video frame): the monitor's
    /// index, or [`Self::DESKTOP_INDEX`].
    pub fn index(self) -> u8 {
        match self {
            Self::Monitor(i) => i,
            Self::Desktop => Self::DESKTOP_INDEX,
        }
    }

    /// The `monitor` number of the whole desktop's media.
    pub const DESKTOP_INDEX: u8 = u8::MAX;
}

/// The primary monitor.
impl Default for Area {
    fn default() -> Self {
        Self::Monitor(0)
    }
}

/// As `SelectMonitor` says it: `None` is the whole desktop.
impl From<Option<u8>> for Area {
    fn from(index: Option<u8>) -> Self {
        index.map_or(Self::Desktop, Self::Monitor)
    }
}

/// How a config file spells an area: `monitor = 1` or `monitor = "desktop"`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Spelled {
    Index(u8),
    Word(String),
}

impl TryFrom<Spelled> for Area {
    type Error = AreaError;
    fn try_from(s: Spelled) -> Result<Self, AreaError> {
        match s {
            Spelled::Index(i) => Ok(Self::Monitor(i)),
            Spelled::Word(w) => w.parse(),
        }
    }
}

impl From<Area> for Spelled {
    fn from(a: Area) -> Self {
        match a {
            Area::Monitor(i) => Spelled::Index(i),
            Area::Desktop => Spelled::Word("desktop".into()),
        }
    }
}

/// An area that is neither a monitor number nor `desktop`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a monitor: give its number (0 = primary, up to 254) or `desktop`")]
pub struct AreaError {
    /// What was given.
    pub given: String,
}

impl std::str::FromStr for Area {
    type Err = AreaError;
    fn from_str(s: &str) -> Result<Self, AreaError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("desktop") {
            return Ok(Self::Desktop);
        }
        match t.parse::<u8>() {
            Ok(i) if i != Self::DESKTOP_INDEX => Ok(Self::Monitor(i)),
            _ => Err(AreaError { given: s.into() }),
        }
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Monitor(i) => write!(f, "monitor {i}"),
            Self::Desktop => f.write_str("whole desktop"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_monitor_maps_and_prints() {
        assert_eq!(Area::from(Some(1)), Area::Monitor(1));
        assert_eq!(Area::from(None), Area::Desktop);
        assert_eq!(Area::Monitor(1).to_string(), "monitor 1");
        assert_eq!(Area::Desktop.to_string(), "whole desktop");
        assert_eq!(Area::Desktop.index(), 255);
        assert_eq!(Area::Monitor(3).index(), 3);
    }

    #[test]
    fn spelled_as_a_number_or_desktop() {
        assert_eq!("2".parse::<Area>(), Ok(Area::Monitor(2)));
        assert_eq!(" Desktop ".parse::<Area>(), Ok(Area::Desktop));
        for bad in ["-1", "255", "left", ""] {
            let e = bad.parse::<Area>().unwrap_err();
            assert!(e.to_string().contains("`desktop`"), "{e}");
        }
        #[derive(Debug, PartialEq, Deserialize, Serialize)]
        struct F {
            monitor: Area,
        }
        let f: F = toml::from_str("monitor = 1").unwrap();
        assert_eq!(f.monitor, Area::Monitor(1));
        let f: F = toml::from_str("monitor = \"desktop\"").unwrap();
        assert_eq!(f.monitor, Area::Desktop);
        assert!(toml::from_str::<F>("monitor = \"left\"").is_err());
        assert_eq!(toml::to_string(&f).unwrap().trim(), "monitor = \"desktop\"");
    }
}
