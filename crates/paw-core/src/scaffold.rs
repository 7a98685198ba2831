//! `paw init`: a new workflow in the seed's layout with one step, valid as it is.

use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

const FILES: [(&str, &str); 8] = [
    ("workflow_param.json", include_str!("../scaffold/workflow_param.json")),
    (".gitignore", include_str!("../scaffold/.gitignore")),
    ("step1/step_param.json", include_str!("../scaffold/step1/step_param.json")),
    ("step1/.gitignore", include_str!("../scaffold/step1/.gitignore")),
    ("step1/zero_deps_script.py", include_str!("../scaffold/step1/zero_deps_script.py")),
    ("step1/templates/.pkr.hcl", include_str!("../scaffold/step1/templates/.pkr.hcl")),
    ("step1/templates/.variables.pkr.hcl", include_str!("../scaffold/step1/templates/.variables.pkr.hcl")),
    ("step1/templates/.pkrvars.hcl", include_str!("../scaffold/step1/templates/.pkrvars.hcl")),
];

/// Writes the scaffold into `dir`, which must be new or empty: nothing is ever overwritten.
pub fn init(dir: &Path) -> Result<Vec<String>> {
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(Error::new(
            ErrorKind::Usage,
            "the folder is not empty; paw init writes only into a new or empty folder",
        )
        .in_file(dir)
        .help("name a new folder, e.g. `paw init workflow`"));
    }
    // The files name the schemas (`$schema`), which are written beside them.
    let files: Vec<(&str, String)> =
        FILES.iter().map(|(name, text)| (*name, text.to_string())).chain(crate::config::schema_files()).collect();
    for (name, text) in &files {
        let path = dir.join(name);
        let parent = path.parent().expect("scaffold files are in a folder");
        std::fs::create_dir_all(parent).map_err(|err| Error::io(parent, "create the folder", err))?;
        std::fs::write(&path, text).map_err(|err| Error::io(&path, "write", err))?;
    }
    set_executable(&dir.join("step1/zero_deps_script.py"))?;
    Ok(files.into_iter().map(|(name, _)| name.to_string()).collect())
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|err| Error::io(path, "make executable", err))
}
