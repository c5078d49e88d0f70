//! The change log (`profiles.log`): every event as applied to a profile, appended once per
//! batch, and the history the Profile API lists.
//!
//! # Layout
//! A sequence of frames: a `u32` length (of what follows), a tag byte, a 64-bit checksum of
//! the tag and body ([`checksum`]), the body.
//! - tag 1, an [`Entry`]: the event's place in the log (source, sequence number, message id,
//!   type, name, times), the resolver's decision (the profile it joined, created or merged),
//!   each identifier with its fate, the traits as kept, and the linked profile of a group call;
//! - tag 2, a name: the next number of [`Names`] gets this text. A name is written before the
//!   first entry that uses it;
//! - tag 3, a commit: the end of a batch, with the cursor it moved (workspace, source, the
//!   last sequence number applied);
//! - tag 0, erased: everything after the length has been overwritten with zeros (erasure,
//!   retention).
//!
//! An entry is named by the offset of its frame, which never changes, so a profile's history
//! is a list of offsets ([`super::state::Profile::history`]).
//!
//! # Durability
//! A batch's frames are written at the log's end without waiting for the disk; the SQLite
//! transaction that moves the consumer's cursor records the new end (`meta.log_end`). A crash
//! may lose the end of the log, or leave a torn frame: start-up applies whole batches only
//! (every frame's checksum right, a commit frame at the end), cuts the log after the last one,
//! and takes the cursors from the commit frames ([`State::cursors`]), so the consumer applies
//! the lost events again. The log is synced before every snapshot, so a snapshot never covers
//! bytes the disk may not have.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use sluice_identity::ProfileId;

use super::codec::{Reader, Writer};
use super::state::{Entry, IdFate, Names, State};
use crate::StoreError;

const TAG_ERASED: u8 = 0;
const TAG_ENTRY: u8 = 1;
const TAG_NAME: u8 = 2;
const TAG_COMMIT: u8 = 3;

/// Length, tag and checksum.
const HEAD: usize = 4 + 1 + 8;

/// A checksum of a frame's tag and body: a multiply–xorshift over 8-byte words. It finds torn
/// and lost writes, not tampering.
pub(crate) fn checksum(tag: u8, body: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut hash = (u64::from(tag) + 1).wrapping_mul(K) ^ body.len() as u64;
    let mut chunks = body.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(K);
        hash ^= hash >> 29;
    }
    let mut last = [0u8; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    hash = (hash ^ u64::from_le_bytes(last)).wrapping_mul(K);
    hash ^ (hash >> 32)
}

/// Frames larger than this are refused as damage (an entry is bounded by the event size).
const MAX_FRAME: u32 = 64 * 1024 * 1024;

/// A batch's frames, built in memory before they are written at `base`.
pub(crate) struct Appender {
    base: u64,
    buffer: Vec<u8>,
}

impl Appender {
    pub(crate) fn new(base: u64) -> Appender {
        Appender {
            base,
            buffer: Vec::with_capacity(1 << 20),
        }
    }

    /// Where the next frame goes (once the frames are written: the log's end).
    pub(crate) fn next_offset(&self) -> u64 {
        self.base + self.buffer.len() as u64
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

    /// Ends a batch: the cursor it moved (recorded in `state` too).
    pub(crate) fn commit(&mut self, state: &mut State, workspace: &str, source: &str, seq: i64) {
        state.save_cursor(workspace, source, seq);
        self.frame(TAG_COMMIT, |writer| {
            writer.text(workspace);
            writer.text(source);
            writer.i64(seq);
        });
    }

    fn frame(&mut self, tag: u8, body: impl FnOnce(&mut Writer<'_>)) {
        let start = self.buffer.len();
        self.buffer.extend_from_slice(&[0; HEAD]);
        body(&mut Writer {
            out: &mut self.buffer,
        });
        let length = u32::try_from(self.buffer.len() - start - 4).unwrap_or(u32::MAX);
        let sum = checksum(tag, &self.buffer[start + HEAD..]);
        self.buffer[start..start + 4].copy_from_slice(&length.to_le_bytes());
        self.buffer[start + 4] = tag;
        self.buffer[start + 5..start + HEAD].copy_from_slice(&sum.to_le_bytes());
    }

    /// Writes the frames at `base` (the OS writes them to the disk when it will; see the
    /// module documentation).
    pub(crate) fn write(&self, file: &File) -> Result<(), StoreError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        file.write_all_at(&self.buffer, self.base)?;
        Ok(())
    }
}

fn encode_entry(writer: &mut Writer<'_>, entry: &Entry) {
    writer.u32(entry.workspace);
    writer.u32(entry.source);
    writer.collection(entry.collection);
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
    let workspace = reader.name(names)?;
    let source = reader.name(names)?;
    let collection = reader.collection()?;
    let seq = reader.i64()?;
    let at_ms = reader.i64()?;
    let now_ms = reader.i64()?;
    let message_id = reader.text()?.to_owned();
    let message_type = reader.name(names)?;
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
        let kind = reader.name(names)?;
        let value = reader.text()?.to_owned();
        let fate = IdFate::from_code(reader.u8()?).ok_or_else(|| {
            StoreError::Corrupt("change log entry has a bad identifier fate".into())
        })?;
        ids.push((kind, value, fate));
    }
    let count = reader.len(8)?;
    let mut traits = Vec::with_capacity(count);
    for _ in 0..count {
        let trait_name = reader.name(names)?;
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

/// Reads a frame's length and tag at `offset`.
fn head_at(file: &File, offset: u64) -> Result<(u32, u8), StoreError> {
    let mut head = [0u8; 5];
    file.read_exact_at(&mut head, offset)?;
    let length = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    if (length as usize) < HEAD - 4 || length > MAX_FRAME {
        return Err(StoreError::Corrupt(format!(
            "change log frame at {offset} has length {length}"
        )));
    }
    Ok((length, head[4]))
}

/// Reads the entry at `offset`; `None` if it was erased.
pub(crate) fn read_entry(
    file: &File,
    offset: u64,
    names: &Names,
) -> Result<Option<Entry>, StoreError> {
    let (length, tag) = head_at(file, offset)?;
    match tag {
        TAG_ERASED => Ok(None),
        TAG_ENTRY => {
            let mut body = vec![0u8; length as usize - (HEAD - 4)];
            file.read_exact_at(&mut body, offset + HEAD as u64)?;
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
    let (length, _) = head_at(file, offset)?;
    let zeros = vec![0u8; length as usize];
    file.write_all_at(&zeros, offset + 4)?;
    Ok(())
}

/// One frame as read in order.
enum Frame<'a> {
    Erased,
    Name(&'a str),
    Entry(&'a [u8]),
    Commit {
        workspace: &'a str,
        source: &'a str,
        seq: i64,
    },
}

/// Calls `visit` with each frame in `[from, to)` and its offset, in order; stops without an
/// error at the first frame that is cut short or whose checksum is wrong, and returns where
/// that frame begins (`to` when every frame is whole).
fn frames(
    file: &File,
    from: u64,
    to: u64,
    mut visit: impl FnMut(u64, Frame<'_>) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let mut handle = file.try_clone()?;
    handle.seek(SeekFrom::Start(from))?;
    let mut reader = BufReader::with_capacity(1 << 20, handle.take(to.saturating_sub(from)));
    let mut offset = from;
    let mut body = Vec::new();
    while offset < to {
        let mut head = [0u8; HEAD];
        if offset + HEAD as u64 > to {
            return Ok(offset);
        }
        reader.read_exact(&mut head)?;
        let length = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let tag = head[4];
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&head[5..HEAD]);
        if (length as usize) < HEAD - 4 || length > MAX_FRAME || offset + 4 + u64::from(length) > to
        {
            return Ok(offset);
        }
        body.resize(length as usize - (HEAD - 4), 0);
        reader.read_exact(&mut body)?;
        if tag != TAG_ERASED && checksum(tag, &body) != u64::from_le_bytes(sum) {
            return Ok(offset);
        }
        let frame = match tag {
            TAG_ERASED => Frame::Erased,
            TAG_NAME => Frame::Name(Reader::new(&body, "change log name").text()?),
            TAG_ENTRY => Frame::Entry(&body),
            TAG_COMMIT => {
                let mut reader = Reader::new(&body, "change log commit");
                Frame::Commit {
                    workspace: reader.text()?,
                    source: reader.text()?,
                    seq: reader.i64()?,
                }
            }
            _ => return Ok(offset),
        };
        visit(offset, frame)?;
        offset += 4 + u64::from(length);
    }
    Ok(offset)
}

/// A frame of a batch not yet applied.
enum Pending {
    Name(String),
    Entry(u64, Vec<u8>),
}

/// Applies the whole batches in `[from, to)` to `state`, in order (start-up, catching up);
/// returns where the last whole batch ends (`to` when nothing was lost).
pub(crate) fn replay(
    file: &File,
    from: u64,
    to: u64,
    state: &mut State,
) -> Result<u64, StoreError> {
    let mut pending: Vec<Pending> = Vec::new();
    let mut applied_to = from;
    frames(file, from, to, |offset, frame| {
        match frame {
            Frame::Erased => {}
            Frame::Name(text) => pending.push(Pending::Name(text.to_owned())),
            Frame::Entry(body) => pending.push(Pending::Entry(offset, body.to_vec())),
            Frame::Commit {
                workspace,
                source,
                seq,
            } => {
                for frame in pending.drain(..) {
                    match frame {
                        Pending::Name(text) => {
                            state.names.push(&text);
                        }
                        Pending::Entry(at, body) => {
                            let entry = decode_entry(&body, &state.names)?;
                            state.apply_entry(&entry, at)?;
                        }
                    }
                }
                state.save_cursor(workspace, source, seq);
                applied_to = offset + frame_length(file, offset)?;
            }
        }
        Ok(())
    })?;
    Ok(applied_to)
}

/// The whole length of the frame at `offset`.
fn frame_length(file: &File, offset: u64) -> Result<u64, StoreError> {
    let (length, _) = head_at(file, offset)?;
    Ok(4 + u64::from(length))
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
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sluice_identity::Collection;

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
        appender.commit(&mut live, "ws_1", "src_1", 7);
        let first_end = appender.next_offset();
        // A second batch, cut short by a crash below.
        let mut second = first.clone();
        second.seq = 8;
        second.created = Some("use_y".into());
        second.profile = 2;
        second.ids[0].1 = "b@example.com".into();
        let second_offset = appender.entry(&second);
        live.apply_entry(&second, second_offset).unwrap();
        appender.commit(&mut live, "ws_1", "src_1", 8);
        appender.write(&file).unwrap();

        let mut replayed = State::default();
        assert_eq!(
            replay(&file, 0, appender.next_offset(), &mut replayed).unwrap(),
            appender.next_offset()
        );
        assert_eq!(replayed.profiles, live.profiles);
        assert_eq!(replayed.cursors, live.cursors);
        assert_eq!(
            read_entry(&file, offset, &replayed.names).unwrap(),
            Some(first.clone())
        );

        // The second batch torn: only the first applies, and its cursor is the one kept.
        for cut in [appender.next_offset() - 1, second_offset + 20] {
            let mut torn = State::default();
            assert_eq!(replay(&file, 0, cut, &mut torn).unwrap(), first_end);
            assert_eq!(torn.profiles.len(), 1);
            assert_eq!(torn.cursor("ws_1", "src_1"), 7);
        }
        // A flipped byte in the second batch: the same.
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, second_offset + 30).unwrap();
        file.write_all_at(&[byte[0] ^ 0x40], second_offset + 30)
            .unwrap();
        let mut flipped = State::default();
        assert_eq!(
            replay(&file, 0, appender.next_offset(), &mut flipped).unwrap(),
            first_end
        );
        assert_eq!(flipped.profiles.len(), 1);

        erase_entry(&file, offset).unwrap();
        assert_eq!(read_entry(&file, offset, &replayed.names).unwrap(), None);
        let mut after = State::default();
        assert_eq!(replay(&file, 0, first_end, &mut after).unwrap(), first_end);
        assert!(after.profiles.is_empty());
    }
}
