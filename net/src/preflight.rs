//! A bounds check of every array count in a request body, run before kafka-protocol decodes it.
//!
//! Why: kafka-protocol 0.18 sizes every array it decodes with `Vec::with_capacity(count)`, the
//! count taken straight from the wire (`Array`/`CompactArray` in its `protocol/types.rs`). A
//! 20-byte Metadata request claiming 2^31 topics asks for ~150 GB before the first element is
//! read; the allocation fails and the process *aborts* (not a panic: nothing can catch it).
//! Upstream fixes are open but unreleased (kafka-protocol-rs PRs #152, #161, #200).
//!
//! What: [`check_body`] walks the body with the same layout and the same reading rules as
//! kafka-protocol's generated decoders (including which tagged fields it decodes in place and
//! how it reads a varint), skipping every value, and refuses an array whose count times the
//! smallest encoding of one element exceeds the bytes left. What kafka-protocol then allocates
//! for an array is therefore at most `size_of::<Element>() / element_bytes_min` times the
//! request's own size: memory stays proportional to bytes actually received, which
//! `socket.request.max.bytes` bounds.
//!
//! Contract: for every body kafka-protocol would decode, the walk succeeds (it is at least as
//! permissive, apart from impossible array counts) and ends where kafka-protocol's decode ends
//! (tests check both for every version of every served API). An API without a walk here is
//! refused ([`PreflightError::Uncovered`]), so adding an API to the served table without one
//! fails its tests instead of skipping the check.

use kafka_protocol::messages::ApiKey;

/// Why a body failed the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    /// The body ends inside a field.
    #[error("{field} at byte {at}: needs {needed} bytes, {available} left")]
    Truncated { field: &'static str, at: usize, needed: usize, available: usize },
    /// A length or count field holds a value no encoder writes (below -1).
    #[error("{field} at byte {at}: invalid length {length}")]
    BadLength { field: &'static str, at: usize, length: i64 },
    /// An array claims more elements than the bytes left could hold.
    #[error(
        "{field} at byte {at}: {count} elements of at least {element_bytes_min} bytes each \
         cannot fit in the {available} bytes left"
    )]
    ArrayTooLong {
        field: &'static str,
        at: usize,
        count: u64,
        element_bytes_min: usize,
        available: usize,
    },
    /// A tagged field that kafka-protocol refuses at this version.
    #[error("{field} at byte {at}: tag {tag} is not valid in version {version}")]
    BadTag { field: &'static str, at: usize, tag: u32, version: i16 },
    /// No walk exists for this API (a bug: every served API needs one).
    #[error("no bounds check is defined for {api:?}")]
    Uncovered { api: ApiKey },
}

type Result<T> = std::result::Result<T, PreflightError>;

/// Checks the body of a request (the bytes after its header) of `api` at `version`. Returns how
/// many bytes the body occupies; trailing bytes are not looked at (kafka-protocol, like Kafka,
/// ignores them).
pub fn check_body(api: ApiKey, version: i16, body: &[u8]) -> Result<usize> {
    // For every API walked here the body is flexible exactly when the header is v2.
    let flexible = api.request_header_version(version) >= 2;
    let mut r = Reader { buf: body, pos: 0, flexible };
    match api {
        ApiKey::ApiVersions => api_versions(&mut r, version)?,
        ApiKey::Metadata => metadata(&mut r, version)?,
        ApiKey::Produce => produce(&mut r, version)?,
        ApiKey::Fetch => fetch(&mut r, version)?,
        ApiKey::ListOffsets => list_offsets(&mut r, version)?,
        ApiKey::CreateTopics => create_topics(&mut r, version)?,
        ApiKey::DeleteTopics => delete_topics(&mut r, version)?,
        ApiKey::DescribeConfigs => describe_configs(&mut r, version)?,
        ApiKey::IncrementalAlterConfigs => incremental_alter_configs(&mut r, version)?,
        ApiKey::AlterConfigs => alter_configs(&mut r, version)?,
        ApiKey::CreatePartitions => create_partitions(&mut r, version)?,
        ApiKey::DeleteRecords => delete_records(&mut r, version)?,
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch(&mut r, version)?,
        ApiKey::DescribeCluster => describe_cluster(&mut r, version)?,
        ApiKey::FindCoordinator => find_coordinator(&mut r, version)?,
        ApiKey::InitProducerId => init_producer_id(&mut r, version)?,
        ApiKey::OffsetCommit => offset_commit(&mut r, version)?,
        ApiKey::OffsetFetch => offset_fetch(&mut r, version)?,
        ApiKey::JoinGroup => join_group(&mut r, version)?,
        ApiKey::Heartbeat => heartbeat(&mut r, version)?,
        ApiKey::LeaveGroup => leave_group(&mut r, version)?,
        ApiKey::SyncGroup => sync_group(&mut r, version)?,
        ApiKey::DescribeGroups => describe_groups(&mut r, version)?,
        ApiKey::ListGroups => list_groups(&mut r, version)?,
        ApiKey::DeleteGroups => delete_groups(&mut r, version)?,
        ApiKey::OffsetDelete => offset_delete(&mut r, version)?,
        ApiKey::DescribeQuorum => describe_quorum(&mut r, version)?,
        ApiKey::UnregisterBroker => {
            r.skip("UnregisterBroker.broker_id", I32)?;
            r.tagged_fields("UnregisterBroker")?
        }
        ApiKey::ElectLeaders => elect_leaders(&mut r, version)?,
        ApiKey::AlterPartitionReassignments => alter_partition_reassignments(&mut r, version)?,
        ApiKey::ListPartitionReassignments => list_partition_reassignments(&mut r, version)?,
        ApiKey::DescribeLogDirs => describe_log_dirs(&mut r, version)?,
        ApiKey::SaslHandshake => r.string("SaslHandshake.mechanism")?,
        ApiKey::SaslAuthenticate => {
            r.bytes("SaslAuthenticate.auth_bytes")?;
            r.tagged_fields("SaslAuthenticate")?
        }
        ApiKey::CreateAcls => {
            let creations = r.array("CreateAcls.creations", acl_min(&r))?;
            for _ in 0..creations {
                acl(&mut r, "CreateAcls.creations")?;
            }
            r.tagged_fields("CreateAcls")?
        }
        ApiKey::DescribeAcls => {
            acl(&mut r, "DescribeAcls")?;
        }
        ApiKey::DeleteAcls => {
            let filters = r.array("DeleteAcls.filters", acl_min(&r))?;
            for _ in 0..filters {
                acl(&mut r, "DeleteAcls.filters")?;
            }
            r.tagged_fields("DeleteAcls")?
        }
        ApiKey::DescribeUserScramCredentials => {
            let users =
                r.array("DescribeUserScramCredentials.users", r.string_min() + r.tags_min())?;
            for _ in 0..users {
                r.string("DescribeUserScramCredentials.users.name")?;
                r.tagged_fields("DescribeUserScramCredentials.users")?;
            }
            r.tagged_fields("DescribeUserScramCredentials")?
        }
        ApiKey::AlterUserScramCredentials => alter_user_scram_credentials(&mut r)?,
        ApiKey::DescribeClientQuotas => {
            let min = r.string_min() + I8 + r.string_min() + r.tags_min();
            let components = r.array("DescribeClientQuotas.components", min)?;
            for _ in 0..components {
                r.string("DescribeClientQuotas.components.entity_type")?;
                r.skip("DescribeClientQuotas.components.match_type", I8)?;
                r.string("DescribeClientQuotas.components.match")?;
                r.tagged_fields("DescribeClientQuotas.components")?;
            }
            r.skip("DescribeClientQuotas.strict", I8)?;
            r.tagged_fields("DescribeClientQuotas")?
        }
        ApiKey::AlterClientQuotas => alter_client_quotas(&mut r)?,
        ApiKey::AddPartitionsToTxn => add_partitions_to_txn(&mut r, version)?,
        ApiKey::AddOffsetsToTxn => add_offsets_to_txn(&mut r, version)?,
        ApiKey::EndTxn => end_txn(&mut r, version)?,
        ApiKey::TxnOffsetCommit => txn_offset_commit(&mut r, version)?,
        ApiKey::WriteTxnMarkers => write_txn_markers(&mut r, version)?,
        ApiKey::DescribeTransactions => describe_transactions(&mut r, version)?,
        ApiKey::ListTransactions => list_transactions(&mut r, version)?,
        _ => return Err(PreflightError::Uncovered { api }),
    }
    Ok(r.pos)
}

/// A length that is -1 (null) or non-negative; `None` for null.
fn nullable_len(field: &'static str, at: usize, length: i64) -> Result<Option<usize>> {
    match length {
        -1 => Ok(None),
        n => usize::try_from(n).map(Some).map_err(|_| PreflightError::BadLength {
            field,
            at,
            length,
        }),
    }
}

/// A cursor that reads the way kafka-protocol's decoders read, and checks every length.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Compact strings, bytes and arrays, and tagged-field sections (KIP-482).
    flexible: bool,
}

/// Encoded sizes of fixed-width fields.
const I8: usize = 1;
const I16: usize = 2;
const I32: usize = 4;
const I64: usize = 8;
const UUID: usize = 16;

impl Reader<'_> {
    fn available(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, field: &'static str, n: usize) -> Result<&[u8]> {
        let available = self.available();
        if n > available {
            return Err(PreflightError::Truncated { field, at: self.pos, needed: n, available });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    fn skip(&mut self, field: &'static str, n: usize) -> Result<()> {
        self.take(field, n).map(|_| ())
    }

    fn i16(&mut self, field: &'static str) -> Result<i16> {
        let b = self.take(field, I16)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32> {
        let b = self.take(field, I32)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// kafka-protocol's `UnsignedVarInt`: at most 5 bytes, bits beyond 32 dropped, and a
    /// continuation bit on the fifth byte ignored. Reading it any other way would lose step
    /// with the decoder that runs after this check.
    fn uvarint(&mut self, field: &'static str) -> Result<u32> {
        let mut value = 0u32;
        for i in 0..5 {
            let b = u32::from(self.take(field, 1)?[0]);
            value |= (b & 0x7F) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// `STRING`/`NULLABLE_STRING` (int16 length) or their compact forms (varint length + 1).
    fn string(&mut self, field: &'static str) -> Result<()> {
        let at = self.pos;
        let len = if self.flexible {
            usize::try_from(self.uvarint(field)?).ok().and_then(|n| n.checked_sub(1))
        } else {
            let n = self.i16(field)?;
            nullable_len(field, at, i64::from(n))?
        };
        self.skip(field, len.unwrap_or(0))
    }

    /// `BYTES`/`NULLABLE_BYTES` (int32 length) or their compact forms.
    fn bytes(&mut self, field: &'static str) -> Result<()> {
        let at = self.pos;
        let len = if self.flexible {
            usize::try_from(self.uvarint(field)?).ok().and_then(|n| n.checked_sub(1))
        } else {
            let n = self.i32(field)?;
            nullable_len(field, at, i64::from(n))?
        };
        self.skip(field, len.unwrap_or(0))
    }

    /// An array's element count (0 for a null array), refused when `count` elements of at
    /// least `element_bytes_min` bytes cannot fit in what is left.
    fn array(&mut self, field: &'static str, element_bytes_min: usize) -> Result<usize> {
        debug_assert!(element_bytes_min > 0, "{field}: every element occupies bytes");
        let at = self.pos;
        let count: u64 = if self.flexible {
            u64::from(self.uvarint(field)?).saturating_sub(1)
        } else {
            let n = self.i32(field)?;
            nullable_len(field, at, i64::from(n))?.map_or(0, |n| n as u64)
        };
        let available = self.available();
        let needed = count.saturating_mul(element_bytes_min as u64);
        if needed > available as u64 {
            return Err(PreflightError::ArrayTooLong {
                field,
                at,
                count,
                element_bytes_min,
                available,
            });
        }
        // `count <= available`, so it fits a usize.
        Ok(count as usize)
    }

    /// A tagged-field section (flexible versions only) in which kafka-protocol knows no tag:
    /// each field is skipped by its size.
    fn tagged_fields(&mut self, field: &'static str) -> Result<()> {
        self.tagged_fields_with(field, |_, _| Ok(false))
    }

    /// A tagged-field section where `known(reader, tag)` reads the fields kafka-protocol decodes
    /// in place (it ignores their declared size, so this must too) and returns `true`, or
    /// returns `false` to skip the field by its size.
    fn tagged_fields_with(
        &mut self,
        field: &'static str,
        mut known: impl FnMut(&mut Self, u32) -> Result<bool>,
    ) -> Result<()> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint(field)?;
        for _ in 0..count {
            let tag = self.uvarint(field)?;
            let size = self.uvarint(field)?;
            if !known(self, tag)? {
                self.skip(field, size as usize)?;
            }
        }
        Ok(())
    }

    fn string_min(&self) -> usize {
        if self.flexible { 1 } else { I16 }
    }

    fn bytes_min(&self) -> usize {
        if self.flexible { 1 } else { I32 }
    }

    fn array_min(&self) -> usize {
        if self.flexible { 1 } else { I32 }
    }

    fn tags_min(&self) -> usize {
        usize::from(self.flexible)
    }
}

fn api_versions(r: &mut Reader<'_>, v: i16) -> Result<()> {
    if v >= 3 {
        r.string("ApiVersions.client_software_name")?;
        r.string("ApiVersions.client_software_version")?;
    }
    r.tagged_fields("ApiVersions")
}

fn metadata(r: &mut Reader<'_>, v: i16) -> Result<()> {
    let topics = r.array("Metadata.topics", metadata_topic_min(r, v))?;
    for _ in 0..topics {
        if v >= 10 {
            r.skip("Metadata.topics.topic_id", UUID)?;
        }
        r.string("Metadata.topics.name")?;
        r.tagged_fields("Metadata.topics")?;
    }
    if v >= 4 {
        r.skip("Metadata.allow_auto_topic_creation", I8)?;
    }
    if (8..=10).contains(&v) {
        r.skip("Metadata.include_cluster_authorized_operations", I8)?;
    }
    if v >= 8 {
        r.skip("Metadata.include_topic_authorized_operations", I8)?;
    }
    r.tagged_fields("Metadata")
}

fn metadata_topic_min(r: &Reader<'_>, v: i16) -> usize {
    (if v >= 10 { UUID } else { 0 }) + r.string_min() + r.tags_min()
}

fn produce(r: &mut Reader<'_>, v: i16) -> Result<()> {
    r.string("Produce.transactional_id")?;
    r.skip("Produce.acks", I16)?;
    r.skip("Produce.timeout_ms", I32)?;
    let topics = r.array("Produce.topic_data", produce_topic_min(r, v))?;
    for _ in 0..topics {
        if v <= 12 {
            r.string("Produce.topic_data.name")?;
        } else {
            r.skip("Produce.topic_data.topic_id", UUID)?;
        }
        let partitions = r.array("Produce.partition_data", produce_partition_min(r))?;
        for _ in 0..partitions {
            r.skip("Produce.partition_data.index", I32)?;
            r.bytes("Produce.partition_data.records")?;
            r.tagged_fields("Produce.partition_data")?;
        }
        r.tagged_fields("Produce.topic_data")?;
    }
    r.tagged_fields("Produce")
}

fn produce_topic_min(r: &Reader<'_>, v: i16) -> usize {
    (if v <= 12 { r.string_min() } else { UUID }) + r.array_min() + r.tags_min()
}

fn produce_partition_min(r: &Reader<'_>) -> usize {
    I32 + r.bytes_min() + r.tags_min()
}

fn fetch(r: &mut Reader<'_>, v: i16) -> Result<()> {
    if v <= 14 {
        r.skip("Fetch.replica_id", I32)?;
    }
    r.skip("Fetch.max_wait_ms", I32)?;
    r.skip("Fetch.min_bytes", I32)?;
    r.skip("Fetch.max_bytes", I32)?;
    r.skip("Fetch.isolation_level", I8)?;
    if v >= 7 {
        r.skip("Fetch.session_id", I32)?;
        r.skip("Fetch.session_epoch", I32)?;
    }
    let topics = r.array("Fetch.topics", fetch_topic_min(r, v))?;
    for _ in 0..topics {
        fetch_topic(r, v)?;
    }
    if v >= 7 {
        let forgotten = r.array("Fetch.forgotten_topics_data", forgotten_topic_min(r, v))?;
        for _ in 0..forgotten {
            if v <= 12 {
                r.string("Fetch.forgotten_topics_data.topic")?;
            } else {
                r.skip("Fetch.forgotten_topics_data.topic_id", UUID)?;
            }
            let partitions = r.array("Fetch.forgotten_topics_data.partitions", I32)?;
            r.skip("Fetch.forgotten_topics_data.partitions", partitions * I32)?;
            r.tagged_fields("Fetch.forgotten_topics_data")?;
        }
    }
    if v >= 11 {
        r.string("Fetch.rack_id")?;
    }
    r.tagged_fields_with("Fetch", |r, tag| match tag {
        // cluster_id: a compact nullable string, in every flexible version.
        0 => r.string("Fetch.cluster_id").map(|()| true),
        // replica_state: `{replica_id int32, replica_epoch int64, tagged fields}` from v15.
        1 if v >= 15 => {
            r.skip("Fetch.replica_state.replica_id", I32)?;
            r.skip("Fetch.replica_state.replica_epoch", I64)?;
            r.tagged_fields("Fetch.replica_state").map(|()| true)
        }
        1 => Err(PreflightError::BadTag { field: "Fetch", at: r.pos, tag, version: v }),
        _ => Ok(false),
    })
}

fn fetch_topic(r: &mut Reader<'_>, v: i16) -> Result<()> {
    if v <= 12 {
        r.string("Fetch.topics.topic")?;
    } else {
        r.skip("Fetch.topics.topic_id", UUID)?;
    }
    let partitions = r.array("Fetch.topics.partitions", fetch_partition_min(r, v))?;
    for _ in 0..partitions {
        r.skip("Fetch.partitions.partition", I32)?;
        if v >= 9 {
            r.skip("Fetch.partitions.current_leader_epoch", I32)?;
        }
        r.skip("Fetch.partitions.fetch_offset", I64)?;
        if v >= 12 {
            r.skip("Fetch.partitions.last_fetched_epoch", I32)?;
        }
        if v >= 5 {
            r.skip("Fetch.partitions.log_start_offset", I64)?;
        }
        r.skip("Fetch.partitions.partition_max_bytes", I32)?;
        r.tagged_fields_with("Fetch.partitions", |r, tag| match tag {
            0 if v >= 17 => r.skip("Fetch.partitions.replica_directory_id", UUID).map(|()| true),
            1 if v >= 18 => r.skip("Fetch.partitions.high_watermark", I64).map(|()| true),
            0 | 1 => Err(PreflightError::BadTag {
                field: "Fetch.partitions",
                at: r.pos,
                tag,
                version: v,
            }),
            _ => Ok(false),
        })?;
    }
    r.tagged_fields("Fetch.topics")
}

fn fetch_topic_min(r: &Reader<'_>, v: i16) -> usize {
    (if v <= 12 { r.string_min() } else { UUID }) + r.array_min() + r.tags_min()
}

fn fetch_partition_min(r: &Reader<'_>, v: i16) -> usize {
    I32 + (if v >= 9 { I32 } else { 0 })
        + I64
        + (if v >= 12 { I32 } else { 0 })
        + (if v >= 5 { I64 } else { 0 })
        + I32
        + r.tags_min()
}

fn forgotten_topic_min(r: &Reader<'_>, v: i16) -> usize {
    (if v <= 12 { r.string_min() } else { UUID }) + r.array_min() + r.tags_min()
}

fn list_offsets(r: &mut Reader<'_>, v: i16) -> Result<()> {
    r.skip("ListOffsets.replica_id", I32)?;
    if v >= 2 {
        r.skip("ListOffsets.isolation_level", I8)?;
    }
    let topics = r.array("ListOffsets.topics", list_offsets_topic_min(r))?;
    for _ in 0..topics {
        r.string("ListOffsets.topics.name")?;
        let partitions =
            r.array("ListOffsets.topics.partitions", list_offsets_partition_min(r, v))?;
        for _ in 0..partitions {
            r.skip("ListOffsets.partitions.partition_index", I32)?;
            if v >= 4 {
                r.skip("ListOffsets.partitions.current_leader_epoch", I32)?;
            }
            r.skip("ListOffsets.partitions.timestamp", I64)?;
            r.tagged_fields("ListOffsets.partitions")?;
        }
        r.tagged_fields("ListOffsets.topics")?;
    }
    if v >= 10 {
        r.skip("ListOffsets.timeout_ms", I32)?;
    }
    r.tagged_fields("ListOffsets")
}

fn list_offsets_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min() + r.tags_min()
}

fn list_offsets_partition_min(r: &Reader<'_>, v: i16) -> usize {
    I32 + (if v >= 4 { I32 } else { 0 }) + I64 + r.tags_min()
}

fn create_topics(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    let topics = r.array("CreateTopics.topics", create_topics_topic_min(r))?;
    for _ in 0..topics {
        r.string("CreateTopics.topics.name")?;
        r.skip("CreateTopics.topics.num_partitions", I32)?;
        r.skip("CreateTopics.topics.replication_factor", I16)?;
        let assignments =
            r.array("CreateTopics.topics.assignments", create_topics_assignment_min(r))?;
        for _ in 0..assignments {
            r.skip("CreateTopics.assignments.partition_index", I32)?;
            let brokers = r.array("CreateTopics.assignments.broker_ids", I32)?;
            r.skip("CreateTopics.assignments.broker_ids", brokers * I32)?;
            r.tagged_fields("CreateTopics.assignments")?;
        }
        let configs = r.array("CreateTopics.topics.configs", create_topics_config_min(r))?;
        for _ in 0..configs {
            r.string("CreateTopics.configs.name")?;
            r.string("CreateTopics.configs.value")?;
            r.tagged_fields("CreateTopics.configs")?;
        }
        r.tagged_fields("CreateTopics.topics")?;
    }
    r.skip("CreateTopics.timeout_ms", I32)?;
    r.skip("CreateTopics.validate_only", I8)?;
    r.tagged_fields("CreateTopics")
}

fn create_topics_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + I32 + I16 + r.array_min() + r.array_min() + r.tags_min()
}

fn create_topics_assignment_min(r: &Reader<'_>) -> usize {
    I32 + r.array_min() + r.tags_min()
}

fn create_topics_config_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.string_min() + r.tags_min()
}

fn delete_topics(r: &mut Reader<'_>, v: i16) -> Result<()> {
    if v >= 6 {
        let topics = r.array("DeleteTopics.topics", delete_topics_state_min(r))?;
        for _ in 0..topics {
            r.string("DeleteTopics.topics.name")?;
            r.skip("DeleteTopics.topics.topic_id", UUID)?;
            r.tagged_fields("DeleteTopics.topics")?;
        }
    } else {
        let names = r.array("DeleteTopics.topic_names", r.string_min())?;
        for _ in 0..names {
            r.string("DeleteTopics.topic_names")?;
        }
    }
    r.skip("DeleteTopics.timeout_ms", I32)?;
    r.tagged_fields("DeleteTopics")
}

fn delete_topics_state_min(r: &Reader<'_>) -> usize {
    r.string_min() + UUID + r.tags_min()
}

fn describe_configs(r: &mut Reader<'_>, v: i16) -> Result<()> {
    let resources = r.array("DescribeConfigs.resources", describe_configs_resource_min(r))?;
    for _ in 0..resources {
        r.skip("DescribeConfigs.resources.resource_type", I8)?;
        r.string("DescribeConfigs.resources.resource_name")?;
        // Nullable (null: every key); `array` reads null as 0 elements.
        let keys = r.array("DescribeConfigs.resources.configuration_keys", r.string_min())?;
        for _ in 0..keys {
            r.string("DescribeConfigs.resources.configuration_keys")?;
        }
        r.tagged_fields("DescribeConfigs.resources")?;
    }
    r.skip("DescribeConfigs.include_synonyms", I8)?;
    if v >= 3 {
        r.skip("DescribeConfigs.include_documentation", I8)?;
    }
    r.tagged_fields("DescribeConfigs")
}

fn describe_configs_resource_min(r: &Reader<'_>) -> usize {
    I8 + r.string_min() + r.array_min() + r.tags_min()
}

fn incremental_alter_configs(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    let resources = r.array("IncrementalAlterConfigs.resources", alter_configs_resource_min(r))?;
    for _ in 0..resources {
        r.skip("IncrementalAlterConfigs.resources.resource_type", I8)?;
        r.string("IncrementalAlterConfigs.resources.resource_name")?;
        let configs =
            r.array("IncrementalAlterConfigs.resources.configs", alterable_config_min(r))?;
        for _ in 0..configs {
            r.string("IncrementalAlterConfigs.configs.name")?;
            r.skip("IncrementalAlterConfigs.configs.config_operation", I8)?;
            r.string("IncrementalAlterConfigs.configs.value")?;
            r.tagged_fields("IncrementalAlterConfigs.configs")?;
        }
        r.tagged_fields("IncrementalAlterConfigs.resources")?;
    }
    r.skip("IncrementalAlterConfigs.validate_only", I8)?;
    r.tagged_fields("IncrementalAlterConfigs")
}

fn alter_configs(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    let resources = r.array("AlterConfigs.resources", alter_configs_resource_min(r))?;
    for _ in 0..resources {
        r.skip("AlterConfigs.resources.resource_type", I8)?;
        r.string("AlterConfigs.resources.resource_name")?;
        let configs = r.array("AlterConfigs.resources.configs", legacy_alterable_config_min(r))?;
        for _ in 0..configs {
            r.string("AlterConfigs.configs.name")?;
            r.string("AlterConfigs.configs.value")?;
            r.tagged_fields("AlterConfigs.configs")?;
        }
        r.tagged_fields("AlterConfigs.resources")?;
    }
    r.skip("AlterConfigs.validate_only", I8)?;
    r.tagged_fields("AlterConfigs")
}

/// An AlterConfigs (API 33) config: a name and a value, no operation.
fn legacy_alterable_config_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.string_min() + r.tags_min()
}

fn alter_configs_resource_min(r: &Reader<'_>) -> usize {
    I8 + r.string_min() + r.array_min() + r.tags_min()
}

fn alterable_config_min(r: &Reader<'_>) -> usize {
    r.string_min() + I8 + r.string_min() + r.tags_min()
}

fn create_partitions(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    let topics = r.array("CreatePartitions.topics", create_partitions_topic_min(r))?;
    for _ in 0..topics {
        r.string("CreatePartitions.topics.name")?;
        r.skip("CreatePartitions.topics.count", I32)?;
        // Nullable (null: the broker places the new partitions).
        let assignments =
            r.array("CreatePartitions.topics.assignments", create_partitions_assignment_min(r))?;
        for _ in 0..assignments {
            let brokers = r.array("CreatePartitions.assignments.broker_ids", I32)?;
            r.skip("CreatePartitions.assignments.broker_ids", brokers * I32)?;
            r.tagged_fields("CreatePartitions.assignments")?;
        }
        r.tagged_fields("CreatePartitions.topics")?;
    }
    r.skip("CreatePartitions.timeout_ms", I32)?;
    r.skip("CreatePartitions.validate_only", I8)?;
    r.tagged_fields("CreatePartitions")
}

fn create_partitions_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + I32 + r.array_min() + r.tags_min()
}

fn create_partitions_assignment_min(r: &Reader<'_>) -> usize {
    r.array_min() + r.tags_min()
}

fn delete_records(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    let topics = r.array("DeleteRecords.topics", delete_records_topic_min(r))?;
    for _ in 0..topics {
        r.string("DeleteRecords.topics.name")?;
        let partitions =
            r.array("DeleteRecords.topics.partitions", delete_records_partition_min(r))?;
        for _ in 0..partitions {
            r.skip("DeleteRecords.partitions.partition_index", I32)?;
            r.skip("DeleteRecords.partitions.offset", I64)?;
            r.tagged_fields("DeleteRecords.partitions")?;
        }
        r.tagged_fields("DeleteRecords.topics")?;
    }
    r.skip("DeleteRecords.timeout_ms", I32)?;
    r.tagged_fields("DeleteRecords")
}

fn delete_records_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min() + r.tags_min()
}

fn delete_records_partition_min(r: &Reader<'_>) -> usize {
    I32 + I64 + r.tags_min()
}

fn offset_for_leader_epoch(r: &mut Reader<'_>, v: i16) -> Result<()> {
    if v >= 3 {
        r.skip("OffsetForLeaderEpoch.replica_id", I32)?;
    }
    let topics = r.array("OffsetForLeaderEpoch.topics", offset_for_leader_topic_min(r))?;
    for _ in 0..topics {
        r.string("OffsetForLeaderEpoch.topics.topic")?;
        let partitions =
            r.array("OffsetForLeaderEpoch.topics.partitions", offset_for_leader_partition_min(r))?;
        for _ in 0..partitions {
            r.skip("OffsetForLeaderEpoch.partitions.partition", I32)?;
            r.skip("OffsetForLeaderEpoch.partitions.current_leader_epoch", I32)?;
            r.skip("OffsetForLeaderEpoch.partitions.leader_epoch", I32)?;
            r.tagged_fields("OffsetForLeaderEpoch.partitions")?;
        }
        r.tagged_fields("OffsetForLeaderEpoch.topics")?;
    }
    r.tagged_fields("OffsetForLeaderEpoch")
}

fn offset_for_leader_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min() + r.tags_min()
}

fn offset_for_leader_partition_min(r: &Reader<'_>) -> usize {
    I32 + I32 + I32 + r.tags_min()
}

/// Flexible in every version (request header v2 from v0), and no arrays.
fn describe_cluster(r: &mut Reader<'_>, v: i16) -> Result<()> {
    r.skip("DescribeCluster.include_cluster_authorized_operations", I8)?;
    if v >= 1 {
        r.skip("DescribeCluster.endpoint_type", I8)?;
    }
    if v >= 2 {
        r.skip("DescribeCluster.include_fenced_brokers", I8)?;
    }
    r.tagged_fields("DescribeCluster")
}

/// Flexible from v3. v0–v3 name one `key` (a non-null string; a null one is left for
/// kafka-protocol to refuse), v4+ a `coordinator_keys` array instead (KIP-699).
fn find_coordinator(r: &mut Reader<'_>, v: i16) -> Result<()> {
    if v <= 3 {
        r.string("FindCoordinator.key")?;
    }
    if v >= 1 {
        r.skip("FindCoordinator.key_type", I8)?;
    }
    if v >= 4 {
        let keys = r.array("FindCoordinator.coordinator_keys", r.string_min())?;
        for _ in 0..keys {
            r.string("FindCoordinator.coordinator_keys")?;
        }
    }
    r.tagged_fields("FindCoordinator")
}

/// Flexible from v2, and no arrays. `transactional_id` is a nullable string (null: an idempotent
/// producer without transactions); v3+ add `producer_id`/`producer_epoch` (KIP-360). v4 and v5
/// have v3's layout. kafka-protocol 0.18 decodes nothing above v5, and in place no tagged field.
fn init_producer_id(r: &mut Reader<'_>, v: i16) -> Result<()> {
    r.string("InitProducerId.transactional_id")?;
    r.skip("InitProducerId.transaction_timeout_ms", I32)?;
    if v >= 3 {
        r.skip("InitProducerId.producer_id", I64)?;
        r.skip("InitProducerId.producer_epoch", I16)?;
    }
    r.tagged_fields("InitProducerId")
}

/// v2–v9 (kafka-protocol decodes nothing else), flexible from v8. `retention_time_ms` is in
/// v2–v4 only, `committed_leader_epoch` from v6, `group_instance_id` from v7; v9 has v8's layout.
/// The generation (`generation_id_or_member_epoch`) is there in every decoded version (v1+).
fn offset_commit(r: &mut Reader<'_>, v: i16) -> Result<()> {
    r.string("OffsetCommit.group_id")?;
    r.skip("OffsetCommit.generation_id_or_member_epoch", I32)?;
    r.string("OffsetCommit.member_id")?;
    if v >= 7 {
        r.string("OffsetCommit.group_instance_id")?;
    }
    if v <= 4 {
        r.skip("OffsetCommit.retention_time_ms", I64)?;
    }
    let topics = r.array("OffsetCommit.topics", offset_commit_topic_min(r))?;
    for _ in 0..topics {
        r.string("OffsetCommit.topics.name")?;
        let partitions =
            r.array("OffsetCommit.topics.partitions", offset_commit_partition_min(r, v))?;
        for _ in 0..partitions {
            r.skip("OffsetCommit.partitions.partition_index", I32)?;
            r.skip("OffsetCommit.partitions.committed_offset", I64)?;
            if v >= 6 {
                r.skip("OffsetCommit.partitions.committed_leader_epoch", I32)?;
            }
            r.string("OffsetCommit.partitions.committed_metadata")?;
            r.tagged_fields("OffsetCommit.partitions")?;
        }
        r.tagged_fields("OffsetCommit.topics")?;
    }
    r.tagged_fields("OffsetCommit")
}

fn offset_commit_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min() + r.tags_min()
}

fn offset_commit_partition_min(r: &Reader<'_>, v: i16) -> usize {
    I32 + I64 + (if v >= 6 { I32 } else { 0 }) + r.string_min() + r.tags_min()
}

/// v1–v9, flexible from v6. v1–v7 name one `group_id` and its `topics` (nullable:
/// kafka-protocol reads a null array in every version, though Kafka allows one only from v2);
/// v8+ a `groups` batch instead (KIP-709), each with its own nullable `topics`, and from v9 a
/// `member_id`/`member_epoch` (KIP-848).
fn offset_fetch(r: &mut Reader<'_>, v: i16) -> Result<()> {
    if v <= 7 {
        r.string("OffsetFetch.group_id")?;
        let topics = r.array("OffsetFetch.topics", offset_fetch_topic_min(r))?;
        for _ in 0..topics {
            r.string("OffsetFetch.topics.name")?;
            let partitions = r.array("OffsetFetch.topics.partition_indexes", I32)?;
            r.skip("OffsetFetch.topics.partition_indexes", partitions * I32)?;
            r.tagged_fields("OffsetFetch.topics")?;
        }
    } else {
        let groups = r.array("OffsetFetch.groups", offset_fetch_group_min(r, v))?;
        for _ in 0..groups {
            r.string("OffsetFetch.groups.group_id")?;
            if v >= 9 {
                r.string("OffsetFetch.groups.member_id")?;
                r.skip("OffsetFetch.groups.member_epoch", I32)?;
            }
            let topics = r.array("OffsetFetch.groups.topics", offset_fetch_topic_min(r))?;
            for _ in 0..topics {
                r.string("OffsetFetch.groups.topics.name")?;
                let partitions = r.array("OffsetFetch.groups.topics.partition_indexes", I32)?;
                r.skip("OffsetFetch.groups.topics.partition_indexes", partitions * I32)?;
                r.tagged_fields("OffsetFetch.groups.topics")?;
            }
            r.tagged_fields("OffsetFetch.groups")?;
        }
    }
    if v >= 7 {
        r.skip("OffsetFetch.require_stable", I8)?;
    }
    r.tagged_fields("OffsetFetch")
}

/// A topic of v1–v7 (`OffsetFetchRequestTopic`) or of a v8+ group (`OffsetFetchRequestTopics`):
/// the same layout, a name and an int32 array.
fn offset_fetch_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min() + r.tags_min()
}

fn offset_fetch_group_min(r: &Reader<'_>, v: i16) -> usize {
    r.string_min() + (if v >= 9 { r.string_min() + I32 } else { 0 }) + r.array_min() + r.tags_min()
}

/// v0–v9, flexible from v6. `rebalance_timeout_ms` from v1, `group_instance_id` from v5, and
/// `reason` (KIP-800) from v8, *after* the protocols.
fn join_group(r: &mut Reader<'_>, v: i16) -> Result<()> {
    r.string("JoinGroup.group_id")?;
    r.skip("JoinGroup.session_timeout_ms", I32)?;
    if v >= 1 {
        r.skip("JoinGroup.rebalance_timeout_ms", I32)?;
    }
    r.string("JoinGroup.member_id")?;
    if v >= 5 {
        r.string("JoinGroup.group_instance_id")?;
    }
    r.string("JoinGroup.protocol_type")?;
    let protocols = r.array("JoinGroup.protocols", join_group_protocol_min(r))?;
    for _ in 0..protocols {
        r.string("JoinGroup.protocols.name")?;
        r.bytes("JoinGroup.protocols.metadata")?;
        r.tagged_fields("JoinGroup.protocols")?;
    }
    if v >= 8 {
        r.string("JoinGroup.reason")?;
    }
    r.tagged_fields("JoinGroup")
}

fn join_group_protocol_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.bytes_min() + r.tags_min()
}

/// v0–v4, flexible from v4, and no arrays. `group_instance_id` from v3.
fn heartbeat(r: &mut Reader<'_>, v: i16) -> Result<()> {
    r.string("Heartbeat.group_id")?;
    r.skip("Heartbeat.generation_id", I32)?;
    r.string("Heartbeat.member_id")?;
    if v >= 3 {
        r.string("Heartbeat.group_instance_id")?;
    }
    r.tagged_fields("Heartbeat")
}

/// v0–v5, flexible from v4. v0–v2 name one `member_id`, v3+ a `members` batch instead
/// (KIP-345), each with a `reason` from v5 (KIP-800).
fn leave_group(r: &mut Reader<'_>, v: i16) -> Result<()> {
    r.string("LeaveGroup.group_id")?;
    if v <= 2 {
        r.string("LeaveGroup.member_id")?;
    } else {
        let members = r.array("LeaveGroup.members", leave_group_member_min(r, v))?;
        for _ in 0..members {
            r.string("LeaveGroup.members.member_id")?;
            r.string("LeaveGroup.members.group_instance_id")?;
            if v >= 5 {
                r.string("LeaveGroup.members.reason")?;
            }
            r.tagged_fields("LeaveGroup.members")?;
        }
    }
    r.tagged_fields("LeaveGroup")
}

fn leave_group_member_min(r: &Reader<'_>, v: i16) -> usize {
    r.string_min() + r.string_min() + (if v >= 5 { r.string_min() } else { 0 }) + r.tags_min()
}

/// v0–v5, flexible from v4. `group_instance_id` from v3, `protocol_type`/`protocol_name` from
/// v5 (KIP-559).
fn sync_group(r: &mut Reader<'_>, v: i16) -> Result<()> {
    r.string("SyncGroup.group_id")?;
    r.skip("SyncGroup.generation_id", I32)?;
    r.string("SyncGroup.member_id")?;
    if v >= 3 {
        r.string("SyncGroup.group_instance_id")?;
    }
    if v >= 5 {
        r.string("SyncGroup.protocol_type")?;
        r.string("SyncGroup.protocol_name")?;
    }
    let assignments = r.array("SyncGroup.assignments", sync_group_assignment_min(r))?;
    for _ in 0..assignments {
        r.string("SyncGroup.assignments.member_id")?;
        r.bytes("SyncGroup.assignments.assignment")?;
        r.tagged_fields("SyncGroup.assignments")?;
    }
    r.tagged_fields("SyncGroup")
}

fn sync_group_assignment_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.bytes_min() + r.tags_min()
}

/// v0–v6, flexible from v5: an array of group ids, and `include_authorized_operations` from v3.
fn describe_groups(r: &mut Reader<'_>, v: i16) -> Result<()> {
    let groups = r.array("DescribeGroups.groups", r.string_min())?;
    for _ in 0..groups {
        r.string("DescribeGroups.groups")?;
    }
    if v >= 3 {
        r.skip("DescribeGroups.include_authorized_operations", I8)?;
    }
    r.tagged_fields("DescribeGroups")
}

/// v0–v5, flexible from v3. v0–v3 have an empty body (v3 only its tagged fields); v4 adds
/// `states_filter` (KIP-518), v5 `types_filter` (KIP-848), both arrays of strings.
fn list_groups(r: &mut Reader<'_>, v: i16) -> Result<()> {
    if v >= 4 {
        let states = r.array("ListGroups.states_filter", r.string_min())?;
        for _ in 0..states {
            r.string("ListGroups.states_filter")?;
        }
    }
    if v >= 5 {
        let types = r.array("ListGroups.types_filter", r.string_min())?;
        for _ in 0..types {
            r.string("ListGroups.types_filter")?;
        }
    }
    r.tagged_fields("ListGroups")
}

/// v0–v2, flexible from v2: an array of group ids.
fn delete_groups(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    let groups = r.array("DeleteGroups.groups_names", r.string_min())?;
    for _ in 0..groups {
        r.string("DeleteGroups.groups_names")?;
    }
    r.tagged_fields("DeleteGroups")
}

/// v0 only, never flexible (no tagged fields anywhere).
fn offset_delete(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    r.string("OffsetDelete.group_id")?;
    let topics = r.array("OffsetDelete.topics", offset_delete_topic_min(r))?;
    for _ in 0..topics {
        r.string("OffsetDelete.topics.name")?;
        // Each partition is a struct of one int32 (`partition_index`).
        let partitions = r.array("OffsetDelete.topics.partitions", I32)?;
        r.skip("OffsetDelete.topics.partitions", partitions * I32)?;
    }
    Ok(())
}

fn offset_delete_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min()
}

/// v0–v2, flexible from v0: topics, each a name and partitions of one int32.
fn describe_quorum(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    let topics = r.array("DescribeQuorum.topics", describe_quorum_topic_min(r))?;
    for _ in 0..topics {
        r.string("DescribeQuorum.topics.topic_name")?;
        let partitions =
            r.array("DescribeQuorum.topics.partitions", describe_quorum_partition_min(r))?;
        for _ in 0..partitions {
            r.skip("DescribeQuorum.partitions.partition_index", I32)?;
            r.tagged_fields("DescribeQuorum.partitions")?;
        }
        r.tagged_fields("DescribeQuorum.topics")?;
    }
    r.tagged_fields("DescribeQuorum")
}

fn describe_quorum_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min() + r.tags_min()
}

fn describe_quorum_partition_min(r: &Reader<'_>) -> usize {
    I32 + r.tags_min()
}

/// v0–v2, flexible from v2: election type (v1+), topic partitions (nullable: every
/// partition), each a topic and its partition numbers, then the timeout.
fn elect_leaders(r: &mut Reader<'_>, v: i16) -> Result<()> {
    if v >= 1 {
        r.skip("ElectLeaders.election_type", I8)?;
    }
    let topics = r.array("ElectLeaders.topic_partitions", elect_leaders_topic_min(r))?;
    for _ in 0..topics {
        r.string("ElectLeaders.topic_partitions.topic")?;
        let partitions = r.array("ElectLeaders.topic_partitions.partitions", I32)?;
        r.skip("ElectLeaders.topic_partitions.partitions", partitions * I32)?;
        r.tagged_fields("ElectLeaders.topic_partitions")?;
    }
    r.skip("ElectLeaders.timeout_ms", I32)?;
    r.tagged_fields("ElectLeaders")
}

fn elect_leaders_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min() + r.tags_min()
}

/// v0, flexible: timeout, topics, each a name and partitions, each an index and its target
/// replicas (nullable: cancel).
fn alter_partition_reassignments(r: &mut Reader<'_>, v: i16) -> Result<()> {
    r.skip("AlterPartitionReassignments.timeout_ms", I32)?;
    if v >= 1 {
        r.skip("AlterPartitionReassignments.allow_replication_factor_change", I8)?;
    }
    let topics = r.array("AlterPartitionReassignments.topics", reassignable_topic_min(r))?;
    for _ in 0..topics {
        r.string("AlterPartitionReassignments.topics.name")?;
        let partitions = r.array(
            "AlterPartitionReassignments.topics.partitions",
            reassignable_partition_min(r),
        )?;
        for _ in 0..partitions {
            r.skip("AlterPartitionReassignments.partitions.partition_index", I32)?;
            let replicas = r.array("AlterPartitionReassignments.partitions.replicas", I32)?;
            r.skip("AlterPartitionReassignments.partitions.replicas", replicas * I32)?;
            r.tagged_fields("AlterPartitionReassignments.partitions")?;
        }
        r.tagged_fields("AlterPartitionReassignments.topics")?;
    }
    r.tagged_fields("AlterPartitionReassignments")
}

fn reassignable_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min() + r.tags_min()
}

fn reassignable_partition_min(r: &Reader<'_>) -> usize {
    I32 + r.array_min() + r.tags_min()
}

/// v0, flexible: timeout, topics (nullable: every reassignment), each a name and partition
/// numbers.
fn list_partition_reassignments(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    r.skip("ListPartitionReassignments.timeout_ms", I32)?;
    let topics = r.array("ListPartitionReassignments.topics", list_reassignments_topic_min(r))?;
    for _ in 0..topics {
        r.string("ListPartitionReassignments.topics.name")?;
        let partitions = r.array("ListPartitionReassignments.topics.partition_indexes", I32)?;
        r.skip("ListPartitionReassignments.topics.partition_indexes", partitions * I32)?;
        r.tagged_fields("ListPartitionReassignments.topics")?;
    }
    r.tagged_fields("ListPartitionReassignments")
}

fn list_reassignments_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min() + r.tags_min()
}

/// v1–v4, flexible from v2: topics (nullable: every partition), each a name and its
/// partition numbers.
fn describe_log_dirs(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    let topics = r.array("DescribeLogDirs.topics", describe_log_dirs_topic_min(r))?;
    for _ in 0..topics {
        r.string("DescribeLogDirs.topics.topic")?;
        let partitions = r.array("DescribeLogDirs.topics.partitions", I32)?;
        r.skip("DescribeLogDirs.topics.partitions", partitions * I32)?;
        r.tagged_fields("DescribeLogDirs.topics")?;
    }
    r.tagged_fields("DescribeLogDirs")
}

/// An ACL creation, or a DescribeAcls/DeleteAcls filter: the same layout (type, name,
/// pattern type, principal, host, operation, permission, tags); names may be null in a filter.
fn acl(r: &mut Reader<'_>, field: &'static str) -> Result<()> {
    r.skip(field, I8)?;
    r.string(field)?;
    r.skip(field, I8)?;
    r.string(field)?;
    r.string(field)?;
    r.skip(field, I8 + I8)?;
    r.tagged_fields(field)
}

fn acl_min(r: &Reader<'_>) -> usize {
    3 * I8 + 3 * r.string_min() + I8 + r.tags_min()
}

/// v0 only, always flexible.
fn alter_user_scram_credentials(r: &mut Reader<'_>) -> Result<()> {
    let deletions =
        r.array("AlterUserScramCredentials.deletions", r.string_min() + I8 + r.tags_min())?;
    for _ in 0..deletions {
        r.string("AlterUserScramCredentials.deletions.name")?;
        r.skip("AlterUserScramCredentials.deletions.mechanism", I8)?;
        r.tagged_fields("AlterUserScramCredentials.deletions")?;
    }
    let upsertion_min = r.string_min() + I8 + I32 + 2 * r.bytes_min() + r.tags_min();
    let upsertions = r.array("AlterUserScramCredentials.upsertions", upsertion_min)?;
    for _ in 0..upsertions {
        r.string("AlterUserScramCredentials.upsertions.name")?;
        r.skip("AlterUserScramCredentials.upsertions.mechanism", I8 + I32)?;
        r.bytes("AlterUserScramCredentials.upsertions.salt")?;
        r.bytes("AlterUserScramCredentials.upsertions.salted_password")?;
        r.tagged_fields("AlterUserScramCredentials.upsertions")?;
    }
    r.tagged_fields("AlterUserScramCredentials")
}

fn alter_client_quotas(r: &mut Reader<'_>) -> Result<()> {
    let entity_min = 2 * r.string_min() + r.tags_min();
    let op_min = r.string_min() + I64 + I8 + r.tags_min();
    let entries =
        r.array("AlterClientQuotas.entries", r.array_min() + r.array_min() + r.tags_min())?;
    for _ in 0..entries {
        let entity = r.array("AlterClientQuotas.entries.entity", entity_min)?;
        for _ in 0..entity {
            r.string("AlterClientQuotas.entries.entity.entity_type")?;
            r.string("AlterClientQuotas.entries.entity.entity_name")?;
            r.tagged_fields("AlterClientQuotas.entries.entity")?;
        }
        let ops = r.array("AlterClientQuotas.entries.ops", op_min)?;
        for _ in 0..ops {
            r.string("AlterClientQuotas.entries.ops.key")?;
            r.skip("AlterClientQuotas.entries.ops.value", I64 + I8)?;
            r.tagged_fields("AlterClientQuotas.entries.ops")?;
        }
        r.tagged_fields("AlterClientQuotas.entries")?;
    }
    r.skip("AlterClientQuotas.validate_only", I8)?;
    r.tagged_fields("AlterClientQuotas")
}

fn describe_log_dirs_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min() + r.tags_min()
}

/// v0–v5, flexible from v3. v0–v3 carry one transaction (the `v3_and_below_*` fields); v4+ a
/// `transactions` batch instead (KIP-890 part 1), each with `verify_only`. Both name topics the
/// same way: a name and partition numbers.
fn add_partitions_to_txn(r: &mut Reader<'_>, v: i16) -> Result<()> {
    if v >= 4 {
        let transactions =
            r.array("AddPartitionsToTxn.transactions", add_partitions_transaction_min(r))?;
        for _ in 0..transactions {
            r.string("AddPartitionsToTxn.transactions.transactional_id")?;
            r.skip("AddPartitionsToTxn.transactions.producer_id", I64)?;
            r.skip("AddPartitionsToTxn.transactions.producer_epoch", I16)?;
            r.skip("AddPartitionsToTxn.transactions.verify_only", I8)?;
            let topics =
                r.array("AddPartitionsToTxn.transactions.topics", add_partitions_topic_min(r))?;
            for _ in 0..topics {
                add_partitions_topic(r)?;
            }
            r.tagged_fields("AddPartitionsToTxn.transactions")?;
        }
    } else {
        r.string("AddPartitionsToTxn.v3_and_below_transactional_id")?;
        r.skip("AddPartitionsToTxn.v3_and_below_producer_id", I64)?;
        r.skip("AddPartitionsToTxn.v3_and_below_producer_epoch", I16)?;
        let topics =
            r.array("AddPartitionsToTxn.v3_and_below_topics", add_partitions_topic_min(r))?;
        for _ in 0..topics {
            add_partitions_topic(r)?;
        }
    }
    r.tagged_fields("AddPartitionsToTxn")
}

/// An `AddPartitionsToTxnTopic`, in either layout.
fn add_partitions_topic(r: &mut Reader<'_>) -> Result<()> {
    r.string("AddPartitionsToTxn.topics.name")?;
    let partitions = r.array("AddPartitionsToTxn.topics.partitions", I32)?;
    r.skip("AddPartitionsToTxn.topics.partitions", partitions * I32)?;
    r.tagged_fields("AddPartitionsToTxn.topics")
}

fn add_partitions_transaction_min(r: &Reader<'_>) -> usize {
    r.string_min() + I64 + I16 + I8 + r.array_min() + r.tags_min()
}

fn add_partitions_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min() + r.tags_min()
}

/// v0–v4, flexible from v3, and no arrays (v4 has v3's layout).
fn add_offsets_to_txn(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    r.string("AddOffsetsToTxn.transactional_id")?;
    r.skip("AddOffsetsToTxn.producer_id", I64)?;
    r.skip("AddOffsetsToTxn.producer_epoch", I16)?;
    r.string("AddOffsetsToTxn.group_id")?;
    r.tagged_fields("AddOffsetsToTxn")
}

/// v0–v5, flexible from v3, and no arrays (v4 and v5 have v3's layout).
fn end_txn(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    r.string("EndTxn.transactional_id")?;
    r.skip("EndTxn.producer_id", I64)?;
    r.skip("EndTxn.producer_epoch", I16)?;
    r.skip("EndTxn.committed", I8)?;
    r.tagged_fields("EndTxn")
}

/// v0–v5, flexible from v3. `generation_id`/`member_id`/`group_instance_id` (nullable) from v3
/// (KIP-447), each partition's `committed_leader_epoch` from v2; v4 and v5 have v3's layout.
fn txn_offset_commit(r: &mut Reader<'_>, v: i16) -> Result<()> {
    r.string("TxnOffsetCommit.transactional_id")?;
    r.string("TxnOffsetCommit.group_id")?;
    r.skip("TxnOffsetCommit.producer_id", I64)?;
    r.skip("TxnOffsetCommit.producer_epoch", I16)?;
    if v >= 3 {
        r.skip("TxnOffsetCommit.generation_id", I32)?;
        r.string("TxnOffsetCommit.member_id")?;
        r.string("TxnOffsetCommit.group_instance_id")?;
    }
    let topics = r.array("TxnOffsetCommit.topics", txn_offset_commit_topic_min(r))?;
    for _ in 0..topics {
        r.string("TxnOffsetCommit.topics.name")?;
        let partitions =
            r.array("TxnOffsetCommit.topics.partitions", txn_offset_commit_partition_min(r, v))?;
        for _ in 0..partitions {
            r.skip("TxnOffsetCommit.partitions.partition_index", I32)?;
            r.skip("TxnOffsetCommit.partitions.committed_offset", I64)?;
            if v >= 2 {
                r.skip("TxnOffsetCommit.partitions.committed_leader_epoch", I32)?;
            }
            r.string("TxnOffsetCommit.partitions.committed_metadata")?;
            r.tagged_fields("TxnOffsetCommit.partitions")?;
        }
        r.tagged_fields("TxnOffsetCommit.topics")?;
    }
    r.tagged_fields("TxnOffsetCommit")
}

fn txn_offset_commit_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min() + r.tags_min()
}

fn txn_offset_commit_partition_min(r: &Reader<'_>, v: i16) -> usize {
    I32 + I64 + (if v >= 2 { I32 } else { 0 }) + r.string_min() + r.tags_min()
}

/// v1 only (what kafka-protocol decodes), flexible: markers, each a producer, a result, topics
/// (a name and partition numbers) and the coordinator's epoch.
fn write_txn_markers(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    let markers = r.array("WriteTxnMarkers.markers", write_txn_marker_min(r))?;
    for _ in 0..markers {
        r.skip("WriteTxnMarkers.markers.producer_id", I64)?;
        r.skip("WriteTxnMarkers.markers.producer_epoch", I16)?;
        r.skip("WriteTxnMarkers.markers.transaction_result", I8)?;
        let topics = r.array("WriteTxnMarkers.markers.topics", write_txn_marker_topic_min(r))?;
        for _ in 0..topics {
            r.string("WriteTxnMarkers.topics.name")?;
            let partitions = r.array("WriteTxnMarkers.topics.partition_indexes", I32)?;
            r.skip("WriteTxnMarkers.topics.partition_indexes", partitions * I32)?;
            r.tagged_fields("WriteTxnMarkers.topics")?;
        }
        r.skip("WriteTxnMarkers.markers.coordinator_epoch", I32)?;
        r.tagged_fields("WriteTxnMarkers.markers")?;
    }
    r.tagged_fields("WriteTxnMarkers")
}

fn write_txn_marker_min(r: &Reader<'_>) -> usize {
    I64 + I16 + I8 + r.array_min() + I32 + r.tags_min()
}

fn write_txn_marker_topic_min(r: &Reader<'_>) -> usize {
    r.string_min() + r.array_min() + r.tags_min()
}

/// v0, flexible: an array of transactional ids.
fn describe_transactions(r: &mut Reader<'_>, _v: i16) -> Result<()> {
    let ids = r.array("DescribeTransactions.transactional_ids", r.string_min())?;
    for _ in 0..ids {
        r.string("DescribeTransactions.transactional_ids")?;
    }
    r.tagged_fields("DescribeTransactions")
}

/// v0–v2, flexible from v0: state filters (strings), producer id filters (int64s), then
/// `duration_filter` from v1 (KIP-994) and `transactional_id_pattern` (nullable) from v2
/// (KIP-1152).
fn list_transactions(r: &mut Reader<'_>, v: i16) -> Result<()> {
    let states = r.array("ListTransactions.state_filters", r.string_min())?;
    for _ in 0..states {
        r.string("ListTransactions.state_filters")?;
    }
    let producers = r.array("ListTransactions.producer_id_filters", I64)?;
    r.skip("ListTransactions.producer_id_filters", producers * I64)?;
    if v >= 1 {
        r.skip("ListTransactions.duration_filter", I64)?;
    }
    if v >= 2 {
        r.string("ListTransactions.transactional_id_pattern")?;
    }
    r.tagged_fields("ListTransactions")
}

/// The smallest encoding of one element of each array, for the tests that compare it with
/// kafka-protocol's encoding of a default element.
#[cfg(test)]
pub(crate) mod element_min {
    use super::*;

    fn reader(api: ApiKey, v: i16) -> Reader<'static> {
        Reader { buf: &[], pos: 0, flexible: api.request_header_version(v) >= 2 }
    }

    pub fn metadata_topic(v: i16) -> usize {
        metadata_topic_min(&reader(ApiKey::Metadata, v), v)
    }
    pub fn produce_topic(v: i16) -> usize {
        produce_topic_min(&reader(ApiKey::Produce, v), v)
    }
    pub fn produce_partition(v: i16) -> usize {
        produce_partition_min(&reader(ApiKey::Produce, v))
    }
    pub fn fetch_topic(v: i16) -> usize {
        fetch_topic_min(&reader(ApiKey::Fetch, v), v)
    }
    pub fn fetch_partition(v: i16) -> usize {
        fetch_partition_min(&reader(ApiKey::Fetch, v), v)
    }
    pub fn forgotten_topic(v: i16) -> usize {
        forgotten_topic_min(&reader(ApiKey::Fetch, v), v)
    }
    pub fn list_offsets_topic(v: i16) -> usize {
        list_offsets_topic_min(&reader(ApiKey::ListOffsets, v))
    }
    pub fn list_offsets_partition(v: i16) -> usize {
        list_offsets_partition_min(&reader(ApiKey::ListOffsets, v), v)
    }
    pub fn create_topics_topic(v: i16) -> usize {
        create_topics_topic_min(&reader(ApiKey::CreateTopics, v))
    }
    pub fn create_topics_assignment(v: i16) -> usize {
        create_topics_assignment_min(&reader(ApiKey::CreateTopics, v))
    }
    pub fn create_topics_config(v: i16) -> usize {
        create_topics_config_min(&reader(ApiKey::CreateTopics, v))
    }
    pub fn delete_topics_state(v: i16) -> usize {
        delete_topics_state_min(&reader(ApiKey::DeleteTopics, v))
    }
    pub fn describe_configs_resource(v: i16) -> usize {
        describe_configs_resource_min(&reader(ApiKey::DescribeConfigs, v))
    }
    pub fn describe_configs_key(v: i16) -> usize {
        reader(ApiKey::DescribeConfigs, v).string_min()
    }
    pub fn alter_configs_resource(v: i16) -> usize {
        alter_configs_resource_min(&reader(ApiKey::IncrementalAlterConfigs, v))
    }
    pub fn alterable_config(v: i16) -> usize {
        alterable_config_min(&reader(ApiKey::IncrementalAlterConfigs, v))
    }
    pub fn legacy_alter_configs_resource(v: i16) -> usize {
        alter_configs_resource_min(&reader(ApiKey::AlterConfigs, v))
    }
    pub fn legacy_alterable_config(v: i16) -> usize {
        legacy_alterable_config_min(&reader(ApiKey::AlterConfigs, v))
    }
    pub fn create_partitions_topic(v: i16) -> usize {
        create_partitions_topic_min(&reader(ApiKey::CreatePartitions, v))
    }
    pub fn create_partitions_assignment(v: i16) -> usize {
        create_partitions_assignment_min(&reader(ApiKey::CreatePartitions, v))
    }
    pub fn delete_records_topic(v: i16) -> usize {
        delete_records_topic_min(&reader(ApiKey::DeleteRecords, v))
    }
    pub fn delete_records_partition(v: i16) -> usize {
        delete_records_partition_min(&reader(ApiKey::DeleteRecords, v))
    }
    pub fn offset_for_leader_topic(v: i16) -> usize {
        offset_for_leader_topic_min(&reader(ApiKey::OffsetForLeaderEpoch, v))
    }
    pub fn offset_for_leader_partition(v: i16) -> usize {
        offset_for_leader_partition_min(&reader(ApiKey::OffsetForLeaderEpoch, v))
    }
    pub fn find_coordinator_key(v: i16) -> usize {
        reader(ApiKey::FindCoordinator, v).string_min()
    }
    pub fn offset_commit_topic(v: i16) -> usize {
        offset_commit_topic_min(&reader(ApiKey::OffsetCommit, v))
    }
    pub fn offset_commit_partition(v: i16) -> usize {
        offset_commit_partition_min(&reader(ApiKey::OffsetCommit, v), v)
    }
    pub fn offset_fetch_topic(v: i16) -> usize {
        offset_fetch_topic_min(&reader(ApiKey::OffsetFetch, v))
    }
    pub fn offset_fetch_group(v: i16) -> usize {
        offset_fetch_group_min(&reader(ApiKey::OffsetFetch, v), v)
    }
    pub fn join_group_protocol(v: i16) -> usize {
        join_group_protocol_min(&reader(ApiKey::JoinGroup, v))
    }
    pub fn leave_group_member(v: i16) -> usize {
        leave_group_member_min(&reader(ApiKey::LeaveGroup, v), v)
    }
    pub fn sync_group_assignment(v: i16) -> usize {
        sync_group_assignment_min(&reader(ApiKey::SyncGroup, v))
    }
    pub fn describe_groups_group(v: i16) -> usize {
        reader(ApiKey::DescribeGroups, v).string_min()
    }
    pub fn list_groups_filter(v: i16) -> usize {
        reader(ApiKey::ListGroups, v).string_min()
    }
    pub fn describe_quorum_topic(v: i16) -> usize {
        describe_quorum_topic_min(&reader(ApiKey::DescribeQuorum, v))
    }
    pub fn describe_quorum_partition(v: i16) -> usize {
        describe_quorum_partition_min(&reader(ApiKey::DescribeQuorum, v))
    }
    pub fn elect_leaders_topic(v: i16) -> usize {
        elect_leaders_topic_min(&reader(ApiKey::ElectLeaders, v))
    }
    pub fn reassignable_topic(v: i16) -> usize {
        reassignable_topic_min(&reader(ApiKey::AlterPartitionReassignments, v))
    }
    pub fn reassignable_partition(v: i16) -> usize {
        reassignable_partition_min(&reader(ApiKey::AlterPartitionReassignments, v))
    }
    pub fn describe_log_dirs_topic(v: i16) -> usize {
        describe_log_dirs_topic_min(&reader(ApiKey::DescribeLogDirs, v))
    }
    pub fn list_reassignments_topic(v: i16) -> usize {
        list_reassignments_topic_min(&reader(ApiKey::ListPartitionReassignments, v))
    }
    pub fn delete_groups_name(v: i16) -> usize {
        reader(ApiKey::DeleteGroups, v).string_min()
    }
    pub fn offset_delete_topic(v: i16) -> usize {
        offset_delete_topic_min(&reader(ApiKey::OffsetDelete, v))
    }
    pub fn add_partitions_transaction(v: i16) -> usize {
        add_partitions_transaction_min(&reader(ApiKey::AddPartitionsToTxn, v))
    }
    pub fn add_partitions_topic(v: i16) -> usize {
        add_partitions_topic_min(&reader(ApiKey::AddPartitionsToTxn, v))
    }
    pub fn txn_offset_commit_topic(v: i16) -> usize {
        txn_offset_commit_topic_min(&reader(ApiKey::TxnOffsetCommit, v))
    }
    pub fn txn_offset_commit_partition(v: i16) -> usize {
        txn_offset_commit_partition_min(&reader(ApiKey::TxnOffsetCommit, v), v)
    }
    pub fn write_txn_marker(v: i16) -> usize {
        write_txn_marker_min(&reader(ApiKey::WriteTxnMarkers, v))
    }
    pub fn write_txn_marker_topic(v: i16) -> usize {
        write_txn_marker_topic_min(&reader(ApiKey::WriteTxnMarkers, v))
    }
    pub fn describe_transactions_id(v: i16) -> usize {
        reader(ApiKey::DescribeTransactions, v).string_min()
    }
    pub fn list_transactions_state(v: i16) -> usize {
        reader(ApiKey::ListTransactions, v).string_min()
    }
}
