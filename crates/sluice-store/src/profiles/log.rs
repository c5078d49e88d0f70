//! The change log (`profiles.log`): every event as applied to a profile, appended once per
//! batch, and the history the Profile API lists.
//!
//! # Layout
//! A sequence of frames: a `u32` length (of what follows), a tag byte, the body.
//! - tag 1, an [`Entry`]: the event's place in the log (source, sequence number, message id,
//!   type, name, times), the resolver's decision (the profile it joined, created or merged),
//!   each identifier with its fate, the traits as kept, and the linked profile of a group call;
//! - tag 2, a name: the next number of [`Names`] gets this text. A name is written before the
//!   first entry that uses it;
//! - tag 0, erased: the frame's body has been overwritten with zeros (erasure, retention).
//!
//! An entry is named by the offset of its frame, which never changes, so a profile's history
//! is a list of offsets ([`super::state::Profile::history`]).
//!
//! # Durability
//! A batch's frames are written at the committed end and `fdatasync`ed; then the SQLite
//! transaction that moves the consumer's cursor records the new end (`meta.log_end`). Bytes
//! past the recorded end belong to a batch that never committed: they are ignored and
//! overwritten by the next batch.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use sluice_identity::{Collection, ProfileId};

use super::codec::{Reader, Writer};
use super::state::{Entry, IdFate, Names, State};
use crate::StoreError;

const TAG_ERASED: u8 = 0;
const TAG_ENTRY: u8 = 1;
const TAG_NAME: u8 = 2;

/// Frames larger than this are refused as damage (an entry is bounded by the event size).
const MAX_FRAME: u32 = 64 * 1024 * 1024;

/// A batch's frames, built in memory before they are written at `base`.
pub(crate) struct Appender {
    base: u64,
    pub(crate) buffer: Vec<u8>,
}

impl Appender {
    pub(crate) fn new(base: u64) -> Appender {
        Appender {
            base,
            buffer: Vec::with_capacity(1 << 20),
        }
    }

    /// Where the next frame goes.
    pub(crate) fn next_offset(&self) -> u64 {
        self.base + self.buffer.len() as u64
    }

    /// The log's end once the frames are written.
    pub(crate) fn end(&self) -> u64 {
        self.next_offset()
    }

    /// The number of `text` in `state`, defining it (and writing the definition) if new.
    pub(crate) fn name(&mut self, state: &mut State, text: &str) -> u32 {
        let (id, new) = state.name(text);
        if new {
            self.frame(TAG_NAME, |writer| writer.text(text));
        }
        id
    }

    /// Appends an entry; returns its offset.
    pub(crate) fn entry(&mut self, entry: &Entry) -> u64 {
        let offset = self.next_offset();
        self.frame(TAG_ENTRY, |writer| encode_entry(writer, entry));
        offset
    }

    fn frame(&mut self, tag: u8, body: impl FnOnce(&mut Writer<'_>)) {
        let start = self.buffer.len();
        self.buffer.extend_from_slice(&[0; 4]);
        self.buffer.push(tag);
        body(&mut Writer {
            out: &mut self.buffer,
        });
        let length = u32::try_from(self.buffer.len() - start - 4).unwrap_or(u32::MAX);
        self.buffer[start..start + 4].copy_from_slice(&length.to_le_bytes());
    }

    /// Writes the frames at `base` and makes them durable.
    pub(crate) fn write(&self, file: &File) -> Result<(), StoreError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        file.write_all_at(&self.buffer, self.base)?;
        file.sync_data()?;
        Ok(())
    }
}

fn encode_entry(writer: &mut Writer<'_>, entry: &Entry) {
    writer.u32(entry.workspace);
    writer.u32(entry.source);
    writer.u8(match entry.collection {
        Collection::Users => 0,
        Collection::Accounts => 1,
    });
    writer.i64(entry.seq);
    writer.i64(entry.at_ms);
    writer.i64(entry.now_ms);
    writer.text(&entry.message_id);
    writer.u32(entry.message_type);
    writer.opt_text(entry.event.as_deref());
    writer.i64(entry.profile);
    writer.opt_text(entry.created.as_deref());
    writer.len(entry.absorbed.len());
    for absorbed in &entry.absorbed {
        writer.i64(*absorbed);
    }
    writer.len(entry.ids.len());
    for (kind, value, fate) in &entry.ids {
        writer.u32(*kind);
        writer.text(value);
        writer.u8(fate.code());
    }
    writer.len(entry.traits.len());
    for (name, value) in &entry.traits {
        writer.u32(*name);
        writer.text(value);
    }
    writer.opt_i64(entry.linked);
}

fn decode_entry(body: &[u8], names: &Names) -> Result<Entry, StoreError> {
    let mut reader = Reader::new(body, "change log entry");
    let name = |reader: &mut Reader<'_>| -> Result<u32, StoreError> {
        let id = reader.u32()?;
        if !names.contains(id) {
            return Err(StoreError::Corrupt(format!(
                "change log entry names {id}, which is not defined"
            )));
        }
        Ok(id)
    };
    let workspace = name(&mut reader)?;
    let source = name(&mut reader)?;
    let collection = match reader.u8()? {
        0 => Collection::Users,
        1 => Collection::Accounts,
        other => {
            return Err(StoreError::Corrupt(format!(
                "change log entry has collection {other}"
            )));
        }
    };
    let seq = reader.i64()?;
    let at_ms = reader.i64()?;
    let now_ms = reader.i64()?;
    let message_id = reader.text()?.to_owned();
    let message_type = name(&mut reader)?;
    let event = reader.opt_text()?.map(str::to_owned);
    let profile: ProfileId = reader.i64()?;
    let created = reader.opt_text()?.map(str::to_owned);
    let count = reader.len(8)?;
    let mut absorbed = Vec::with_capacity(count);
    for _ in 0..count {
        absorbed.push(reader.i64()?);
    }
    let count = reader.len(9)?;
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = name(&mut reader)?;
        let value = reader.text()?.to_owned();
        let fate = IdFate::from_code(reader.u8()?)
            .ok_or_else(|| StoreError::Corrupt("change log entry has a bad identifier fate".into()))?;
        ids.push((kind, value, fate));
    }
    let count = reader.len(8)?;
    let mut traits = Vec::with_capacity(count);
    for _ in 0..count {
        let trait_name = name(&mut reader)?;
        traits.push((trait_name, reader.text()?.to_owned()));
    }
    let linked = reader.opt_i64()?;
    if !reader.is_empty() {
        return Err(StoreError::Corrupt(
            "change log entry has bytes after its end".into(),
        ));
    }
    Ok(Entry {
        workspace,
        source,
        collection,
        seq,
        at_ms,
        now_ms,
        message_id,
        message_type,
        event,
        profile,
        created,
        absorbed,
        ids,
        traits,
        linked,
    })
}

/// Reads the entry at `offset`; `None` if it was erased.
pub(crate) fn read_entry(file: &File, offset: u64, names: &Names) -> Result<Option<Entry>, StoreError> {
    let mut head = [0u8; 5];
    file.read_exact_at(&mut head, offset)?;
    let length = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    if length == 0 || length > MAX_FRAME {
        return Err(StoreError::Corrupt(format!(
            "change log frame at {offset} has length {length}"
        )));
    }
    match head[4] {
        TAG_ERASED => Ok(None),
        TAG_ENTRY => {
            let mut body = vec![0u8; length as usize - 1];
            file.read_exact_at(&mut body, offset + 5)?;
            decode_entry(&body, names).map(Some)
        }
        other => Err(StoreError::Corrupt(format!(
            "change log frame at {offset} is not an entry (tag {other})"
        ))),
    }
}

/// Overwrites the entry at `offset` with zeros (its length stays, so later offsets hold).
/// The caller syncs the file once it has erased everything it meant to.
pub(crate) fn erase_entry(file: &File, offset: u64) -> Result<(), StoreError> {
    let mut head = [0u8; 4];
    file.read_exact_at(&mut head, offset)?;
    let length = u32::from_le_bytes(head);
    if length == 0 || length > MAX_FRAME {
        return Err(StoreError::Corrupt(format!(
            "change log frame at {offset} has length {length}"
        )));
    }
    let zeros = vec![0u8; length as usize];
    file.write_all_at(&zeros, offset + 4)?;
    Ok(())
}

/// One frame as read in order.
enum Frame<'a> {
    Erased,
    Name(&'a str),
    Entry(&'a [u8]),
}

/// Calls `visit` with each frame in `[from, to)` and its offset, in order.
fn frames(
    file: &File,
    from: u64,
    to: u64,
    mut visit: impl FnMut(u64, Frame<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut handle = file.try_clone()?;
    handle.seek(SeekFrom::Start(from))?;
    let mut reader = BufReader::with_capacity(1 << 20, handle.take(to.saturating_sub(from)));
    let mut offset = from;
    let mut body = Vec::new();
    while offset < to {
        let mut head = [0u8; 5];
        reader.read_exact(&mut head)?;
        let length = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if length == 0 || length > MAX_FRAME || offset + 4 + u64::from(length) > to {
            return Err(StoreError::Corrupt(format!(
                "change log frame at {offset} has length {length}"
            )));
        }
        body.resize(length as usize - 1, 0);
        reader.read_exact(&mut body)?;
        let frame = match head[4] {
            TAG_ERASED => Frame::Erased,
            TAG_NAME => Frame::Name(Reader::new(&body, "change log name").text()?),
            TAG_ENTRY => Frame::Entry(&body),
            other => {
                return Err(StoreError::Corrupt(format!(
                    "change log frame at {offset} has tag {other}"
                )));
            }
        };
        visit(offset, frame)?;
        offset += 4 + u64::from(length);
    }
    Ok(())
}

/// Applies the frames in `[from, to)` to `state`, in order (start-up); returns the entries
/// applied.
pub(crate) fn replay(file: &File, from: u64, to: u64, state: &mut State) -> Result<u64, StoreError> {
    let mut entries = 0;
    frames(file, from, to, |offset, frame| {
        match frame {
            Frame::Erased => {}
            Frame::Name(text) => {
                state.names.push(text);
            }
            Frame::Entry(body) => {
                let entry = decode_entry(body, &state.names)?;
                state.apply_entry(&entry, offset)?;
                entries += 1;
            }
        }
        Ok(())
    })?;
    Ok(entries)
}

/// Calls `visit` with every entry still held in `[from, to)` (its names all known already).
pub(crate) fn scan(
    file: &File,
    from: u64,
    to: u64,
    names: &Names,
    mut visit: impl FnMut(u64, Entry),
) -> Result<(), StoreError> {
    frames(file, from, to, |offset, frame| {
        if let Frame::Entry(body) = frame {
            visit(offset, decode_entry(body, names)?);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: &mut State, appender: &mut Appender) -> Entry {
        let workspace = appender.name(state, "ws_1");
        let source = appender.name(state, "src_1");
        let message_type = appender.name(state, "identify");
        let email = appender.name(state, "email");
        let plan = appender.name(state, "plan");
        Entry {
            workspace,
            source,
            collection: Collection::Users,
            seq: 7,
            at_ms: 1_000,
            now_ms: 2_000,
            message_id: "m-1".into(),
            message_type,
            event: None,
            profile: 1,
            created: Some("use_x".into()),
            absorbed: Vec::new(),
            ids: vec![(email, "a@example.com".into(), IdFate::Added)],
            traits: vec![(plan, "\"pro\"".into())],
            linked: None,
        }
    }

    #[test]
    fn entries_replay_into_the_same_state_and_erased_ones_read_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.path().join("profiles.log"))
            .unwrap();
        let mut live = State::default();
        let mut appender = Appender::new(0);
        let first = entry(&mut live, &mut appender);
        let offset = appender.entry(&first);
        live.apply_entry(&first, offset).unwrap();
        appender.write(&file).unwrap();

        let mut replayed = State::default();
        assert_eq!(replay(&file, 0, appender.end(), &mut replayed).unwrap(), 1);
        assert_eq!(replayed.profiles, live.profiles);
        assert_eq!(
            read_entry(&file, offset, &replayed.names).unwrap(),
            Some(first)
        );

        erase_entry(&file, offset).unwrap();
        assert_eq!(read_entry(&file, offset, &replayed.names).unwrap(), None);
        let mut after = State::default();
        assert_eq!(replay(&file, 0, appender.end(), &mut after).unwrap(), 0);
        assert!(after.profiles.is_empty());

        // A length past the end is damage, not a panic.
        let error = replay(&file, 0, appender.end() - 1, &mut State::default()).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
    }
}
