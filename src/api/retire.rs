//! The requests that change or retire an indicator (tc-api.md section 9):
//! v3 `PUT` of its status, v3 `DELETE`, and the v3 look-up of its id.

use serde_json::json;

use super::request::{ApiRequest, Endpoints, Method, encode_component};
use crate::indicator::Indicator;

/// What names an indicator in a v3 path: its summary (the v2 path
/// identifier, tc-api.md section 9) or its id, once looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V3Target {
    Summary,
    Id(i64),
}

impl Endpoints {
    /// `PUT /v3/indicators/<summary or id>?owner=...` with `{"active": ..}`:
    /// deactivates (or reactivates) an indicator (tc-api.md section 9).
    pub fn set_active(
        &self,
        ind: &Indicator,
        owner: &str,
        target: V3Target,
        active: bool,
    ) -> ApiRequest {
        ApiRequest {
            method: Method::Put,
            path_and_query: v3_indicator_path(ind, owner, target),
            body: Some(json!({ "active": active })),
            upload: None,
        }
    }

    /// `DELETE /v3/indicators/<summary or id>?owner=...`.
    pub fn delete(&self, ind: &Indicator, owner: &str, target: V3Target) -> ApiRequest {
        ApiRequest {
            method: Method::Delete,
            path_and_query: v3_indicator_path(ind, owner, target),
            body: None,
            upload: None,
        }
    }

    /// `GET /v3/indicators?owner=...&tql=typeName EQ "<type>" AND summary
    /// EQ "<value>"`: the id of an indicator its summary did not find in a
    /// path. `inactive`: look among inactive indicators (listings leave
    /// them out otherwise).
    pub fn lookup(&self, ind: &Indicator, owner: &str, inactive: bool) -> ApiRequest {
        let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut tql = format!(
            "typeName EQ {} AND summary EQ {}",
            quoted(self.type_name(ind.kind())),
            quoted(ind.summary())
        );
        if inactive {
            tql.push_str(" AND indicatorActive EQ false");
        }
        ApiRequest {
            method: Method::Get,
            path_and_query: format!(
                "/v3/indicators?owner={}&tql={}",
                encode_component(owner),
                encode_component(&tql)
            ),
            body: None,
            upload: None,
        }
    }
}

/// `/v3/indicators/<summary or id>?owner=...`: the summary as v2's path
/// identifier, encoded the same way.
fn v3_indicator_path(ind: &Indicator, owner: &str, target: V3Target) -> String {
    let named = match target {
        V3Target::Summary => encode_component(ind.path_identifier()),
        V3Target::Id(id) => id.to_string(),
    };
    format!("/v3/indicators/{named}?owner={}", encode_component(owner))
}
