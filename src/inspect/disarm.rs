//! File 無害化 (R-WAF-2): an uploaded file is taken apart, what may be malicious is removed,
//! and a new file is built from what is left. A route names the files it accepts
//! (`files = ["application/pdf", "image/jpeg"]`); every other upload is refused.
//!
//! - The declared type must match the file's first bytes (a script named `.jpg` is refused).
//! - PDF (lopdf): JavaScript, `OpenAction`, additional actions, `Launch`, embedded files,
//!   XFA forms and rich media are removed wherever they are, and the document is written anew;
//!   a PDF that cannot be parsed, or is encrypted (its objects cannot be read), is refused.
//! - JPEG and PNG (img-parts): metadata (EXIF, XMP, IPTC, comments, text chunks) is removed
//!   and the image is written anew from its segments or chunks; bytes after its end are
//!   dropped.
//! - XML: inspected as a body (DTDs and entities are refused: `xxe-100`).
//! - Archives (zip, gzip, 7z, rar, tar, bzip2, xz) are always refused: what a backend unpacks
//!   cannot be bounded here.
//! - Other types the route lists are passed unchanged.

use bytes::Bytes;

/// A file type the gateway knows how to disarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `application/pdf`.
    Pdf,
    /// `image/jpeg`.
    Jpeg,
    /// `image/png`.
    Png,
    /// `application/xml`, `text/xml`.
    Xml,
}

impl Kind {
    /// The kind of a declared media type, when the gateway knows it.
    pub fn of_media(media: &str) -> Option<Kind> {
        match media {
            "application/pdf" => Some(Kind::Pdf),
            "image/jpeg" | "image/jpg" => Some(Kind::Jpeg),
            "image/png" => Some(Kind::Png),
            "application/xml" | "text/xml" => Some(Kind::Xml),
            _ => None,
        }
    }

    /// Whether `content` starts as this kind of file does.
    fn matches(self, content: &[u8]) -> bool {
        match self {
            Kind::Pdf => content.starts_with(b"%PDF-"),
            Kind::Jpeg => content.starts_with(&[0xFF, 0xD8, 0xFF]),
            Kind::Png => content.starts_with(b"\x89PNG\r\n\x1a\n"),
            Kind::Xml => {
                let text = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
                text.trim_ascii_start().starts_with(b"<")
            }
        }
    }
}

/// Whether `content` starts as a PDF, a JPEG or a PNG: a kind the gateway parses and rebuilds,
/// and which no deserializer reads (Java's checks its stream header first).
pub fn rebuildable(content: &[u8]) -> bool {
    [Kind::Pdf, Kind::Jpeg, Kind::Png]
        .into_iter()
        .any(|k| k.matches(content))
}

/// Media types of archives: never accepted (R-WAF-2 asks to refuse or bound them; a gateway
/// cannot bound what a backend unpacks).
pub const ARCHIVE_TYPES: &[&str] = &[
    "application/zip",
    "application/x-zip-compressed",
    "application/gzip",
    "application/x-gzip",
    "application/x-7z-compressed",
    "application/vnd.rar",
    "application/x-rar-compressed",
    "application/x-tar",
    "application/x-bzip2",
    "application/x-xz",
    "application/java-archive",
];

/// Whether `content` is an archive, whatever it was declared as.
fn is_archive(content: &[u8]) -> bool {
    const MAGIC: &[&[u8]] = &[
        b"PK\x03\x04",
        b"PK\x05\x06",
        b"\x1f\x8b",
        b"7z\xBC\xAF\x27\x1C",
        b"Rar!\x1a\x07",
        b"BZh",
        b"\xFD7zXZ\x00",
    ];
    MAGIC.iter().any(|m| content.starts_with(m))
        || content.get(257..262).is_some_and(|m| m == b"ustar")
}

/// The files a route accepts as uploads (`files = [...]`): lower-case media types.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted(pub Vec<String>);

impl Accepted {
    /// Whether the route accepts any file.
    pub fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether the route lists this media type.
    pub fn accepts(&self, media: &str) -> bool {
        self.0.iter().any(|t| t == media)
    }
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    /// The route does not accept this type of file.
    #[error("this route does not accept files of type `{0}`")]
    NotAccepted(String),
    /// The file is not what its declared type says.
    #[error("the file is declared as `{declared}` but its content is not")]
    Mismatch {
        /// The declared type.
        declared: String,
    },
    /// An archive.
    #[error("archives are not accepted")]
    Archive,
    /// The file could not be taken apart and rebuilt.
    #[error("the {kind} file could not be rebuilt: {why}")]
    Unrebuildable {
        /// `pdf`, `jpeg`, `png`.
        kind: &'static str,
        /// The parser's reason.
        why: String,
    },
}

/// A disarmed file: its new content (`None` when nothing needed removing) and what was removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Disarmed {
    /// The rebuilt file, when it differs from the upload.
    pub content: Option<Vec<u8>>,
    /// What was removed (`pdf:JavaScript`, `jpeg:exif`, ...), for the access record.
    pub removed: Vec<String>,
}

/// Disarm one uploaded file declared as `media` (lower case, without parameters).
pub fn disarm(media: &str, content: &[u8], accepted: &Accepted) -> Result<Disarmed, Refused> {
    if is_archive(content) || ARCHIVE_TYPES.contains(&media) {
        return Err(Refused::Archive);
    }
    if !accepted.accepts(media) {
        return Err(Refused::NotAccepted(media.to_owned()));
    }
    let Some(kind) = Kind::of_media(media) else {
        return Ok(Disarmed::default());
    };
    if !kind.matches(content) {
        return Err(Refused::Mismatch {
            declared: media.to_owned(),
        });
    }
    rebuild(kind, content)
}

/// Disarm a file sent inline (a FHIR attachment, `media` its `contentType` if it has one) on
/// a route that lists no files. FHIR resources carry photos and reports inline by design, so
/// such a route is not taken to refuse them; the file is held to what it is instead:
/// - an archive, by type or content: refused, as everywhere;
/// - content that starts as a PDF, JPEG or PNG: disarmed as one, when it is declared as that
///   kind or not declared at all; refused when declared as anything else (a PDF sent as
///   `image/gif`);
/// - declared as a PDF, JPEG or PNG but not starting as one: no reader of that kind opens it,
///   except a PDF reader, which looks for `%PDF-` within the first kilobyte: refused when
///   that is there, passed unchanged otherwise;
/// - anything else is passed unchanged (its text, when it is text, is inspected by the caller).
pub fn disarm_unlisted(media: Option<&str>, content: &[u8]) -> Result<Disarmed, Refused> {
    const PDF_READERS_LOOK_WITHIN: usize = 1024;
    if is_archive(content) || media.is_some_and(|m| ARCHIVE_TYPES.contains(&m)) {
        return Err(Refused::Archive);
    }
    let declared = media.and_then(Kind::of_media).filter(|k| *k != Kind::Xml);
    let actual = [Kind::Pdf, Kind::Jpeg, Kind::Png]
        .into_iter()
        .find(|k| k.matches(content));
    let mismatch = || Refused::Mismatch {
        declared: media.unwrap_or_default().to_owned(),
    };
    match (declared, actual) {
        (None, Some(kind)) if media.is_none() => rebuild(kind, content),
        (Some(declared), Some(kind)) if declared == kind => rebuild(kind, content),
        (_, Some(_)) => Err(mismatch()),
        (Some(Kind::Pdf), None)
            if memchr::memmem::find(
                &content[..content.len().min(PDF_READERS_LOOK_WITHIN)],
                b"%PDF-",
            )
            .is_some() =>
        {
            Err(mismatch())
        }
        _ => Ok(Disarmed::default()),
    }
}

fn rebuild(kind: Kind, content: &[u8]) -> Result<Disarmed, Refused> {
    match kind {
        Kind::Pdf => pdf(content),
        Kind::Jpeg => jpeg(content),
        Kind::Png => png(content),
        // XML is inspected as a body: its DTDs and entities are refused there.
        Kind::Xml => Ok(Disarmed::default()),
    }
}

/// PDF keys that run code, open other files or carry files, wherever they appear.
const PDF_ACTIVE_KEYS: &[&[u8]] = &[
    b"JavaScript",
    b"JS",
    b"OpenAction",
    b"AA",
    b"Launch",
    b"EmbeddedFiles",
    b"EmbeddedFile",
    b"XFA",
    b"RichMedia",
    b"RichMediaContent",
];

/// Action types (`/S`) that run code or reach outside the document.
const PDF_ACTIVE_ACTIONS: &[&[u8]] = &[
    b"JavaScript",
    b"Launch",
    b"ImportData",
    b"SubmitForm",
    b"RichMediaExecute",
];

fn pdf(content: &[u8]) -> Result<Disarmed, Refused> {
    let unrebuildable = |why: String| Refused::Unrebuildable { kind: "pdf", why };
    let mut document =
        lopdf::Document::load_mem(content).map_err(|e| unrebuildable(e.to_string()))?;
    if document.is_encrypted() {
        return Err(unrebuildable("it is encrypted".into()));
    }
    let mut removed = std::collections::BTreeSet::new();
    let mut strip = |dict: &mut lopdf::Dictionary| {
        for key in PDF_ACTIVE_KEYS {
            if dict.remove(key).is_some() {
                removed.insert(format!("pdf:{}", String::from_utf8_lossy(key)));
            }
        }
        let action = dict
            .get(b"S")
            .ok()
            .and_then(|s| s.as_name().ok())
            .filter(|s| PDF_ACTIVE_ACTIONS.contains(s))
            .map(|s| String::from_utf8_lossy(s).into_owned());
        if let Some(action) = action {
            // The action stays a dictionary, doing nothing.
            dict.remove(b"S");
            dict.remove(b"F");
            dict.remove(b"Win");
            removed.insert(format!("pdf:{action}"));
        }
    };
    strip(&mut document.trailer);
    for object in document.objects.values_mut() {
        strip_object(object, &mut strip, 0);
    }
    if removed.is_empty() {
        return Ok(Disarmed::default());
    }
    let mut out = Vec::with_capacity(content.len());
    document
        .save_to(&mut out)
        .map_err(|e| unrebuildable(e.to_string()))?;
    Ok(Disarmed {
        content: Some(out),
        removed: removed.into_iter().collect(),
    })
}

/// Apply `strip` to every dictionary in `object`, however deeply nested (bounded: a PDF's
/// direct objects are shallow; deeper nesting is left to the parser's own limits).
fn strip_object(
    object: &mut lopdf::Object,
    strip: &mut impl FnMut(&mut lopdf::Dictionary),
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    match object {
        lopdf::Object::Dictionary(dict) => {
            strip(dict);
            for (_, value) in dict.iter_mut() {
                strip_object(value, strip, depth + 1);
            }
        }
        lopdf::Object::Stream(stream) => {
            strip(&mut stream.dict);
            for (_, value) in stream.dict.iter_mut() {
                strip_object(value, strip, depth + 1);
            }
        }
        lopdf::Object::Array(items) => {
            for item in items {
                strip_object(item, strip, depth + 1);
            }
        }
        _ => {}
    }
}

/// JPEG markers kept: the JFIF header (APP0), the colour profile (APP2 `ICC_PROFILE`) and
/// Adobe's colour transform (APP14), which decoders need. Every other APPn (EXIF and XMP in
/// APP1, IPTC in APP13, ...) and comments (COM) are removed.
fn jpeg(content: &[u8]) -> Result<Disarmed, Refused> {
    use img_parts::jpeg::{markers, Jpeg, JpegSegment};
    let unrebuildable = |why: String| Refused::Unrebuildable { kind: "jpeg", why };
    let mut image = Jpeg::from_bytes(Bytes::copy_from_slice(content))
        .map_err(|e| unrebuildable(e.to_string()))?;
    let mut removed = std::collections::BTreeSet::new();
    image.segments_mut().retain(|segment| {
        let marker = segment.marker();
        let keep = match marker {
            markers::APP0 | markers::APP14 => true,
            markers::APP2 => segment.contents().starts_with(b"ICC_PROFILE\0"),
            markers::APP1..=markers::APP15 | markers::COM => false,
            _ => true,
        };
        if !keep {
            let what = match marker {
                markers::APP1 if segment.contents().starts_with(b"Exif\0") => "jpeg:exif".into(),
                markers::APP1 => "jpeg:xmp".into(),
                markers::APP13 => "jpeg:iptc".into(),
                markers::COM => "jpeg:comment".into(),
                other => format!("jpeg:app{}", other - markers::APP0),
            };
            removed.insert(what);
        }
        keep
    });
    // The first scan's data runs to the end of the file (img-parts keeps it whole): whatever
    // follows the end-of-image marker (a second file glued on) is cut off.
    let scan_starts = 2 + image.segments().iter().map(JpegSegment::len).sum::<usize>();
    let mut out = image.encoder().bytes().to_vec();
    let end = out
        .get(scan_starts..)
        .and_then(|scan| memchr::memmem::find(scan, &[0xFF, markers::EOI]))
        .map(|at| scan_starts + at + 2)
        .ok_or_else(|| unrebuildable("it has no end-of-image marker".into()))?;
    if end < out.len() {
        out.truncate(end);
        removed.insert("jpeg:trailing-data".into());
    }
    if removed.is_empty() {
        return Ok(Disarmed::default());
    }
    Ok(Disarmed {
        content: Some(out),
        removed: removed.into_iter().collect(),
    })
}

/// PNG chunks kept: the image itself and how to show it. Text (`tEXt`, `zTXt`, `iTXt`),
/// `eXIf`, `tIME` and every unknown chunk are removed.
fn png(content: &[u8]) -> Result<Disarmed, Refused> {
    const KEPT: &[&[u8; 4]] = &[
        b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT",
        b"bKGD", b"pHYs", b"acTL", b"fcTL", b"fdAT",
    ];
    let unrebuildable = |why: String| Refused::Unrebuildable { kind: "png", why };
    let mut image = img_parts::png::Png::from_bytes(Bytes::copy_from_slice(content))
        .map_err(|e| unrebuildable(e.to_string()))?;
    if image.chunks().last().map(|c| c.kind()) != Some(*b"IEND") {
        return Err(unrebuildable("it does not end with IEND".into()));
    }
    let mut removed = std::collections::BTreeSet::new();
    image.chunks_mut().retain(|chunk| {
        let kind = chunk.kind();
        let keep = KEPT.contains(&&kind);
        if !keep {
            removed.insert(format!("png:{}", String::from_utf8_lossy(&kind)));
        }
        keep
    });
    if removed.is_empty() {
        return Ok(Disarmed::default());
    }
    Ok(Disarmed {
        content: Some(image.encoder().bytes().to_vec()),
        removed: removed.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(types: &[&str]) -> Accepted {
        Accepted(types.iter().map(|t| (*t).to_owned()).collect())
    }

    #[test]
    fn types_are_checked_before_anything_is_parsed() {
        let all = accepted(&["application/pdf", "image/jpeg", "image/png", "text/csv"]);
        assert_eq!(
            disarm("image/gif", b"GIF89a", &all),
            Err(Refused::NotAccepted("image/gif".into()))
        );
        assert_eq!(
            disarm("image/jpeg", b"<script>alert(1)</script>", &all),
            Err(Refused::Mismatch {
                declared: "image/jpeg".into()
            })
        );
        assert_eq!(
            disarm("application/pdf", b"PK\x03\x04rest", &all),
            Err(Refused::Archive)
        );
        assert_eq!(
            disarm(
                "application/zip",
                b"anything",
                &accepted(&["application/zip"])
            ),
            Err(Refused::Archive)
        );
        // A type the route lists but the gateway cannot rebuild passes unchanged.
        assert_eq!(
            disarm("text/csv", b"a,b\n1,2\n", &all),
            Ok(Disarmed::default())
        );
        assert!(matches!(
            disarm("application/pdf", b"%PDF-1.7 garbage", &all),
            Err(Refused::Unrebuildable { kind: "pdf", .. })
        ));
    }

    #[test]
    fn inline_files_on_a_route_without_files_are_held_to_what_they_are() {
        let mismatch = |declared: &str| {
            Err(Refused::Mismatch {
                declared: declared.into(),
            })
        };
        // Archives, by content or by type.
        for (media, content) in [
            (Some("application/pdf"), &b"PK\x03\x04rest"[..]),
            (None, b"\x1f\x8b\x08\0"),
            (Some("application/zip"), b"anything"),
        ] {
            assert_eq!(disarm_unlisted(media, content), Err(Refused::Archive));
        }
        // A kind the gateway disarms, declared as another type.
        assert_eq!(
            disarm_unlisted(Some("image/gif"), b"%PDF-1.7 ..."),
            mismatch("image/gif")
        );
        assert_eq!(
            disarm_unlisted(Some("image/png"), b"\xFF\xD8\xFF\xE0"),
            mismatch("image/png")
        );
        // A PDF behind other bytes, where PDF readers still find it.
        assert_eq!(
            disarm_unlisted(Some("application/pdf"), b"<html>\n%PDF-1.7 ..."),
            mismatch("application/pdf")
        );
        // Bytes no reader of the declared kind opens, and passive types: passed unchanged.
        for (media, content) in [
            (Some("application/pdf"), &b"Hello"[..]),
            (Some("image/jpeg"), b"too big to include"),
            (Some("image/gif"), b"GIF89a...."),
            (Some("audio/mpeg"), b"ID3...."),
            (None, b"a signature"),
        ] {
            assert_eq!(disarm_unlisted(media, content), Ok(Disarmed::default()));
        }
        // A PDF, declared or not, goes to the PDF rebuild (this one cannot be rebuilt).
        for media in [Some("application/pdf"), None] {
            assert!(matches!(
                disarm_unlisted(media, b"%PDF-1.7 garbage"),
                Err(Refused::Unrebuildable { kind: "pdf", .. })
            ));
        }
    }
}
