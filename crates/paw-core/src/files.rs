//! Files, and folders, written whole: beside their place first, then renamed over it, so that no
//! reader, and no crash, ever sees half of one.

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

/// Writes a new folder whole: each file (its path in the folder, its contents, its permissions
/// `mode` when given) into a folder beside `folder`, which is then renamed to `folder` (there may
/// be an empty folder of that name). On failure the partial folder is removed.
pub fn write_folder_whole(folder: &Path, files: &[(String, Vec<u8>, Option<u32>)]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let name = folder.file_name().map_or_else(|| "folder".into(), |name| name.to_string_lossy());
    let partial = folder.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let written = files
        .iter()
        .try_for_each(|(relative, contents, mode)| {
            let path = partial.join(relative);
            std::fs::create_dir_all(path.parent().unwrap_or(&partial))?;
            std::fs::write(&path, contents)?;
            match mode {
                Some(mode) => std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)),
                None => Ok(()),
            }
        })
        .and_then(|()| std::fs::rename(&partial, folder));
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    written
}
