//! `purge-api`: the authenticated purge service. A placeholder until the purge issue lands; it
//! exists so the workspace, deploy files and CI already have its place.

fn main() {
    eprintln!("purge-api is not built yet: see DESIGN.md (Purge)");
    std::process::exit(69);
}
