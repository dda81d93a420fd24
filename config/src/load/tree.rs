//! A YAML document as a tree that keeps each node's line, for finding every shape error in a file
//! that the typed reader refused (`recover`). Accepted files never pass through it.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

/// Nesting beyond this is not a configuration file; the typed reader's own error stands.
const MAX_DEPTH: usize = 64;

/// Nodes a document may expand to, aliases counted at their full size: a bound that stops
/// nested aliases from multiplying a small file into an exhausted memory.
const MAX_NODES: usize = 100_000;

/// One node of the document.
#[derive(Debug, Clone)]
pub(super) struct Node {
    /// 1-based line where the node starts, 0 for one the recovery made up.
    pub(super) line: u64,
    pub(super) kind: Kind,
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    /// A scalar's text, with whether it was written plain (only plain scalars resolve to null,
    /// booleans and numbers when the type is left open).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
    /// Stands in for a value that was wrong or missing: it takes whatever shape is asked of it,
    /// so that the rest of the file can still be read.
    Placeholder,
}

/// One key and its value.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) key: Node,
    pub(super) value: Node,
}

impl Entry {
    /// The key's text (a non-scalar key has none).
    pub(super) fn name(&self) -> &str {
        match &self.key.kind {
            Kind::Scalar { text, .. } => text,
            _ => "?",
        }
    }
}

/// A step from a node to one of its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// The dotted form the validation messages use: `sites[0].rules[2].cache`.
pub(super) fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

impl Node {
    pub(super) const PLACEHOLDER: Node = Node {
        line: 0,
        kind: Kind::Placeholder,
    };

    /// Whether this is a plain scalar YAML reads as null.
    pub(super) fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    fn at_mut(&mut self, path: &[Seg]) -> Option<&mut Node> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        let child = match (&mut self.kind, first) {
            (Kind::Map(entries), Seg::Key(k)) => {
                &mut entries.iter_mut().find(|e| e.name() == k)?.value
            }
            (Kind::Seq(items), Seg::Index(i)) => items.get_mut(*i)?,
            _ => return None,
        };
        child.at_mut(rest)
    }

    /// Puts `node` at `path`; false when the path leads nowhere.
    pub(super) fn replace(&mut self, path: &[Seg], node: Node) -> bool {
        match self.at_mut(path) {
            Some(slot) => {
                // The made-up value keeps the line of the one it replaces.
                let line = slot.line;
                *slot = Node { line, ..node };
                true
            }
            None => false,
        }
    }

    /// Removes the entry `path` names from its map.
    pub(super) fn remove(&mut self, path: &[Seg]) -> bool {
        let Some((Seg::Key(key), parent)) = path.split_last() else {
            return false;
        };
        match self.at_mut(parent).map(|p| &mut p.kind) {
            Some(Kind::Map(entries)) => match entries.iter().position(|e| e.name() == key) {
                Some(i) => {
                    entries.remove(i);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// Adds `key` to the map at `path`, holding a placeholder.
    pub(super) fn insert_placeholder(&mut self, path: &[Seg], key: &str) -> bool {
        let Some(parent) = self.at_mut(path) else {
            return false;
        };
        let line = parent.line;
        match &mut parent.kind {
            Kind::Map(entries) => {
                entries.push(Entry {
                    key: Node {
                        line,
                        kind: Kind::Scalar {
                            text: key.to_string(),
                            plain: true,
                        },
                    },
                    value: Node {
                        line,
                        kind: Kind::Placeholder,
                    },
                });
                true
            }
            // A placeholder map gains its first real entry.
            Kind::Placeholder => {
                parent.kind = Kind::Map(Vec::new());
                self.insert_placeholder(path, key)
            }
            _ => false,
        }
    }

    /// How many nodes this one holds, itself included.
    fn size(&self) -> usize {
        1 + match &self.kind {
            Kind::Seq(items) => items.iter().map(Node::size).sum(),
            Kind::Map(entries) => entries.iter().map(|e| e.key.size() + e.value.size()).sum(),
            _ => 0,
        }
    }

    /// The line of every path in the tree, by its rendered form.
    pub(super) fn lines(&self) -> HashMap<String, u64> {
        fn walk(node: &Node, path: &mut Vec<Seg>, out: &mut HashMap<String, u64>) {
            out.insert(render(path), node.line);
            match &node.kind {
                Kind::Map(entries) => {
                    for e in entries {
                        path.push(Seg::Key(e.name().to_string()));
                        walk(&e.value, path, out);
                        path.pop();
                    }
                }
                Kind::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        path.push(Seg::Index(i));
                        walk(item, path, out);
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        let mut out = HashMap::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }
}

/// Reads the first document of `text`; `None` when it is not well-formed YAML (the typed
/// reader's error says why).
pub(super) fn parse(text: &str) -> Option<Node> {
    let mut reader = Reader {
        events: Parser::new_from_str(text),
        anchors: HashMap::new(),
        budget: MAX_NODES,
    };
    loop {
        let (event, span) = reader.next()?;
        match event {
            Event::StreamStart | Event::DocumentStart(..) => continue,
            Event::StreamEnd | Event::DocumentEnd => {
                return Some(Node {
                    line: 1,
                    kind: Kind::Scalar {
                        text: String::new(),
                        plain: true,
                    },
                })
            }
            event => return reader.node(event, span, 0),
        }
    }
}

struct Reader<'a> {
    events: Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
    /// Each anchored node, with how many nodes it holds.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes the document may still expand to.
    budget: usize,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Option<(Event<'a>, Span)> {
        loop {
            match self.events.next_event()? {
                Ok((Event::Anchor(..), _)) => continue,
                Ok(pair) => return Some(pair),
                Err(_) => return None,
            }
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Option<Node> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.budget = self.budget.checked_sub(1)?;
        let line = span.start.line() as u64;
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, _) => (
                Node {
                    line,
                    kind: Kind::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                },
                anchor,
            ),
            Event::Alias(id) => {
                let (node, size) = self.anchors.get(&id)?;
                self.budget = self.budget.checked_sub(*size)?;
                return Some(node.clone());
            }
            Event::SequenceStart(_, anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, span, depth + 1)?);
                }
                (
                    Node {
                        line,
                        kind: Kind::Seq(items),
                    },
                    anchor,
                )
            }
            Event::MappingStart(_, anchor, _) => {
                let mut entries: Vec<Entry> = Vec::new();
                let mut merged: Vec<Entry> = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(event, span, depth + 1)?;
                    let (event, span) = self.next()?;
                    let mut value = self.node(event, span, depth + 1)?;
                    // A block map or list starts on the line after its key; what is said of
                    // it as a whole (a missing key) belongs on the key's line.
                    if matches!(value.kind, Kind::Map(_) | Kind::Seq(_)) {
                        value.line = value.line.min(key.line);
                    }
                    let entry = Entry { key, value };
                    if entry.name() == "<<"
                        && matches!(entry.key.kind, Kind::Scalar { plain: true, .. })
                    {
                        merged.extend(merges(entry.value));
                    } else {
                        entries.push(entry);
                    }
                }
                // Merged keys fill in only what the map does not set itself.
                for m in merged {
                    if !entries.iter().any(|e| e.name() == m.name()) {
                        entries.push(m);
                    }
                }
                (
                    Node {
                        line,
                        kind: Kind::Map(entries),
                    },
                    anchor,
                )
            }
            _ => return None,
        };
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), node.size()));
        }
        Some(node)
    }
}

/// The entries a `<<` merge key brings in: one map's, or each of a list of maps'.
fn merges(value: Node) -> Vec<Entry> {
    match value.kind {
        Kind::Map(entries) => entries,
        Kind::Seq(items) => items.into_iter().flat_map(merges).collect(),
        _ => Vec::new(),
    }
}
