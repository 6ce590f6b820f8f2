//! Access to the web view when a token is set: every request but the static assets must carry
//! it as `Authorization: Bearer TOKEN`, as `?token=TOKEN`, or as the password of basic auth
//! (any user name), compared in constant time. A refusal is a 401 that lets a browser ask for
//! the password. Every response also gets the headers that keep a page from running anything
//! it did not load from the hub.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use edge_hub::web::CSP;

use super::Shared;

/// Rejects requests without the token (when one is set).
pub async fn require(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let Some(token) = &shared.token else {
        return next.run(req).await;
    };
    if req.uri().path().starts_with("/assets/") || authorized(&req, token) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"edge hub\", charset=\"UTF-8\"",
        )],
        "a token is required (Authorization: Bearer, ?token=, or basic auth)\n",
    )
        .into_response()
}

fn authorized(req: &Request, token: &str) -> bool {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    if let Some(h) = header {
        if let Some(given) = h.strip_prefix("Bearer ") {
            return same(given.trim().as_bytes(), token.as_bytes());
        }
        if let Some(b64) = h.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .unwrap_or_default();
            return match decoded.iter().position(|&b| b == b':') {
                Some(i) => same(&decoded[i + 1..], token.as_bytes()),
                None => false,
            };
        }
    }
    req.uri().query().is_some_and(|q| {
        q.split('&')
            .filter_map(|kv| kv.strip_prefix("token="))
            .any(|v| same(&percent_decode(v), token.as_bytes()))
    })
}

/// Equal bytes, in time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `%41+b` -> `A b`; a malformed escape is kept as it is.
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Adds the security headers to every response.
pub async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, auth: Option<&str>) -> Request {
        let mut b = Request::builder().uri(uri);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(axum::body::Body::empty()).expect("request")
    }

    #[test]
    fn the_token_is_taken_from_a_header_the_query_or_basic_auth() {
        let t = "s3cr&t";
        assert!(authorized(&req("/", Some("Bearer s3cr&t")), t));
        assert!(authorized(&req("/x?a=1&token=s3cr%26t", None), t));
        // "anyone:s3cr&t"
        assert!(authorized(&req("/", Some("Basic YW55b25lOnMzY3ImdA==")), t));
        assert!(!authorized(&req("/", Some("Bearer s3cr&")), t));
        assert!(!authorized(&req("/?token=s3cr", None), t));
        assert!(!authorized(&req("/", Some("Basic !!!")), t));
        assert!(!authorized(&req("/", None), t));
        assert_eq!(percent_decode("%41+b%zz%4"), b"A b%zz%4");
    }
}
