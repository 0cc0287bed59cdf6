//! The package's form: the files, `manifest.json` listing each with its size and SHA-256, and `manifest.sig`,
//! the Ed25519 signature over the manifest's exact bytes. Writing puts the files in path order with fixed
//! timestamps, so the same content makes the same archive; checking reports every file that does not match,
//! each by name, rather than stopping at the first.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};

use serde::{Deserialize, Serialize};

use super::key::{EvidenceKey, PublicKey};
use crate::store::sha256_hex;

pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";
/// What `format` says in a manifest this version writes and reads.
pub const FORMAT: &str = "tillmark-evidence/1";

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// The event whose case this is.
    pub event: i64,
    /// When it was made, UTC (ISO 8601), and by whom (a person's name, or `cli:` and the system account).
    pub made_at: String,
    pub made_by: String,
    /// The installation's public key (hex) and its fingerprint, as `tillmark evidence key` prints them.
    pub public_key: String,
    pub fingerprint: String,
    /// Every file of the package but the manifest and its signature, in path order.
    pub files: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// A package being written: each file goes into the archive as it comes, hashed on the way, so a package of
/// several clips never holds more than one in memory; the manifest and its signature close it.
pub struct Writer<W: Write + Seek> {
    zip: zip::ZipWriter<W>,
    entries: Vec<Entry>,
}

/// A finished package: where it was written, its manifest's SHA-256 and how many files the manifest lists.
pub struct Written<W> {
    pub out: W,
    pub manifest_sha256: String,
    pub files: usize,
}

impl<W: Write + Seek> Writer<W> {
    pub fn new(out: W) -> Writer<W> {
        Writer {
            zip: zip::ZipWriter::new(out),
            entries: Vec::new(),
        }
    }

    /// Adds one file. Media (stills, clips) are stored as they are: they do not compress.
    pub fn add(&mut self, path: &str, bytes: &[u8]) -> Result<(), String> {
        let media = path.starts_with("clips/") || path.starts_with("stills/");
        let method = if media {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        // A fixed time on every entry: the manifest says when it was made, and equal content makes an equal
        // archive.
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .last_modified_time(zip::DateTime::default())
            .large_file(bytes.len() as u64 >= u64::from(u32::MAX));
        self.zip
            .start_file(path, options)
            .and_then(|()| self.zip.write_all(bytes).map_err(Into::into))
            .map_err(|e| format!("{path}: {e}"))?;
        self.entries.push(Entry {
            path: path.to_string(),
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        });
        Ok(())
    }

    /// Writes the manifest `head` describes, listing every file added in path order, and its signature.
    pub fn finish(mut self, head: Manifest, key: &EvidenceKey) -> Result<Written<W>, String> {
        self.entries.sort_by(|a, b| a.path.cmp(&b.path));
        let files = self.entries.len();
        let manifest = Manifest {
            files: std::mem::take(&mut self.entries),
            ..head
        };
        let mut manifest_bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| format!("manifest: {e}"))?;
        manifest_bytes.push(b'\n');
        let signature = key.sign(&manifest_bytes);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default());
        for (path, bytes) in [
            (MANIFEST, manifest_bytes.as_slice()),
            (SIGNATURE, signature.as_bytes()),
        ] {
            self.zip
                .start_file(path, options)
                .and_then(|()| self.zip.write_all(bytes).map_err(Into::into))
                .map_err(|e| format!("{path}: {e}"))?;
        }
        let out = self.zip.finish().map_err(|e| e.to_string())?;
        Ok(Written {
            out,
            manifest_sha256: sha256_hex(&manifest_bytes),
            files,
        })
    }
}

/// A package that checked out.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    pub manifest_sha256: String,
    /// The key the signature was checked with; `given` false: the one inside the package.
    pub key: PublicKey,
    pub given: bool,
}

/// The most a manifest or its signature may hold; anything larger is not one.
const MAX_MANIFEST: u64 = 16 * 1024 * 1024;

/// What a file of the archive holds, hashed as it is read: a package may hold clips of hundreds of megabytes,
/// and one from elsewhere may claim to unpack to anything.
struct Digest {
    hasher: sha2::Sha256,
    size: u64,
}

impl Write for Digest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(&mut self.hasher, buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checks a package: every file against the manifest (none missing, none extra, each size and SHA-256), and
/// the manifest's signature, with `key` when given, else with the key the manifest names. Every problem is
/// named, in the archive's terms (`events/12.json: SHA-256 differs`). Files are hashed as they are read,
/// never held whole, but for the manifest and its signature.
pub fn verify<R: Read + Seek>(archive: R, key: Option<PublicKey>) -> Result<Verified, Vec<String>> {
    let mut zip =
        zip::ZipArchive::new(archive).map_err(|e| vec![format!("not a ZIP archive: {e}")])?;
    let mut problems = Vec::new();
    // Each file's size and SHA-256; `None` for one that could not be read (already a problem).
    let mut seen: BTreeMap<String, Option<(u64, String)>> = BTreeMap::new();
    let (mut manifest_bytes, mut signature) = (None, None);
    for i in 0..zip.len() {
        let mut file = match zip.by_index(i) {
            Ok(f) => f,
            Err(e) => {
                problems.push(format!("entry {i}: cannot be read: {e}"));
                continue;
            }
        };
        let name = match file.name() {
            Ok(name) => name.into_owned(),
            Err(e) => {
                problems.push(format!("entry {i}: its name cannot be read: {e}"));
                continue;
            }
        };
        let read = if name == MANIFEST || name == SIGNATURE {
            let mut bytes = Vec::new();
            (&mut file)
                .take(MAX_MANIFEST + 1)
                .read_to_end(&mut bytes)
                .map(|_| {
                    let digest = (bytes.len() as u64, sha256_hex(&bytes));
                    if bytes.len() as u64 > MAX_MANIFEST {
                        problems.push(format!("{name}: larger than any manifest: changed"));
                    } else if name == MANIFEST {
                        manifest_bytes = Some(bytes);
                    } else {
                        signature = Some(bytes);
                    }
                    digest
                })
        } else {
            let mut digest = Digest {
                hasher: sha2::Sha256::default(),
                size: 0,
            };
            std::io::copy(&mut file, &mut digest).map(|_| {
                let hash = sha2::Digest::finalize(digest.hasher);
                (digest.size, hex::encode(hash))
            })
        };
        // A changed byte in a compressed file fails its CRC, or its inflation: named as the file it is.
        let read = match read {
            Ok(digest) => Some(digest),
            Err(e) => {
                problems.push(format!(
                    "{name}: cannot be read from the archive ({e}): changed"
                ));
                None
            }
        };
        if seen.insert(name.clone(), read).is_some() {
            problems.push(format!("{name}: in the archive twice"));
        }
    }
    let (Some(manifest_bytes), Some(signature)) = (manifest_bytes, signature) else {
        for name in [MANIFEST, SIGNATURE] {
            if !seen.contains_key(name) {
                problems.push(format!("{name}: missing"));
            }
        }
        return Err(problems);
    };
    let manifest_bytes = manifest_bytes.as_slice();
    let manifest: Manifest = match serde_json::from_slice(manifest_bytes) {
        Ok(m) => m,
        Err(e) => {
            problems.push(format!("{MANIFEST}: not a manifest ({e}): changed"));
            return Err(problems);
        }
    };
    if manifest.format != FORMAT {
        problems.push(format!(
            "{MANIFEST}: format \"{}\" is not {FORMAT}",
            manifest.format
        ));
    }
    let inside = PublicKey::parse(&manifest.public_key);
    let (used, given) = match (key, inside) {
        (Some(k), _) => (Some(k), true),
        (None, Ok(k)) => (Some(k), false),
        (None, Err(e)) => {
            problems.push(format!("{MANIFEST}: its public key: {e}"));
            (None, false)
        }
    };
    if let Some(k) = used
        && !k.verifies(manifest_bytes, &String::from_utf8_lossy(&signature))
    {
        problems.push(if given {
            format!(
                "{SIGNATURE}: the signature of {MANIFEST} does not verify with the key given ({}): {MANIFEST} was \
                 changed, or another key signed it",
                k.fingerprint()
            )
        } else {
            format!(
                "{SIGNATURE}: the signature of {MANIFEST} does not verify with the key in it: {MANIFEST} or \
                 {SIGNATURE} was changed"
            )
        });
    }
    let mut listed = std::collections::BTreeSet::new();
    for entry in &manifest.files {
        listed.insert(entry.path.as_str());
        match seen.get(&entry.path) {
            None => problems.push(format!("{}: missing", entry.path)),
            Some(Some((size, sha256))) if *size != entry.size || *sha256 != entry.sha256 => {
                problems.push(format!("{}: SHA-256 differs", entry.path));
            }
            Some(_) => {}
        }
    }
    for name in seen.keys() {
        if name != MANIFEST && name != SIGNATURE && !listed.contains(name.as_str()) {
            problems.push(format!("{name}: extra file, not in the manifest"));
        }
    }
    match used {
        Some(key) if problems.is_empty() => Ok(Verified {
            manifest_sha256: sha256_hex(manifest_bytes),
            manifest,
            key,
            given,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn head() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            event: 7,
            made_at: "2026-11-21T09:42:07.310Z".into(),
            made_by: "ken".into(),
            public_key: String::new(),
            fingerprint: String::new(),
            files: Vec::new(),
        }
    }

    #[test]
    fn the_same_case_makes_the_same_archive_and_it_verifies() {
        let key = EvidenceKey::for_tests([3; 32]);
        let files: BTreeMap<String, Vec<u8>> = [
            ("case.json".to_string(), b"{}\n".to_vec()),
            ("timeline.csv".to_string(), b"time\r\n".to_vec()),
        ]
        .into();
        let head = Manifest {
            public_key: key.public().hex(),
            fingerprint: key.public().fingerprint(),
            ..head()
        };
        let write = |head: Manifest| {
            let mut writer = Writer::new(Cursor::new(Vec::new()));
            // In any order: the manifest lists them by path.
            for (path, bytes) in files.iter().rev() {
                writer.add(path, bytes).unwrap();
            }
            writer.finish(head, &key).unwrap()
        };
        let one = write(head.clone());
        let two = write(head);
        assert_eq!(one.out.get_ref(), two.out.get_ref());
        let checked = verify(Cursor::new(one.out.get_ref()), Some(key.public())).unwrap();
        assert_eq!(checked.manifest_sha256, one.manifest_sha256);
        assert!(checked.given);
        let paths: Vec<&str> = checked
            .manifest
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(paths, ["case.json", "timeline.csv"]);
    }

    #[test]
    fn what_is_not_a_package_is_refused_in_words_never_with_a_panic() {
        assert!(verify(Cursor::new(b""), None).unwrap_err()[0].starts_with("not a ZIP archive"));
        let key = EvidenceKey::for_tests([4; 32]);
        let bare = Writer::new(Cursor::new(Vec::new()))
            .finish(head(), &key)
            .unwrap();
        // A manifest whose public key is empty: said so, and nothing else is claimed.
        assert_eq!(
            verify(Cursor::new(bare.out.get_ref()), None).unwrap_err(),
            [format!(
                "{MANIFEST}: its public key: a public key has 32 bytes; this one has 0"
            )]
        );
    }
}
