//! `multipart/form-data` bodies, as wrangler uploads scripts and versions:
//! a `metadata` part (JSON) and one part per module.

/// One part of a form.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// The boundary of a `multipart/form-data; boundary=…` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case("boundary")
            .then(|| v.trim_matches('"').to_owned())
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

/// The parts of a body; `None` when it is not a well-formed form.
pub fn parse(body: &[u8], boundary: &str) -> Option<Vec<Part>> {
    let delim = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut pos = find(body, &delim, 0)? + delim.len();
    loop {
        // After a delimiter: `--` ends the form, CRLF starts a part.
        if body.get(pos..pos + 2) == Some(b"--") {
            return Some(parts);
        }
        if body.get(pos..pos + 2) != Some(b"\r\n") {
            return None;
        }
        pos += 2;
        let head_end = find(body, b"\r\n\r\n", pos)?;
        let head = String::from_utf8_lossy(&body[pos..head_end]).into_owned();
        let content_start = head_end + 4;
        let mut next_delim = delim.clone();
        next_delim.splice(0..0, *b"\r\n");
        let end = find(body, &next_delim, content_start)?;
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            body: body[content_start..end].to_vec(),
        };
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                for p in v.split(';') {
                    if let Some((pk, pv)) = p.trim().split_once('=') {
                        let pv = pv.trim().trim_matches('"').to_owned();
                        match pk.trim() {
                            "name" => part.name = pv,
                            "filename" => part.filename = Some(pv),
                            _ => {}
                        }
                    }
                }
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                part.content_type = Some(v.trim().to_owned());
            }
        }
        parts.push(part);
        pos = end + next_delim.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_keep_binary_bodies_and_their_names() {
        let body = b"--XY\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"a\":1}\r\n--XY\r\nContent-Disposition: form-data; name=\"m.wasm\"; filename=\"m.wasm\"\r\nContent-Type: application/wasm\r\n\r\n\x00asm\r\n\xff\r\n--XY--\r\n";
        let parts = parse(body, "XY").unwrap_or_default();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "metadata");
        assert_eq!(parts[0].body, b"{\"a\":1}");
        assert_eq!(parts[1].filename.as_deref(), Some("m.wasm"));
        assert_eq!(parts[1].content_type.as_deref(), Some("application/wasm"));
        assert_eq!(parts[1].body, b"\x00asm\r\n\xff");
        assert_eq!(
            boundary("multipart/form-data; boundary=XY").as_deref(),
            Some("XY")
        );
    }
}
