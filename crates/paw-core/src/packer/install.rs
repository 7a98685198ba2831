//! `paw packer install`: the seed's PackerInstaller, done safely. The zip and its SHA256SUMS come
//! from HashiCorp's releases site (or PAW_PACKER_MIRROR), the checksum is verified, and `packer` is
//! put in place with one rename: a failure anywhere leaves the folder as it was.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use sha2::Digest as _;

use crate::error::{Error, ErrorKind, Result};

/// Where releases are downloaded from: `<base>/packer/index.json`, `<base>/packer/<V>/...`.
pub const MIRROR_ENV: &str = "PAW_PACKER_MIRROR";
const RELEASES: &str = "https://releases.hashicorp.com";

/// paw's own place for packer: `$XDG_DATA_HOME/paw/bin`, else `~/.local/share/paw/bin`.
pub fn default_dir() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))?;
    Some(data.join("paw/bin"))
}

/// What `install` put in place.
#[derive(Debug)]
pub struct Installed {
    pub version: String,
    pub path: PathBuf,
}

fn install_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Packer, message)
}

/// Downloads packer `version` (default: the newest release) for this machine, verifies it, and
/// puts it at `dir/packer`.
pub async fn install(version: Option<&str>, dir: &Path) -> Result<Installed> {
    let base = std::env::var(MIRROR_ENV).unwrap_or_else(|_| RELEASES.to_string());
    let base = base.trim_end_matches('/');
    let version = match version {
        Some(version) => version.to_string(),
        None => newest(&get(&format!("{base}/packer/index.json")).await?)?,
    };
    let (os, arch) = platform()?;
    let file = format!("packer_{version}_{os}_{arch}.zip");
    let archive = get(&format!("{base}/packer/{version}/{file}")).await.map_err(|err| Error {
        message: format!("packer {version} for {os}/{arch} is not available: {}", err.message),
        ..err
    })?;
    let sums = get(&format!("{base}/packer/{version}/packer_{version}_SHA256SUMS")).await?;
    let sums = String::from_utf8_lossy(&sums);
    let expected = sums
        .lines()
        .find_map(|line| line.split_once("  ").filter(|(_, name)| name.trim() == file).map(|(hash, _)| hash.trim()))
        .ok_or_else(|| install_error(format!("packer_{version}_SHA256SUMS has no line for {file}")))?;
    let actual = hex(&sha2::Sha256::digest(&archive));
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(install_error(format!(
            "{file} does not match its checksum: SHA256SUMS says {expected}, the download is {actual}"
        ))
        .help("the download or the mirror is corrupt; nothing was installed: try again, or another mirror"));
    }
    let binary = unzip_packer(&archive, &file)?;
    let path = put_in_place(dir, &binary)?;
    let output = tokio::process::Command::new(&path)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .await
        .map_err(|err| Error::io(&path, "run the installed packer", err))?;
    let version = String::from_utf8_lossy(&output.stdout).lines().next().unwrap_or_default().trim().to_string();
    Ok(Installed { version, path })
}

/// The newest release (no pre-release) in `index.json`'s `versions`.
fn newest(index: &[u8]) -> Result<String> {
    let index: serde_json::Value =
        serde_json::from_slice(index).map_err(|err| install_error(format!("index.json is not JSON: {err}")))?;
    let versions = index["versions"].as_object().ok_or_else(|| install_error("index.json lists no versions"))?;
    let parse = |version: &str| -> Option<(u32, u32, u32)> {
        let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
        Some((parts.next()??, parts.next()??, parts.next()??))
    };
    versions
        .keys()
        .filter_map(|version| Some((parse(version)?, version)))
        .max()
        .map(|(_, version)| version.clone())
        .ok_or_else(|| install_error("index.json lists no release"))
}

/// HashiCorp's names for this machine.
fn platform() -> Result<(&'static str, &'static str)> {
    let os = match std::env::consts::OS {
        "linux" => "linux",
        "macos" => "darwin",
        other => return Err(install_error(format!("no packer build for {other} is known to paw"))),
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => return Err(install_error(format!("no packer build for {other} is known to paw"))),
    };
    Ok((os, arch))
}

async fn get(url: &str) -> Result<Vec<u8>> {
    let failed = |what: String| {
        install_error(format!("GET {url}: {what}")).help(format!("check the network, or set {MIRROR_ENV} to a mirror"))
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|err| failed(format!("no TLS roots: {err}")))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    let uri: hyper::Uri = url.parse().map_err(|err| failed(format!("not a URL: {err}")))?;
    let response = client.get(uri).await.map_err(|err| failed(crate::error::causes(&err)))?;
    if !response.status().is_success() {
        return Err(failed(format!("HTTP {}", response.status())));
    }
    let body = response.into_body().collect().await.map_err(|err| failed(err.to_string()))?;
    Ok(body.to_bytes().to_vec())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unzip_packer(archive: &[u8], file: &str) -> Result<Vec<u8>> {
    let bad = |what: String| install_error(format!("{file}: {what}"));
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).map_err(|err| bad(err.to_string()))?;
    let mut entry = zip.by_name("packer").map_err(|_| bad("holds no `packer`".into()))?;
    let mut binary = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut binary).map_err(|err| bad(err.to_string()))?;
    Ok(binary)
}

/// `dir/packer`, written whole: never half a binary.
fn put_in_place(dir: &Path, binary: &[u8]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|err| Error::io(dir, "create the folder", err))?;
    let path = dir.join("packer");
    crate::files::write_whole(&path, binary, Some(0o755)).map_err(|err| Error::io(&path, "install packer", err))?;
    Ok(path)
}
