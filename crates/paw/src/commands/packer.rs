//! `paw packer install` and `paw packer version`.

use std::path::PathBuf;

use paw_core::packer::{self, PackerBinary};
use paw_core::{Error, ErrorKind};
use serde_json::{Value, json};

use crate::install::{self, Installed};
use crate::output::Report;

impl Report for Installed {
    fn json(&self) -> Value {
        json!({ "path": self.path, "version": self.version })
    }

    fn text(&self) -> String {
        format!("installed {} at {}", self.version, self.path.display())
    }
}

pub async fn install(version: Option<&str>, dir: Option<PathBuf>) -> paw_core::Result<Installed> {
    let dir = dir.or_else(packer::own_dir).ok_or_else(|| {
        Error::new(ErrorKind::Usage, "there is no HOME to install packer under").help("name a folder with --dir DIR")
    })?;
    install::install(version, &dir).await
}

pub struct Which {
    path: PathBuf,
    version: String,
    found_by: &'static str,
}

pub async fn version() -> paw_core::Result<Which> {
    let packer = PackerBinary::locate().ok_or_else(|| {
        Error::new(
            ErrorKind::Usage,
            "paw finds no packer: PAW_PACKER is not set, PATH has none, and paw installed none",
        )
        .help("run `paw packer install`, or set PAW_PACKER to a packer binary")
    })?;
    let version = packer.describe().await?;
    Ok(Which { path: packer.path, version, found_by: packer.found_by })
}

impl Report for Which {
    fn json(&self) -> Value {
        json!({ "path": self.path, "version": self.version, "found_by": self.found_by })
    }

    fn text(&self) -> String {
        format!("{} at {} (from {})", self.version, self.path.display(), self.found_by)
    }
}
