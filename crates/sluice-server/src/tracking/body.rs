//! Reading a request body within the size limit, decompressing gzip within the same limit.
//!
//! The limit applies twice: to the bytes on the wire and to the bytes after decompression, so
//! a gzip bomb stops at the limit instead of filling memory.

use std::io::Read;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_ENCODING;
use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use http_body_util::{BodyExt, Limited};
use sluice_spec::{Limits, RejectCode, Rejection, request::too_large_request};

/// Reads the whole body (decompressed), or refuses it.
pub async fn read(headers: &HeaderMap, body: Body, limits: &Limits) -> Result<Bytes, Rejection> {
    let encoding = content_encoding(headers)?;
    let limit = limits.max_request_bytes;
    let wire = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(too_large_request(limit + 1, limits));
            }
            return Err(Rejection::new(
                RejectCode::MalformedJson,
                None,
                format!("could not read the request body: {error}"),
            ));
        }
    };
    match encoding {
        Encoding::Identity => Ok(wire),
        Encoding::Gzip => gunzip(&wire, limits),
    }
}

enum Encoding {
    Identity,
    Gzip,
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, Rejection> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let text = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match text.as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        _ => Err(Rejection::new(
            RejectCode::UnsupportedEncoding,
            Some("Content-Encoding"),
            format!("content-encoding {text:?} is not supported (use gzip or none)"),
        )),
    }
}

/// Decompresses at most `max_request_bytes`; more is refused.
pub fn gunzip(compressed: &[u8], limits: &Limits) -> Result<Bytes, Rejection> {
    let limit = limits.max_request_bytes;
    let mut decoder = MultiGzDecoder::new(compressed).take(limit as u64 + 1);
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit + 1));
    if let Err(error) = decoder.read_to_end(&mut out) {
        return Err(Rejection::new(
            RejectCode::MalformedJson,
            Some("Content-Encoding"),
            format!("the body is not valid gzip: {error}"),
        ));
    }
    if out.len() > limit {
        return Err(too_large_request(out.len(), limits));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gunzip_round_trips() {
        let limits = Limits::default();
        assert_eq!(
            &gunzip(&gzip(b"{\"a\":1}"), &limits).unwrap()[..],
            b"{\"a\":1}"
        );
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        // 100 MB of zeros compress to ~100 KB; decompression must stop at the limit.
        let bomb = gzip(&vec![0u8; 100 * 1024 * 1024]);
        assert!(bomb.len() < 200 * 1024);
        let err = gunzip(&bomb, &Limits::default()).unwrap_err();
        assert_eq!(err.code, RejectCode::RequestTooLarge);
    }

    #[test]
    fn not_gzip_is_refused() {
        let err = gunzip(b"{\"plain\":true}", &Limits::default()).unwrap_err();
        assert_eq!(err.code, RejectCode::MalformedJson);
        assert_eq!(err.field.as_deref(), Some("Content-Encoding"));
    }

    #[test]
    fn encodings() {
        let mut headers = HeaderMap::new();
        assert!(matches!(content_encoding(&headers), Ok(Encoding::Identity)));
        headers.insert(CONTENT_ENCODING, "GZIP".parse().unwrap());
        assert!(matches!(content_encoding(&headers), Ok(Encoding::Gzip)));
        headers.insert(CONTENT_ENCODING, "br".parse().unwrap());
        assert_eq!(
            content_encoding(&headers).err().unwrap().code,
            RejectCode::UnsupportedEncoding
        );
    }
}
