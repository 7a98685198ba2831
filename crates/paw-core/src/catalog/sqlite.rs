//! The embedded catalog: one SQLite file per workflow by default, WAL, safe with several paw
//! processes at once. Its columns are the record's stored attributes, by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::{
    BuildJournal, Catalog, ChannelEntry, Channels, ImageRecord, ImageStatus, InFlight, Line, Override, Recorded,
    Records, TestRun,
};
use crate::error::{Error, ErrorKind, Result};

/// The embedded catalog: one SQLite file, WAL, safe with several paw processes at once. Its calls
/// run on tokio's blocking threads: waiting for the lock, or for SQLite's busy timeout while
/// another process writes, never stalls the task that drives every step of a build.
pub struct SqliteCatalog {
    store: Arc<Store>,
}

/// The connection, and what messages name it: shared with the blocking thread of each call.
struct Store {
    path: PathBuf,
    /// What messages call it: `sqlite:PATH`, or what a stand-in stands in for.
    uri: String,
    connection: Mutex<Connection>,
}

const IN_MEMORY: &str = ":memory:";

/// How long a paw process waits for another that holds the catalog's lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The images table's columns as they are now, in order: each migration that added one added it at
/// the end, so the table of any version holds a prefix of them (a rebuild copies them by name).
const IMAGE_COLUMNS: [(&str, &str); 29] = [
    ("workflow_id", "TEXT NOT NULL"),
    ("step_id", "TEXT NOT NULL"),
    ("ami_id", "TEXT NOT NULL"),
    ("ami_name", "TEXT NOT NULL"),
    ("create_at", "TEXT NOT NULL"),
    ("aws_console_url", "TEXT NOT NULL"),
    ("base_ami_id", "TEXT NOT NULL"),
    ("base_ami_name", "TEXT NOT NULL"),
    ("root_base_ami_id", "TEXT NOT NULL"),
    ("root_base_ami_name", "TEXT NOT NULL"),
    ("details", "TEXT NOT NULL"),
    ("metadata", "TEXT NOT NULL"),
    ("region", "TEXT NOT NULL"),
    ("status", "TEXT NOT NULL"),
    ("fingerprint", "TEXT"),
    ("reused_from", "TEXT"),
    ("fingerprint_inputs", "TEXT"),
    ("from_instance", "TEXT"),
    ("revoked_reason", "TEXT"),
    ("revoked_at", "TEXT"),
    ("copies", "TEXT"),
    ("workflow_name", "TEXT"),
    ("variant", "TEXT"),
    ("tests", "TEXT"),
    ("overrides", "TEXT"),
    ("root_base_ami_from", "TEXT"),
    ("provenance", "TEXT"),
    ("sbom", "TEXT"),
    ("copy_provenance", "TEXT"),
];

/// The images table's indexes: (name, the column they order by `create_at` within).
const IMAGE_INDEXES: [(&str, &str); 5] = [
    ("images_by_step", "step_id"),
    ("images_by_fingerprint", "fingerprint"),
    ("images_by_ami", "ami_id"),
    ("images_by_base", "base_ami_id"),
    ("images_by_name", "workflow_name"),
];

/// One schema migration.
enum Migration {
    Sql(&'static str),
    /// The images table made again with the first `columns` of `IMAGE_COLUMNS`, its rows copied
    /// (the first `copied` columns, those the old table has), a status CHECK that allows `statuses`
    /// (SQLite cannot change a CHECK in place), and the indexes of the columns it has; then `then`.
    RebuildImages {
        columns: usize,
        copied: usize,
        statuses: &'static [&'static str],
        then: &'static str,
    },
}

impl Migration {
    fn sql(&self) -> String {
        let (columns, copied, statuses, then) = match self {
            Migration::Sql(sql) => return sql.to_string(),
            Migration::RebuildImages { columns, copied, statuses, then } => (*columns, *copied, *statuses, *then),
        };
        let statuses: Vec<String> = statuses.iter().map(|status| format!("'{status}'")).collect();
        let definitions: Vec<String> = IMAGE_COLUMNS[..columns]
            .iter()
            .map(|(name, kind)| match *name {
                "status" => format!("{name} {kind} CHECK (status IN ({}))", statuses.join(", ")),
                _ => format!("{name} {kind}"),
            })
            .collect();
        let kept: Vec<&str> = IMAGE_COLUMNS[..copied].iter().map(|(name, _)| *name).collect();
        let kept = kept.join(", ");
        let mut sql = format!(
            "CREATE TABLE images_new ({}, PRIMARY KEY (workflow_id, step_id));
            INSERT INTO images_new ({kept}) SELECT {kept} FROM images;
            DROP TABLE images;
            ALTER TABLE images_new RENAME TO images;",
            definitions.join(", ")
        );
        let has = |column: &str| IMAGE_COLUMNS[..columns].iter().any(|(name, _)| *name == column);
        for (index, column) in IMAGE_INDEXES.iter().filter(|(_, column)| has(column)) {
            sql.push_str(&format!("CREATE INDEX {index} ON images ({column}, create_at);"));
        }
        sql + then
    }
}

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[Migration] = &[
    Migration::Sql(
        "CREATE TABLE images (
        workflow_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        ami_id TEXT NOT NULL,
        ami_name TEXT NOT NULL,
        create_at TEXT NOT NULL,
        aws_console_url TEXT NOT NULL,
        base_ami_id TEXT NOT NULL,
        base_ami_name TEXT NOT NULL,
        root_base_ami_id TEXT NOT NULL,
        root_base_ami_name TEXT NOT NULL,
        details TEXT NOT NULL,
        metadata TEXT NOT NULL,
        region TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('available', 'deregistered')),
        fingerprint TEXT,
        reused_from TEXT,
        PRIMARY KEY (workflow_id, step_id)
    );
    CREATE INDEX images_by_step ON images (step_id, create_at);
    CREATE INDEX images_by_fingerprint ON images (fingerprint, create_at);",
    ),
    Migration::Sql("ALTER TABLE images ADD COLUMN fingerprint_inputs TEXT;"),
    Migration::Sql("ALTER TABLE images ADD COLUMN from_instance TEXT;"),
    // The build journal: one entry per step being built (catalog::journal), as JSON.
    Migration::Sql(
        "CREATE TABLE builds (
        workflow_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        entry TEXT NOT NULL,
        PRIMARY KEY (workflow_id, step_id)
    );",
    ),
    // Revocation (its reason and time, and a status the CHECK must allow), lineage's indexes, and
    // channels.
    Migration::RebuildImages {
        columns: 20,
        copied: 18,
        statuses: &["available", "deregistered", "revoked"],
        then: "CREATE TABLE channels (
            channel TEXT NOT NULL,
            step_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            entry TEXT NOT NULL,
            PRIMARY KEY (channel, step_id, seq)
        );",
    },
    Migration::Sql("ALTER TABLE images ADD COLUMN copies TEXT;"),
    // Workflow names and variants: lines of images. A channel is keyed by its line's pointer
    // (`ChannelEntry::pointer`), which holds the channel and the step.
    Migration::Sql(
        "ALTER TABLE images ADD COLUMN workflow_name TEXT;
    ALTER TABLE images ADD COLUMN variant TEXT;
    CREATE INDEX images_by_name ON images (workflow_name, create_at);
    CREATE TABLE channels_v7 (
        pointer TEXT NOT NULL,
        seq INTEGER NOT NULL,
        entry TEXT NOT NULL,
        PRIMARY KEY (pointer, seq)
    );
    INSERT INTO channels_v7 SELECT channel || '#' || step_id, seq, entry FROM channels;
    DROP TABLE channels;
    ALTER TABLE channels_v7 RENAME TO channels;",
    ),
    // `disabled` (the lifecycle policy's).
    Migration::RebuildImages {
        columns: 23,
        copied: 23,
        statuses: &["available", "deregistered", "revoked", "disabled"],
        then: "",
    },
    // `failed` (an image that failed its tests, kept), and the images' test history.
    Migration::RebuildImages {
        columns: 24,
        copied: 23,
        statuses: &["available", "deregistered", "revoked", "disabled", "failed"],
        then: "",
    },
    // Retirements forced while the image was in use.
    Migration::Sql("ALTER TABLE images ADD COLUMN overrides TEXT;"),
    // Where a root base AMI that follows its source was read from.
    Migration::Sql("ALTER TABLE images ADD COLUMN root_base_ami_from TEXT;"),
    // Each image's signed statement of what went into it.
    Migration::Sql("ALTER TABLE images ADD COLUMN provenance TEXT;"),
    // The SBOM beside it.
    Migration::Sql("ALTER TABLE images ADD COLUMN sbom TEXT;"),
    // The copies' own statements.
    Migration::Sql("ALTER TABLE images ADD COLUMN copy_provenance TEXT;"),
];

impl SqliteCatalog {
    pub fn open(path: &Path) -> Result<SqliteCatalog> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| Error::io(parent, "create the catalog's folder", err))?;
        }
        let mut connection = Connection::open(path).map_err(|err| sqlite_error(path, err))?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(|err| sqlite_error(path, err))?;
        // Switching a new file to WAL takes a lock that SQLite's busy handler does not wait for:
        // paw processes that create one catalog at once wait here instead.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match connection.pragma_update(None, "journal_mode", "WAL") {
                Ok(()) => break,
                Err(err)
                    if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(err) => return Err(sqlite_error(path, err)),
            }
        }
        apply_migrations(&mut connection, path)?;
        let uri = format!("sqlite:{}", path.display());
        Ok(SqliteCatalog::new(Store { path: path.to_path_buf(), uri, connection: Mutex::new(connection) }))
    }

    /// An empty catalog in memory that stands in for `uri` until something is recorded there:
    /// reading commands (render, plan) never create a catalog.
    pub fn stand_in(uri: &str) -> Result<SqliteCatalog> {
        let path = Path::new(IN_MEMORY);
        let mut connection = Connection::open(path).map_err(|err| sqlite_error(path, err))?;
        apply_migrations(&mut connection, path)?;
        Ok(SqliteCatalog::new(Store {
            path: path.to_path_buf(),
            uri: uri.to_string(),
            connection: Mutex::new(connection),
        }))
    }

    fn new(store: Store) -> SqliteCatalog {
        SqliteCatalog { store: Arc::new(store) }
    }

    /// Runs `work` on the store on one of tokio's blocking threads, and waits for it without
    /// blocking this task.
    async fn blocking<T: Send + 'static>(&self, work: impl FnOnce(&Store) -> Result<T> + Send + 'static) -> Result<T> {
        let store = Arc::clone(&self.store);
        crate::blocking::off_the_task(move || work(&store)).await
    }

    /// The image records a query keyed by one value returns, in its order.
    async fn records(&self, sql: &'static str, key: &str) -> Result<Vec<ImageRecord>> {
        let key = key.to_string();
        self.blocking(move |store| store.query(sql, &[&key])).await
    }
}

impl Store {
    fn query(&self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Vec<ImageRecord>> {
        let connection = self.connection.lock().expect("the catalog lock is not poisoned");
        let mut statement = connection.prepare(sql).map_err(|err| sqlite_error(&self.path, err))?;
        let rows = statement.query_map(params, row_attributes).map_err(|err| sqlite_error(&self.path, err))?;
        rows.map(|row| ImageRecord::from_attributes(row.map_err(|err| sqlite_error(&self.path, err))?, &self.uri))
            .collect()
    }
}

/// A row as the record's attributes: every column that is not NULL, by name.
fn row_attributes(row: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<(String, String)>> {
    let columns: Vec<&str> = row.as_ref().column_names().collect();
    let mut attributes = Vec::with_capacity(columns.len());
    for (index, name) in columns.iter().enumerate() {
        if let Some(text) = row.get::<_, Option<String>>(index)? {
            attributes.push((name.to_string(), text));
        }
    }
    Ok(attributes)
}

fn apply_migrations(connection: &mut Connection, path: &Path) -> Result<()> {
    let fail = |err| sqlite_error(path, err);
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(fail)?;
    let version: i64 = transaction.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(fail)?;
    let applied = usize::try_from(version).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(Error::new(
            ErrorKind::Catalog,
            format!("the catalog has schema version {applied}, newer than this paw knows"),
        )
        .in_file(path)
        .help("upgrade paw"));
    }
    for migration in &MIGRATIONS[applied..] {
        transaction.execute_batch(&migration.sql()).map_err(fail)?;
    }
    transaction.pragma_update(None, "user_version", MIGRATIONS.len() as i64).map_err(fail)?;
    transaction.commit().map_err(fail)
}

/// A journal or channel entry as its table keeps it: JSON.
fn stored_json(entry: &impl serde::Serialize) -> String {
    serde_json::to_string(entry).expect("an entry serialises")
}

impl Store {
    fn read_stored<T: serde::de::DeserializeOwned>(&self, text: &str) -> Result<T> {
        serde_json::from_str(text).map_err(|err| {
            Error::new(ErrorKind::Catalog, format!("an entry of {} cannot be read: {err}", self.uri))
                .in_file(&self.path)
        })
    }

    /// The JSON entries a query returns, in its order.
    fn stored<T: serde::de::DeserializeOwned>(&self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Vec<T>> {
        let connection = self.connection.lock().expect("the catalog lock is not poisoned");
        let fail = |err| sqlite_error(&self.path, err);
        let mut statement = connection.prepare(sql).map_err(fail)?;
        let texts = statement.query_map(params, |row| row.get::<_, String>(0)).map_err(fail)?;
        texts.map(|text| self.read_stored(&text.map_err(fail)?)).collect()
    }
}

fn sqlite_error(path: &Path, err: rusqlite::Error) -> Error {
    Error::new(ErrorKind::Catalog, format!("the catalog failed: {err}"))
        .in_file(path)
        .help("check that the file is a paw catalog and is writable")
}

/// The catalog's calls, on the blocking thread.
impl Store {
    fn get(&self, workflow_id: &str, step_id: &str) -> Result<Option<ImageRecord>> {
        let sql = "SELECT * FROM images WHERE workflow_id = ?1 AND step_id = ?2";
        Ok(self.query(sql, &[&workflow_id, &step_id])?.into_iter().next())
    }

    fn try_record(&self, record: &ImageRecord) -> Result<Recorded> {
        let mut connection = self.connection.lock().expect("the catalog lock is not poisoned");
        let fail = |err| sqlite_error(&self.path, err);
        // IMMEDIATE takes the write lock first, so the check and the write are one step for every process.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(fail)?;
        let existing = transaction
            .query_row(
                "SELECT * FROM images WHERE workflow_id = ?1 AND step_id = ?2 AND status != 'deregistered'",
                [&record.workflow_id, &record.step_id],
                row_attributes,
            )
            .optional()
            .map_err(fail)?;
        if let Some(existing) = existing {
            return Ok(Recorded::Taken(Box::new(ImageRecord::from_attributes(existing, &self.uri)?)));
        }
        let attributes = record.to_attributes();
        let names: Vec<&str> = attributes.keys().map(String::as_str).collect();
        let placeholders: Vec<String> = (1..=names.len()).map(|index| format!("?{index}")).collect();
        let sql = format!("INSERT OR REPLACE INTO images ({}) VALUES ({})", names.join(", "), placeholders.join(", "));
        transaction.execute(&sql, rusqlite::params_from_iter(attributes.values())).map_err(fail)?;
        transaction.commit().map_err(fail)?;
        Ok(Recorded::Written)
    }

    fn step_ids(&self) -> Result<Option<Vec<String>>> {
        let connection = self.connection.lock().expect("the catalog lock is not poisoned");
        let fail = |err| sqlite_error(&self.path, err);
        let mut statement = connection.prepare("SELECT DISTINCT step_id FROM images ORDER BY step_id").map_err(fail)?;
        let ids = statement.query_map([], |row| row.get(0)).map_err(fail)?;
        Ok(Some(ids.collect::<rusqlite::Result<Vec<String>>>().map_err(fail)?))
    }

    fn schema(&self) -> Result<String> {
        if self.path == Path::new(IN_MEMORY) {
            return Ok("not created yet, the first build creates it".into());
        }
        let connection = self.connection.lock().expect("the catalog lock is not poisoned");
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|err| sqlite_error(&self.path, err))?;
        Ok(format!("schema version {version}"))
    }

    fn begin_build(&self, entry: &InFlight) -> Result<Option<InFlight>> {
        let mut connection = self.connection.lock().expect("the catalog lock is not poisoned");
        let fail = |err| sqlite_error(&self.path, err);
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(fail)?;
        let holder: Option<String> = transaction
            .query_row(
                "SELECT entry FROM builds WHERE workflow_id = ?1 AND step_id = ?2",
                [&entry.workflow_id, &entry.step_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(fail)?;
        if let Some(text) = holder {
            return Ok(Some(self.read_stored(&text)?));
        }
        transaction
            .execute(
                "INSERT INTO builds (workflow_id, step_id, run_id, entry) VALUES (?1, ?2, ?3, ?4)",
                [&entry.workflow_id, &entry.step_id, &entry.run_id, &stored_json(entry)],
            )
            .map_err(fail)?;
        transaction.commit().map_err(fail)?;
        Ok(None)
    }

    fn renew_build(&self, entry: &InFlight) -> Result<bool> {
        let connection = self.connection.lock().expect("the catalog lock is not poisoned");
        let updated = connection
            .execute(
                "UPDATE builds SET entry = ?4 WHERE workflow_id = ?1 AND step_id = ?2 AND run_id = ?3",
                [&entry.workflow_id, &entry.step_id, &entry.run_id, &stored_json(entry)],
            )
            .map_err(|err| sqlite_error(&self.path, err))?;
        Ok(updated == 1)
    }

    fn end_build(&self, entry: &InFlight) -> Result<()> {
        let connection = self.connection.lock().expect("the catalog lock is not poisoned");
        connection
            .execute(
                "DELETE FROM builds WHERE workflow_id = ?1 AND step_id = ?2 AND run_id = ?3",
                [&entry.workflow_id, &entry.step_id, &entry.run_id],
            )
            .map_err(|err| sqlite_error(&self.path, err))?;
        Ok(())
    }

    fn set_status(
        &self,
        workflow_id: &str,
        step_id: &str,
        status: ImageStatus,
        revocation: Option<(&str, &str)>,
    ) -> Result<()> {
        let (reason, at) = revocation.filter(|_| status == ImageStatus::Revoked).unzip();
        let set = "status = ?3, revoked_reason = ?4, revoked_at = ?5";
        self.update(workflow_id, step_id, set, rusqlite::params![status.as_str(), reason, at])
    }

    /// Sets columns of the record (`set`: `COLUMN = ?3, ...`, the key being ?1 and ?2) to
    /// `values`. A missing record is `missing_record`'s error.
    fn update(&self, workflow_id: &str, step_id: &str, set: &str, values: &[&dyn rusqlite::ToSql]) -> Result<()> {
        let connection = self.connection.lock().expect("the catalog lock is not poisoned");
        let key: [&dyn rusqlite::ToSql; 2] = [&workflow_id, &step_id];
        let changed = connection
            .execute(
                &format!("UPDATE images SET {set} WHERE workflow_id = ?1 AND step_id = ?2"),
                rusqlite::params_from_iter(key.iter().chain(values)),
            )
            .map_err(|err| sqlite_error(&self.path, err))?;
        if changed == 0 {
            return Err(super::missing_record(workflow_id, step_id));
        }
        Ok(())
    }

    /// Sets one column that holds a map (`copies`, `copy_provenance`) of the record.
    fn set_map(&self, workflow_id: &str, step_id: &str, column: &str, map: &BTreeMap<String, String>) -> Result<()> {
        self.update(workflow_id, step_id, &format!("{column} = ?3"), rusqlite::params![stored_json(map)])
    }

    fn set_provenance(&self, workflow_id: &str, step_id: &str, envelope: &str, sbom: Option<&str>) -> Result<()> {
        self.update(workflow_id, step_id, "provenance = ?3, sbom = ?4", rusqlite::params![envelope, sbom])
    }

    fn add_test_run(&self, workflow_id: &str, step_id: &str, run: &TestRun, status: Option<ImageStatus>) -> Result<()> {
        self.rewrite(workflow_id, step_id, &|mut record| {
            record.tests.push(run.clone());
            let status = status.unwrap_or(record.status).as_str();
            Some((
                "UPDATE images SET tests = ?3, status = ?4 WHERE workflow_id = ?1 AND step_id = ?2",
                vec![stored_json(&record.tests), status.to_string()],
            ))
        })
    }

    /// Reads the record and writes back what `change` makes of it (an UPDATE whose ?1 and ?2 are
    /// the key, and its other values; None: nothing to write), as one step for every process
    /// (IMMEDIATE). A missing record is `missing_record`'s error.
    fn rewrite(
        &self,
        workflow_id: &str,
        step_id: &str,
        change: &dyn Fn(ImageRecord) -> Option<(&'static str, Vec<String>)>,
    ) -> Result<()> {
        let mut connection = self.connection.lock().expect("the catalog lock is not poisoned");
        let fail = |err| sqlite_error(&self.path, err);
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(fail)?;
        let sql = "SELECT * FROM images WHERE workflow_id = ?1 AND step_id = ?2";
        let existing = transaction.query_row(sql, [workflow_id, step_id], row_attributes).optional().map_err(fail)?;
        let Some(existing) = existing else { return Err(super::missing_record(workflow_id, step_id)) };
        let Some((update, values)) = change(ImageRecord::from_attributes(existing, &self.uri)?) else { return Ok(()) };
        let key = [workflow_id.to_string(), step_id.to_string()];
        transaction.execute(update, rusqlite::params_from_iter(key.iter().chain(&values))).map_err(fail)?;
        transaction.commit().map_err(fail)
    }

    fn add_override(&self, workflow_id: &str, step_id: &str, entry: &Override) -> Result<()> {
        self.rewrite(workflow_id, step_id, &|mut record| {
            let update = "UPDATE images SET overrides = ?3 WHERE workflow_id = ?1 AND step_id = ?2";
            record.note_override(entry).then(|| (update, vec![stored_json(&record.overrides)]))
        })
    }

    fn add_channel_entry(&self, entry: &ChannelEntry) -> Result<bool> {
        let connection = self.connection.lock().expect("the catalog lock is not poisoned");
        let added = connection
            .execute(
                "INSERT INTO channels (pointer, seq, entry) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                rusqlite::params![channel_pointer(entry), entry.seq as i64, stored_json(entry)],
            )
            .map_err(|err| sqlite_error(&self.path, err))?;
        Ok(added == 1)
    }

    fn channel_entries(&self) -> Result<Vec<ChannelEntry>> {
        self.stored("SELECT entry FROM channels ORDER BY pointer, seq DESC", &[])
    }

    fn set_line(&self, workflow_id: &str, step_id: &str, line: &Line) -> Result<()> {
        self.update(
            workflow_id,
            step_id,
            "workflow_name = ?3, variant = ?4",
            rusqlite::params![line.name, line.variant],
        )
    }
}

fn channel_pointer(entry: &ChannelEntry) -> String {
    ChannelEntry::pointer(entry.line().as_ref(), &entry.channel, &entry.step_id)
}

#[async_trait]
impl Records for SqliteCatalog {
    fn uri(&self) -> String {
        self.store.uri.clone()
    }

    async fn get(&self, workflow_id: &str, step_id: &str) -> Result<Option<ImageRecord>> {
        let (workflow_id, step_id) = (workflow_id.to_string(), step_id.to_string());
        self.blocking(move |store| store.get(&workflow_id, &step_id)).await
    }

    async fn list_workflow(&self, workflow_id: &str) -> Result<Vec<ImageRecord>> {
        self.records("SELECT * FROM images WHERE workflow_id = ?1 ORDER BY create_at DESC, step_id", workflow_id).await
    }

    async fn list_step(&self, step_id: &str) -> Result<Vec<ImageRecord>> {
        self.records("SELECT * FROM images WHERE step_id = ?1 ORDER BY create_at DESC, workflow_id", step_id).await
    }

    async fn list_name(&self, name: &str) -> Result<Vec<ImageRecord>> {
        self.records("SELECT * FROM images WHERE workflow_name = ?1 ORDER BY create_at DESC, workflow_id", name).await
    }

    async fn set_line(&self, workflow_id: &str, step_id: &str, line: &Line) -> Result<()> {
        let (workflow_id, step_id, line) = (workflow_id.to_string(), step_id.to_string(), line.clone());
        self.blocking(move |store| store.set_line(&workflow_id, &step_id, &line)).await
    }

    async fn find_by_fingerprint(&self, fingerprint: &str) -> Result<Vec<ImageRecord>> {
        let sql = "SELECT * FROM images WHERE fingerprint = ?1 ORDER BY create_at DESC, workflow_id";
        self.records(sql, fingerprint).await
    }

    async fn try_record(&self, record: &ImageRecord) -> Result<Recorded> {
        let record = record.clone();
        self.blocking(move |store| store.try_record(&record)).await
    }

    async fn find_by_ami(&self, ami_id: &str) -> Result<Vec<ImageRecord>> {
        self.records("SELECT * FROM images WHERE ami_id = ?1 ORDER BY create_at DESC, workflow_id", ami_id).await
    }

    async fn find_by_base(&self, base_ami_id: &str) -> Result<Vec<ImageRecord>> {
        let sql = "SELECT * FROM images WHERE base_ami_id = ?1 ORDER BY create_at DESC, workflow_id";
        self.records(sql, base_ami_id).await
    }

    async fn set_status(
        &self,
        workflow_id: &str,
        step_id: &str,
        status: ImageStatus,
        revocation: Option<(&str, &str)>,
    ) -> Result<()> {
        let (workflow_id, step_id) = (workflow_id.to_string(), step_id.to_string());
        let revocation = revocation.map(|(reason, at)| (reason.to_string(), at.to_string()));
        self.blocking(move |store| {
            let revocation = revocation.as_ref().map(|(reason, at)| (reason.as_str(), at.as_str()));
            store.set_status(&workflow_id, &step_id, status, revocation)
        })
        .await
    }

    async fn set_copies(&self, workflow_id: &str, step_id: &str, copies: &BTreeMap<String, String>) -> Result<()> {
        let (workflow_id, step_id, copies) = (workflow_id.to_string(), step_id.to_string(), copies.clone());
        self.blocking(move |store| store.set_map(&workflow_id, &step_id, "copies", &copies)).await
    }

    async fn set_copy_provenance(
        &self,
        workflow_id: &str,
        step_id: &str,
        statements: &BTreeMap<String, String>,
    ) -> Result<()> {
        let (workflow_id, step_id, statements) = (workflow_id.to_string(), step_id.to_string(), statements.clone());
        self.blocking(move |store| store.set_map(&workflow_id, &step_id, "copy_provenance", &statements)).await
    }

    async fn set_provenance(&self, workflow_id: &str, step_id: &str, envelope: &str, sbom: Option<&str>) -> Result<()> {
        let (workflow_id, step_id) = (workflow_id.to_string(), step_id.to_string());
        let (envelope, sbom) = (envelope.to_string(), sbom.map(str::to_string));
        self.blocking(move |store| store.set_provenance(&workflow_id, &step_id, &envelope, sbom.as_deref())).await
    }

    async fn add_test_run(
        &self,
        workflow_id: &str,
        step_id: &str,
        run: &TestRun,
        status: Option<ImageStatus>,
    ) -> Result<()> {
        let (workflow_id, step_id, run) = (workflow_id.to_string(), step_id.to_string(), run.clone());
        self.blocking(move |store| store.add_test_run(&workflow_id, &step_id, &run, status)).await
    }

    async fn add_override(&self, workflow_id: &str, step_id: &str, entry: &Override) -> Result<()> {
        let (workflow_id, step_id, entry) = (workflow_id.to_string(), step_id.to_string(), entry.clone());
        self.blocking(move |store| store.add_override(&workflow_id, &step_id, &entry)).await
    }

    async fn step_ids(&self) -> Result<Option<Vec<String>>> {
        self.blocking(Store::step_ids).await
    }
}

#[async_trait]
impl BuildJournal for SqliteCatalog {
    async fn begin_build(&self, entry: &InFlight) -> Result<Option<InFlight>> {
        let entry = entry.clone();
        self.blocking(move |store| store.begin_build(&entry)).await
    }

    async fn renew_build(&self, entry: &InFlight) -> Result<bool> {
        let entry = entry.clone();
        self.blocking(move |store| store.renew_build(&entry)).await
    }

    async fn end_build(&self, entry: &InFlight) -> Result<()> {
        let entry = entry.clone();
        self.blocking(move |store| store.end_build(&entry)).await
    }

    async fn builds_in_flight(&self, workflow_id: &str) -> Result<Vec<InFlight>> {
        let workflow_id = workflow_id.to_string();
        let sql = "SELECT entry FROM builds WHERE workflow_id = ?1 ORDER BY step_id";
        self.blocking(move |store| store.stored(sql, &[&workflow_id])).await
    }
}

#[async_trait]
impl Channels for SqliteCatalog {
    async fn add_channel_entry(&self, entry: &ChannelEntry) -> Result<bool> {
        let entry = entry.clone();
        self.blocking(move |store| store.add_channel_entry(&entry)).await
    }

    async fn channel_entries(&self) -> Result<Vec<ChannelEntry>> {
        self.blocking(Store::channel_entries).await
    }

    async fn channel_history(&self, line: &Line, channel: &str, step_id: &str) -> Result<Vec<ChannelEntry>> {
        let pointer = ChannelEntry::pointer(Some(line), channel, step_id);
        let sql = "SELECT entry FROM channels WHERE pointer = ?1 ORDER BY seq DESC";
        self.blocking(move |store| store.stored(sql, &[&pointer])).await
    }
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn schema(&self) -> Result<String> {
        self.blocking(Store::schema).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_passes_the_catalog_suite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/catalog.sqlite");
        let catalog = SqliteCatalog::open(&path).unwrap();
        let other = SqliteCatalog::open(&path).unwrap();
        crate::catalog::conformance::check(&catalog, &other, "wf").await;
    }

    /// Eight writers, each with its own connection as a separate paw process has, race to record
    /// the same step: exactly one wins.
    #[test]
    fn concurrent_writers_of_one_step_have_exactly_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        SqliteCatalog::open(&path).unwrap();
        let start = std::sync::Barrier::new(8);
        let wins = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..8)
                .map(|writer| {
                    let (path, start) = (&path, &start);
                    scope.spawn(move || {
                        let catalog = SqliteCatalog::open(path).unwrap();
                        let record = crate::catalog::conformance::sample_record(
                            "wf",
                            "race",
                            &format!("ami-{writer}"),
                            "2026-01-01T00:00:00.000000+0000",
                        );
                        start.wait();
                        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                        runtime.block_on(catalog.record(&record)).is_ok()
                    })
                })
                .collect();
            writers.into_iter().map(|writer| writer.join().unwrap()).filter(|won| *won).count()
        });
        assert_eq!(wins, 1);
    }

    /// Several paw processes that start at once create one new catalog: none of them fails.
    #[test]
    fn a_new_catalog_opened_by_many_at_once() {
        for _ in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("catalog.sqlite");
            let start = std::sync::Barrier::new(8);
            std::thread::scope(|scope| {
                let openers: Vec<_> = (0..8)
                    .map(|_| {
                        let (path, start) = (&path, &start);
                        scope.spawn(move || {
                            start.wait();
                            SqliteCatalog::open(path).map(|_| ())
                        })
                    })
                    .collect();
                for opener in openers {
                    opener.join().unwrap().unwrap();
                }
            });
        }
    }

    /// A catalog of the schema before names: its records and channels read back, with no line.
    #[tokio::test]
    async fn a_catalog_from_before_names_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        let connection = Connection::open(&path).unwrap();
        for migration in &MIGRATIONS[..6] {
            connection.execute_batch(&migration.sql()).unwrap();
        }
        connection.pragma_update(None, "user_version", 6).unwrap();
        let mut record =
            crate::catalog::conformance::sample_record("old", "base", "ami-old", "2026-01-01T00:00:00.000000+0000");
        (record.workflow_name, record.variant) = (None, None);
        let attributes = record.to_attributes();
        let names: Vec<&str> = attributes.keys().map(String::as_str).collect();
        let slots: Vec<String> = (1..=names.len()).map(|index| format!("?{index}")).collect();
        let sql = format!("INSERT INTO images ({}) VALUES ({})", names.join(", "), slots.join(", "));
        connection.execute(&sql, rusqlite::params_from_iter(attributes.values())).unwrap();
        let entry = r#"{"channel": "prod", "step_id": "base", "seq": 1, "ami_id": "ami-old", "workflow_id": "old",
            "set_at": "2026-01-01T00:00:00.000000+0000"}"#;
        connection
            .execute("INSERT INTO channels (channel, step_id, seq, entry) VALUES ('prod', 'base', 1, ?1)", [entry])
            .unwrap();
        drop(connection);

        let catalog = SqliteCatalog::open(&path).unwrap();
        assert_eq!(catalog.get("old", "base").await.unwrap(), Some(record));
        let entries = catalog.channel_entries().await.unwrap();
        assert_eq!((entries.len(), entries[0].line(), entries[0].ami_id.as_str()), (1, None, "ami-old"));
        let line = Line { name: "team".into(), variant: None };
        assert!(catalog.channel_history(&line, "prod", "base").await.unwrap().is_empty());
        let adopted = crate::catalog::adopt(&catalog, &line, &["old".to_string()]).await.unwrap();
        assert_eq!((adopted.records.len(), adopted.channel_entries), (1, 1));
        assert_eq!(catalog.channel_history(&line, "prod", "base").await.unwrap()[0].ami_id, "ami-old");
        assert_eq!(catalog.list_line(&line, "base").await.unwrap()[0].ami_id, "ami-old");
        let again = crate::catalog::adopt(&catalog, &line, &["old".to_string()]).await.unwrap();
        assert_eq!(
            (again.records.len(), again.already, again.channel_entries),
            (0, 1, 0),
            "running it again changes nothing"
        );
        let other = Line { name: "other-team".into(), variant: None };
        let err = crate::catalog::adopt(&catalog, &other, &["old".to_string()]).await.unwrap_err();
        assert!(err.message.contains("is team's"), "{}", err.message);
    }

    #[test]
    fn the_schema_version_is_recorded_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        drop(SqliteCatalog::open(&path).unwrap());
        let connection = Connection::open(&path).unwrap();
        let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        connection.pragma_update(None, "user_version", 99).unwrap();
        drop(connection);
        let err = SqliteCatalog::open(&path).err().unwrap();
        assert!(err.message.contains("schema version 99, newer than this paw knows"), "{}", err.message);
    }
}
