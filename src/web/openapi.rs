//! `/api/openapi.json`: the JSON API described in OpenAPI 3.1, served as it is kept in the repository
//! (`docs/openapi.json`). Public, like the README that describes the same API: it holds no data, and the tools
//! that read it (code generators, API gateways, Swagger UI) fetch it before anyone has given them a token.
//! The tests below hold it to the router and to the structs that read each route's query.

use axum::http::header;
use axum::response::IntoResponse;

const DOCUMENT: &str = include_str!("../../docs/openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::Deserialize;
    use serde::de::{Deserializer, Error as _, Visitor};
    use serde_json::Value;

    use super::DOCUMENT;
    use crate::web::ROUTES;
    use crate::web::api::{DeadLetterParams, EventParams, ExceptionParams};

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    /// The fields a derived `Deserialize` struct reads, as the query string names them (renames applied): the
    /// derive hands them to `deserialize_struct`, which this deserializer keeps and then refuses.
    fn query_fields<'de, T: Deserialize<'de>>() -> BTreeSet<String> {
        struct Catch<'a>(&'a mut Option<&'static [&'static str]>);
        impl<'de> Deserializer<'de> for Catch<'_> {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(Self::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = Some(fields);
                Err(Self::Error::custom("fields taken"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
                unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
            }
        }
        let mut fields = None;
        let _ = T::deserialize(Catch(&mut fields));
        let fields = fields.expect("a struct with named fields");
        fields.iter().map(|f| f.to_string()).collect()
    }

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON")
    }

    /// Every operation of the document: (method, path, operation).
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    ops.push((method.to_string(), path.clone(), op.clone()));
                }
            }
        }
        ops
    }

    /// The names of an operation's parameters `in` there, following `$ref`s into the components.
    fn parameters(doc: &Value, op: &Value, place: &str) -> BTreeSet<String> {
        op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| match p["$ref"].as_str() {
                Some(r) => {
                    let name = r.trim_start_matches("#/components/parameters/");
                    doc["components"]["parameters"][name].clone()
                }
                None => p.clone(),
            })
            .filter(|p| p["in"] == place)
            .map(|p| p["name"].as_str().expect("a parameter's name").to_string())
            .collect()
    }

    #[test]
    fn the_document_is_openapi_3_1_with_bearer_auth_and_the_error_shape() {
        let doc = document();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        let bearer = &doc["components"]["securitySchemes"]["bearer"];
        assert_eq!(bearer["type"], "http");
        assert_eq!(bearer["scheme"], "bearer");
        let error = &doc["components"]["schemas"]["Error"];
        assert_eq!(error["required"], serde_json::json!(["error"]));
        assert_eq!(error["properties"]["error"]["type"], "string");
    }

    #[test]
    fn every_api_route_the_router_serves_is_in_the_document_and_every_operation_in_it_is_served() {
        let doc = document();
        let documented: BTreeSet<(String, String)> = operations(&doc)
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .collect();
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        for route in served.iter().filter(|(_, p)| p.starts_with("/api/")) {
            assert!(
                documented.contains(route),
                "{route:?} is served but not in docs/openapi.json"
            );
        }
        for op in &documented {
            assert!(
                served.contains(op),
                "{op:?} is in docs/openapi.json but not served"
            );
        }
    }

    #[test]
    fn each_operation_lists_exactly_the_query_and_path_parameters_its_route_reads() {
        let doc = document();
        let mut events = query_fields::<EventParams>();
        // The pages' only: the zone their form wrote `from` and `to` in. `/api/events` reads bounds with their
        // offset (or epoch milliseconds) and ignores it.
        assert!(events.remove("tz"), "{events:?}");
        let queries = [
            ("/api/events", events),
            ("/api/dead-letters", query_fields::<DeadLetterParams>()),
            ("/api/exceptions", query_fields::<ExceptionParams>()),
        ];
        for (method, path, op) in operations(&doc) {
            let expected = queries
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, fields)| fields.clone())
                .unwrap_or_default();
            assert_eq!(
                parameters(&doc, &op, "query"),
                expected,
                "{method} {path}: the query parameters documented and those read"
            );
            let in_path: BTreeSet<String> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_string)
                .collect();
            assert_eq!(parameters(&doc, &op, "path"), in_path, "{method} {path}");
        }
        let types = doc["paths"]["/api/events"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "type")
            .map(|p| p["schema"]["enum"].clone())
            .unwrap();
        assert_eq!(types, serde_json::json!(crate::event::EventType::names()));
    }
}
