//! `GET /api/v1/openapi.json`: the OpenAPI 3 document, generated (utoipa)
//! from the handlers' annotations and the [`crate::protocol`] types. Served
//! without a token: it holds no data.

use super::{node, nodes, providers};
use axum::Json;
use std::sync::OnceLock;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sitebackup master",
        description = "Storage providers, node credentials, usage and reconciliation. \
            Errors are {\"error\", \"field\", \"details\"}; every endpoint but this document takes \
            Authorization: Bearer <token>."
    ),
    paths(
        providers::create,
        providers::list,
        providers::get_one,
        providers::update,
        providers::remove,
        providers::test,
        providers::reconcile,
        nodes::list,
        nodes::create,
        nodes::update,
        nodes::remove,
        nodes::update_site,
        node::register_site,
        node::lease,
        node::archive_stored,
        node::archive_deleted,
        node::sync,
        serve,
    ),
    components(schemas(crate::protocol::QuotaExceeded, crate::protocol::ErrorCode)),
    modifiers(&BearerAuth),
    tags(
        (name = "providers", description = "storage providers and reconciliation (super admin)"),
        (name = "nodes", description = "nodes, sites and quotas (super admin)"),
        (name = "node", description = "endpoints for a node, with its own token"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn document() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(ApiDoc::openapi()).unwrap_or_default())
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "this OpenAPI 3 document", content_type = "application/json")))]
pub async fn serve() -> Json<&'static serde_json::Value> {
    Json(document())
}
