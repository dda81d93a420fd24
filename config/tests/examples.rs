//! Every sample file under `config/examples/` must load.

#[test]
fn every_example_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("edge") && name.ends_with(".yaml") {
            if let Err(e) = edge_config::edge::EdgeConfig::load(&path) {
                panic!("{e}");
            }
            seen += 1;
        }
        if name.starts_with("purge-api") && name.ends_with(".yaml") {
            if let Err(e) = edge_config::purge_api::PurgeApiConfig::load(&path) {
                panic!("{e}");
            }
            seen += 1;
        }
    }
    assert!(
        seen >= 4,
        "expected the sample configs in {}",
        dir.display()
    );
}
