//! Files: uploads (streamed to the blob store, hashed, sniffed, size- and quota-limited, images
//! measured and thumbnailed, audio timed), and reads for those allowed to see them.
//!
//! Who may read a file: its uploader; members of a conversation where an entry they can see
//! references it; anyone logged in when it is a user's or a live group's avatar. A thumbnail is
//! readable by whoever may read its image. Everyone else is told it does not exist (`NotFound`).
//!
//! Other services (messages, avatars, speech) use [`FileService::owned`] (a file of the caller)
//! and [`FileService::readable`] + [`FileService::read_all`] (the bytes, after the access check).

mod sniff;
mod tally;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;

pub use self::sniff::{clean_name, sniff_mime};
use self::tally::{Overrun, Tally};
use super::Deps;
use crate::blob::{BlobError, BlobStore, ByteStream};
use crate::error::{DomainError, DomainResult, ErrorCode, Thing};
use crate::ids::{FileId, UserId};
use crate::media::{ImageInfo, MediaInspector};
use crate::model::FileRecord;

/// Limits on uploads.
#[derive(Debug, Clone)]
pub struct FileLimits {
    /// Largest single upload (beyond it: 413 `file_too_large`).
    pub max_upload_bytes: u64,
    /// Bytes one user may store in all (beyond it: 413 `quota_exceeded`).
    pub quota_bytes: u64,
    /// Largest image or audio file the server decodes to measure it (larger ones are stored
    /// without width/height/duration).
    pub max_inspect_bytes: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 100 * 1024 * 1024,
            quota_bytes: 1024 * 1024 * 1024,
            max_inspect_bytes: 32 * 1024 * 1024,
        }
    }
}

/// The adapters the file service runs on.
#[derive(Clone)]
pub struct FilePorts {
    pub blobs: Arc<dyn BlobStore>,
    pub media: Arc<dyn MediaInspector>,
    pub limits: FileLimits,
}

/// An upload as it arrives.
pub struct Upload<'a> {
    /// The client's file name (cleaned before it is stored).
    pub name: String,
    /// The client's claim; only used to tell audio from video in shared containers.
    pub claimed_mime: Option<String>,
    pub data: ByteStream<'a>,
}

/// A file the caller was found allowed to read; only [`FileService::readable`] and
/// [`FileService::thumbnail`] make one (and an API client, from its server's answer).
#[derive(Debug, Clone)]
pub struct Readable {
    record: FileRecord,
    grant: Grant,
}

/// How a [`Readable`] was granted: which reader asked for which file, so that a remote reader can
/// be checked again where the bytes are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub reader: UserId,
    /// The id the reader asked for (the image's, for a thumbnail).
    pub asked: FileId,
    pub thumbnail: bool,
}

impl Readable {
    pub fn record(&self) -> &FileRecord {
        &self.record
    }

    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// A file a chat node found readable, as an API client hands it on. The server checks the
    /// grant again before it streams the bytes.
    pub fn granted_remotely(record: FileRecord, grant: Grant) -> Self {
        Self { record, grant }
    }
}

#[derive(Clone)]
pub struct FileService {
    deps: Deps,
    ports: FilePorts,
    /// One inspection at a time for the whole server: decoding an image may take a few hundred
    /// MB (bounded by the media adapter per image), and uploads arriving together must not
    /// multiply that. Held from reading the file's bytes until the adapter is done with them.
    inspecting: Arc<tokio::sync::Semaphore>,
}

impl FileService {
    pub fn new(deps: Deps, ports: FilePorts) -> Self {
        Self { deps, ports, inspecting: Arc::new(tokio::sync::Semaphore::new(1)) }
    }

    pub fn limits(&self) -> &FileLimits {
        &self.ports.limits
    }

    /// Streams the upload into the blob store and records it. Images get their size and a
    /// thumbnail (itself a file of the caller), audio its duration, when the media adapter can
    /// read them.
    pub async fn upload(&self, me: &UserId, upload: Upload<'_>) -> DomainResult<FileRecord> {
        let uploads = self.deps.limits.uploads;
        super::throttle::admit(&*self.deps.throttle, format!("upload:{me}"), uploads, ErrorCode::TooManyUploads)
            .await?;
        let limits = &self.ports.limits;
        let used = u64::try_from(self.deps.store.storage_used(me).await?).unwrap_or(0);
        let quota_left = limits.quota_bytes.saturating_sub(used);
        if quota_left == 0 {
            return Err(quota_exceeded(limits.quota_bytes));
        }
        let id = FileId::generate();
        let key = blob_key(&id);
        let tally = Tally::new(limits.max_upload_bytes, quota_left);
        let put = self.ports.blobs.put(&key, tally.wrap(upload.data)).await;
        let counted = tally.finish();
        match (put, counted.overrun) {
            (_, Some(Overrun::FileLimit)) => {
                return Err(DomainError::too_large(
                    ErrorCode::FileTooLarge,
                    format!("files may be at most {} bytes", limits.max_upload_bytes),
                ));
            }
            (_, Some(Overrun::Quota)) => return Err(quota_exceeded(limits.quota_bytes)),
            (Err(BlobError::Aborted(reason)), None) => {
                return Err(DomainError::invalid(
                    ErrorCode::UploadFailed,
                    format!("the upload did not complete: {reason}"),
                ));
            }
            (Err(error), None) => return Err(error.into()),
            (Ok(_), None) => {}
        }
        let mut record = FileRecord {
            id,
            owner_id: me.clone(),
            name: clean_name(&upload.name),
            mime: sniff_mime(&counted.head, upload.claimed_mime.as_deref()),
            size: i64::try_from(counted.size).unwrap_or(i64::MAX),
            sha256: counted.sha256,
            blob_key: key,
            width: None,
            height: None,
            duration_ms: None,
            thumbnail_id: None,
            // Stores keep milliseconds: answer what a later read will say.
            created_at: chrono::SubsecRound::trunc_subsecs(self.deps.clock.now(), 3),
        };
        if let Err(error) = self.inspect(&mut record).await {
            self.discard(&record).await;
            return Err(error);
        }
        if let Err(error) = self.deps.store.create_file(&record).await {
            self.discard(&record).await;
            return Err(error.into());
        }
        Ok(record)
    }

    /// The file, when `me` may read it; `NotFound` otherwise (also for unknown ids).
    pub async fn readable(&self, me: &UserId, id: &FileId) -> DomainResult<Readable> {
        let record = self.deps.store.file(id).await?.ok_or(DomainError::not_found(Thing::File))?;
        if &record.owner_id == me || self.deps.store.file_readable(id, me).await? {
            let grant = Grant { reader: me.clone(), asked: id.clone(), thumbnail: false };
            Ok(Readable { record, grant })
        } else {
            Err(DomainError::not_found(Thing::File))
        }
    }

    /// The thumbnail of an image `me` may read; `NotFound` when there is none.
    pub async fn thumbnail(&self, me: &UserId, id: &FileId) -> DomainResult<Readable> {
        let image = self.readable(me, id).await?;
        let thumbnail_id = image.record.thumbnail_id.ok_or(DomainError::not_found(Thing::Thumbnail))?;
        let thumbnail = self.deps.store.file(&thumbnail_id).await?.ok_or(DomainError::not_found(Thing::Thumbnail))?;
        let grant = Grant { reader: me.clone(), asked: id.clone(), thumbnail: true };
        Ok(Readable { record: thumbnail, grant })
    }

    /// The bytes of a readable file in `range` (half-open, within its size), or all of them.
    pub async fn stream(&self, file: &Readable, range: Option<Range<u64>>) -> DomainResult<ByteStream<'static>> {
        Ok(self.ports.blobs.get(&file.record.blob_key, range).await?)
    }

    /// All bytes of a readable file, refused (413 `file_too_large`) beyond `max_bytes`. For
    /// services that need the whole file in memory (speech-to-text).
    pub async fn read_all(&self, file: &Readable, max_bytes: u64) -> DomainResult<Bytes> {
        if u64::try_from(file.record.size).unwrap_or(u64::MAX) > max_bytes {
            return Err(DomainError::too_large(
                ErrorCode::FileTooLarge,
                format!("this needs a file of at most {max_bytes} bytes"),
            ));
        }
        self.blob_bytes(&file.record.blob_key).await
    }

    /// A file uploaded by `me`, for attaching it to a message or making it an avatar. Files of
    /// others, and unknown ids: 400 `file_not_found`.
    pub async fn owned(&self, me: &UserId, id: &str) -> DomainResult<FileRecord> {
        owned_file(&self.deps, me, id).await
    }

    /// Measures images and audio in place; thumbnails are stored as their own files.
    async fn inspect(&self, record: &mut FileRecord) -> DomainResult<()> {
        let is_image = record.mime.starts_with("image/") && record.mime != "image/svg+xml";
        let is_audio = record.mime.starts_with("audio/");
        if !(is_image || is_audio)
            || u64::try_from(record.size).unwrap_or(u64::MAX) > self.ports.limits.max_inspect_bytes
        {
            return Ok(());
        }
        // The semaphore is never closed, so acquiring only fails if it were; then go unbounded.
        let _turn = self.inspecting.acquire().await.ok();
        let bytes = self.blob_bytes(&record.blob_key).await?;
        let media = self.ports.media.clone();
        let mime = record.mime.clone();
        let inspected = tokio::task::spawn_blocking(move || {
            if is_image {
                (media.inspect_image(&bytes).ok(), None)
            } else {
                (None, media.audio_duration_ms(&mime, &bytes))
            }
        })
        .await
        // A panic in a decoder (the adapters catch their own; this is the last line) leaves the
        // file unmeasured, like any file the adapter cannot read, rather than failing the upload.
        .unwrap_or_else(|error| {
            tracing::warn!(%error, mime = %record.mime, "media inspection failed; the file is stored unmeasured");
            (None, None)
        });
        match inspected {
            (Some(image), _) => {
                let thumbnail = self.store_thumbnail(record, &image).await?;
                record.width = Some(i64::from(image.width));
                record.height = Some(i64::from(image.height));
                record.thumbnail_id = Some(thumbnail);
            }
            (None, duration) => record.duration_ms = duration.and_then(|ms| i64::try_from(ms).ok()),
        }
        Ok(())
    }

    async fn store_thumbnail(&self, image: &FileRecord, info: &ImageInfo) -> DomainResult<FileId> {
        let id = FileId::generate();
        let key = blob_key(&id);
        let bytes = Bytes::from(info.thumbnail.bytes.clone());
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let size = bytes.len();
        let data: ByteStream<'static> = Box::pin(futures_util::stream::iter([Ok(bytes)]));
        self.ports.blobs.put(&key, data).await?;
        let stem = image.name.rsplit_once('.').map_or(image.name.as_str(), |(stem, _)| stem);
        let record = FileRecord {
            id: id.clone(),
            owner_id: image.owner_id.clone(),
            name: format!("{stem}.thumb.jpg"),
            mime: info.thumbnail.mime.clone(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            sha256,
            blob_key: key,
            width: Some(i64::from(info.thumbnail.width)),
            height: Some(i64::from(info.thumbnail.height)),
            duration_ms: None,
            thumbnail_id: None,
            created_at: image.created_at,
        };
        if let Err(error) = self.deps.store.create_file(&record).await {
            self.discard(&record).await;
            return Err(error.into());
        }
        Ok(id)
    }

    async fn blob_bytes(&self, key: &str) -> DomainResult<Bytes> {
        let chunks: Vec<Bytes> = self.ports.blobs.get(key, None).await?.try_collect().await?;
        Ok(Bytes::from(chunks.concat()))
    }

    /// Best effort: removes a blob whose record will not be written.
    async fn discard(&self, record: &FileRecord) {
        if let Err(error) = self.ports.blobs.delete(&record.blob_key).await {
            tracing::warn!(%error, key = %record.blob_key, "cannot remove an orphaned blob");
        }
    }
}

/// See [`FileService::owned`]; here so services without the blob store can check ownership.
pub(crate) async fn owned_file(deps: &Deps, me: &UserId, id: &str) -> DomainResult<FileRecord> {
    if id.is_empty() || id.len() > 64 {
        return Err(file_not_found());
    }
    match deps.store.file(&FileId::from(id)).await? {
        Some(file) if &file.owner_id == me => Ok(file),
        _ => Err(file_not_found()),
    }
}

/// An avatar must be an image the caller uploaded and the server could decode. Once set, it is
/// readable by anyone logged in (see [`crate::store::Store::file_readable`]).
pub(crate) async fn check_avatar(deps: &Deps, me: &UserId, id: &str) -> DomainResult<()> {
    let file = owned_file(deps, me, id).await.map_err(|_| {
        DomainError::invalid(ErrorCode::InvalidAvatar, "avatar must be the id of an image you uploaded")
    })?;
    if !file.mime.starts_with("image/") || file.width.is_none() {
        return Err(DomainError::invalid(ErrorCode::InvalidAvatar, "avatar must be an image"));
    }
    Ok(())
}

fn file_not_found() -> DomainError {
    DomainError::invalid(ErrorCode::FileNotFound, "file_id must name a file you uploaded")
}

fn quota_exceeded(quota: u64) -> DomainError {
    DomainError::too_large(ErrorCode::QuotaExceeded, format!("your files may take at most {quota} bytes in all"))
}

/// Where a file's bytes live: chosen here, never by a client.
fn blob_key(id: &FileId) -> String {
    format!("files/{id}")
}
