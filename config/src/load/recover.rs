//! Finds every shape error in a file the typed reader refused: read the tree, and at each error
//! note it, mend the tree (drop an unknown key, stand a placeholder in for a wrong or missing
//! value) and read again, until the file reads or cannot be mended.

use serde::de::DeserializeOwned;

use super::de::{De, ErrorKind};
use super::tree::{self, Kind, Node, Seg};
use crate::Problem;

/// Enough for any file a person wrote; a bound so that a pathological one cannot loop.
const MAX_ROUNDS: usize = 256;

/// What stands in for a wrong value, tried in turn: a placeholder takes the shape the type asks
/// for; `0` satisfies types that read any scalar (sizes, durations).
fn candidates() -> [Node; 2] {
    [
        Node::PLACEHOLDER,
        Node {
            line: 0,
            kind: Kind::Scalar {
                text: "0".to_string(),
                plain: true,
            },
        },
    ]
}

/// The problems found, and the value read once the tree was mended (absent when it could not
/// be), with the paths whose values are made up.
pub(super) struct Recovered<T> {
    pub(super) problems: Vec<Problem>,
    pub(super) value: Option<T>,
    pub(super) made_up: Vec<String>,
    pub(super) tree: Node,
}

/// Reads `text` as `T`, collecting every shape error; `None` when it is not well-formed YAML.
pub(super) fn recover<T: DeserializeOwned>(text: &str) -> Option<Recovered<T>> {
    let mut tree = tree::parse(text)?;
    let mut problems = Vec::new();
    // Paths holding a made-up value, with the candidate each holds.
    let mut made_up: Vec<(Vec<Seg>, usize)> = Vec::new();
    let mut value = None;
    for _ in 0..MAX_ROUNDS {
        let e = match T::deserialize(De::root(&tree)) {
            Ok(v) => {
                value = Some(v);
                break;
            }
            Err(e) => e,
        };
        let (path, line) = e.at.unwrap_or_default();
        // What a made-up value causes is not the file's fault.
        if !made_up.iter().any(|(p, _)| path.starts_with(p)) {
            problems.push(Problem::new(line, tree::render(&path), e.message));
        }
        let mended = match e.kind {
            ErrorKind::UnknownField => tree.remove(&path),
            ErrorKind::MissingField(field) => {
                let mut child = path.clone();
                child.push(Seg::Key(field.clone()));
                made_up.push((child, 0));
                tree.insert_placeholder(&path, &field)
            }
            ErrorKind::Value => {
                let next = match made_up.iter_mut().find(|(p, _)| *p == path) {
                    Some((_, tried)) => {
                        *tried += 1;
                        *tried
                    }
                    None => {
                        made_up.push((path.clone(), 0));
                        0
                    }
                };
                match candidates().into_iter().nth(next) {
                    Some(node) => tree.replace(&path, node),
                    None => false,
                }
            }
        };
        if !mended {
            break;
        }
    }
    Some(Recovered {
        problems,
        value,
        made_up: made_up.iter().map(|(p, _)| tree::render(p)).collect(),
        tree,
    })
}
