//! Reading a YAML file into its serde file format, with every problem located.
//!
//! The typed reader (`serde-saphyr`) reads a good file and stops at the first bad key or value.
//! When it stops, `recover` reads the file again over a line-keeping tree to find every shape
//! error, each with its line and field path, and the validation of what could still be read adds
//! its own: one `--check` reports all of a file's mistakes.

mod de;
mod recover;
mod tree;

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::{ConfigError, Problem};

/// Reads `path` and hands its file format to `check` (path resolution and validation); the
/// problems are those of both steps, located.
pub(crate) fn load_checked<T: DeserializeOwned, R>(
    path: &Path,
    check: impl FnOnce(T) -> Result<R, Vec<Problem>>,
) -> Result<R, ConfigError> {
    let text = read(path)?;
    read_checked(&text, check).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Deserializes YAML text and hands it to `check`; every error names its line and field.
/// Booleans are YAML 1.2's `true` and `false` only: `yes`, `no`, `on` and `off`, quoted or not,
/// are refused where a boolean is expected, so `cache: "no"` cannot turn caching off by
/// accident of spelling. When the text does not deserialize, `check`
/// still sees what could be read (made-up values standing in for the wrong ones), and its
/// problems about real values join the shape errors.
pub(crate) fn read_checked<T: DeserializeOwned, R>(
    text: &str,
    check: impl FnOnce(T) -> Result<R, Vec<Problem>>,
) -> Result<R, Vec<Problem>> {
    let options = serde_saphyr::options! { strict_booleans: true };
    let first = match serde_saphyr::from_str_with_options(text, options) {
        Ok(file) => return check(file),
        Err(e) => typed_reader_problem(&e),
    };
    let Some(found) = recover::recover::<T>(text) else {
        return Err(vec![first]);
    };
    let mut problems = found.problems;
    // The two readers agree on what a file means; should they disagree on whether it is
    // wrong, the typed reader's word is kept.
    if !problems.iter().any(|p| p.line == first.line) {
        problems.push(first);
    }
    if let Some(value) = found.value {
        let lines = found.tree.lines();
        let made_up = |field: &str| {
            found.made_up.iter().any(|m| {
                m.is_empty()
                    || field
                        .strip_prefix(m.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
            })
        };
        for mut p in check(value).err().unwrap_or_default() {
            if made_up(&p.field) {
                continue;
            }
            if p.line == 0 {
                p.line = line_of(&lines, &p.field);
            }
            problems.push(p);
        }
    }
    problems.sort_by_key(|p| p.line);
    problems.dedup();
    Err(problems)
}

/// The line of `field`, or of its nearest ancestor the tree has.
fn line_of(lines: &std::collections::HashMap<String, u64>, field: &str) -> u64 {
    let mut f = field;
    loop {
        if let Some(line) = lines.get(f) {
            return *line;
        }
        match f.rfind(['.', '[']) {
            Some(i) => f = &f[..i],
            None => return 0,
        }
    }
}

/// The typed reader's error as a problem: its line, and the message without its location and
/// source snippet.
fn typed_reader_problem(e: &serde_saphyr::Error) -> Problem {
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
    Problem::new(line, "", message)
}

#[cfg(test)]
mod tests;
