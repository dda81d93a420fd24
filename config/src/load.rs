use std::path::Path;

use serde::de::DeserializeOwned;

use crate::{ConfigError, Problem};

/// Reads `path` and deserializes it as YAML, turning a parse error into a located [`Problem`].
pub fn load_yaml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_yaml(&text).map_err(|problem| ConfigError::Invalid {
        path: path.to_owned(),
        problems: vec![problem],
    })
}

/// Deserializes YAML text; the error names the line and, where serde says it, the field.
/// Booleans are YAML 1.2's `true` and `false` only: `yes`, `no`, `on` and `off`, quoted or not,
/// are refused where a boolean is expected, so `cache: "no"` cannot turn caching off by
/// accident of spelling.
pub(crate) fn parse_yaml<T: DeserializeOwned>(text: &str) -> Result<T, Problem> {
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(0);
        // The crate's Display carries a source snippet; the first line is the message itself.
        let message = e.to_string();
        let message = message.lines().next().unwrap_or("invalid YAML").trim();
        let message = message.strip_prefix("error: ").unwrap_or(message);
        // The location is reported separately, as `file:line`.
        let message = match message.split_once(": ") {
            Some((loc, rest)) if loc.starts_with("line ") && loc.contains(" column ") => rest,
            _ => message,
        };
        let message = message.to_string();
        Problem::new(line, "", message)
    })
}
