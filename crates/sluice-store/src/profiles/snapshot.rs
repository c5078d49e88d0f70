//! The snapshot (`profiles.snapshot`): the whole [`State`] as of a point of the change log, so
//! start-up reads it and replays only the log after that point.
//!
//! Written to a temporary file, synced and renamed over the previous one, so a crash leaves
//! either snapshot whole. Layout: the magic `SLPS`, the format version, the log offset it
//! covers, the names, the counters, the cursors, then each profile, merge record and unmerge record, in
//! the [`super::codec`] encoding. A file with another magic or version is ignored (the state
//! is then rebuilt from the change log, or from the event log).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::codec::{Reader, Writer};
use super::state::{IdRecord, LinkRecord, MergeRecord, Profile, State, TraitRecord, UnmergeRecord};
use crate::StoreError;

const MAGIC: &[u8; 4] = b"SLPS";
const FORMAT: u32 = 2;

/// The snapshot is synced every this many bytes as it is written, so the disk never has one
/// large flush queued in front of the event log's commits.
const SYNC_EVERY: u64 = 4 * 1024 * 1024;

/// A file being written, synced every [`SYNC_EVERY`] bytes.
struct Paced {
    out: BufWriter<File>,
    unsynced: u64,
}

impl Paced {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.out.write_all(bytes)?;
        self.unsynced += bytes.len() as u64;
        if self.unsynced >= SYNC_EVERY {
            self.out.flush()?;
            self.out.get_ref().sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
    }
}

/// Writes `state`, which reflects the change log up to `log_end`, to `path`.
pub(crate) fn write(path: &Path, state: &State, log_end: u64) -> Result<(), StoreError> {
    let temporary = path.with_extension("snapshot.tmp");
    let file = File::create(&temporary)?;
    let mut out = Paced {
        out: BufWriter::with_capacity(1 << 20, file),
        unsynced: 0,
    };
    let mut buffer = Vec::with_capacity(64 * 1024);
    {
        let mut writer = Writer { out: &mut buffer };
        writer.u32(FORMAT);
        writer.u64(log_end);
        writer.len(state.names.len());
        for name in state.names.iter() {
            writer.text(name);
        }
        writer.i64(state.last_profile);
        writer.u64(state.last_order);
        writer.i64(state.last_merge);
        writer.i64(state.last_unmerge);
        writer.len(state.cursors.len());
        for ((workspace, source), seq) in &state.cursors {
            writer.text(workspace);
            writer.text(source);
            writer.i64(*seq);
        }
        writer.len(state.profiles.len());
    }
    out.write_all(MAGIC)?;
    out.write_all(&buffer)?;
    for (id, profile) in &state.profiles {
        buffer.clear();
        let mut writer = Writer { out: &mut buffer };
        writer.i64(*id);
        encode_profile(&mut writer, profile);
        out.write_all(&buffer)?;
    }
    buffer.clear();
    {
        let mut writer = Writer { out: &mut buffer };
        writer.len(state.merges.len());
        for merge in &state.merges {
            encode_merge(&mut writer, merge);
        }
        writer.len(state.unmerges.len());
        for unmerge in &state.unmerges {
            encode_unmerge(&mut writer, unmerge);
        }
    }
    out.write_all(&buffer)?;
    let file = out.out.into_inner().map_err(|error| error.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads the snapshot at `path`: the state and the log offset it covers. `None` if there is no
/// snapshot or it is of another format.
pub(crate) fn read(path: &Path) -> Result<Option<(State, u64)>, StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let mut bytes = Vec::new();
    BufReader::new(file).read_to_end(&mut bytes)?;
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Ok(None);
    }
    let mut reader = Reader::new(&bytes[4..], "snapshot");
    if reader.u32()? != FORMAT {
        return Ok(None);
    }
    let log_end = reader.u64()?;
    let mut state = State::default();
    let count = reader.len(4)?;
    for _ in 0..count {
        let text = reader.text()?;
        state.names.push(text);
    }
    state.last_profile = reader.i64()?;
    state.last_order = reader.u64()?;
    state.last_merge = reader.i64()?;
    state.last_unmerge = reader.i64()?;
    let count = reader.len(16)?;
    for _ in 0..count {
        let workspace = reader.text()?;
        let source = reader.text()?;
        state.save_cursor(workspace, source, reader.i64()?);
    }
    let count = reader.len(8)?;
    state.profiles.reserve(count);
    for _ in 0..count {
        let id = reader.i64()?;
        let profile = decode_profile(&mut reader, &state)?;
        state.restore(id, profile);
    }
    let count = reader.len(8)?;
    for _ in 0..count {
        state.merges.push(decode_merge(&mut reader)?);
    }
    let count = reader.len(8)?;
    for _ in 0..count {
        state.unmerges.push(decode_unmerge(&mut reader)?);
    }
    if !reader.is_empty() {
        return Err(StoreError::Corrupt(
            "snapshot has bytes after its end".into(),
        ));
    }
    Ok(Some((state, log_end)))
}

fn encode_profile(writer: &mut Writer<'_>, profile: &Profile) {
    writer.u32(profile.workspace);
    writer.collection(profile.collection);
    writer.text(&profile.public_id);
    writer.opt_i64(profile.merged_into);
    writer.u32(profile.merges);
    writer.len(profile.family.len());
    for member in &profile.family {
        writer.i64(*member);
    }
    writer.i64(profile.created_at_ms);
    writer.i64(profile.updated_at_ms);
    writer.text(&profile.first_message_id);
    writer.u32(profile.first_source);
    writer.len(profile.identifiers.len());
    for id in &profile.identifiers {
        writer.u64(id.order);
        writer.u32(id.kind);
        writer.text(&id.value);
        writer.u32(id.source);
        writer.text(&id.first_message_id);
        writer.i64(id.first_seen_ms);
        writer.i64(id.last_seen_ms);
    }
    writer.len(profile.traits.len());
    for held in &profile.traits {
        writer.u32(held.name);
        writer.text(&held.value);
        writer.i64(held.timestamp_ms);
        writer.u32(held.source);
        writer.i64(held.updated_at_ms);
    }
    writer.len(profile.history.len());
    for offset in &profile.history {
        writer.u64(*offset);
    }
    writer.len(profile.links.len());
    for link in &profile.links {
        writer.i64(link.other);
        writer.i64(link.first_seen_ms);
        writer.i64(link.last_seen_ms);
        writer.u32(link.source);
    }
}

fn decode_profile(reader: &mut Reader<'_>, state: &State) -> Result<Profile, StoreError> {
    let workspace = reader.name(&state.names)?;
    let collection = reader.collection()?;
    let public_id = reader.text()?.into();
    let merged_into = reader.opt_i64()?;
    let merges = reader.u32()?;
    let count = reader.len(8)?;
    let mut family = Vec::with_capacity(count);
    for _ in 0..count {
        family.push(reader.i64()?);
    }
    let created_at_ms = reader.i64()?;
    let updated_at_ms = reader.i64()?;
    let first_message_id = reader.text()?.into();
    let first_source = reader.name(&state.names)?;
    let count = reader.len(40)?;
    let mut identifiers = Vec::with_capacity(count);
    for _ in 0..count {
        identifiers.push(IdRecord {
            order: reader.u64()?,
            kind: reader.name(&state.names)?,
            value: reader.text()?.into(),
            source: reader.name(&state.names)?,
            first_message_id: reader.text()?.into(),
            first_seen_ms: reader.i64()?,
            last_seen_ms: reader.i64()?,
        });
    }
    let count = reader.len(28)?;
    let mut traits = Vec::with_capacity(count);
    for _ in 0..count {
        traits.push(TraitRecord {
            name: reader.name(&state.names)?,
            value: reader.text()?.into(),
            timestamp_ms: reader.i64()?,
            source: reader.name(&state.names)?,
            updated_at_ms: reader.i64()?,
        });
    }
    let count = reader.len(8)?;
    let mut history = Vec::with_capacity(count);
    for _ in 0..count {
        history.push(reader.u64()?);
    }
    let count = reader.len(28)?;
    let mut links = Vec::with_capacity(count);
    for _ in 0..count {
        links.push(LinkRecord {
            other: reader.i64()?,
            first_seen_ms: reader.i64()?,
            last_seen_ms: reader.i64()?,
            source: reader.name(&state.names)?,
        });
    }
    Ok(Profile {
        workspace,
        collection,
        public_id,
        merged_into,
        merges,
        family,
        created_at_ms,
        updated_at_ms,
        first_message_id,
        first_source,
        identifiers,
        traits,
        history,
        links,
    })
}

fn encode_merge(writer: &mut Writer<'_>, merge: &MergeRecord) {
    writer.i64(merge.id);
    writer.u32(merge.workspace);
    writer.collection(merge.collection);
    writer.i64(merge.at_ms);
    writer.i64(merge.kept);
    writer.i64(merge.absorbed);
    writer.text(&merge.message_id);
    writer.u32(merge.source);
    writer.len(merge.bridge.len());
    for (kind, value) in &merge.bridge {
        writer.u32(*kind);
        writer.text(value);
    }
}

fn decode_merge(reader: &mut Reader<'_>) -> Result<MergeRecord, StoreError> {
    let id = reader.i64()?;
    let workspace = reader.u32()?;
    let collection = reader.collection()?;
    let at_ms = reader.i64()?;
    let kept = reader.i64()?;
    let absorbed = reader.i64()?;
    let message_id = reader.text()?.into();
    let source = reader.u32()?;
    let count = reader.len(8)?;
    let mut bridge = Vec::with_capacity(count);
    for _ in 0..count {
        bridge.push((reader.u32()?, reader.text()?.into()));
    }
    Ok(MergeRecord {
        id,
        workspace,
        collection,
        at_ms,
        kept,
        absorbed,
        message_id,
        source,
        bridge,
    })
}

fn encode_unmerge(writer: &mut Writer<'_>, unmerge: &UnmergeRecord) {
    writer.i64(unmerge.id);
    writer.u32(unmerge.workspace);
    writer.i64(unmerge.at_ms);
    writer.i64(unmerge.profile);
    writer.text(&unmerge.kind);
    writer.text(&unmerge.detail);
    writer.text(&unmerge.result);
    writer.len(unmerge.profiles.len());
    for profile in &unmerge.profiles {
        writer.i64(*profile);
    }
}

fn decode_unmerge(reader: &mut Reader<'_>) -> Result<UnmergeRecord, StoreError> {
    let id = reader.i64()?;
    let workspace = reader.u32()?;
    let at_ms = reader.i64()?;
    let profile = reader.i64()?;
    let kind = reader.text()?.into();
    let detail = reader.text()?.into();
    let result = reader.text()?.into();
    let count = reader.len(8)?;
    let mut profiles = Vec::with_capacity(count);
    for _ in 0..count {
        profiles.push(reader.i64()?);
    }
    Ok(UnmergeRecord {
        id,
        workspace,
        at_ms,
        profile,
        kind,
        detail,
        result,
        profiles,
    })
}
