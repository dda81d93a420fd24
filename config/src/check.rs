//! Helpers the validation steps share.

use std::net::SocketAddr;

use serde_saphyr::Spanned;

use crate::Problem;

/// The value of an optional duration field.
pub(crate) fn dur(d: &Option<Spanned<crate::units::HumanDuration>>) -> Option<std::time::Duration> {
    d.as_ref().map(|d| d.value.0)
}

/// Problems collected while validating one file.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    /// Records a problem at the line of `span`.
    pub(crate) fn at<T>(
        &mut self,
        span: &Spanned<T>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.0
            .push(Problem::new(span.referenced.line(), field, msg));
    }

    /// Every problem in file order, or `ok` when there is none.
    pub(crate) fn finish<T>(mut self, ok: impl FnOnce() -> Option<T>) -> Result<T, Vec<Problem>> {
        if !self.0.is_empty() {
            self.0.sort_by_key(|x| x.line);
            return Err(self.0);
        }
        ok().ok_or_else(Vec::new)
    }
}

/// A socket address, or a problem saying what one looks like.
pub(crate) fn socket_addr(
    p: &mut Problems,
    s: &Spanned<String>,
    field: &str,
) -> Option<SocketAddr> {
    match s.value.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            p.at(
                s,
                field,
                format!("`{}` is not an address like `0.0.0.0:8080`", s.value),
            );
            None
        }
    }
}
