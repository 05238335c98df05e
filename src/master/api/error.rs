//! Errors as the API answers them (`{"error", "field", "details"}` with the
//! right status), and the extractors that turn every malformed input into
//! one: JSON bodies ([`ApiJson`]), query strings ([`ApiQuery`]) and path
//! segments ([`parse_path`]).
//!
//! Messages never echo a request's values: serde's messages quote the
//! offending value (which may be a key pasted into the wrong field), so
//! quoted text is cut out of them.

use crate::master::MasterError;
use crate::protocol::{ErrorBody, ErrorCode};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// Request bodies are capped at this many bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody::new(code, field.map(str::to_string), message),
        }
    }

    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, None, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, None, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, None, message)
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidValue,
            Some(field),
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<MasterError> for ApiError {
    fn from(e: MasterError) -> Self {
        let code = e.code();
        match e {
            MasterError::NotFound(m) => ApiError::not_found(m),
            MasterError::Conflict { field, message } => {
                ApiError::new(StatusCode::CONFLICT, code, field.as_deref(), message)
            }
            MasterError::Invalid { field, message } => ApiError::invalid(&field, message),
            MasterError::Forbidden(m) => ApiError::forbidden(m),
            MasterError::Quota(q) => {
                let mut err = ApiError::new(
                    StatusCode::FORBIDDEN,
                    code,
                    Some("estimated_bytes"),
                    format!(
                        "the upload would exceed the {} quota: {} bytes used of {}, {} more estimated",
                        match q.scope {
                            crate::protocol::QuotaScope::Site => "site",
                            crate::protocol::QuotaScope::Node => "node",
                        },
                        q.used_bytes,
                        q.quota_bytes,
                        q.estimated_bytes
                    ),
                );
                if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&q) {
                    err.body.details.extend(m);
                }
                err
            }
            MasterError::Unavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, None, m),
            MasterError::Storage(s) => ApiError::new(StatusCode::BAD_GATEWAY, code, None, s.to_string()),
            other @ (MasterError::Db { .. } | MasterError::Setup(_) | MasterError::Crypto(_)) => {
                tracing::error!(error = %other, "Request failed.");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code,
                    None,
                    "internal error; the master's log has the details",
                )
            }
        }
    }
}

/// Cut quoted values out of a serde message: `invalid type: string "x",
/// expected u64` becomes `invalid type: string, expected u64` (also for
/// values in backquotes).
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            None if c == '"' || c == '`' => quote = Some(c),
            None => out.push(c),
            Some(q) if c == q => quote = None,
            Some(_) => {}
        }
    }
    let out = out.replace(" ,", ",").replace("  ", " ");
    out.chars().take(300).collect()
}

/// The field of a serde error: the path serde_path_to_error found, or the
/// name in an `unknown field` message.
fn data_error(path: String, inner: &serde_json::Error) -> ApiError {
    let msg = inner.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or_default();
        // serde_path_to_error's path already ends with the unknown name.
        let field = if path == "." || path.is_empty() {
            name.to_string()
        } else if path == name || path.ends_with(&format!(".{name}")) {
            path
        } else {
            format!("{path}.{name}")
        };
        let field: String = field.chars().take(100).collect();
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::UnknownField,
            Some(&field),
            format!("unknown field {field:?}"),
        );
    }
    let missing = msg
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .map(|name| {
            if path == "." || path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            }
        });
    let field = missing
        .or_else(|| (path != "." && !path.is_empty()).then_some(path))
        .map(|f| f.chars().take(100).collect::<String>());
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidValue,
        field.as_deref(),
        scrub(&msg),
    )
}

/// Parse a JSON body into `T`, mapping every failure to an [`ApiError`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => match de.end() {
            Ok(()) => Ok(v),
            Err(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidJson,
                None,
                "the body has more after its JSON value",
            )),
        },
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => Err(data_error(path, &inner)),
                _ => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidJson,
                    None,
                    format!("the body is not valid JSON: {}", scrub(&inner.to_string())),
                )),
            }
        }
    }
}

/// A JSON body: `application/json`, at most [`MAX_BODY`] bytes, no unknown
/// fields (the protocol types deny them).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime_lite::Essence>().ok())
            .is_some_and(|m| m.is_json());
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                None,
                "send the body as Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    None,
                    format!("request bodies are limited to {MAX_BODY} bytes"),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidJson,
                    None,
                    "cannot read the body",
                )
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A query string parsed into `T` (which denies unknown parameters).
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str::<T>(query).map(ApiQuery).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                None,
                format!("bad query string: {}", scrub(&e.to_string())),
            )
        })
    }
}

/// A path segment parsed as `T`, or a 400 naming the segment.
pub fn parse_path<T: std::str::FromStr>(field: &str, value: &str) -> Result<T, ApiError> {
    value.parse::<T>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidValue,
            Some(field),
            format!("{field} in the path is malformed"),
        )
    })
}

/// The media type's essence, without parameters: enough to tell JSON.
mod mime_lite {
    pub struct Essence(String);

    impl std::str::FromStr for Essence {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            Ok(Essence(
                s.split(';').next().unwrap_or_default().trim().to_ascii_lowercase(),
            ))
        }
    }

    impl Essence {
        pub fn is_json(&self) -> bool {
            self.0 == "application/json" || (self.0.starts_with("application/") && self.0.ends_with("+json"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{LeaseRequest, ProviderCreate};

    #[test]
    fn malformed_json_is_400_and_shape_errors_are_422_with_the_field() {
        let e = parse_json::<LeaseRequest>(b"{\"purpose\": ").unwrap_err();
        assert_eq!(
            (e.status, e.body.error),
            (StatusCode::BAD_REQUEST, ErrorCode::InvalidJson)
        );
        let e = parse_json::<LeaseRequest>(br#"{"purpose":"read","estimated_bytes":"ten"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.body.field.as_deref(), Some("estimated_bytes"));
        let e = parse_json::<LeaseRequest>(br#"{"purpose":"read","extra":1}"#).unwrap_err();
        assert_eq!(
            (e.body.error, e.body.field.as_deref()),
            (ErrorCode::UnknownField, Some("extra"))
        );
        let e = parse_json::<LeaseRequest>(br#"{"purpose":"read","estimated_bytes":-5}"#).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("estimated_bytes"));
    }

    #[test]
    fn messages_do_not_echo_values() {
        let body = br#"{"name":"n","endpoint":"e","bucket":"b","access_key":"AKIAXX","secret_key":"s",
            "storage_limit_gb":"wJalrXUtnFEMIK7MDENG"}"#;
        let e = parse_json::<ProviderCreate>(body).unwrap_err();
        let text = serde_json::to_string(&e.body).unwrap();
        assert!(!text.contains("wJalr"), "{text}");
        assert_eq!(e.body.field.as_deref(), Some("storage_limit_gb"));
    }
}
