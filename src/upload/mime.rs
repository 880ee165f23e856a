//! `Upload-Metadata` as the common tus clients send it: `filename` and
//! `filetype`. Some servers require `filetype` (and answer 400 without it), so
//! it is always sent, guessed from the extension.

use std::path::Path;

/// The fallback when the extension is unknown.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// MIME types of the files a phone backs up, by lower-case extension. A small
/// table on purpose: an unknown type is `application/octet-stream`, which every
/// server accepts.
const TYPES: &[(&str, &str)] = &[
    // Photos.
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("heic", "image/heic"),
    ("heif", "image/heif"),
    ("avif", "image/avif"),
    ("bmp", "image/bmp"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("dng", "image/x-adobe-dng"),
    // Video.
    ("mp4", "video/mp4"),
    ("m4v", "video/x-m4v"),
    ("mov", "video/quicktime"),
    ("3gp", "video/3gpp"),
    ("3g2", "video/3gpp2"),
    ("mkv", "video/x-matroska"),
    ("webm", "video/webm"),
    ("avi", "video/x-msvideo"),
    ("ts", "video/mp2t"),
    // Audio (voice notes, recordings).
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("aac", "audio/aac"),
    ("amr", "audio/amr"),
    ("ogg", "audio/ogg"),
    ("opus", "audio/opus"),
    ("wav", "audio/wav"),
    ("flac", "audio/flac"),
    // Documents.
    ("pdf", "application/pdf"),
    ("txt", "text/plain"),
    ("csv", "text/csv"),
    ("json", "application/json"),
    ("xml", "application/xml"),
    ("html", "text/html"),
    ("vcf", "text/vcard"),
    ("zip", "application/zip"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
    ("epub", "application/epub+zip"),
];

/// The MIME type of a file, from its extension (case-insensitive).
pub fn filetype(path: &Path) -> &'static str {
    let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
        return OCTET_STREAM;
    };
    TYPES
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map_or(OCTET_STREAM, |(_, t)| t)
}

/// The file's base name as the server sees it (UTF-8; anything else replaced).
pub fn filename(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_extension() {
        assert_eq!(filetype(Path::new("/a/IMG_1.JPG")), "image/jpeg");
        assert_eq!(filetype(Path::new("v.mp4")), "video/mp4");
        assert_eq!(filetype(Path::new("scan.heic")), "image/heic");
        assert_eq!(filetype(Path::new("notes")), OCTET_STREAM);
        assert_eq!(filetype(Path::new("x.unknown")), OCTET_STREAM);
        assert_eq!(
            filetype(Path::new(".jpg")),
            OCTET_STREAM,
            "a dot file has no extension"
        );
        assert_eq!(filename(Path::new("/d/a b.jpg")), "a b.jpg");
        for (ext, _) in TYPES {
            assert_eq!(ext.to_ascii_lowercase(), *ext);
        }
    }
}
