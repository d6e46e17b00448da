//! The object store that holds image bytes: an S3-compatible server reached through the `minio`
//! crate (DESIGN.md "Images"). Only this module speaks to it.
//!
//! Every call is bounded by [`STORE_CALL_MS_MAX`] and every failure is one answer, `503
//! IMAGE_STORE_UNAVAILABLE` with `Retry-After`: a store that is down refuses uploads quickly
//! and never stops the node (auctions load without it; only image bytes are unavailable). The
//! bucket is created at start when it is missing, and again on the first upload if the store
//! was down at start.
//!
//! Not done yet: server-side encryption and storage classes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use minio::s3::creds::StaticProvider;
use minio::s3::error::{Error as MinioError, S3ServerError};
use minio::s3::http::BaseUrl;
use minio::s3::minio_error_response::MinioErrorCode;
use minio::s3::types::{S3Api, ToStream};
use minio::s3::{MinioClient, MinioClientBuilder};

use crate::error::{ApiError, ApiResult};

/// Longest one call to the store may take.
pub const STORE_CALL_MS_MAX: u64 = 10_000;
/// Objects one listing page returns.
pub const LIST_PAGE_KEYS_MAX: u16 = 1_000;
/// A delimiter no object key of ours contains, so a listing returns every key.
const KEY_FREE_DELIMITER: &str = "|";
/// What a client is told to wait before retrying after the store failed.
const RETRY_AFTER_SECONDS: u64 = 2;

/// Where the store is and how to sign requests to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub endpoint: String,
    pub bucket: String,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub region: String,
}

/// One stored object as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEntry {
    pub key: String,
    /// Last modification, in ms since the epoch (0 when the store did not say).
    pub modified_ms: i64,
}

/// An object's bytes as a bounded stream.
pub struct ObjectBody {
    pub size_bytes: u64,
    pub stream: std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>,
}

pub struct ObjectStore {
    client: MinioClient,
    bucket: String,
    endpoint: String,
    bucket_ready: AtomicBool,
}

/// The one refusal of every store failure.
pub fn unavailable(detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "IMAGE_STORE_UNAVAILABLE",
        format!("the image store cannot be reached right now ({detail}); nothing was changed"),
    )
    .retry_after(RETRY_AFTER_SECONDS)
}

async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, MinioError>>,
) -> ApiResult<Result<T, MinioError>> {
    tokio::time::timeout(Duration::from_millis(STORE_CALL_MS_MAX), call)
        .await
        .map_err(|_| unavailable(format!("{what} took longer than {STORE_CALL_MS_MAX} ms")))
}

fn is_missing(error: &MinioError) -> bool {
    match error {
        MinioError::S3Server(S3ServerError::S3Error(response)) => matches!(
            response.code(),
            MinioErrorCode::NoSuchKey | MinioErrorCode::NoSuchBucket
        ),
        MinioError::S3Server(S3ServerError::HttpError(404, _)) => true,
        _ => false,
    }
}

fn failed(what: &str, error: &MinioError) -> ApiError {
    tracing::warn!(%error, what, "image store call failed");
    unavailable(format!("{what} failed"))
}

impl ObjectStore {
    /// A client for `config`; a malformed endpoint or bucket name is refused here (at start).
    pub fn new(config: &StoreConfig) -> ApiResult<ObjectStore> {
        let invalid = |what: &str, error: &dyn std::fmt::Display| {
            ApiError::internal(format!("image store setting {what}: {error}"))
        };
        let mut base_url: BaseUrl = config
            .endpoint
            .parse()
            .map_err(|error| invalid("endpoint", &error))?;
        base_url.region = config
            .region
            .as_str()
            .try_into()
            .map_err(|error| invalid("region", &error))?;
        minio::s3::types::BucketName::new(&config.bucket)
            .map_err(|error| invalid("bucket", &error))?;
        let provider =
            match (&config.access_key, &config.secret_key) {
                (Some(access), Some(secret)) => Some(StaticProvider::new(access, secret, None)),
                (None, None) => None,
                _ => return Err(ApiError::internal(
                    "image store setting: give both the access key and the secret key, or neither",
                )),
            };
        let client = MinioClientBuilder::new(base_url)
            .provider(provider)
            .skip_region_lookup(true)
            .build()
            .map_err(|error| invalid("client", &error))?;
        Ok(ObjectStore {
            client,
            bucket: config.bucket.clone(),
            endpoint: config.endpoint.clone(),
            bucket_ready: AtomicBool::new(false),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket unless it exists (once per process once it succeeded).
    pub async fn ensure_bucket(&self) -> ApiResult<()> {
        if self.bucket_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let exists = self
            .client
            .bucket_exists(self.bucket.as_str())
            .map_err(|error| failed("checking the bucket", &error.into()))?
            .build()
            .send();
        let exists = bounded("checking the bucket", exists)
            .await?
            .map_err(|error| failed("checking the bucket", &error))?
            .exists();
        if !exists {
            let create = self
                .client
                .create_bucket(self.bucket.as_str())
                .map_err(|error| failed("creating the bucket", &error.into()))?
                .build()
                .send();
            if let Err(error) = bounded("creating the bucket", create).await? {
                // Another node may have created it between the two calls.
                if !matches!(&error, MinioError::S3Server(S3ServerError::S3Error(response))
                    if matches!(response.code(), MinioErrorCode::BucketAlreadyOwnedByYou))
                {
                    return Err(failed("creating the bucket", &error));
                }
            }
            tracing::info!(bucket = %self.bucket, "created the image bucket");
        }
        self.bucket_ready.store(true, Ordering::Release);
        Ok(())
    }

    pub async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> ApiResult<()> {
        self.ensure_bucket().await?;
        let put = self
            .client
            .put_object_content(self.bucket.as_str(), key, bytes)
            .map_err(|error| failed("storing an image", &error.into()))?
            .content_type(content_type.to_owned())
            .build()
            .send();
        bounded("storing an image", put)
            .await?
            .map_err(|error| failed("storing an image", &error))?;
        Ok(())
    }

    /// The object's bytes; `None` when there is no such object.
    pub async fn get(&self, key: &str) -> ApiResult<Option<ObjectBody>> {
        let get = self
            .client
            .get_object(self.bucket.as_str(), key)
            .map_err(|error| failed("reading an image", &error.into()))?
            .build()
            .send();
        let response = match bounded("reading an image", get).await? {
            Ok(response) => response,
            Err(error) if is_missing(&error) => return Ok(None),
            Err(error) => return Err(failed("reading an image", &error)),
        };
        let (stream, size_bytes) = response
            .into_boxed_stream()
            .map_err(|error| failed("reading an image", &error))?;
        Ok(Some(ObjectBody { size_bytes, stream }))
    }

    /// Deletes an object; one that is already gone is fine.
    pub async fn delete(&self, key: &str) -> ApiResult<()> {
        let delete = self
            .client
            .delete_object(self.bucket.as_str(), key)
            .map_err(|error| failed("deleting an image", &error.into()))?
            .build()
            .send();
        match bounded("deleting an image", delete).await? {
            Ok(_) => Ok(()),
            Err(error) if is_missing(&error) => Ok(()),
            Err(error) => Err(failed("deleting an image", &error)),
        }
    }

    /// One page of the bucket's objects in key order, and where the next page starts.
    pub async fn list_page(
        &self,
        continuation: Option<String>,
    ) -> ApiResult<(Vec<ObjectEntry>, Option<String>)> {
        let list = async {
            let mut pages = self
                .client
                .list_objects(self.bucket.as_str())
                .map_err(MinioError::from)?
                // Every key, not one directory level: minio-rs sends an empty `delimiter=` for a
                // recursive listing, which some servers (s3s-fs) take as a delimiter, so name
                // one that no key of ours contains (`auction::images` allows none).
                .delimiter(KEY_FREE_DELIMITER.to_owned())
                .max_keys(LIST_PAGE_KEYS_MAX)
                .continuation_token(continuation)
                .build()
                .to_stream()
                .await;
            pages.next().await.transpose()
        };
        let page = bounded("listing images", list)
            .await?
            .map_err(|error| failed("listing images", &error))?;
        let Some(page) = page else {
            return Ok((Vec::new(), None));
        };
        let entries = page
            .contents
            .iter()
            .filter(|entry| !entry.is_prefix && !entry.is_delete_marker)
            .map(|entry| ObjectEntry {
                key: entry.name.clone(),
                modified_ms: entry
                    .last_modified
                    .map_or(0, |time| time.timestamp_millis()),
            })
            .collect();
        let next = page
            .is_truncated
            .then_some(page.next_continuation_token)
            .flatten();
        Ok((entries, next))
    }
}
