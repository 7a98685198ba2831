//! `paw packer install`: the seed's PackerInstaller, done safely. The zip and its SHA256SUMS come
//! from HashiCorp's releases site (or PAW_PACKER_MIRROR) over reqwest (rustls, redirects followed,
//! connect and read timeouts); the zip is streamed to a temporary file beside the target while its
//! checksum is computed, verified, and `packer` is put in place with one rename: a failure
//! anywhere leaves the folder as it was.

use std::io::{Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use paw_core::{Error, ErrorKind, Result};
use sha2::Digest as _;

/// Where releases are downloaded from: `<base>/packer/index.json`, `<base>/packer/<V>/...`.
pub const MIRROR_ENV: &str = "PAW_PACKER_MIRROR";
const RELEASES: &str = "https://releases.hashicorp.com";
/// How long a connection may take to open, and the download may go without a byte.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

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
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("paw/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| install_error(format!("cannot set up HTTPS: {}", paw_core::error::causes(&err))))?;
    let version = match version {
        Some(version) => version.to_string(),
        None => newest(&fetch(&client, &format!("{base}/packer/index.json")).await?)?,
    };
    let (os, arch) = platform()?;
    let file = format!("packer_{version}_{os}_{arch}.zip");
    let sums =
        fetch(&client, &format!("{base}/packer/{version}/packer_{version}_SHA256SUMS")).await.map_err(|err| Error {
            message: format!("packer {version} for {os}/{arch} is not available: {}", err.message),
            ..err
        })?;
    let sums = String::from_utf8_lossy(&sums);
    let expected = sums
        .lines()
        .find_map(|line| line.split_once("  ").filter(|(_, name)| name.trim() == file).map(|(hash, _)| hash.trim()))
        .ok_or_else(|| install_error(format!("packer_{version}_SHA256SUMS has no line for {file}")))?;
    std::fs::create_dir_all(dir).map_err(|err| Error::io(dir, "create the folder", err))?;
    let (mut archive, actual) = download(&client, &format!("{base}/packer/{version}/{file}"), dir).await?;
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(install_error(format!(
            "{file} does not match its checksum: SHA256SUMS says {expected}, the download is {actual}"
        ))
        .help("the download or the mirror is corrupt; nothing was installed: try again, or another mirror"));
    }
    archive.rewind().map_err(|err| Error::io(archive.path(), "read the download", err))?;
    let path = put_in_place(dir, archive.as_file(), &file)?;
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

fn download_failed(url: &str, err: &(dyn std::error::Error + 'static)) -> Error {
    download_error(url, paw_core::error::causes(err))
}

fn download_error(url: &str, what: String) -> Error {
    install_error(format!("GET {url}: {what}")).help(format!("check the network, or set {MIRROR_ENV} to a mirror"))
}

/// A successful response to GET `url` (redirects followed).
async fn get(client: &reqwest::Client, url: &str) -> Result<reqwest::Response> {
    let response = client.get(url).send().await.map_err(|err| download_failed(url, &err))?;
    if !response.status().is_success() {
        return Err(download_error(url, format!("HTTP {}", response.status())));
    }
    Ok(response)
}

/// A small file's whole body (index.json, SHA256SUMS).
async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>> {
    let body = get(client, url).await?.bytes().await.map_err(|err| download_failed(url, &err))?;
    Ok(body.to_vec())
}

/// `url`'s body, streamed to a temporary file in `dir` (removed when dropped), and its SHA-256.
async fn download(client: &reqwest::Client, url: &str, dir: &Path) -> Result<(tempfile::NamedTempFile, String)> {
    let mut response = get(client, url).await?;
    let mut file = tempfile::Builder::new()
        .prefix(".packer-download")
        .tempfile_in(dir)
        .map_err(|err| Error::io(dir, "create a temporary file", err))?;
    let mut hasher = sha2::Sha256::new();
    while let Some(chunk) = response.chunk().await.map_err(|err| download_failed(url, &err))? {
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(|err| Error::io(dir, "write the download", err))?;
    }
    let digest = hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect();
    Ok((file, digest))
}

/// `dir/packer`, from the zip, written whole: never half a binary.
fn put_in_place(dir: &Path, archive: &std::fs::File, file: &str) -> Result<PathBuf> {
    let bad = |what: String| install_error(format!("{file}: {what}"));
    let mut zip = zip::ZipArchive::new(archive).map_err(|err| bad(err.to_string()))?;
    let mut entry = zip.by_name("packer").map_err(|_| bad("holds no `packer`".into()))?;
    let mut binary = tempfile::Builder::new()
        .prefix(".packer")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .tempfile_in(dir)
        .map_err(|err| Error::io(dir, "create a temporary file", err))?;
    std::io::copy(&mut entry, &mut binary).map_err(|err| bad(err.to_string()))?;
    let path = dir.join("packer");
    binary.persist(&path).map_err(|err| Error::io(&path, "install packer", err.error))?;
    Ok(path)
}
