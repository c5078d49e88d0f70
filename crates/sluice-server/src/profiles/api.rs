//! The Profile API, with Segment's paths and shapes:
//! `GET /v1/spaces/{space}/collections/{users|accounts}/profiles/{type}:{value}/{part}` where
//! `part` is `traits`, `external_ids`, `events`, `metadata` or `links`.
//!
//! Authentication: HTTP Basic with a Profile API token as the user name (empty password). The
//! token belongs to a workspace; the `space` in the path is that workspace's id, and any other
//! space is not found. Errors are `{"error": {"code", "message"}}` with Segment's codes
//! (`authentication_error`, `invalid_request_error`, `validation_error`, `not_found`) and every
//! answer carries a `Request-Id` header.
//!
//! Lookups: any identifier type (`user_id:42`, `email:jane@example.com`, …), or
//! `segment_id:use_…` for a profile id. Email values are matched lowercased, as they are stored.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use sluice_identity::{Collection, Identifier};
use sluice_store::profiles::{EventQuery, ExternalId, ProfileRef};
use sluice_store::{SourceScope, StoreError, WorkspaceId};

use crate::admin::time_json;
use crate::startup::AppState;
use crate::store_call;

const TRAITS_DEFAULT_LIMIT: usize = 10;
const TRAITS_MAX_LIMIT: usize = 200;
const PAGE_DEFAULT_LIMIT: usize = 10;
const PAGE_MAX_LIMIT: usize = 100;
const LINKS_LIMIT: usize = 20;

/// A Profile API error in Segment's shape.
#[derive(Debug)]
pub struct ProfileError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ProfileError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ProfileError {
        ProfileError {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(field: &str, message: &str) -> ProfileError {
        ProfileError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("{field}: {message}"),
        )
    }

    fn not_found() -> ProfileError {
        ProfileError::new(StatusCode::NOT_FOUND, "not_found", "profile was not found")
    }

    fn internal() -> ProfileError {
        ProfileError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the profile store failed",
        )
    }
}

impl From<StoreError> for ProfileError {
    fn from(error: StoreError) -> ProfileError {
        match error {
            StoreError::NotFound { .. } => ProfileError::not_found(),
            other => {
                tracing::error!(error = %other, "profile api");
                ProfileError::internal()
            }
        }
    }
}

impl IntoResponse for ProfileError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        with_request_id((self.status, Json(body)).into_response())
    }
}

fn with_request_id(mut response: Response) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

fn ok(body: Value) -> Response {
    with_request_id(Json(body).into_response())
}

/// The workspace of the Basic-auth token, which must be the path's space.
async fn authenticate(
    app: &AppState,
    headers: &HeaderMap,
    space: &str,
) -> Result<WorkspaceId, ProfileError> {
    let unauthorized = |message: &str| {
        ProfileError::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
    };
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("send the access token as basic auth user name"))?;
    let encoded = match header.trim().split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => rest.trim(),
        _ => {
            return Err(unauthorized(
                "send the access token as basic auth user name",
            ));
        }
    };
    let decoded = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| unauthorized("the authorization header is not valid basic auth"))?;
    let token = decoded
        .split_once(':')
        .map_or(decoded.as_str(), |(user, _)| user)
        .to_string();
    let state = app.state.clone();
    let workspace = store_call(move || state.workspace_for_profile_token(&token))
        .await?
        .ok_or_else(|| unauthorized("the access token is not valid"))?;
    if workspace.0 != space {
        return Err(ProfileError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("space {space} was not found"),
        ));
    }
    Ok(workspace)
}

/// Finds the profile a `type:value` path segment names.
async fn find(
    app: &AppState,
    workspace: WorkspaceId,
    collection: &str,
    lookup: &str,
) -> Result<ProfileRef, ProfileError> {
    let collection = Collection::parse(collection).ok_or_else(|| {
        ProfileError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("collection {collection} was not found"),
        )
    })?;
    let id = Identifier::parse_lookup(lookup).ok_or_else(|| {
        ProfileError::new(
            StatusCode::BAD_REQUEST,
            "validation_error",
            "profile id: expected <type>:<value>, like user_id:42",
        )
    })?;
    let store = app.profiles.store.clone();
    store_call(move || store.find(&workspace, collection, &id))
        .await?
        .ok_or_else(ProfileError::not_found)
}

fn limit(value: Option<&str>, default: usize, max: usize) -> Result<usize, ProfileError> {
    match value {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ProfileError::invalid(
                "limit",
                &format!("must be a number from 1 to {max}"),
            )),
        },
    }
}

/// The `next` cursor of pages that continue from a number (an offset or a history row).
fn numeric_cursor<T: std::str::FromStr>(
    query: &std::collections::HashMap<String, String>,
) -> Result<Option<T>, ProfileError> {
    match query.get("next") {
        None => Ok(None),
        Some(text) => text
            .parse::<T>()
            .map(Some)
            .map_err(|_| ProfileError::invalid("next", "is not a cursor from this api")),
    }
}

fn list(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn flag(value: Option<&str>, field: &str) -> Result<bool, ProfileError> {
    match value {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ProfileError::invalid(field, "must be true or false")),
    }
}

fn parse_time(value: Option<&str>, field: &str) -> Result<Option<i64>, ProfileError> {
    let Some(text) = value else { return Ok(None) };
    let at = sluice_spec::timestamp::parse(text)
        .ok_or_else(|| ProfileError::invalid(field, "must be an ISO-8601 date-time"))?;
    Ok(Some(sluice_spec::timestamp::to_ms(at)))
}

fn cursor(
    url: &str,
    query: &std::collections::HashMap<String, String>,
    next: Option<String>,
    limit: usize,
) -> Value {
    let mut params: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| *k != "next")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    params.sort();
    if let Some(next) = &next {
        params.push(("next".into(), next.clone()));
    }
    let query_text: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let url = if next.is_some() {
        format!("{url}?{}", query_text.join("&"))
    } else {
        String::new()
    };
    json!({"url": url, "has_more": next.is_some(), "next": next.unwrap_or_default(), "limit": limit})
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~,".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn external_id_json(e: &ExternalId) -> Value {
    json!({
        "source_id": e.source_id,
        "collection": e.collection.as_str(),
        "id": e.id.value,
        "type": e.id.kind,
        "created_at": time_json(e.first_seen_ms),
        "last_seen_at": time_json(e.last_seen_ms),
        "encoding": "none",
        "first_message_id": e.first_message_id,
    })
}

type Params = Path<(String, String, String)>;
type QueryMap = Query<std::collections::HashMap<String, String>>;

fn base_url(space: &str, collection: &str, lookup: &str, part: &str) -> String {
    format!(
        "/v1/spaces/{space}/collections/{collection}/profiles/{}/{part}",
        encode(lookup)
    )
}

/// `GET …/traits?include=a,b&limit=N&next=NAME&verbose=true&class=…`
pub async fn traits(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((space, collection, lookup)): Params,
    Query(query): QueryMap,
) -> Result<Response, ProfileError> {
    let workspace = authenticate(&app, &headers, &space).await?;
    let limit = limit(
        query.get("limit").map(String::as_str),
        TRAITS_DEFAULT_LIMIT,
        TRAITS_MAX_LIMIT,
    )?;
    let include = list(query.get("include").map(String::as_str));
    let verbose = flag(query.get("verbose").map(String::as_str), "verbose")?;
    let computed = match query.get("class").map(String::as_str) {
        None | Some("trait") => None,
        Some(class @ ("audience" | "computed_trait")) => Some(class == "audience"),
        Some(_) => {
            return Err(ProfileError::invalid(
                "class",
                "must be audience or computed_trait",
            ));
        }
    };
    if let Some(audiences) = computed {
        // Computed traits and audience memberships (`<key>: true`), from the audience store.
        let profile = find(&app, workspace, &collection, &lookup).await?;
        let store = app.audiences.store.clone();
        let rows = store_call(move || store.load(&profile.workspace_id, &[profile.id])).await?;
        let outputs: sluice_audience::Outputs = rows
            .first()
            .and_then(|row| serde_json::from_str(&row.outputs).ok())
            .unwrap_or_default();
        let mut traits = Map::new();
        let values: Vec<(String, Value)> = if audiences {
            outputs
                .audiences
                .into_iter()
                .map(|key| (key, Value::Bool(true)))
                .collect()
        } else {
            outputs.traits.into_iter().collect()
        };
        for (key, value) in values {
            if (include.is_empty() || include.contains(&key)) && traits.len() < limit {
                traits.insert(key, value);
            }
        }
        return Ok(ok(
            json!({"traits": traits, "cursor": cursor("", &query, None, limit)}),
        ));
    }
    let profile = find(&app, workspace, &collection, &lookup).await?;
    let store = app.profiles.store.clone();
    let after = query.get("next").cloned();
    let page =
        store_call(move || store.traits(&profile, &include, after.as_deref(), limit + 1)).await?;
    let has_more = page.len() > limit;
    let mut traits = Map::new();
    for t in page.iter().take(limit) {
        let value = if verbose {
            json!({"value": t.value, "source_id": t.source_id, "updated_at": time_json(t.updated_at_ms)})
        } else {
            t.value.clone()
        };
        traits.insert(t.name.clone(), value);
    }
    let next = if has_more {
        page.get(limit - 1).map(|t| t.name.clone())
    } else {
        None
    };
    let url = base_url(&space, &collection, &lookup, "traits");
    Ok(ok(
        json!({"traits": traits, "cursor": cursor(&url, &query, next, limit)}),
    ))
}

/// `GET …/external_ids?include=types&limit=N&next=OFFSET`
pub async fn external_ids(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((space, collection, lookup)): Params,
    Query(query): QueryMap,
) -> Result<Response, ProfileError> {
    let workspace = authenticate(&app, &headers, &space).await?;
    let limit = limit(
        query.get("limit").map(String::as_str),
        PAGE_DEFAULT_LIMIT,
        PAGE_MAX_LIMIT,
    )?;
    let include = list(query.get("include").map(String::as_str));
    let offset: usize = numeric_cursor(&query)?.unwrap_or(0);
    let profile = find(&app, workspace, &collection, &lookup).await?;
    let store = app.profiles.store.clone();
    let page =
        store_call(move || store.external_ids(&profile, &include, offset, limit + 1)).await?;
    let next = if page.len() > limit {
        Some((offset + limit).to_string())
    } else {
        None
    };
    let data: Vec<Value> = page.iter().take(limit).map(external_id_json).collect();
    let url = base_url(&space, &collection, &lookup, "external_ids");
    Ok(ok(
        json!({"data": data, "cursor": cursor(&url, &query, next, limit)}),
    ))
}

/// `GET …/events?start=T&end=T&include=names&exclude=names&limit=N&sort=asc|desc&next=ROW`
pub async fn events(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((space, collection, lookup)): Params,
    Query(query): QueryMap,
) -> Result<Response, ProfileError> {
    let workspace = authenticate(&app, &headers, &space).await?;
    let limit = limit(
        query.get("limit").map(String::as_str),
        PAGE_DEFAULT_LIMIT,
        PAGE_MAX_LIMIT,
    )?;
    let ascending = match query.get("sort").map(String::as_str) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(ProfileError::invalid("sort", "must be asc or desc")),
    };
    let after_row: Option<i64> = numeric_cursor(&query)?;
    let event_query = EventQuery {
        start_ms: parse_time(query.get("start").map(String::as_str), "start")?,
        end_ms: parse_time(query.get("end").map(String::as_str), "end")?,
        include: list(query.get("include").map(String::as_str)),
        exclude: list(query.get("exclude").map(String::as_str)),
        ascending,
        after_row,
        limit: limit + 1,
    };
    let profile = find(&app, workspace.clone(), &collection, &lookup).await?;
    let store = app.profiles.store.clone();
    let page = store_call(move || store.events(&profile, &event_query)).await?;
    let mut data = Vec::new();
    for reference in page.iter().take(limit) {
        let scope = SourceScope {
            workspace_id: workspace.clone(),
            source_id: reference.source_id.clone(),
        };
        let logged = app
            .log
            .read(&scope, reference.seq - 1, 1)
            .await
            .map_err(ProfileError::from)?;
        let body: Map<String, Value> = logged
            .first()
            .filter(|e| e.seq == reference.seq)
            .and_then(|e| serde_json::from_str(&e.event.body).ok())
            .unwrap_or_default();
        let mut item = Map::new();
        item.insert(
            "external_ids".into(),
            Value::Array(
                reference
                    .ids
                    .iter()
                    .map(|id| json!({"id": id.value, "type": id.kind, "collection": collection, "encoding": "none"}))
                    .collect(),
            ),
        );
        item.insert(
            "context".into(),
            body.get("context")
                .cloned()
                .unwrap_or(Value::Object(Map::new())),
        );
        item.insert("type".into(), json!(reference.kind));
        item.insert("message_id".into(), json!(reference.message_id));
        item.insert("source_id".into(), json!(reference.source_id));
        item.insert("timestamp".into(), time_json(reference.timestamp_ms));
        for field in [
            "properties",
            "traits",
            "event",
            "name",
            "groupId",
            "previousId",
        ] {
            if let Some(value) = body.get(field) {
                item.insert(field.into(), value.clone());
            }
        }
        data.push(Value::Object(item));
    }
    let next = if page.len() > limit {
        page.get(limit - 1).map(|e| e.row.to_string())
    } else {
        None
    };
    let url = base_url(&space, &collection, &lookup, "events");
    Ok(ok(
        json!({"data": data, "cursor": cursor(&url, &query, next, limit)}),
    ))
}

/// `GET …/metadata`
pub async fn metadata(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((space, collection, lookup)): Params,
) -> Result<Response, ProfileError> {
    let workspace = authenticate(&app, &headers, &space).await?;
    let profile = find(&app, workspace, &collection, &lookup).await?;
    let store = app.profiles.store.clone();
    let meta = store_call(move || store.metadata(&profile)).await?;
    Ok(ok(json!({"metadata": {
        "segment_id": meta.public_id,
        "created_at": time_json(meta.created_at_ms),
        "updated_at": time_json(meta.updated_at_ms),
        "expires_at": null,
        "first_message_id": meta.first_message_id,
        "first_source_id": meta.first_source_id,
        "last_message_id": meta.last_message_id,
        "last_source_id": meta.last_source_id,
    }})))
}

/// `GET …/links`: accounts of a user, or users of an account (at most 20).
pub async fn links(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((space, collection, lookup)): Params,
) -> Result<Response, ProfileError> {
    let workspace = authenticate(&app, &headers, &space).await?;
    let profile = find(&app, workspace, &collection, &lookup).await?;
    let store = app.profiles.store.clone();
    let links = store_call(move || store.links(&profile, LINKS_LIMIT)).await?;
    let data: Vec<Value> = links
        .iter()
        .map(|link| {
            json!({
                "to_collection": link.collection.as_str(),
                "external_ids": link.external_ids.iter().map(external_id_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(ok(
        json!({"data": data, "cursor": {"url": "", "has_more": false, "next": "", "limit": LINKS_LIMIT}}),
    ))
}
