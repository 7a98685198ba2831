//! Files written whole: beside their place first, then renamed over it, so that no reader, and
//! no crash, ever sees half of one.

use std::path::Path;

/// Writes `contents` to `path` (with permissions `mode`, when given) in one rename; on failure
/// the partial file beside it is removed and `path` is as it was.
pub fn write_whole(path: &Path, contents: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let name = path.file_name().map_or_else(|| "file".into(), |name| name.to_string_lossy());
    let partial = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let written = std::fs::write(&partial, contents)
        .and_then(|()| match mode {
            Some(mode) => std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(mode)),
            None => Ok(()),
        })
        .and_then(|()| std::fs::rename(&partial, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}
