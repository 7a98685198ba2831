//! `paw packer install` against a stand-in of HashiCorp's releases site on loopback (tests/mirror.py).

use std::path::Path;
use std::process::Child;

use crate::harness::{Paw, start_python_server};

struct Mirror {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Mirror {
    fn start() -> Mirror {
        let (child, port, dir) =
            start_python_server(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mirror.py"), &[]);
        Mirror { child, url: format!("http://127.0.0.1:{port}"), _dir: dir }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn install_fetches_the_newest_release_verifies_it_and_paw_then_runs_it() {
    let mirror = Mirror::start();
    let paw = Paw::new();
    let home = paw.path("home").to_string_lossy().into_owned();
    let empty = paw.path("empty").to_string_lossy().into_owned();
    std::fs::create_dir_all(&empty).unwrap();
    let paw = paw.env("PAW_PACKER_MIRROR", &mirror.url).env("HOME", &home).env("XDG_DATA_HOME", "");
    let run = paw.run(&["packer", "install"]);
    let installed = format!("{home}/.local/share/paw/bin/packer");
    assert!(run.success().stdout.contains(&format!("installed Packer v1.6.6 at {installed}")), "{}", run.stdout);

    // With no PAW_PACKER and no packer on PATH, paw runs its own.
    let paw = paw.env("PAW_PACKER", "").env("PATH", empty);
    let which = paw.run(&["packer", "version", "--json"]).success().json();
    assert_eq!(which["path"], installed);
    assert_eq!(which["version"], "packer 1.6.6");
    assert_eq!(which["found_by"], "paw's own install (`paw packer install`)");
}

#[test]
fn a_bad_checksum_or_a_missing_version_installs_nothing() {
    let mirror = Mirror::start();
    let paw = Paw::new().env("PAW_PACKER_MIRROR", &mirror.url);
    let dir = paw.path("bin");
    let dir = dir.to_string_lossy();

    let run = paw.run(&["packer", "install", "--version", "1.5.0", "--dir", &dir]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("does not match its checksum: SHA256SUMS says 0000"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was installed"), "{}", run.stderr);
    assert!(!paw.path("bin/packer").exists());

    let run = paw.run(&["packer", "install", "--version", "9.9.9", "--dir", &dir]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("packer 9.9.9 for linux/amd64 is not available: GET "), "{}", run.stderr);
    assert!(run.stderr.contains("HTTP 404"), "{}", run.stderr);
    assert!(!paw.path("bin/packer").exists());
    let leftovers: Vec<_> = std::fs::read_dir(paw.path("bin")).map(|dir| dir.count()).into_iter().collect();
    assert!(leftovers.iter().all(|count| *count == 0), "a partial file was left");
}
