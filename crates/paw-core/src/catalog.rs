//! The catalog: one record per (workflow_id, step_id) of every AMI paw made or adopted, so that the
//! next step, and people, can find it. One trait; SQLite (embedded, the default) implements it here,
//! DynamoDB in paw-aws.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::render::SourceAmi;

/// The seed's `create_at` format, always UTC: `2026-11-27T23:48:07.000000+0000`.
pub const CREATE_AT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f%z";

pub fn now_create_at() -> String {
    chrono::Utc::now().format(CREATE_AT_FORMAT).to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStatus {
    Available,
    /// Deregistered in EC2; kept for the record and never used as a source again.
    Deregistered,
}

impl ImageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Available => "available",
            ImageStatus::Deregistered => "deregistered",
        }
    }
}

impl FromStr for ImageStatus {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "available" => Ok(ImageStatus::Available),
            "deregistered" => Ok(ImageStatus::Deregistered),
            other => Err(Error::new(ErrorKind::Catalog, format!("unknown image status \"{other}\" in the catalog"))),
        }
    }
}

/// One AMI of one step of one workflow: the seed's fields plus paw's own.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    pub workflow_id: String,
    pub step_id: String,
    pub ami_id: String,
    pub ami_name: String,
    pub create_at: String,
    pub aws_console_url: String,
    pub base_ami_id: String,
    pub base_ami_name: String,
    pub root_base_ami_id: String,
    pub root_base_ami_name: String,
    /// The image as EC2 described it: `{"id", "name", ..., "tags": {...}, "data": {...}}`.
    pub details: Value,
    /// The step's metadata map.
    pub metadata: Map<String, Value>,
    pub region: String,
    pub status: ImageStatus,
    pub fingerprint: Option<String>,
    /// Each input of the fingerprint and its hash, to tell later what changed.
    pub fingerprint_inputs: Option<BTreeMap<String, String>>,
    /// The workflow whose AMI this record reuses, when paw reused it instead of building.
    pub reused_from: Option<String>,
}

impl ImageRecord {
    /// This record's AMI as the source of a child step.
    pub fn as_source(&self) -> SourceAmi {
        SourceAmi { id: self.ami_id.clone(), name: self.ami_name.clone() }
    }

    /// The seed's field names plus paw's, as `paw images --json` prints them.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "workflow_id": self.workflow_id,
            "step_id": self.step_id,
            "ami_id": self.ami_id,
            "ami_name": self.ami_name,
            "create_at": self.create_at,
            "aws_console_url": self.aws_console_url,
            "base_ami_id": self.base_ami_id,
            "base_ami_name": self.base_ami_name,
            "root_base_ami_id": self.root_base_ami_id,
            "root_base_ami_name": self.root_base_ami_name,
            "details": self.details,
            "metadata": self.metadata,
            "region": self.region,
            "status": self.status.as_str(),
            "fingerprint": self.fingerprint,
            "fingerprint_inputs": self.fingerprint_inputs,
            "reused_from": self.reused_from,
        })
    }
}

pub fn console_url(region: &str, ami_id: &str) -> String {
    format!("https://{region}.console.aws.amazon.com/ec2/home?region={region}#ImageDetails:imageId={ami_id}")
}

#[async_trait]
pub trait Catalog: Send + Sync {
    /// Where the records live, for messages: `sqlite:PATH` or `dynamodb:TABLE`.
    fn uri(&self) -> String;

    async fn get(&self, workflow_id: &str, step_id: &str) -> Result<Option<ImageRecord>>;

    /// All steps of one workflow, newest first.
    async fn list_workflow(&self, workflow_id: &str) -> Result<Vec<ImageRecord>>;

    /// One step across all workflows, newest first.
    async fn list_step(&self, step_id: &str) -> Result<Vec<ImageRecord>>;

    /// The records of AMIs made from exactly these inputs, newest first.
    async fn find_by_fingerprint(&self, fingerprint: &str) -> Result<Vec<ImageRecord>>;

    /// Adds a record. A record of the same workflow and step that is still `available` is never
    /// overwritten: that is an error (another paw may have recorded it meanwhile).
    async fn record(&self, record: &ImageRecord) -> Result<()>;

    /// Marks a record deregistered; it stays for history.
    async fn mark_deregistered(&self, workflow_id: &str, step_id: &str) -> Result<()>;

    /// Every step id the catalog has records of, or None when the backend cannot list them without
    /// reading everything (DynamoDB: paw never scans a table).
    async fn step_ids(&self) -> Result<Option<Vec<String>>>;
}

/// What `copy_records` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrateReport {
    pub copied: usize,
    /// Records the target already had, the same AMI in the same state.
    pub already_there: usize,
    /// Records the target has with another AMI that is still available: left alone.
    pub conflicts: Vec<String>,
}

/// Copies every record of the given steps (across all workflows) from one catalog to another.
/// Running it again copies nothing.
pub async fn copy_records(from: &dyn Catalog, to: &dyn Catalog, step_ids: &[String]) -> Result<MigrateReport> {
    let mut report = MigrateReport::default();
    for step_id in step_ids {
        for record in from.list_step(step_id).await? {
            match to.get(&record.workflow_id, &record.step_id).await? {
                Some(existing) if existing.ami_id == record.ami_id && existing.status == record.status => {
                    report.already_there += 1;
                }
                Some(existing) if existing.ami_id == record.ami_id && record.status == ImageStatus::Deregistered => {
                    to.mark_deregistered(&record.workflow_id, &record.step_id).await?;
                    report.copied += 1;
                }
                _ => match to.record(&record).await {
                    Ok(()) => report.copied += 1,
                    Err(err) if err.kind == ErrorKind::Catalog => report.conflicts.push(err.message),
                    Err(err) => return Err(err),
                },
            }
        }
    }
    Ok(report)
}

/// An already-recorded AMI for the same step: what the conflict error says.
pub fn conflict_error(catalog: &str, existing: &ImageRecord) -> Error {
    Error::new(
        ErrorKind::Catalog,
        format!(
            "the catalog {catalog} already has AMI {} for step \"{}\" of workflow \"{}\"",
            existing.ami_id, existing.step_id, existing.workflow_id
        ),
    )
    .help("another paw run recorded it first; use a new workflow_id, or `paw images delete` that AMI first")
}

/// Which catalog to use: `sqlite:PATH` or `dynamodb:TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogUri {
    Sqlite(PathBuf),
    DynamoDb(String),
}

impl FromStr for CatalogUri {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.split_once(':') {
            Some(("sqlite", path)) if !path.is_empty() => Ok(CatalogUri::Sqlite(PathBuf::from(path))),
            Some(("dynamodb", table)) if !table.is_empty() => Ok(CatalogUri::DynamoDb(table.to_string())),
            _ => Err(Error::new(ErrorKind::Usage, format!("\"{text}\" is not a catalog"))
                .help("write sqlite:PATH (e.g. sqlite:.paw/catalog.sqlite) or dynamodb:TABLE")),
        }
    }
}

/// The embedded catalog: one SQLite file, WAL, safe with several paw processes at once.
pub struct SqliteCatalog {
    path: PathBuf,
    /// What messages call it: `sqlite:PATH`, or what a stand-in stands in for.
    uri: String,
    connection: Mutex<Connection>,
}

const IN_MEMORY: &str = ":memory:";

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
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
    "ALTER TABLE images ADD COLUMN fingerprint_inputs TEXT;",
];

const COLUMNS: &str = "workflow_id, step_id, ami_id, ami_name, create_at, aws_console_url, base_ami_id, \
     base_ami_name, root_base_ami_id, root_base_ami_name, details, metadata, region, status, fingerprint, reused_from, \
     fingerprint_inputs";

impl SqliteCatalog {
    pub fn open(path: &Path) -> Result<SqliteCatalog> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| Error::io(parent, "create the catalog's folder", err))?;
        }
        let mut connection = Connection::open(path).map_err(|err| sqlite_error(path, err))?;
        connection
            .busy_timeout(std::time::Duration::from_secs(30))
            .and_then(|()| connection.pragma_update(None, "journal_mode", "WAL"))
            .map_err(|err| sqlite_error(path, err))?;
        apply_migrations(&mut connection, path)?;
        let uri = format!("sqlite:{}", path.display());
        Ok(SqliteCatalog { path: path.to_path_buf(), uri, connection: Mutex::new(connection) })
    }

    /// An empty catalog in memory that stands in for `uri` until something is recorded there:
    /// reading commands (render, plan) never create a catalog.
    pub fn stand_in(uri: &str) -> Result<SqliteCatalog> {
        let path = Path::new(IN_MEMORY);
        let mut connection = Connection::open(path).map_err(|err| sqlite_error(path, err))?;
        apply_migrations(&mut connection, path)?;
        Ok(SqliteCatalog { path: path.to_path_buf(), uri: uri.to_string(), connection: Mutex::new(connection) })
    }

    fn query(&self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Vec<ImageRecord>> {
        let connection = self.connection.lock().expect("the catalog lock is not poisoned");
        let mut statement = connection.prepare(sql).map_err(|err| sqlite_error(&self.path, err))?;
        let rows = statement.query_map(params, row_to_record).map_err(|err| sqlite_error(&self.path, err))?;
        rows.map(|row| row.map_err(|err| sqlite_error(&self.path, err))).collect()
    }
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
        transaction.execute_batch(migration).map_err(fail)?;
    }
    transaction.pragma_update(None, "user_version", MIGRATIONS.len() as i64).map_err(fail)?;
    transaction.commit().map_err(fail)
}

fn sqlite_error(path: &Path, err: rusqlite::Error) -> Error {
    Error::new(ErrorKind::Catalog, format!("the catalog failed: {err}"))
        .in_file(path)
        .help("check that the file is a paw catalog and is writable")
}

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<ImageRecord> {
    let status: String = row.get(13)?;
    Ok(ImageRecord {
        workflow_id: row.get(0)?,
        step_id: row.get(1)?,
        ami_id: row.get(2)?,
        ami_name: row.get(3)?,
        create_at: row.get(4)?,
        aws_console_url: row.get(5)?,
        base_ami_id: row.get(6)?,
        base_ami_name: row.get(7)?,
        root_base_ami_id: row.get(8)?,
        root_base_ami_name: row.get(9)?,
        details: json_column(row, 10)?,
        metadata: json_column(row, 11)?,
        region: row.get(12)?,
        status: status.parse().map_err(|err| conversion_error(13, err))?,
        fingerprint: row.get(14)?,
        reused_from: row.get(15)?,
        fingerprint_inputs: row
            .get::<_, Option<String>>(16)?
            .map(|text| serde_json::from_str(&text).map_err(|err| conversion_error(16, err)))
            .transpose()?,
    })
}

fn json_column<T: serde::de::DeserializeOwned>(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|err| conversion_error(index, err))
}

fn conversion_error(index: usize, err: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(err))
}

#[async_trait]
impl Catalog for SqliteCatalog {
    fn uri(&self) -> String {
        self.uri.clone()
    }

    async fn get(&self, workflow_id: &str, step_id: &str) -> Result<Option<ImageRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM images WHERE workflow_id = ?1 AND step_id = ?2");
        Ok(self.query(&sql, &[&workflow_id, &step_id])?.into_iter().next())
    }

    async fn list_workflow(&self, workflow_id: &str) -> Result<Vec<ImageRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM images WHERE workflow_id = ?1 ORDER BY create_at DESC, step_id");
        self.query(&sql, &[&workflow_id])
    }

    async fn list_step(&self, step_id: &str) -> Result<Vec<ImageRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM images WHERE step_id = ?1 ORDER BY create_at DESC, workflow_id");
        self.query(&sql, &[&step_id])
    }

    async fn find_by_fingerprint(&self, fingerprint: &str) -> Result<Vec<ImageRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM images WHERE fingerprint = ?1 ORDER BY create_at DESC, workflow_id");
        self.query(&sql, &[&fingerprint])
    }

    async fn record(&self, record: &ImageRecord) -> Result<()> {
        let mut connection = self.connection.lock().expect("the catalog lock is not poisoned");
        let fail = |err| sqlite_error(&self.path, err);
        // IMMEDIATE takes the write lock first, so the check and the write are one step for every process.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(fail)?;
        let existing = transaction
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM images WHERE workflow_id = ?1 AND step_id = ?2 AND status = 'available'"
                ),
                params![record.workflow_id, record.step_id],
                row_to_record,
            )
            .optional()
            .map_err(fail)?;
        if let Some(existing) = existing {
            return Err(conflict_error(&self.uri(), &existing));
        }
        transaction
            .execute(
                &format!("INSERT OR REPLACE INTO images ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"),
                params![
                    record.workflow_id,
                    record.step_id,
                    record.ami_id,
                    record.ami_name,
                    record.create_at,
                    record.aws_console_url,
                    record.base_ami_id,
                    record.base_ami_name,
                    record.root_base_ami_id,
                    record.root_base_ami_name,
                    record.details.to_string(),
                    Value::Object(record.metadata.clone()).to_string(),
                    record.region,
                    record.status.as_str(),
                    record.fingerprint,
                    record.reused_from,
                    record.fingerprint_inputs.as_ref().map(|inputs| serde_json::json!(inputs).to_string()),
                ],
            )
            .map_err(fail)?;
        transaction.commit().map_err(fail)
    }

    async fn step_ids(&self) -> Result<Option<Vec<String>>> {
        let connection = self.connection.lock().expect("the catalog lock is not poisoned");
        let fail = |err| sqlite_error(&self.path, err);
        let mut statement = connection.prepare("SELECT DISTINCT step_id FROM images ORDER BY step_id").map_err(fail)?;
        let ids = statement.query_map([], |row| row.get(0)).map_err(fail)?;
        Ok(Some(ids.collect::<rusqlite::Result<Vec<String>>>().map_err(fail)?))
    }

    async fn mark_deregistered(&self, workflow_id: &str, step_id: &str) -> Result<()> {
        let connection = self.connection.lock().expect("the catalog lock is not poisoned");
        connection
            .execute(
                "UPDATE images SET status = 'deregistered' WHERE workflow_id = ?1 AND step_id = ?2",
                params![workflow_id, step_id],
            )
            .map_err(|err| sqlite_error(&self.path, err))?;
        Ok(())
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
        crate::catalog_conformance::check(&catalog, &other, "wf").await;
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
                        let record = crate::catalog_conformance::sample_record(
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

    #[tokio::test]
    async fn migrate_copies_once_and_reports_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let from = SqliteCatalog::open(&dir.path().join("from.sqlite")).unwrap();
        let to = SqliteCatalog::open(&dir.path().join("to.sqlite")).unwrap();
        use crate::catalog_conformance::sample_record;
        from.record(&sample_record("w1", "s1", "ami-1", "2026-01-01T00:00:01.000000+0000")).await.unwrap();
        from.record(&sample_record("w2", "s1", "ami-2", "2026-01-01T00:00:02.000000+0000")).await.unwrap();
        from.record(&sample_record("w1", "s2", "ami-3", "2026-01-01T00:00:03.000000+0000")).await.unwrap();
        to.record(&sample_record("w2", "s1", "ami-other", "2026-01-01T00:00:04.000000+0000")).await.unwrap();
        let steps = from.step_ids().await.unwrap().unwrap();
        assert_eq!(steps, ["s1", "s2"]);
        let report = copy_records(&from, &to, &steps).await.unwrap();
        assert_eq!((report.copied, report.already_there, report.conflicts.len()), (2, 0, 1));
        assert!(report.conflicts[0].contains("already has AMI ami-other"), "{:?}", report.conflicts);
        assert_eq!(to.get("w1", "s2").await.unwrap().unwrap(), from.get("w1", "s2").await.unwrap().unwrap());
        let again = copy_records(&from, &to, &steps).await.unwrap();
        assert_eq!((again.copied, again.already_there), (0, 2));
    }

    #[test]
    fn catalog_uris() {
        assert_eq!("sqlite:a/b.sqlite".parse::<CatalogUri>().unwrap(), CatalogUri::Sqlite("a/b.sqlite".into()));
        assert_eq!("dynamodb:t".parse::<CatalogUri>().unwrap(), CatalogUri::DynamoDb("t".into()));
        assert!("postgres:x".parse::<CatalogUri>().is_err());
        assert!("sqlite:".parse::<CatalogUri>().is_err());
    }
}
