//! Our own SigV4-signed requests (see the parent module for why): part
//! `PUT`s and ranged, version-pinned `GET`s, both timed by silence, never
//! by total duration.

use super::super::idle::{Activity, tracked_body, until_idle};
use super::super::{ByteStream, CompletedPart, ErrorClass, ObjectRead, StorageError, StorageResult};
use super::{S3Store, classify};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, header};
use s3::error::S3Error;

const UNSIGNED: &str = "UNSIGNED-PAYLOAD";

impl S3Store {
    /// URL and signed headers (AWS SigV4, unsigned payload) of a request
    /// on `key`. `extra` headers are signed too.
    async fn sign(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, String)],
        extra: HeaderMap,
    ) -> Result<(url::Url, HeaderMap), S3Error> {
        use hmac::Mac;
        use s3::signing;
        let now = time::OffsetDateTime::now_utc();
        let stamp = now
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .map_err(|e| S3Error::Io(std::io::Error::other(e)))?;
        let mut url = url::Url::parse(&format!("{}/{}", self.bucket.url(), signing::uri_encode(key, false)))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        let mut headers = extra;
        headers.insert(header::HOST, HeaderValue::from_str(&self.bucket.host())?);
        headers.insert("x-amz-content-sha256", HeaderValue::from_static(UNSIGNED));
        headers.insert("x-amz-date", HeaderValue::from_str(&stamp)?);
        let region = self.bucket.region();
        let canonical = signing::canonical_request(method, &url, &headers, UNSIGNED)?;
        let to_sign = signing::string_to_sign(&now, &region, &canonical)?;
        let access = self.bucket.access_key().await?.unwrap_or_default();
        let secret = self.bucket.secret_key().await?.unwrap_or_default();
        let key = signing::signing_key(&now, &secret, &region, "s3")?;
        let mut mac = signing::HmacSha256::new_from_slice(&key)?;
        mac.update(to_sign.as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        let auth = signing::authorization_header(
            &access,
            &now,
            &region,
            &signing::signed_header_string(&headers),
            &signature,
        )?;
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&auth)?);
        Ok((url, headers))
    }

    /// The body of a non-2xx answer, for its error code; bounded by the
    /// idle window like everything else.
    async fn error_body(&self, resp: reqwest::Response) -> String {
        tokio::time::timeout(self.idle, resp.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }

    /// UploadPart: fails after the idle window without progress, however
    /// long the part takes while its body drains.
    pub(super) async fn put_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        data: Bytes,
    ) -> StorageResult<CompletedPart> {
        const OP: &str = "upload part";
        let mut extra = HeaderMap::new();
        extra.insert(header::CONTENT_LENGTH, HeaderValue::from(data.len()));
        let query = [
            ("partNumber", part_number.to_string()),
            ("uploadId", upload_id.to_string()),
        ];
        let (url, headers) = self
            .sign("PUT", key, &query, extra)
            .await
            .map_err(|e| self.err(OP, e))?;
        let activity = Activity::new();
        let body = reqwest::Body::wrap_stream(tracked_body(data, activity.clone()));
        let send = self.client.put(url).headers(headers).body(body).send();
        let resp = until_idle(send, &activity, self.idle)
            .await
            .ok_or_else(|| self.idle_error(format!("uploading part {part_number} of {key}")))?
            .map_err(|e| self.err(OP, S3Error::Reqwest(e)))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let body = self.error_body(resp).await;
            return Err(self.err(OP, S3Error::HttpFailWithBody(status, body)));
        }
        let etag = resp
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if etag.is_empty() {
            return Err(StorageError::Other {
                server: self.name.clone(),
                operation: OP,
                detail: "the server returned no ETag for the part".into(),
                class: ErrorClass::Retry,
            });
        }
        Ok(CompletedPart { part_number, etag })
    }

    /// GetObject from `offset` (a `Range` request when not 0), pinned to
    /// `version` (`If-Match`) when given.
    pub(super) async fn get_range(&self, key: &str, offset: u64, version: Option<&str>) -> StorageResult<ObjectRead> {
        const OP: &str = "get";
        let changed = |detail: String| StorageError::Changed {
            server: self.name.clone(),
            key: key.to_string(),
            detail,
        };
        let mut extra = HeaderMap::new();
        if offset > 0 {
            let range = HeaderValue::from_str(&format!("bytes={offset}-")).map_err(|e| self.err(OP, e.into()))?;
            extra.insert(header::RANGE, range);
        }
        if let Some(v) = version {
            let value = HeaderValue::from_str(v).map_err(|_| changed(format!("unusable ETag {v:?}")))?;
            extra.insert(header::IF_MATCH, value);
        }
        let (url, headers) = self.sign("GET", key, &[], extra).await.map_err(|e| self.err(OP, e))?;
        let action = || format!("downloading {key}");
        let activity = Activity::new();
        let send = self.client.get(url).headers(headers).send();
        let resp = until_idle(send, &activity, self.idle)
            .await
            .ok_or_else(|| self.idle_error(action()))?
            .map_err(|e| self.err(OP, S3Error::Reqwest(e)))?;
        let status = resp.status().as_u16();
        match status {
            200 | 206 => {}
            412 => return Err(changed("its ETag no longer matches".into())),
            416 => return Err(changed(format!("it no longer has a byte {offset}"))),
            _ => {
                let body = self.error_body(resp).await;
                return Err(match self.err(OP, S3Error::HttpFailWithBody(status, body)) {
                    StorageError::NotFound { server, .. } => StorageError::NotFound {
                        server,
                        key: key.to_string(),
                    },
                    other => other,
                });
            }
        }
        let text = |name: header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let size = if status == 206 {
            let range = text(header::CONTENT_RANGE).unwrap_or_default();
            match parse_content_range(&range) {
                Some((start, total)) if start == offset => total,
                _ => {
                    return Err(changed(format!(
                        "asked for byte {offset} on, got Content-Range {range:?}"
                    )));
                }
            }
        } else if offset > 0 {
            return Err(StorageError::Other {
                server: self.name.clone(),
                operation: OP,
                detail: "the server ignored the Range header, so a cut download cannot resume".into(),
                class: ErrorClass::Fatal,
            });
        } else {
            resp.content_length()
        };
        let version = text(header::ETAG).filter(|e| !e.is_empty());
        Ok(ObjectRead {
            stream: self.idle_timed(resp.bytes_stream().boxed(), action()),
            size,
            version,
        })
    }

    /// A response body that ends with [`StorageError::Idle`] once no chunk
    /// arrived for the idle window, and with a classified error when the
    /// connection fails.
    fn idle_timed(
        &self,
        body: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
        action: String,
    ) -> ByteStream {
        struct Ctx {
            name: String,
            bucket: String,
            action: String,
            idle: std::time::Duration,
        }
        let ctx = std::sync::Arc::new(Ctx {
            name: self.name.clone(),
            bucket: self.bucket_name.clone(),
            action,
            idle: self.idle,
        });
        futures::stream::unfold(Some(body), move |body| {
            let ctx = ctx.clone();
            async move {
                let mut body = body?;
                match tokio::time::timeout(ctx.idle, body.next()).await {
                    Ok(None) => None,
                    Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
                    Ok(Some(Err(e))) => Some((Err(classify(&ctx.name, &ctx.bucket, "get", S3Error::Reqwest(e))), None)),
                    Err(_) => Some((
                        Err(StorageError::Idle {
                            server: ctx.name.clone(),
                            secs: ctx.idle.as_secs(),
                            action: ctx.action.clone(),
                        }),
                        None,
                    )),
                }
            }
        })
        .boxed()
    }
}

/// `bytes START-END/TOTAL` → (START, TOTAL if known).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
