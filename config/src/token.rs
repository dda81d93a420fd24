//! Bearer tokens: read from a file, checked in constant time. Both the edge's admin listener and
//! purge-api use them. A purge-api token may be scoped to hosts.

use std::path::{Path, PathBuf};

/// Where a token may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere: any host, tags and purge-all.
    All,
    /// Only these hosts: exact names and `*.suffix` patterns (stored as `.suffix`), lower case.
    Hosts(Vec<String>),
}

impl Scope {
    /// Whether `host` (normalised) is within the scope.
    pub fn allows_host(&self, host: &str) -> bool {
        match self {
            Scope::All => true,
            // A suffix is stored with its dot, and a normalised host never starts with one, so
            // `ends_with` alone means "a name below the suffix".
            Scope::Hosts(patterns) => patterns
                .iter()
                .any(|p| p == host || (p.starts_with('.') && host.ends_with(p.as_str()))),
        }
    }
}

/// The tokens a listener accepts.
#[derive(Clone, Default)]
pub struct Tokens(Vec<(Vec<u8>, Scope)>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

/// Why a tokens file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// It cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A line names a host pattern that is not one.
    #[error("{}:{line}: `{word}` is not a host name or `*.suffix` pattern", path.display())]
    BadHost {
        /// The file (empty when parsing text).
        path: PathBuf,
        /// Line, from 1.
        line: usize,
        /// The word.
        word: String,
    },
    /// It holds no token.
    #[error("{}: holds no token", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The token is not UTF-8 (where it must be sent as a header value).
    #[error("{}: the token is not UTF-8", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
}

impl Tokens {
    /// Reads one token per line, optionally followed by the hosts it is scoped to
    /// (`<token> static.example.com *.cdn.example.com`); blank lines and `#` comments are
    /// skipped. A file without a token is an error: it would lock every caller out without
    /// saying why.
    pub fn read(path: &Path) -> Result<Tokens, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.to_owned(),
            source,
        })?;
        let tokens = Tokens::parse(&text).map_err(|e| match e {
            TokenError::BadHost { line, word, .. } => TokenError::BadHost {
                path: path.to_owned(),
                line,
                word,
            },
            other => other,
        })?;
        if tokens.0.is_empty() {
            return Err(TokenError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(tokens)
    }

    /// The first token of the file at `path`, which must be text (a token this process sends).
    pub fn read_first(path: &Path) -> Result<String, TokenError> {
        Tokens::read(path)?
            .first()
            .map(str::to_string)
            .ok_or_else(|| TokenError::NotUtf8 {
                path: path.to_owned(),
            })
    }

    /// Tokens from the text of a tokens file; an error names the line of a bad host pattern.
    pub fn parse(text: &str) -> Result<Tokens, TokenError> {
        let mut tokens = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let mut words = line.split_whitespace();
            let Some(token) = words.next().filter(|t| !t.starts_with('#')) else {
                continue;
            };
            let mut hosts = Vec::new();
            for w in words {
                let lower = w.to_ascii_lowercase();
                let pattern = match lower.strip_prefix("*.") {
                    Some(suffix) => crate::host::normalize_host(suffix)
                        .filter(|h| h == suffix)
                        .map(|h| format!(".{h}")),
                    None => crate::host::normalize_host(&lower).filter(|h| *h == lower),
                };
                let Some(pattern) = pattern else {
                    return Err(TokenError::BadHost {
                        path: PathBuf::new(),
                        line: n + 1,
                        word: w.to_string(),
                    });
                };
                hosts.push(pattern);
            }
            let scope = if hosts.is_empty() {
                Scope::All
            } else {
                Scope::Hosts(hosts)
            };
            tokens.push((token.as_bytes().to_vec(), scope));
        }
        Ok(Tokens(tokens))
    }

    /// Whether any token is scoped to hosts.
    pub fn any_scoped(&self) -> bool {
        self.0.iter().any(|(_, s)| *s != Scope::All)
    }

    /// The scope of token `i` (as [`Tokens::which`] numbers them).
    pub fn scope(&self, i: usize) -> &Scope {
        self.0.get(i).map_or(&Scope::All, |(_, s)| s)
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first token (what a client sends).
    pub fn first(&self) -> Option<&str> {
        self.0
            .first()
            .and_then(|(t, _)| std::str::from_utf8(t).ok())
    }

    /// Whether an `Authorization` value carries one of the tokens, as `Bearer <token>`. Every
    /// token is compared in full, so the time taken says nothing about how much of one matched.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(presented) = authorization.and_then(bearer) else {
            return false;
        };
        self.0
            .iter()
            .fold(false, |ok, (t, _)| ok | constant_time_eq(t, presented))
    }

    /// Index of the token presented (for per-token limits), if it is one of them.
    pub fn which(&self, authorization: Option<&[u8]>) -> Option<usize> {
        self.which_key(authorization.and_then(bearer))
    }

    /// Index of a token presented bare (`Fastly-Key: <token>`), if it is one of them.
    pub fn which_key(&self, key: Option<&[u8]>) -> Option<usize> {
        let presented = key.map(<[u8]>::trim_ascii).filter(|k| !k.is_empty())?;
        let mut found = None;
        for (i, (t, _)) in self.0.iter().enumerate() {
            if constant_time_eq(t, presented) {
                found = Some(i);
            }
        }
        found
    }
}

fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Compares without an early exit: the time depends on the expected token's length only.
fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != presented.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ presented.get(i).copied().unwrap_or(!e);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_a_listed_bearer_token() {
        let t = Tokens::parse("# deploy\nsecret-one\n\n  secret-two  \n").unwrap();
        assert!(t.accepts(Some(b"Bearer secret-one")));
        assert!(t.accepts(Some(b"bearer secret-two")));
        assert_eq!(t.which(Some(b"Bearer secret-two")), Some(1));
        assert_eq!(t.which_key(Some(b"secret-two")), Some(1));
        assert_eq!(t.which_key(Some(b" secret-one ")), Some(0));
        for bad in [&b"Bearer secret-one"[..], b"secret", b"", b"  "] {
            assert_eq!(t.which_key(Some(bad)), None);
        }
        assert_eq!(t.which_key(None), None);
        for bad in [
            &b"Bearer secret"[..],
            b"Bearer secret-one-more",
            b"Basic secret-one",
            b"Bearer ",
            b"secret-one",
            b"",
        ] {
            assert!(!t.accepts(Some(bad)), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(!t.accepts(None));
        assert!(!Tokens::default().accepts(Some(b"Bearer x")));
    }

    #[test]
    fn scopes_name_hosts_and_suffixes() {
        let t = Tokens::parse("all\nshop  shop.example.com *.IMG.example.com # not a comment\n");
        assert!(t.is_err(), "a word that is not a host is refused");
        let t = Tokens::parse("all\nshop  shop.example.com *.IMG.example.com\n").unwrap();
        assert_eq!(t.which(Some(b"Bearer shop")), Some(1));
        assert_eq!(t.scope(0), &Scope::All);
        let s = t.scope(1);
        assert!(s.allows_host("shop.example.com"));
        assert!(s.allows_host("a.img.example.com"));
        assert!(!s.allows_host("img.example.com"));
        assert!(!s.allows_host("xshop.example.com"));
        assert!(!s.allows_host("example.com"));
        assert!(!s.allows_host("evilimg.example.com"));
        assert!(t.any_scoped());
        let e = Tokens::parse("a\nb bad_host!\n").unwrap_err();
        assert!(
            matches!(&e, TokenError::BadHost { line: 2, word, .. } if word == "bad_host!"),
            "{e}"
        );
    }

    #[test]
    fn a_file_without_tokens_is_an_error() {
        let dir = std::env::temp_dir().join(format!("edge-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("tokens");
        std::fs::write(&f, "# nothing\n\n").unwrap();
        assert!(matches!(
            Tokens::read(&f).unwrap_err(),
            TokenError::Empty { .. }
        ));
        std::fs::write(&f, "t\nu bad_host!\n").unwrap();
        let e = Tokens::read(&f).unwrap_err().to_string();
        assert!(
            e.ends_with(":2: `bad_host!` is not a host name or `*.suffix` pattern"),
            "{e}"
        );
        std::fs::write(&f, "t\n").unwrap();
        assert_eq!(Tokens::read(&f).unwrap().first(), Some("t"));
        assert!(Tokens::read(&dir.join("missing")).is_err());
    }
}
