//! The package's form: the files, `manifest.json` listing each with its size and SHA-256, and `manifest.sig`,
//! the Ed25519 signature over the manifest's exact bytes. Writing puts the files in path order with fixed
//! timestamps, so the same content makes the same archive; checking reports every file that does not match,
//! each by name, rather than stopping at the first.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Seek, Write};

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

/// A written package.
pub struct Written {
    pub zip: Vec<u8>,
    pub manifest_sha256: String,
    pub files: usize,
}

/// The package of `files` (path → content), with the manifest `head` describes and its signature.
pub fn write(
    head: Manifest,
    files: &BTreeMap<String, Vec<u8>>,
    key: &EvidenceKey,
) -> Result<Written, String> {
    let manifest = Manifest {
        files: files
            .iter()
            .map(|(path, bytes)| Entry {
                path: path.clone(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect(),
        ..head
    };
    let mut manifest_bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| format!("manifest: {e}"))?;
    manifest_bytes.push(b'\n');
    let signature = key.sign(&manifest_bytes);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    // A fixed time on every entry: the manifest says when it was made, and equal content makes an equal file.
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .large_file(
            files
                .values()
                .any(|b| b.len() as u64 >= u64::from(u32::MAX)),
        );
    let all = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .chain([
            (MANIFEST, manifest_bytes.as_slice()),
            (SIGNATURE, signature.as_bytes()),
        ]);
    for (path, bytes) in all {
        zip.start_file(path, options)
            .and_then(|()| zip.write_all(bytes).map_err(Into::into))
            .map_err(|e| format!("{path}: {e}"))?;
    }
    let zip = zip.finish().map_err(|e| e.to_string())?.into_inner();
    Ok(Written {
        zip,
        manifest_sha256: sha256_hex(&manifest_bytes),
        files: files.len(),
    })
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
        let one = write(head.clone(), &files, &key).unwrap();
        let two = write(head, &files, &key).unwrap();
        assert_eq!(one.zip, two.zip);
        let checked = verify(Cursor::new(&one.zip), Some(key.public())).unwrap();
        assert_eq!(checked.manifest_sha256, one.manifest_sha256);
        assert!(checked.given);
        assert_eq!(checked.manifest.files.len(), 2);
    }

    #[test]
    fn what_is_not_a_package_is_refused_in_words_never_with_a_panic() {
        assert!(verify(Cursor::new(b""), None).unwrap_err()[0].starts_with("not a ZIP archive"));
        let key = EvidenceKey::for_tests([4; 32]);
        let bare = write(head(), &BTreeMap::new(), &key).unwrap();
        // A manifest whose public key is empty: said so, and nothing else is claimed.
        assert_eq!(
            verify(Cursor::new(&bare.zip), None).unwrap_err(),
            [format!(
                "{MANIFEST}: its public key: a public key has 32 bytes; this one has 0"
            )]
        );
    }
}
