//! Compressed answers: gzip when the request's `Accept-Encoding` takes it.
//! The page's embedded files are compressed once, at first use, and the
//! bytes kept (a handful of files, a few hundred KiB); JSON answers above
//! [`MIN_SIZE`] are compressed as they are answered. Every answer that
//! could be compressed says `Vary: Accept-Encoding`, so a cache keeps the
//! two apart. Answers streamed as they are read (whole-history exports,
//! a test's detail) are sent as they are.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;
use warp::http::{header, HeaderValue, Response};
use warp::reply::Response as WarpResponse;
use warp::{Filter, Reply};

/// Answers smaller than this are sent as they are: compressing them saves
/// less than it costs.
pub const MIN_SIZE: usize = 1024;

/// Whether `accept_encoding` (the request's header) takes gzip: named (or
/// `*`) with a quality above 0.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else {
        return false;
    };
    let mut star = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return quality > 0.0;
        }
        if coding == "*" {
            star = Some(quality > 0.0);
        }
    }
    star.unwrap_or(false)
}

/// `bytes` compressed with gzip.
pub fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::new(level));
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// Whether a file of `content_type` is worth compressing (text, not an
/// image or font that is compressed already).
pub fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/json")
        || content_type.starts_with("image/svg")
}

/// The embedded file `path` (whose bytes are `data`) compressed, made at
/// its first use and kept.
pub fn asset_gzip(path: &str, data: &[u8]) -> Arc<[u8]> {
    static KEPT: OnceLock<Mutex<HashMap<String, Arc<[u8]>>>> = OnceLock::new();
    let kept = KEPT.get_or_init(Mutex::default);
    if let Some(bytes) = crate::locks::lock(kept).get(path) {
        return Arc::clone(bytes);
    }
    // Compressed outside the lock; two first requests may both do it.
    let bytes: Arc<[u8]> = Arc::from(gzip(data, 9));
    crate::locks::lock(kept).insert(path.to_string(), Arc::clone(&bytes));
    bytes
}

/// Adds `Vary: Accept-Encoding` to `response`'s headers.
pub fn vary(headers: &mut warp::http::HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
}

/// `value` as a JSON answer, gzip-compressed when it is at least
/// [`MIN_SIZE`] bytes and `accept_encoding` takes gzip.
pub fn json(value: &impl Serialize, accept_encoding: Option<&str>) -> WarpResponse {
    let body = match serde_json::to_vec(value) {
        Ok(body) => body,
        Err(e) => {
            return super::models::error_reply(
                warp::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("could not write the answer: {e}"),
            )
        }
    };
    let compress = body.len() >= MIN_SIZE && accepts_gzip(accept_encoding);
    let body = if compress { gzip(&body, 6) } else { body };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if compress {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    vary(headers);
    response.into_response()
}

/// The request's `Accept-Encoding`, if it has a readable one.
pub fn accept_encoding() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::optional::<String>("accept-encoding")
        .or_else(|_| async { Ok::<_, Infallible>((None,)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn accept_encoding_is_read_with_its_qualities() {
        assert!(accepts_gzip(Some("gzip, deflate, br")));
        assert!(accepts_gzip(Some("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("gzip;q=0, *")));
        assert!(!accepts_gzip(Some("br, deflate")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn what_is_compressed_reads_back() {
        let text = "webperf3 ".repeat(1000);
        let packed = gzip(text.as_bytes(), 6);
        assert!(packed.len() < text.len() / 10);
        let mut back = String::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, text);
        let again = asset_gzip("x", text.as_bytes());
        assert!(Arc::ptr_eq(&again, &asset_gzip("x", b"other")), "kept");
    }
}
