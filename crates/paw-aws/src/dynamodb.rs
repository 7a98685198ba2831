//! The team catalog in DynamoDB, in the seed's table layout: key `workflow_id` / `step_id`, GSI
//! `step_id_index` (`step_id`, `create_at`), every attribute a string (`details` and `metadata` as
//! JSON). paw's own fields are extra attributes, and paw adds indexes of its own. Every read is a
//! GetItem or a Query on a key or an index; nothing scans the table.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableDescription,
};
use paw_core::catalog::{
    self, BuildJournal, Catalog, ChannelEntry, Channels, ImageRecord, ImageStatus, InFlight, Line, Override, Recorded,
    Records, TestRun,
};
use paw_core::{Error, ErrorKind, Result};

use crate::aws_error;

/// The seed's index: one step across workflows, newest first.
pub const STEP_INDEX: &str = "step_id_index";
/// paw's: all steps of a workflow, newest first.
pub const WORKFLOW_INDEX: &str = "paw_workflow_id_index";
/// paw's: AMIs by the fingerprint of their inputs, newest first (sparse: only paw's items).
pub const FINGERPRINT_INDEX: &str = "paw_fingerprint_index";
/// paw's, for lineage: every record of an AMI, and every record built on an AMI.
pub const AMI_INDEX: &str = "paw_ami_id_index";
pub const BASE_AMI_INDEX: &str = "paw_base_ami_id_index";
/// paw's: every record of a workflow name, newest first (sparse: records older than names are
/// not in it until `paw catalog adopt` names them).
pub const NAME_INDEX: &str = "paw_workflow_name_index";

const INDEXES: [(&str, &str); 6] = [
    (STEP_INDEX, "step_id"),
    (WORKFLOW_INDEX, "workflow_id"),
    (FINGERPRINT_INDEX, "fingerprint"),
    (AMI_INDEX, "ami_id"),
    (BASE_AMI_INDEX, "base_ami_id"),
    (NAME_INDEX, "workflow_name"),
];
const WAIT: Duration = Duration::from_secs(600);

/// The build journal's items share the table under this hash key, with `<workflow_id>#<step_id>`
/// as their range key ('#' is not allowed in AMI names, so in no workflow id). They have no
/// `create_at`, so no index holds them, and the seed, which asks for real workflow ids or
/// queries its index, never sees them.
const JOURNAL_KEY: &str = "paw#builds";
/// Channel entries likewise, with `<pointer>#<seq, 20 digits>` as their range key (the pointer is
/// `ChannelEntry::pointer`: `@<line>#<channel>#<step_id>`).
const CHANNELS_KEY: &str = "paw#channels";

pub struct DynamoCatalog {
    client: Client,
    table: String,
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().expect("name and type are set")
}

/// The table's key, as the seed made it: `workflow_id` / `step_id`.
fn table_key_schema() -> Vec<KeySchemaElement> {
    vec![key("workflow_id", KeyType::Hash), key("step_id", KeyType::Range)]
}

/// Every one of paw's indexes: its attribute, newest first by `create_at`.
fn index_key_schema(hash_key: &str) -> Vec<KeySchemaElement> {
    vec![key(hash_key, KeyType::Hash), key("create_at", KeyType::Range)]
}

/// One item's key: `workflow_id` (a record's workflow, or paw's journal or channel key) and
/// `step_id`.
fn item_key(workflow_id: &str, step_id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("workflow_id".to_string(), AttributeValue::S(workflow_id.to_string())),
        ("step_id".to_string(), AttributeValue::S(step_id.to_string())),
    ])
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type are set")
}

fn all_attributes() -> Projection {
    Projection::builder().projection_type(ProjectionType::All).build()
}

fn attribute_definitions() -> Vec<AttributeDefinition> {
    ["workflow_id", "step_id", "create_at", "fingerprint", "ami_id", "base_ami_id", "workflow_name"]
        .into_iter()
        .map(string_attribute)
        .collect()
}

fn has_index(table: &TableDescription, name: &str) -> bool {
    table.global_secondary_indexes().iter().any(|index| index.index_name() == Some(name))
}

/// A history attribute's new JSON text, and the status to write with it, if any.
type HistoryWrite = (String, Option<ImageStatus>);

impl DynamoCatalog {
    /// The table when it exists, as it is: for reading, nothing is created or changed.
    pub async fn open_existing(config: &aws_config::SdkConfig, table: &str) -> Result<Option<DynamoCatalog>> {
        let catalog = DynamoCatalog { client: Client::new(config), table: table.to_string() };
        match catalog.client.describe_table().table_name(table).send().await {
            Ok(output) => {
                if let Some(description) = output.table() {
                    catalog.check_key_schema(description)?;
                }
                Ok(Some(catalog))
            }
            Err(err) if err.as_service_error().is_some_and(|err| err.is_resource_not_found_exception()) => Ok(None),
            Err(err) => Err(aws_error("dynamodb:DescribeTable", err)),
        }
    }

    /// Opens the table, creating it when it is missing and adding paw's indexes when they are;
    /// `notice` hears about each such change, once.
    pub async fn open(
        config: &aws_config::SdkConfig,
        table: &str,
        notice: &(dyn Fn(&str) + Sync),
    ) -> Result<DynamoCatalog> {
        let catalog = DynamoCatalog { client: Client::new(config), table: table.to_string() };
        match catalog.client.describe_table().table_name(table).send().await {
            Ok(output) => {
                let description = output.table().cloned().unwrap_or_else(|| TableDescription::builder().build());
                catalog.check_key_schema(&description)?;
                for (index, hash_key) in INDEXES {
                    if !has_index(&description, index) {
                        catalog.add_index(index, hash_key).await?;
                        notice(&format!(
                            "added the index {index} to the DynamoDB table {table} (once; the table is otherwise unchanged)"
                        ));
                    }
                }
            }
            Err(err) if err.as_service_error().is_some_and(|err| err.is_resource_not_found_exception()) => {
                if catalog.create_table().await? {
                    notice(&format!("created the DynamoDB table {table} (PAY_PER_REQUEST)"));
                }
            }
            Err(err) => return Err(aws_error("dynamodb:DescribeTable", err)),
        }
        Ok(catalog)
    }

    fn check_key_schema(&self, table: &TableDescription) -> Result<()> {
        if table.key_schema() != table_key_schema() {
            return Err(Error::new(
                ErrorKind::Catalog,
                format!(
                    "the DynamoDB table {} is not a paw catalog: its key is not workflow_id (hash) / step_id (range)",
                    self.table
                ),
            )
            .help("name another table: --catalog dynamodb:TABLE"));
        }
        Ok(())
    }

    fn index(name: &str, hash_key: &str) -> GlobalSecondaryIndex {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .set_key_schema(Some(index_key_schema(hash_key)))
            .projection(all_attributes())
            .build()
            .expect("name and key are set")
    }

    /// Creates the table; false when another paw created it at the same moment (then it is waited for).
    async fn create_table(&self) -> Result<bool> {
        let mut request = self
            .client
            .create_table()
            .table_name(&self.table)
            .set_key_schema(Some(table_key_schema()))
            .set_attribute_definitions(Some(attribute_definitions()))
            .billing_mode(BillingMode::PayPerRequest);
        for (index, hash_key) in INDEXES {
            request = request.global_secondary_indexes(Self::index(index, hash_key));
        }
        let created = match request.send().await {
            Ok(_) => true,
            Err(err) if err.as_service_error().is_some_and(|err| err.is_resource_in_use_exception()) => false,
            Err(err) => return Err(aws_error("dynamodb:CreateTable", err)),
        };
        self.client.wait_until_table_exists().table_name(&self.table).wait(WAIT).await.map_err(|err| {
            Error::new(ErrorKind::Aws, format!("the DynamoDB table {} did not become ACTIVE: {err}", self.table))
        })?;
        Ok(created)
    }

    async fn add_index(&self, name: &str, hash_key: &str) -> Result<()> {
        let create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(name)
            .set_key_schema(Some(index_key_schema(hash_key)))
            .projection(all_attributes())
            .build()
            .expect("name, key and projection are set");
        let result = self
            .client
            .update_table()
            .table_name(&self.table)
            .set_attribute_definitions(Some(attribute_definitions()))
            .global_secondary_index_updates(GlobalSecondaryIndexUpdate::builder().create(create).build())
            .send()
            .await;
        if let Err(err) = result {
            // Another paw may be adding it at the same moment: then it is waited for below.
            let table = self.describe().await?;
            if !table.is_some_and(|table| has_index(&table, name)) {
                return Err(aws_error("dynamodb:UpdateTable", err));
            }
        }
        // A new index is usable once it is ACTIVE; DynamoDB fills it from the table meanwhile.
        let deadline = Instant::now() + WAIT;
        loop {
            let table = self.describe().await?;
            let active = table
                .iter()
                .flat_map(|table| table.global_secondary_indexes())
                .any(|index| index.index_name() == Some(name) && index.index_status() == Some(&IndexStatus::Active));
            if active {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::new(
                    ErrorKind::Aws,
                    format!("the index {name} of {} did not become ACTIVE", self.table),
                ));
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }

    /// The table as DescribeTable says it is now.
    async fn describe(&self) -> Result<Option<TableDescription>> {
        let output = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|err| aws_error("dynamodb:DescribeTable", err))?;
        Ok(output.table().cloned())
    }

    /// A Query on an index, newest first, every page.
    async fn query_index(&self, index: &str, hash_key: &str, value: &str) -> Result<Vec<ImageRecord>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#key = :value")
            .expression_attribute_names("#key", hash_key)
            .expression_attribute_values(":value", AttributeValue::S(value.to_string()))
            .scan_index_forward(false);
        all_items(query).await?.iter().map(|item| from_item(&self.table, item)).collect()
    }
}

impl DynamoCatalog {
    /// A change to a record that is there: sent by `send_update`.
    /// A record's item as stored, read consistently.
    async fn get_item(&self, workflow_id: &str, step_id: &str) -> Result<Option<HashMap<String, AttributeValue>>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key(workflow_id, step_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| aws_error("dynamodb:GetItem", err))?;
        Ok(output.item)
    }

    /// Writes back one history attribute (JSON text, as the seed's layout keeps nested values),
    /// and the status when one is given, as `change` makes them from the record (None: nothing to
    /// write), on the condition that nobody changed the attribute meanwhile; false when others
    /// kept changing it. A status not given is left as it is, not written back as it was read.
    async fn rewrite_history(
        &self,
        workflow_id: &str,
        step_id: &str,
        attribute: &str,
        change: &(dyn Fn(&ImageRecord) -> Option<HistoryWrite> + Sync),
    ) -> Result<bool> {
        for _ in 0..5 {
            let Some(item) = self.get_item(workflow_id, step_id).await? else {
                return Err(catalog::missing_record(workflow_id, step_id));
            };
            let record = from_item(&self.table, &item)?;
            let Some((text, status)) = change(&record) else { return Ok(true) };
            let request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(item_key(workflow_id, step_id)))
                .expression_attribute_names("#history", attribute)
                .expression_attribute_values(":history", AttributeValue::S(text));
            let request = match status {
                Some(status) => request
                    .update_expression("SET #history = :history, #status = :status")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", AttributeValue::S(status.as_str().into())),
                None => request.update_expression("SET #history = :history"),
            };
            let request = match item.get(attribute).and_then(|old| old.as_s().ok()) {
                Some(old) => request
                    .condition_expression("#history = :old")
                    .expression_attribute_values(":old", AttributeValue::S(old.clone())),
                None => {
                    request.condition_expression("attribute_exists(workflow_id) AND attribute_not_exists(#history)")
                }
            };
            match request.send().await {
                Ok(_) => return Ok(true),
                Err(err) if is_condition_failure(&err) => continue,
                Err(err) => return Err(aws_error("dynamodb:UpdateItem", err)),
            }
        }
        Ok(false)
    }

    /// Sets one attribute that holds a map (`copies`, `copy_provenance`), as JSON text.
    async fn set_map(
        &self,
        workflow_id: &str,
        step_id: &str,
        name: &str,
        map: &BTreeMap<String, String>,
    ) -> Result<()> {
        let text = serde_json::to_string(map).expect("a map serialises");
        let request = self
            .update_record(workflow_id, step_id)
            .update_expression("SET #map = :map")
            .expression_attribute_names("#map", name)
            .expression_attribute_values(":map", AttributeValue::S(text));
        send_update(request, workflow_id, step_id).await
    }

    fn update_record(&self, workflow_id: &str, step_id: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key(workflow_id, step_id)))
            .condition_expression("attribute_exists(workflow_id)")
    }

    /// A conditional PutItem: false when the condition did not hold, and nothing was written.
    async fn put_if(
        &self,
        item: HashMap<String, AttributeValue>,
        condition: &str,
        values: &[(&str, &str)],
    ) -> Result<bool> {
        let mut request =
            self.client.put_item().table_name(&self.table).set_item(Some(item)).condition_expression(condition);
        for (name, value) in values {
            request = request.expression_attribute_values(*name, AttributeValue::S(value.to_string()));
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(aws_error("dynamodb:PutItem", err)),
        }
    }
}

/// Every item a Query returns, all pages.
async fn all_items(query: QueryFluentBuilder) -> Result<Vec<HashMap<String, AttributeValue>>> {
    query
        .into_paginator()
        .items()
        .send()
        .collect::<std::result::Result<_, _>>()
        .await
        .map_err(|err| aws_error("dynamodb:Query", err))
}

fn channel_key(pointer: &str, seq: Option<u64>) -> String {
    match seq {
        Some(seq) => format!("{pointer}#{seq:020}"),
        None => format!("{pointer}#"),
    }
}

/// A journal or channel entry's item: its key, and the entry as JSON.
fn entry_item(hash: &str, range: &str, entry: &impl serde::Serialize) -> HashMap<String, AttributeValue> {
    let mut item = item_key(hash, range);
    let text = serde_json::to_string(entry).expect("an entry serialises");
    item.insert("entry".to_string(), AttributeValue::S(text));
    item
}

fn from_entry_item<T: serde::de::DeserializeOwned>(table: &str, item: &HashMap<String, AttributeValue>) -> Result<T> {
    let text = item.get("entry").and_then(|value| value.as_s().ok()).map_or("", String::as_str);
    serde_json::from_str(text).map_err(|err| {
        Error::new(ErrorKind::Catalog, format!("an entry of the DynamoDB table {table} cannot be read: {err}"))
    })
}

fn channel_item(entry: &ChannelEntry) -> HashMap<String, AttributeValue> {
    let pointer = ChannelEntry::pointer(entry.line().as_ref(), &entry.channel, &entry.step_id);
    entry_item(CHANNELS_KEY, &channel_key(&pointer, Some(entry.seq)), entry)
}

fn journal_key(workflow_id: &str, step_id: &str) -> String {
    format!("{workflow_id}#{step_id}")
}

/// A journal entry's item, with its run id beside the entry for the conditional writes.
fn journal_item(entry: &InFlight) -> HashMap<String, AttributeValue> {
    let mut item = entry_item(JOURNAL_KEY, &journal_key(&entry.workflow_id, &entry.step_id), entry);
    item.insert("run_id".to_string(), AttributeValue::S(entry.run_id.clone()));
    item
}

/// A conditional write that found the condition false: what lets one of two racing paws win.
/// Sends an `update_record`: a missing record is `missing_record`'s error.
/// How much of a record's DynamoDB item its statement and SBOM may take (an item's limit is 400 KB).
const MAX_PROVENANCE_BYTES: usize = 350_000;

async fn send_update(request: UpdateItemFluentBuilder, workflow_id: &str, step_id: &str) -> Result<()> {
    match request.send().await {
        Ok(_) => Ok(()),
        Err(err) if is_condition_failure(&err) => Err(catalog::missing_record(workflow_id, step_id)),
        Err(err) => Err(aws_error("dynamodb:UpdateItem", err)),
    }
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

fn to_item(record: &ImageRecord) -> HashMap<String, AttributeValue> {
    record.to_attributes().into_iter().map(|(name, text)| (name, AttributeValue::S(text))).collect()
}

/// An item as paw or the seed wrote it: every attribute a string.
fn from_item(table: &str, item: &HashMap<String, AttributeValue>) -> Result<ImageRecord> {
    let attributes = item.iter().filter_map(|(name, value)| Some((name.clone(), value.as_s().ok()?.clone())));
    ImageRecord::from_attributes(attributes, &format!("the DynamoDB table {table}"))
}

#[async_trait]
impl Records for DynamoCatalog {
    fn uri(&self) -> String {
        format!("dynamodb:{}", self.table)
    }

    async fn get(&self, workflow_id: &str, step_id: &str) -> Result<Option<ImageRecord>> {
        let item = self.get_item(workflow_id, step_id).await?;
        item.as_ref().map(|item| from_item(&self.table, item)).transpose()
    }

    async fn list_workflow(&self, workflow_id: &str) -> Result<Vec<ImageRecord>> {
        self.query_index(WORKFLOW_INDEX, "workflow_id", workflow_id).await
    }

    async fn list_step(&self, step_id: &str) -> Result<Vec<ImageRecord>> {
        self.query_index(STEP_INDEX, "step_id", step_id).await
    }

    async fn find_by_fingerprint(&self, fingerprint: &str) -> Result<Vec<ImageRecord>> {
        self.query_index(FINGERPRINT_INDEX, "fingerprint", fingerprint).await
    }

    async fn try_record(&self, record: &ImageRecord) -> Result<Recorded> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            // The conditional write is what lets one of two racing paw processes win: an item that is
            // available (or the seed's, which has no status) is never overwritten.
            .condition_expression("attribute_not_exists(workflow_id) OR #status = :deregistered")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":deregistered", AttributeValue::S(ImageStatus::Deregistered.as_str().into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Recorded::Written),
            Err(err) if is_condition_failure(&err) => match self.get(&record.workflow_id, &record.step_id).await? {
                Some(existing) => Ok(Recorded::Taken(Box::new(existing))),
                None => {
                    Err(Error::new(ErrorKind::Catalog, "the conditional write failed, yet no item is there; try again"))
                }
            },
            Err(err) => Err(aws_error("dynamodb:PutItem", err)),
        }
    }

    async fn find_by_ami(&self, ami_id: &str) -> Result<Vec<ImageRecord>> {
        self.query_index(AMI_INDEX, "ami_id", ami_id).await
    }

    async fn find_by_base(&self, base_ami_id: &str) -> Result<Vec<ImageRecord>> {
        self.query_index(BASE_AMI_INDEX, "base_ami_id", base_ami_id).await
    }

    async fn set_status(
        &self,
        workflow_id: &str,
        step_id: &str,
        status: ImageStatus,
        revocation: Option<(&str, &str)>,
    ) -> Result<()> {
        let request = self
            .update_record(workflow_id, step_id)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", AttributeValue::S(status.as_str().into()));
        let request = match revocation.filter(|_| status == ImageStatus::Revoked) {
            Some((reason, at)) => request
                .update_expression("SET #status = :status, revoked_reason = :reason, revoked_at = :at")
                .expression_attribute_values(":reason", AttributeValue::S(reason.into()))
                .expression_attribute_values(":at", AttributeValue::S(at.into())),
            None => request.update_expression("SET #status = :status REMOVE revoked_reason, revoked_at"),
        };
        send_update(request, workflow_id, step_id).await
    }

    async fn set_copies(&self, workflow_id: &str, step_id: &str, copies: &BTreeMap<String, String>) -> Result<()> {
        self.set_map(workflow_id, step_id, "copies", copies).await
    }

    async fn set_copy_provenance(
        &self,
        workflow_id: &str,
        step_id: &str,
        statements: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.set_map(workflow_id, step_id, "copy_provenance", statements).await
    }

    async fn set_provenance(&self, workflow_id: &str, step_id: &str, envelope: &str, sbom: Option<&str>) -> Result<()> {
        // DynamoDB keeps at most 400 KB an item; the rest of the record needs some of it.
        let size = envelope.len() + sbom.map_or(0, str::len);
        if size > MAX_PROVENANCE_BYTES {
            return Err(Error::new(
                ErrorKind::Catalog,
                format!(
                    "step \"{step_id}\"'s statement and SBOM are {} KB; a DynamoDB item keeps at most {} KB of them",
                    size / 1000,
                    MAX_PROVENANCE_BYTES / 1000
                ),
            )
            .help("make the SBOM smaller (only the packages, without files), or use an SQLite catalog"));
        }
        let mut request = self
            .update_record(workflow_id, step_id)
            .expression_attribute_values(":provenance", AttributeValue::S(envelope.into()));
        request = match sbom {
            Some(sbom) => request
                .update_expression("SET provenance = :provenance, sbom = :sbom")
                .expression_attribute_values(":sbom", AttributeValue::S(sbom.into())),
            None => request.update_expression("SET provenance = :provenance REMOVE sbom"),
        };
        send_update(request, workflow_id, step_id).await
    }

    async fn add_test_run(
        &self,
        workflow_id: &str,
        step_id: &str,
        run: &TestRun,
        status: Option<ImageStatus>,
    ) -> Result<()> {
        let appended = |record: &ImageRecord| {
            let mut tests = record.tests.clone();
            tests.push(run.clone());
            Some((serde_json::to_string(&tests).expect("tests serialise"), status))
        };
        if self.rewrite_history(workflow_id, step_id, "tests", &appended).await? {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Catalog,
            format!(
                "the test history of step \"{step_id}\" of workflow \"{workflow_id}\" kept changing under this write"
            ),
        )
        .help("other paw runs are testing the same image: run `paw test` again when they are done"))
    }

    async fn add_override(&self, workflow_id: &str, step_id: &str, entry: &Override) -> Result<()> {
        let appended = |record: &ImageRecord| {
            let mut record = record.clone();
            let noted = record.note_override(entry);
            noted.then(|| (serde_json::to_string(&record.overrides).expect("overrides serialise"), None))
        };
        if self.rewrite_history(workflow_id, step_id, "overrides", &appended).await? {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Catalog,
            format!("the overrides of step \"{step_id}\" of workflow \"{workflow_id}\" kept changing under this write"),
        )
        .help("run the command again"))
    }

    async fn step_ids(&self) -> Result<Option<Vec<String>>> {
        Ok(None)
    }

    async fn list_name(&self, name: &str) -> Result<Vec<ImageRecord>> {
        self.query_index(NAME_INDEX, "workflow_name", name).await
    }

    async fn set_line(&self, workflow_id: &str, step_id: &str, line: &Line) -> Result<()> {
        let request = self
            .update_record(workflow_id, step_id)
            .expression_attribute_names("#variant", "variant")
            .expression_attribute_values(":name", AttributeValue::S(line.name.clone()));
        let request = match &line.variant {
            Some(variant) => request
                .update_expression("SET workflow_name = :name, #variant = :variant")
                .expression_attribute_values(":variant", AttributeValue::S(variant.clone())),
            None => request.update_expression("SET workflow_name = :name REMOVE #variant"),
        };
        send_update(request, workflow_id, step_id).await
    }
}

#[async_trait]
impl BuildJournal for DynamoCatalog {
    async fn begin_build(&self, entry: &InFlight) -> Result<Option<InFlight>> {
        if self.put_if(journal_item(entry), "attribute_not_exists(step_id)", &[]).await? {
            return Ok(None);
        }
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key(JOURNAL_KEY, &journal_key(&entry.workflow_id, &entry.step_id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| aws_error("dynamodb:GetItem", err))?;
        match output.item() {
            Some(item) => Ok(Some(from_entry_item(&self.table, item)?)),
            // Ended in between: the step is free, so try once more.
            None => Box::pin(self.begin_build(entry)).await,
        }
    }

    async fn renew_build(&self, entry: &InFlight) -> Result<bool> {
        self.put_if(journal_item(entry), "run_id = :run", &[(":run", &entry.run_id)]).await
    }

    async fn end_build(&self, entry: &InFlight) -> Result<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item_key(JOURNAL_KEY, &journal_key(&entry.workflow_id, &entry.step_id))))
            .condition_expression("run_id = :run")
            .expression_attribute_values(":run", AttributeValue::S(entry.run_id.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(aws_error("dynamodb:DeleteItem", err)),
        }
    }

    async fn builds_in_flight(&self, workflow_id: &str) -> Result<Vec<InFlight>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("workflow_id = :journal AND begins_with(step_id, :workflow)")
            .expression_attribute_values(":journal", AttributeValue::S(JOURNAL_KEY.into()))
            .expression_attribute_values(":workflow", AttributeValue::S(journal_key(workflow_id, "")))
            .consistent_read(true);
        all_items(query).await?.iter().map(|item| from_entry_item(&self.table, item)).collect()
    }
}

#[async_trait]
impl Channels for DynamoCatalog {
    async fn add_channel_entry(&self, entry: &ChannelEntry) -> Result<bool> {
        self.put_if(channel_item(entry), "attribute_not_exists(step_id)", &[]).await
    }

    async fn channel_entries(&self) -> Result<Vec<ChannelEntry>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("workflow_id = :channels")
            .expression_attribute_values(":channels", AttributeValue::S(CHANNELS_KEY.into()))
            .consistent_read(true);
        all_items(query).await?.iter().map(|item| from_entry_item(&self.table, item)).collect()
    }

    async fn channel_history(&self, line: &Line, channel: &str, step_id: &str) -> Result<Vec<ChannelEntry>> {
        let pointer = ChannelEntry::pointer(Some(line), channel, step_id);
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("workflow_id = :channels AND begins_with(step_id, :prefix)")
            .expression_attribute_values(":channels", AttributeValue::S(CHANNELS_KEY.into()))
            .expression_attribute_values(":prefix", AttributeValue::S(channel_key(&pointer, None)))
            .scan_index_forward(false)
            .consistent_read(true);
        all_items(query).await?.iter().map(|item| from_entry_item(&self.table, item)).collect()
    }
}

#[async_trait]
impl Catalog for DynamoCatalog {
    async fn schema(&self) -> Result<String> {
        let table = self.describe().await?;
        let table = table.as_ref();
        let status = table.and_then(|table| table.table_status()).map_or("unknown", |status| status.as_str());
        let indexes = INDEXES.iter().filter(|(index, _)| table.is_some_and(|table| has_index(table, index))).count();
        Ok(format!("table {status}, {indexes} of paw's {} indexes", INDEXES.len()))
    }
}
