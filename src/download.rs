//! What counts as a download: a response known from its headers alone to be a file (an
//! attachment, or an executable/archive type), whose body is never read. One rule for every
//! reader of responses: the HTTP fetcher, the browser's proxy and the browser's response hold.

use http::{header, HeaderMap};

/// Types that mean "a file": executables, archives, installers, raw bytes.
pub const DOWNLOAD_TYPES: &[&str] = &[
    "application/octet-stream",
    "application/x-msdownload",
    "application/x-msdos-program",
    "application/x-dosexec",
    "application/x-executable",
    "application/vnd.microsoft.portable-executable",
    "application/x-msi",
    "application/x-ms-installer",
    "application/zip",
    "application/x-zip",
    "application/x-zip-compressed",
    "application/vnd.rar",
    "application/x-rar",
    "application/x-rar-compressed",
    "application/x-7z-compressed",
    "application/gzip",
    "application/x-gzip",
    "application/x-tar",
    "application/x-bzip2",
    "application/x-xz",
    "application/java-archive",
    "application/vnd.android.package-archive",
    "application/x-apple-diskimage",
    "application/x-iso9660-image",
    "application/x-sh",
];

/// A download is known from its headers alone: an attachment, or a binary/archive type.
pub fn download_reason(headers: &HeaderMap) -> Option<String> {
    if let Some(cd) = headers
        .get(header::CONTENT_DISPOSITION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    {
        if cd
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("attachment")
        {
            return Some(format!("Content-Disposition: {cd}"));
        }
    }
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = ct.split(';').next()?.trim().to_ascii_lowercase();
    DOWNLOAD_TYPES
        .contains(&essence.as_str())
        .then(|| format!("Content-Type: {ct}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn downloads_known_from_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        assert!(download_reason(&h).is_none());
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("Attachment; filename=\"a.zip\""),
        );
        assert!(download_reason(&h).is_some());
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-msdownload; charset=binary"),
        );
        assert!(download_reason(&h).is_some());
    }
}
