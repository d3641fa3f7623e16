//! Exact Online regions. Each region is a separate Exact site; a user has
//! at most one connection per region.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Nl,
    Be,
    De,
    Uk,
    Us,
    Es,
    Fr,
}

impl Region {
    /// Every region; the migrations' CHECK on `connections.region` lists
    /// exactly these codes (a tidy test enforces it).
    pub const ALL: [Region; 7] = [
        Region::Nl,
        Region::Be,
        Region::De,
        Region::Uk,
        Region::Us,
        Region::Es,
        Region::Fr,
    ];

    pub const fn code(self) -> &'static str {
        match self {
            Region::Nl => "nl",
            Region::Be => "be",
            Region::De => "de",
            Region::Uk => "uk",
            Region::Us => "us",
            Region::Es => "es",
            Region::Fr => "fr",
        }
    }

    /// The Exact Online site as customers know it.
    pub const fn site_name(self) -> &'static str {
        match self {
            Region::Nl => "Nederland (exactonline.nl)",
            Region::Be => "België (exactonline.be)",
            Region::De => "Deutschland (exactonline.de)",
            Region::Uk => "United Kingdom (exactonline.co.uk)",
            Region::Us => "United States (exactonline.com)",
            Region::Es => "España (exactonline.es)",
            Region::Fr => "France (exactonline.fr)",
        }
    }

    /// The production Exact Online base URL of the region. Deployments may
    /// override it (the sandbox in development); this is only the default.
    pub const fn default_base_url(self) -> &'static str {
        match self {
            Region::Nl => "https://start.exactonline.nl",
            Region::Be => "https://start.exactonline.be",
            Region::De => "https://start.exactonline.de",
            Region::Uk => "https://start.exactonline.co.uk",
            Region::Us => "https://start.exactonline.com",
            Region::Es => "https://start.exactonline.es",
            Region::Fr => "https://start.exactonline.fr",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Exact region {0:?}; expected one of nl, be, de, uk, us, es, fr")]
pub struct UnknownRegion(pub String);

impl FromStr for Region {
    type Err = UnknownRegion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Region::ALL
            .into_iter()
            .find(|r| r.code() == lower)
            .ok_or_else(|| UnknownRegion(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_case_insensitively_and_unknown_ones_fail() {
        for r in Region::ALL {
            assert_eq!(r.code().parse::<Region>(), Ok(r));
            assert_eq!(r.code().to_uppercase().parse::<Region>(), Ok(r));
            assert!(
                r.default_base_url()
                    .starts_with("https://start.exactonline.")
            );
        }
        assert!("gb".parse::<Region>().is_err());
    }
}
