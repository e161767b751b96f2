//! A response body, bounded: read off the wire up to a limit and a deadline, and decoded
//! (gzip, deflate, br) never past the limit; which content types are worth reading at all.

use std::io::Read;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::time::Instant;

/// Reads at most `limit` bytes of `body` before `deadline`; why it stopped short, if it did.
pub(super) async fn read_capped(
    body: &mut hyper::body::Incoming,
    deadline: Instant,
    limit: usize,
) -> (Vec<u8>, Option<&'static str>) {
    let mut raw: Vec<u8> = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return (raw, Some("body cut at the hop time limit")),
            Ok(None) => return (raw, None),
            Ok(Some(Err(_))) => return (raw, Some("body ended with an error")),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    let room = limit - raw.len();
                    raw.extend_from_slice(&data[..data.len().min(room)]);
                    if raw.len() >= limit {
                        return (raw, Some("body cut at max_body_bytes"));
                    }
                }
            }
        }
    }
}

/// Content types worth reading for a next hop; anything else (images, PDFs, media) ends
/// the chain without its body.
pub(super) fn worth_reading(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let ct = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ct.is_empty()
        || ct.starts_with("text/")
        || ct.contains("html")
        || ct.contains("xml")
        || ct.contains("javascript")
}

/// Decodes gzip/deflate/br for analysis, never producing more than `limit` bytes (a small
/// compressed body can expand enormously). A body cut short decodes as far as it goes.
pub(super) fn decompress(encoding: &str, raw: Vec<u8>, limit: usize) -> Bytes {
    let reader: Box<dyn Read> = match encoding {
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(&raw[..])),
        "deflate" => {
            // "deflate" is meant to be zlib-wrapped, but servers send raw deflate too.
            if raw.len() >= 2 && (u16::from(raw[0]) << 8 | u16::from(raw[1])) % 31 == 0 {
                Box::new(flate2::read::ZlibDecoder::new(&raw[..]))
            } else {
                Box::new(flate2::read::DeflateDecoder::new(&raw[..]))
            }
        }
        "br" => Box::new(brotli::Decompressor::new(&raw[..], 4096)),
        _ => return Bytes::from(raw),
    };
    let mut out = Vec::new();
    let mut limited = reader.take(limit as u64);
    let mut buf = [0u8; 8192];
    loop {
        match limited.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn decompression_is_capped() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'a'; 10_000_000]).unwrap();
        let small = gz.finish().unwrap();
        assert!(small.len() < 100_000);
        let out = decompress("gzip", small, 65536);
        assert_eq!(out.len(), 65536);
    }

    #[test]
    fn deflate_both_flavours() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"hello zlib").unwrap();
        assert_eq!(
            &decompress("deflate", z.finish().unwrap(), 100)[..],
            b"hello zlib"
        );
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(b"hello raw").unwrap();
        assert_eq!(
            &decompress("deflate", d.finish().unwrap(), 100)[..],
            b"hello raw"
        );
    }

    #[test]
    fn brotli_is_decoded() {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(b"<meta http-equiv=refresh content=0;url=/x>")
                .unwrap();
        }
        assert_eq!(
            &decompress("br", out, 1000)[..],
            b"<meta http-equiv=refresh content=0;url=/x>"
        );
    }
}
