//! The dashboard's static files, embedded in the binary from `web/`.
//!
//! `web/index.html` is the page (`GET /`); `web/assets/*` are served under
//! `/assets/`. Every answer carries a content type, an `ETag` (from the
//! embedded file's hash) and `Cache-Control: no-cache`, so browsers revalidate
//! cheaply and never run a stale script after an upgrade; text files go
//! gzipped to clients that take it ([`compress`]). Paths are looked up
//! in the embedded table only, never on disk, and anything that is not a plain
//! relative file name (`..`, `.`, empty segments, backslashes, encoded
//! separators) is refused before the lookup.

use std::borrow::Cow;

use rust_embed::RustEmbed;
use warp::http::{header, HeaderValue, Response, StatusCode};
use warp::reply::Response as WarpResponse;
use warp::Reply;

use super::compress;

/// The `web/` directory, embedded at build time.
#[derive(RustEmbed)]
#[folder = "web/"]
struct Web;

/// The embedded page `GET /` serves.
pub const INDEX: &str = "index.html";

/// Looks up `/assets/<tail>`: `Some(path inside web/)` for an acceptable
/// request path, `None` for anything suspicious.
pub fn asset_path(tail: &str) -> Option<String> {
    let decoded = percent_decode(tail)?;
    let ok = !decoded.is_empty()
        && decoded.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && !seg.starts_with('.')
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    ok.then(|| format!("assets/{decoded}"))
}

/// Decodes `%XX` escapes; `None` if an escape is malformed or the result is
/// not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The content type for a file name, by extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Serves the embedded file at `path` (inside `web/`), or `None` if there is
/// none. `if_none_match` is the request's `If-None-Match` header: a match
/// answers `304 Not Modified` without a body. A text file goes gzipped
/// when `accept_encoding` (the request's `Accept-Encoding`) takes it, with
/// an `ETag` of its own (the hash and `-gz`).
pub fn serve(
    path: &str,
    if_none_match: Option<&str>,
    accept_encoding: Option<&str>,
) -> Option<WarpResponse> {
    let file = Web::get(path)?;
    let hash = file.metadata.sha256_hash();
    let kind = content_type(path);
    let compressible = compress::compressible(kind);
    let gzipped = compressible && compress::accepts_gzip(accept_encoding);
    let etag = if gzipped {
        format!("\"{}-gz\"", hex(&hash[..16]))
    } else {
        format!("\"{}\"", hex(&hash[..16]))
    };
    let fresh =
        if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let body: Vec<u8> = if fresh {
        Vec::new()
    } else if gzipped {
        compress::asset_gzip(path, &file.data).to_vec()
    } else {
        match file.data {
            Cow::Borrowed(b) => b.to_vec(),
            Cow::Owned(b) => b,
        }
    };
    let mut response = Response::new(body);
    if fresh {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if compressible {
        compress::vary(headers);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if path == INDEX {
        // The page loads only its own files and talks only to its own origin.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
                 style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; \
                 frame-ancestors 'none'",
            ),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    Some(response.into_response())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_accepted() {
        assert_eq!(asset_path("app.js").as_deref(), Some("assets/app.js"));
        assert_eq!(
            asset_path("img/a-b_c.svg").as_deref(),
            Some("assets/img/a-b_c.svg")
        );
        assert_eq!(asset_path("app%2Ejs").as_deref(), Some("assets/app.js"));
    }

    #[test]
    fn traversal_and_oddities_are_refused() {
        for bad in [
            "",
            "../Cargo.toml",
            "..%2FCargo.toml",
            "%2e%2e/Cargo.toml",
            "%2E%2E%2FCargo.toml",
            "a/../../x",
            "./app.js",
            "a//b",
            "..\\x",
            "%5c..%5cx",
            ".hidden",
            "%",
            "%zz",
            "%c0%ae%c0%ae/x",
            "/etc/passwd",
            "app.js%00.png",
        ] {
            assert_eq!(asset_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("a.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }

    #[test]
    fn the_page_and_its_files_are_embedded() {
        for path in [INDEX, "assets/app.js", "assets/style.css"] {
            assert!(Web::get(path).is_some(), "{path} is not embedded");
        }
    }
}
