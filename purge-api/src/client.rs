//! A small HTTP/1.1 client over one kept-alive connection: what delivery to a node and the CLI
//! need, and no more. Only `http://` (the edge's admin listener speaks plain HTTP).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not `http://host:port`.
    #[error("{0} is not an http:// URL (https is not supported here)")]
    Url(String),
    /// Connecting failed.
    #[error("connect to {0}: {1}")]
    Connect(String, std::io::Error),
    /// The exchange failed.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("{0}")]
    Request(#[from] http::Error),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A connection to one base URL, reopened when it breaks.
pub struct Client {
    authority: String,
    sender: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

/// The `host:port` of an `http://` base URL.
pub fn authority(base: &str) -> Result<String, ClientError> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| ClientError::Url(base.to_string()))?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(ClientError::Url(base.to_string()));
    }
    Ok(if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    })
}

impl Client {
    /// A client for `base` (`http://host:port`); each request must finish within `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Client, ClientError> {
        Ok(Client {
            authority: authority(base)?,
            sender: None,
            timeout,
        })
    }

    /// Sends one request; the body is read whole.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(method, path, token, body)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(ClientError::Timeout(timeout))
            }
        }
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let reusable = match self.sender.take() {
            Some(mut s) => s.ready().await.is_ok().then_some(s),
            None => None,
        };
        let mut sender = match reusable {
            Some(s) => s,
            None => self.connect().await?,
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.authority);
        if let Some(t) = token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(b)))?,
            None => req.body(Full::new(Bytes::new()))?,
        };
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let keep = !resp
            .headers()
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = resp.into_body().collect().await?.to_bytes();
        if keep {
            self.sender = Some(sender);
        }
        Ok((status, body))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| ClientError::Connect(self.authority.clone(), e))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the connection closes; an error then is the next request's to report.
            let _ = conn.await;
        });
        Ok(sender)
    }
}
