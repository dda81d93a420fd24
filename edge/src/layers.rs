//! The layering of the crate's modules, checked: every `crate::` path in the code (comments
//! aside) names a module in a lower layer or the module it is written in. A new module must be
//! given its layer here.

use std::path::Path;

/// Each top-level module's layer: a module may use the modules of lower layers only.
const LAYERS: &[(&str, u8)] = &[
    ("node", 60),
    ("admin", 50),
    ("proxy", 50),
    ("tls", 50),
    ("purge", 40),
    ("metrics", 35),
    ("live", 30),
    ("cache", 20),
    ("http", 10),
    // Leaves: they import nothing of the crate, and any layer may use them.
    ("fds", 0),
    ("drain", 0),
    ("access_log", 0),
    ("logging", 0),
    ("layers", 0),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The `crate::<module>` names used in the code of `text`, comments left out.
fn uses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name = |s: &str| -> String {
                s.trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            };
            match rest.strip_prefix('{') {
                // `crate::{a::X, b}` on one line.
                Some(group) => {
                    let group = group.split('}').next().unwrap_or("");
                    out.extend(group.split(',').map(name).filter(|n| !n.is_empty()));
                }
                None => out.push(name(rest)),
            }
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel.iter().next().unwrap().to_string_lossy();
        let module = top.trim_end_matches(".rs");
        if module == "lib" || module == "main" || module == "layers" {
            continue;
        }
        let from = layer(module).unwrap_or_else(|| panic!("{module} has no layer in LAYERS"));
        let text = std::fs::read_to_string(&file).unwrap();
        for used in uses(&text) {
            let to = layer(&used).unwrap_or_else(|| panic!("{used} has no layer in LAYERS"));
            if used != module && to >= from && to != 0 {
                wrong.push(format!("{} uses crate::{used}", rel.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    assert_eq!(
        uses("use crate::proxy::EdgeState; // crate::node"),
        ["proxy"]
    );
    assert!(uses("//! [`x`](crate::node::build)").is_empty());
    assert_eq!(uses("use crate::{http::hop, live};"), ["http", "live"]);
}
