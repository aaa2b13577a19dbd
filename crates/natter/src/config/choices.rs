//! The closed choices of the configuration (which bus, which index, which file store, which log
//! format) and [`Secret`], a value that never prints.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `bus.kind`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusKind {
    /// In-process: one node.
    #[default]
    Memory,
    Nats,
}

/// `search.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchBackend {
    /// tantivy in `search.path`: one process.
    #[default]
    Embedded,
    /// Shared by a cluster.
    Postgres,
    /// No index: messages are not indexed and searches are refused (`search_unavailable`).
    Off,
}

/// `files.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilesBackend {
    #[default]
    Local,
    S3,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A secret from the configuration: `Debug`, `Display` and serialization (`config show`) print
/// `<hidden>` (or nothing, when it is empty); only [`Secret::expose`] gives the value.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn shown(&self) -> &'static str {
        if self.0.is_empty() { "" } else { "<hidden>" }
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.shown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::from("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "<hidden> \"<hidden>\"");
        assert_eq!(
            toml::to_string(&[("key", &secret)].into_iter().collect::<std::collections::BTreeMap<_, _>>()).ok(),
            Some("key = \"<hidden>\"\n".to_owned())
        );
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(Secret::default().to_string(), "");
    }

    #[test]
    fn unknown_choices_are_refused_with_the_known_ones() {
        let error = toml::from_str::<std::collections::BTreeMap<String, BusKind>>("kind = \"kafka\"")
            .expect_err("kafka is no bus");
        assert!(error.to_string().contains("memory"), "{error}");
    }
}
