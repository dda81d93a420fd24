//! Test certificates made with the `openssl` command: a CA, and leaf certificates it signs for
//! given host names, as PEM files in a scratch directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate and its key.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8).
    pub key: PathBuf,
}

/// A CA whose files live in `dir`.
pub struct Ca {
    dir: PathBuf,
    /// The CA's own certificate and key.
    pub files: CertFiles,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Ca {
    /// A new self-signed CA.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let files = CertFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        };
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &files.key.to_string_lossy(),
                "-out",
                &files.cert.to_string_lossy(),
            ],
        );
        Ca {
            dir: dir.to_owned(),
            files,
        }
    }

    /// A leaf certificate for `host`, signed by this CA, in files named `file`.
    pub fn leaf(&self, host: &str, file: &str) -> CertFiles {
        let d = &self.dir;
        let files = CertFiles {
            cert: d.join(format!("{file}.pem")),
            key: d.join(format!("{file}.key")),
        };
        let csr = d.join(format!("{file}.csr"));
        let ext = d.join(format!("{file}.ext"));
        std::fs::write(
            &ext,
            format!("subjectAltName=DNS:{host}\nbasicConstraints=CA:FALSE\n"),
        )
        .unwrap();
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={host}"),
                "-keyout",
                &files.key.to_string_lossy(),
                "-out",
                &csr.to_string_lossy(),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr.to_string_lossy(),
                "-CA",
                &self.files.cert.to_string_lossy(),
                "-CAkey",
                &self.files.key.to_string_lossy(),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext.to_string_lossy(),
                "-out",
                &files.cert.to_string_lossy(),
            ],
        );
        files
    }
}
