//! The batch API's wire format (tc-api.md section 5): the job config, the
//! data file, the status, and the item errors mapped back to items.

use std::io::Read;

use serde::Deserialize;
use serde_json::{Value, json};

use super::request::{ApiRequest, Method};
use crate::config::BatchConfig;

/// `POST /v2/batch`: a Create job for `owner` that does not halt on errors,
/// writing attributes, tags and security labels as configured (`Append`
/// unless told: ThreatConnect's default `Replace` would remove the tags and
/// labels an indicator already has).
pub fn create(owner: &str, cfg: &BatchConfig) -> ApiRequest {
    ApiRequest {
        method: Method::Post,
        path_and_query: "/v2/batch".into(),
        body: Some(json!({
            "version": "V2",
            "owner": owner,
            "haltOnError": false,
            "action": "Create",
            "attributeWriteType": cfg.attribute_write_type.as_str(),
            "tagWriteType": cfg.tag_write_type.as_str(),
            "securityLabelWriteType": cfg.security_label_write_type.as_str(),
        })),
        upload: None,
    }
}

/// `POST /v2/batch/<id>` with the data file.
pub fn upload(batch_id: i64, data: bytes::Bytes) -> ApiRequest {
    ApiRequest {
        method: Method::Post,
        path_and_query: format!("/v2/batch/{batch_id}"),
        body: None,
        upload: Some(data),
    }
}

/// `GET /v2/batch/<id>`: the job's status.
pub fn status(batch_id: i64) -> ApiRequest {
    get(format!("/v2/batch/{batch_id}"))
}

/// `GET /v2/batch/<id>/results`: the item errors, with their JSON paths.
pub fn results(batch_id: i64) -> ApiRequest {
    get(format!("/v2/batch/{batch_id}/results"))
}

/// `GET /v2/batch/<id>/errors`: the item errors of older instances.
pub fn errors(batch_id: i64) -> ApiRequest {
    get(format!("/v2/batch/{batch_id}/errors"))
}

fn get(path_and_query: String) -> ApiRequest {
    ApiRequest {
        method: Method::Get,
        path_and_query,
        body: None,
        upload: None,
    }
}

/// The data file: `{"indicator":[...]}` with the items in order.
pub fn data_file(items: &[Vec<u8>]) -> Vec<u8> {
    let len: usize = items.iter().map(|i| i.len() + 1).sum();
    let mut out = Vec::with_capacity(len + 16);
    out.extend_from_slice(b"{\"indicator\":[");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    out
}

/// The bytes a data file of items of these sizes takes.
pub fn data_file_len(item_bytes: impl IntoIterator<Item = usize>) -> usize {
    let (mut len, mut n) = (16usize, 0usize);
    for b in item_bytes {
        len += b;
        n += 1;
    }
    len + n.saturating_sub(1)
}

/// The id in the answer to [`create`].
///
/// # Errors
/// When the body is not `{"data":{"batchId":N}}`.
pub fn created_id(body: &[u8]) -> Result<i64, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("unreadable answer: {e}"))?;
    v.pointer("/data/batchId")
        .and_then(Value::as_i64)
        .ok_or_else(|| "no data.batchId in the answer".to_string())
}

/// Where a batch job is, as `GET /v2/batch/<id>` says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// `Created` (no data yet), `Queued`, `Running`, `Completed`.
    pub status: String,
    #[serde(default)]
    pub error_count: u64,
    #[serde(default)]
    pub success_count: u64,
    #[serde(default)]
    pub unprocess_count: u64,
}

impl Status {
    pub fn is_completed(&self) -> bool {
        self.status == "Completed"
    }

    /// No data received yet: an upload that may have failed is sent again.
    pub fn awaits_data(&self) -> bool {
        self.status == "Created"
    }
}

/// The status in the answer to [`status`].
///
/// # Errors
/// When the body has no `data.batchStatus`.
pub fn parse_status(body: &[u8]) -> Result<Status, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("unreadable status: {e}"))?;
    let s = v
        .pointer("/data/batchStatus")
        .ok_or_else(|| "no data.batchStatus in the answer".to_string())?;
    serde_json::from_value(s.clone()).map_err(|e| format!("unreadable batchStatus: {e}"))
}

/// One refused item: which (by position in the data file, or by its
/// summary when the server only echoes the item) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemError {
    pub item: Option<usize>,
    pub summary: Option<String>,
    pub reason: String,
    /// Whether the reason fails the whole job, not this item (the two the
    /// SDKs treat as fatal).
    pub fatal: bool,
}

/// The reasons that fail a whole job rather than one item.
fn is_fatal(reason: &str) -> bool {
    reason.contains("Encountered an unexpected Exception while processing batch job")
        || reason.contains("would exceed the number of allowed indicators")
}

/// The answer to [`results`]: `[{"code","severity","errorReason","errorMessage"}]`,
/// each message naming `$.indicator[N]`.
///
/// # Errors
/// When the body is not such an array.
pub fn parse_results(body: &[u8]) -> Result<Vec<ItemError>, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry {
        #[serde(default)]
        severity: Option<String>,
        #[serde(default)]
        error_reason: Option<String>,
        #[serde(default)]
        error_message: Option<String>,
    }
    let entries: Vec<Entry> =
        serde_json::from_slice(body).map_err(|e| format!("unreadable results: {e}"))?;
    Ok(entries
        .into_iter()
        .filter(|e| {
            e.severity
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case("error"))
        })
        .map(|e| {
            let message = e.error_message.unwrap_or_default();
            let reason = match e.error_reason {
                Some(r) if !r.is_empty() => format!("{r}: {message}"),
                _ => message.clone(),
            };
            ItemError {
                item: json_path_item(&message),
                summary: None,
                fatal: is_fatal(&reason),
                reason,
            }
        })
        .collect())
}

/// `N` of the first `$.indicator[N]` in a message.
fn json_path_item(message: &str) -> Option<usize> {
    let (_, rest) = message.split_once("$.indicator[")?;
    rest.split(']').next()?.parse().ok()
}

/// The answer to [`errors`] (older instances): a JSON array of
/// `{"errorReason","errorSource"}`, gzip-compressed or not, whatever the
/// content type says. The source is the item (an object, or its JSON as a
/// string, or its summary).
///
/// # Errors
/// When the body (decompressed) is not such an array.
pub fn parse_errors(body: &[u8]) -> Result<Vec<ItemError>, String> {
    let mut plain = Vec::new();
    let body = if body.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(body)
            .take(64 << 20)
            .read_to_end(&mut plain)
            .map_err(|e| format!("unreadable gzip: {e}"))?;
        &plain[..]
    } else {
        body
    };
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry {
        #[serde(default)]
        error_reason: Option<String>,
        #[serde(default)]
        error_source: Option<Value>,
    }
    let entries: Vec<Entry> =
        serde_json::from_slice(body).map_err(|e| format!("unreadable errors: {e}"))?;
    Ok(entries
        .into_iter()
        .map(|e| {
            let reason = e.error_reason.unwrap_or_default();
            let summary = match e.error_source {
                Some(Value::Object(o)) => {
                    o.get("summary").and_then(Value::as_str).map(String::from)
                }
                Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
                    Ok(Value::Object(o)) => {
                        o.get("summary").and_then(Value::as_str).map(String::from)
                    }
                    _ => Some(s),
                },
                _ => None,
            };
            ItemError {
                item: json_path_item(&reason),
                summary,
                fatal: is_fatal(&reason),
                reason,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_job_config_appends_unless_told() {
        let cfg = BatchConfig::default();
        let r = create("Org A", &cfg);
        let b = r.body.unwrap();
        assert_eq!(b["owner"], "Org A");
        assert_eq!(b["action"], "Create");
        assert_eq!(b["haltOnError"], false);
        assert_eq!(b["attributeWriteType"], "Append");
        assert_eq!(b["tagWriteType"], "Append");
        assert_eq!(r.path_and_query, "/v2/batch");
    }

    #[test]
    fn the_data_file_and_its_length_agree() {
        let items = vec![b"{\"a\":1}".to_vec(), b"{\"b\":22}".to_vec()];
        let file = data_file(&items);
        assert_eq!(file, b"{\"indicator\":[{\"a\":1},{\"b\":22}]}");
        assert_eq!(data_file_len(items.iter().map(Vec::len)), file.len());
        assert_eq!(data_file_len([]), data_file(&[]).len());
    }

    #[test]
    fn status_and_results_are_read() {
        let s = parse_status(br#"{"status":"Success","data":{"batchStatus":{"id":7,"status":"Completed","errorCount":2,"successCount":8,"unprocessCount":0}}}"#).unwrap();
        assert!(s.is_completed());
        assert_eq!((s.error_count, s.success_count), (2, 8));
        let r = parse_results(br#"[{"code":"0x1005","severity":"Error","errorReason":"Invalid indicator","errorMessage":"bad. Last known JSON path: '$.indicator[17]': Last processed indicator[17] 'x'."},
            {"code":"0x1001","severity":"Warning","errorMessage":"ignored"}]"#).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].item, Some(17));
        assert!(r[0].reason.starts_with("Invalid indicator: bad."));
        assert!(!r[0].fatal);
    }

    #[test]
    fn legacy_errors_are_read_gzipped_or_not() {
        let json = br#"[{"errorReason":"Encountered an unexpected Exception while processing batch job","errorSource":"{\"summary\":\"1.2.3.4\",\"type\":\"Address\"}"},
            {"errorReason":"excluded","errorSource":{"summary":"bad.com"}},
            {"errorReason":"x","errorSource":"evil.com"}]"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(json).unwrap();
        for body in [json.to_vec(), gz.finish().unwrap()] {
            let e = parse_errors(&body).unwrap();
            let summaries: Vec<_> = e.iter().map(|e| e.summary.clone().unwrap()).collect();
            assert_eq!(summaries, ["1.2.3.4", "bad.com", "evil.com"]);
            assert!(e[0].fatal && !e[1].fatal);
        }
    }
}
