//! Hop-by-hop fields of a response (RFC 9110 §7.6.1): they describe the origin's connection to
//! this node, not the response, so they are neither forwarded nor stored (RFC 9111 §3.1).

use pingora::http::ResponseHeader;

/// Fields that are hop-by-hop whether or not `Connection` names them. `Transfer-Encoding` is
/// hop-by-hop too, but Pingora frames the response from it and sets its own downstream.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "proxy-authenticate",
];

/// Fields `Connection` may name that are kept all the same: the framing of the body.
const FRAMING: [&str; 2] = ["content-length", "transfer-encoding"];

/// Removes the hop-by-hop fields of `resp`, `Upgrade`, and those its `Connection` names; a
/// `101` that switches protocols keeps them, as the switch needs them.
pub fn strip(resp: &mut ResponseHeader) {
    if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    let named: Vec<String> = resp
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && !FRAMING.contains(&t.as_str()))
        .collect();
    for name in named.iter().map(String::as_str).chain(HOP_BY_HOP) {
        resp.remove_header(name);
    }
    resp.remove_header(&http::header::UPGRADE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (k, v) in fields {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn fields_named_by_connection_and_the_hop_by_hop_ones_go_the_rest_stays() {
        let mut r = response(
            200,
            &[
                ("Connection", "a, B"),
                ("Connection", "keep-alive"),
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Connection", "keep-alive"),
                ("Upgrade", "h2c"),
                ("TE", "trailers"),
                ("Trailer", "X-Sum"),
                ("Proxy-Authenticate", "Basic"),
                ("Content-Length", "10"),
                ("Cache-Control", "max-age=60"),
            ],
        );
        strip(&mut r);
        let mut left: Vec<&str> = r.headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["c", "cache-control", "content-length"]);
    }

    #[test]
    fn framing_stays_even_when_connection_names_it_and_a_101_keeps_upgrade() {
        let mut r = response(
            200,
            &[("Connection", "content-length, x"), ("Content-Length", "3")],
        );
        strip(&mut r);
        assert!(r.headers.contains_key("content-length"));
        let mut r = response(101, &[("Connection", "upgrade"), ("Upgrade", "websocket")]);
        strip(&mut r);
        assert_eq!(r.headers.get("upgrade").unwrap(), "websocket");
    }
}
