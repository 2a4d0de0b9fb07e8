//! A lean HTTP/1.1 client: one keep-alive connection per driver task, so that
//! the load generator spends its two cores on requests, not on a pool.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

/// Answers larger than this are a bug in the service (the biggest is a seat map).
const MAX_BODY: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {0}: {1}")]
    Connect(SocketAddr, String),
    #[error("{0} {1}: {2}")]
    Request(Method, String, String),
    #[error("{0} {1} answered {2} with a body that does not parse: {3}")]
    Decode(Method, String, StatusCode, String),
}

/// An answer: status, body, and how long the round trip took.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    pub took: Duration,
}

impl Answer {
    pub fn json<T: DeserializeOwned>(&self, method: &Method, path: &str) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ClientError::Decode(method.clone(), path.to_owned(), self.status, e.to_string())
        })
    }
}

pub struct Connection {
    addr: SocketAddr,
    sender: Option<SendRequest<Body>>,
}

impl Connection {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Body>, ClientError> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let failed = |e: String| ClientError::Connect(self.addr, e);
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr))
                .await
                .map_err(|_| failed("timed out".into()))?
                .map_err(|e| failed(e.to_string()))?;
            stream
                .set_nodelay(true)
                .map_err(|e| failed(e.to_string()))?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| failed(e.to_string()))?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| ClientError::Connect(self.addr, "no connection".into()))
    }

    /// Sends one request; `bearer` goes in `Authorization`, `body` as JSON.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let failed = |e: String| ClientError::Request(method.clone(), path.to_owned(), e);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, "anteroom");
        if let Some(bearer) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .map_err(|e| failed(e.to_string()))?;
        let started = Instant::now();
        let sender = self.sender().await?;
        let sent = async {
            sender.ready().await?;
            sender.send_request(request).await
        };
        let response = match sent.await {
            Ok(response) => response,
            Err(e) => {
                // The connection is unusable; the next request opens a new one.
                self.sender = None;
                return Err(failed(e.to_string()));
            }
        };
        let status = response.status();
        let body = axum::body::to_bytes(Body::new(response.into_body()), MAX_BODY)
            .await
            .map_err(|e| {
                self.sender = None;
                failed(e.to_string())
            })?;
        Ok(Answer {
            status,
            body,
            took: started.elapsed(),
        })
    }
}
