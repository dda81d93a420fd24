//! Relative paths in a configuration file are read from the file's own folder, as nginx and
//! systemd users expect, not from wherever the process was started. Done on the file format
//! before validation, so what validation reads (error pages, URL keys) and what the binaries
//! open later (certificates, tokens, the disk tier, logs) agree.

use std::path::Path;

use serde_saphyr::Spanned;

use crate::edge::file::{AccessFile, EdgeFile, TlsFile};
use crate::purge_api::file::PurgeApiFile;

/// `p` joined to `base` when it is relative (and not empty).
fn resolve(base: &Path, p: &mut String) {
    if !p.is_empty() && Path::new(p.as_str()).is_relative() {
        *p = base.join(p.as_str()).to_string_lossy().into_owned();
    }
}

fn spanned(base: &Path, p: &mut Spanned<String>) {
    resolve(base, &mut p.value);
}

fn tls(base: &Path, t: &mut TlsFile) {
    spanned(base, &mut t.cert);
    spanned(base, &mut t.key);
}

/// Resolves every path of an edge file against `base`.
pub(crate) fn edge(f: &mut EdgeFile, base: &Path) {
    for l in &mut f.listen.value {
        if let Some(t) = &mut l.tls {
            tls(base, t);
        }
    }
    if let Some(t) = &mut f.admin.token_file {
        spanned(base, t);
    }
    if let Some(d) = &mut f.cache.disk {
        spanned(base, &mut d.path);
    }
    for o in f.origins.value.values_mut() {
        if let Some(ca) = &mut o.value.ca_file {
            spanned(base, ca);
        }
    }
    for s in &mut f.sites.value {
        if let Some(t) = &mut s.tls {
            tls(base, t);
        }
        for page in s.error_pages.values_mut() {
            spanned(base, page);
        }
        for r in &mut s.rules {
            if let Some(su) = &mut r.signed_url {
                spanned(base, &mut su.value.key_file);
            }
        }
    }
    if let Some(a) = &mut f.log.access {
        if let AccessFile::To(to) = &mut a.value {
            if !matches!(to.output.as_str(), "stdout" | "stderr") {
                resolve(base, &mut to.output);
            }
        }
    }
}

/// Resolves every path of a purge-api file against `base`.
pub(crate) fn purge_api(f: &mut PurgeApiFile, base: &Path) {
    spanned(base, &mut f.tokens_file);
    if let Some(s) = &mut f.store {
        spanned(base, s);
    }
    if let Some(pg) = &mut f.postgres {
        if let Some(u) = &mut pg.value.url_file {
            spanned(base, u);
        }
        if let Some(ca) = &mut pg.value.ca_file {
            spanned(base, ca);
        }
    }
    spanned(base, &mut f.nodes.value.token_file);
}
