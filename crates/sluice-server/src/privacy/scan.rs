//! A byte scan of the data directory: the proof that erased identifiers are gone from the
//! files themselves (database pages, WAL, anything else there), not only from query answers.

use std::io::Read;
use std::path::Path;

use memchr::memmem;

/// Bytes read at a time.
const CHUNK: usize = 8 * 1024 * 1024;

/// Where one value was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The file's path relative to the scanned directory.
    pub file: String,
    /// Index of the value in the list given to [`scan_dir`].
    pub value: usize,
    /// How many times.
    pub count: u64,
}

/// Scans every file under `dir` (recursively) for each value's bytes, and for its form inside
/// a JSON string when that differs. Values shorter than 4 bytes are skipped: they would match
/// by chance.
pub fn scan_dir(dir: &Path, values: &[String]) -> std::io::Result<Vec<Hit>> {
    let mut needles: Vec<(usize, Vec<u8>)> = Vec::new();
    for (index, value) in values.iter().enumerate() {
        if value.len() < 4 {
            continue;
        }
        let escaped = json_inner(value, false);
        let ascii = json_inner(value, true);
        for form in [value.as_str(), escaped.as_str(), ascii.as_str()] {
            let bytes = form.as_bytes().to_vec();
            if !needles.iter().any(|(i, n)| *i == index && *n == bytes) {
                needles.push((index, bytes));
            }
        }
    }
    let mut hits = Vec::new();
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    for path in files {
        let counts = scan_file(&path, &needles)?;
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        for (value, count) in counts {
            hits.push(Hit {
                file: name.clone(),
                value,
                count,
            });
        }
    }
    Ok(hits)
}

/// The value as written inside a JSON string; with `ascii`, every non-ASCII character as
/// `\uXXXX` (how some SDKs and `json.dumps` write it).
fn json_inner(value: &str, ascii: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Counts of each needle's value index in one file, read in chunks that overlap by the longest
/// needle so nothing is missed at a boundary.
fn scan_file(path: &Path, needles: &[(usize, Vec<u8>)]) -> std::io::Result<Vec<(usize, u64)>> {
    let longest = needles.iter().map(|(_, n)| n.len()).max().unwrap_or(0);
    if longest == 0 {
        return Ok(Vec::new());
    }
    let finders: Vec<(usize, memmem::Finder<'_>)> = needles
        .iter()
        .map(|(index, needle)| (*index, memmem::Finder::new(needle)))
        .collect();
    let mut counts: Vec<(usize, u64)> = Vec::new();
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        // A file removed while scanning (a WAL cut, a temp file) holds nothing any more.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(counts),
        Err(error) => return Err(error),
    };
    let mut buffer = vec![0u8; CHUNK + longest];
    let mut kept = 0usize;
    loop {
        let read = file.read(&mut buffer[kept..])?;
        if read == 0 {
            break;
        }
        let filled = kept + read;
        for (index, finder) in &finders {
            // Only count matches that start after the kept overlap: those were counted
            // with the previous chunk.
            let mut found = 0u64;
            for at in finder.find_iter(&buffer[..filled]) {
                if kept == 0 || at + finder.needle().len() > kept {
                    found += 1;
                }
            }
            if found > 0 {
                match counts.iter_mut().find(|(i, _)| i == index) {
                    Some((_, total)) => *total += found,
                    None => counts.push((*index, found)),
                }
            }
        }
        let keep = (longest - 1).min(filled);
        buffer.copy_within(filled - keep..filled, 0);
        kept = keep;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_across_files_and_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let mut big = vec![b'x'; CHUNK - 3];
        big.extend_from_slice(b"jane@example.com");
        big.extend_from_slice(&[b'y'; 100]);
        big.extend_from_slice(b"jane@example.com");
        std::fs::write(dir.path().join("log.db"), &big).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("sub/other"),
            br#"{"name":"Zo\u00eb \"Q\""}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("clean"), b"nothing to see").unwrap();
        let values = vec![
            "jane@example.com".to_owned(),
            "Zo\u{00eb} \"Q\"".to_owned(),
            "abc".to_owned(),
        ];
        let mut hits = scan_dir(dir.path(), &values).unwrap();
        hits.sort_by(|a, b| a.file.cmp(&b.file));
        assert_eq!(
            hits,
            vec![
                Hit {
                    file: "log.db".into(),
                    value: 0,
                    count: 2
                },
                Hit {
                    file: "sub/other".into(),
                    value: 1,
                    count: 1
                },
            ]
        );
    }
}
