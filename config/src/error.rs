use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a configuration file: where, which field, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file, 0 when unknown.
    pub line: u64,
    /// Dotted path of the field, e.g. `sites[0].rules[1].match.path_regex`.
    pub field: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl Problem {
    /// A problem at `line` with the field at `field`.
    pub fn new(line: u64, field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            line,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not YAML of the expected shape, or holds values that break the rules.
    #[error("{}", render(path, problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems, empty for an I/O error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn render(path: &std::path::Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{}", Located { path, problem: p }));
    }
    out
}

struct Located<'a> {
    path: &'a std::path::Path,
    problem: &'a Problem,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.problem;
        write!(f, "{}", self.path.display())?;
        if p.line > 0 {
            write!(f, ":{}", p.line)?;
        }
        if p.field.is_empty() {
            write!(f, ": {}", p.message)
        } else {
            write!(f, ": {}: {}", p.field, p.message)
        }
    }
}
