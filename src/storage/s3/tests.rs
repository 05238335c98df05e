//! Error classification of S3 answers.

use super::*;

#[test]
fn error_codes_are_extracted_and_classified() {
    let body = "<?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code><Message>x</Message></Error>";
    assert_eq!(error_code(body).as_deref(), Some("InvalidAccessKeyId"));
    let e = classify(
        "server 1 (h/b)",
        "b",
        "list",
        S3Error::HttpFailWithBody(403, body.into()),
    );
    assert!(matches!(e, StorageError::Credentials { .. }));
    let e = classify(
        "s",
        "b",
        "list",
        S3Error::HttpFailWithBody(404, "<Error><Code>NoSuchBucket</Code></Error>".into()),
    );
    assert!(matches!(e, StorageError::BucketNotFound { .. }));
    let e = classify(
        "s",
        "b",
        "put",
        S3Error::HttpFailWithBody(503, "<Error><Code>SlowDown</Code></Error>".into()),
    );
    assert_eq!(e.class(), ErrorClass::Retry);
}

#[test]
fn not_implemented_is_unsupported_and_fails_over() {
    let body =
        "<Error><Code>NotImplemented</Code><Message>ListMultipartUploads is not implemented yet</Message></Error>";
    let e = classify(
        "s",
        "b",
        "ListMultipartUploads",
        S3Error::HttpFailWithBody(501, body.into()),
    );
    assert!(matches!(e, StorageError::Unsupported { .. }), "{e:?}");
    assert_eq!(
        e.class(),
        ErrorClass::NextServer,
        "an essential call fails over, not retried"
    );
    assert_eq!(e.kind(), "unsupported");
    let e = classify("s", "b", "x", S3Error::HttpFailWithBody(501, String::new()));
    assert!(matches!(e, StorageError::Unsupported { .. }), "{e:?}");
    let e = classify("s", "b", "x", S3Error::HttpFailWithBody(400, body.into()));
    assert!(matches!(e, StorageError::Unsupported { .. }), "{e:?}");
}

#[test]
fn a_region_refusal_names_both_regions() {
    // Garage's answer (AWS's has the same shape).
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AuthorizationHeaderMalformed</Code><Message>Authorization header malformed, unexpected scope: '20261202/eu-west-3/s3/aws4_request', expected: '20261202/garage/s3/aws4_request'</Message><Resource>/b</Resource><Region>garage</Region></Error>";
    let e = classify(
        "server 1 (h/b)",
        "b",
        "list",
        S3Error::HttpFailWithBody(400, body.into()),
    )
    .with_region("eu-west-3");
    let StorageError::Region {
        configured, expected, ..
    } = &e
    else {
        panic!("{e:?}");
    };
    assert_eq!(
        (configured.as_str(), expected.as_deref()),
        ("eu-west-3", Some("garage"))
    );
    let text = e.to_string();
    assert!(
        text.contains("\"eu-west-3\"") && text.contains("expects \"garage\"") && text.contains("S3_SERVER_N_REGION"),
        "{text}"
    );
    assert_eq!(e.class(), ErrorClass::NextServer);
    // Without a <Region>, the message still names the configured one.
    let body = "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'x' is wrong</Message></Error>";
    let e = classify("s", "b", "list", S3Error::HttpFailWithBody(400, body.into())).with_region("x");
    assert!(e.to_string().contains("\"x\", which the server refused"), "{e}");
}
