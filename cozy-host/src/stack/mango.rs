//! The subset of CouchDB's Mango queries that cozy-konnector-libs and
//! cozy-client send to `_find`, evaluated on the run's documents.
//!
//! Selectors: implicit equality (`{"a": 1}`, `{"a.b": "x"}`, nested
//! objects), `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte`, `$in`, `$nin`,
//! `$exists`, `$and`, `$or`, `$nor`, `$not`. `sort` (one or more fields,
//! asc or desc), `skip`, `limit` and `fields`. Anything else is refused
//! with the operator named, so a gap shows at once. Comparison follows
//! CouchDB's collation for the JSON types (null < false < true < numbers <
//! strings < arrays < objects), with strings compared by code point.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// A query that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// A parsed `_find` body.
#[derive(Debug, Clone)]
pub struct Query {
    selector: Value,
    sort: Vec<(String, bool)>,
    skip: usize,
    limit: Option<usize>,
    fields: Option<Vec<String>>,
}

impl Query {
    /// Reads a `_find` body (`selector`, `sort`, `skip`, `limit`, `fields`;
    /// `use_index`, `bookmark` and the like are accepted and ignored).
    pub fn parse(body: &Value) -> Result<Self, QueryError> {
        let selector = body
            .get("selector")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        if !selector.is_object() {
            return Err(QueryError("`selector` must be an object".into()));
        }
        check(&selector)?;
        let sort = match body.get("sort") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(f) => Ok((f.clone(), true)),
                    Value::Object(o) if o.len() == 1 => {
                        let (f, dir) = o
                            .iter()
                            .next()
                            .ok_or_else(|| QueryError("empty sort".into()))?;
                        match dir.as_str() {
                            Some("asc") => Ok((f.clone(), true)),
                            Some("desc") => Ok((f.clone(), false)),
                            _ => Err(QueryError(format!(
                                "sort direction of `{f}` must be asc or desc"
                            ))),
                        }
                    }
                    other => Err(QueryError(format!("cannot sort by {other}"))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(QueryError(format!("`sort` must be a list, not {other}"))),
        };
        let number = |name: &str| -> Result<Option<usize>, QueryError> {
            match body.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(|n| Some(n as usize))
                    .ok_or_else(|| QueryError(format!("`{name}` must be a whole number"))),
            }
        };
        let fields = match body.get("fields") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|f| {
                        f.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| QueryError("`fields` must list field names".into()))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(_) => return Err(QueryError("`fields` must be a list".into())),
        };
        Ok(Self {
            selector,
            sort,
            skip: number("skip")?.unwrap_or(0),
            limit: number("limit")?,
            fields,
        })
    }

    /// Whether a document matches the selector.
    pub fn matches(&self, doc: &Value) -> bool {
        matches_selector(&self.selector, doc)
    }

    /// The page size, as cozy-stack settles it: 100 when not given or
    /// above 1000.
    pub fn limit(&self) -> usize {
        match self.limit {
            Some(n) if (1..=1000).contains(&n) => n,
            _ => DEFAULT_LIMIT,
        }
    }

    /// Filters, sorts, skips, limits ([`Query::limit`]) and projects.
    /// Returns the page and cozy-stack's `next`: whether the page is full
    /// (`len >= limit`, exactly as cozy-stack computes it; the libraries
    /// loop while it is true, asking with `skip` = what they have).
    pub fn run(&self, docs: Vec<Value>) -> (Vec<Value>, bool) {
        let mut found: Vec<Value> = docs.into_iter().filter(|d| self.matches(d)).collect();
        if !self.sort.is_empty() {
            found.sort_by(|a, b| {
                for (field, asc) in &self.sort {
                    let o = collate(lookup(a, field), lookup(b, field));
                    let o = if *asc { o } else { o.reverse() };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            });
        }
        let limit = self.limit();
        let page: Vec<Value> = found
            .into_iter()
            .skip(self.skip)
            .take(limit)
            .map(|d| self.project(d))
            .collect();
        let next = page.len() >= limit;
        (page, next)
    }

    fn project(&self, doc: Value) -> Value {
        let Some(fields) = &self.fields else {
            return doc;
        };
        let mut out = Map::new();
        for f in fields {
            if let Some(v) = lookup(&doc, f) {
                insert_path(&mut out, f, v.clone());
            }
        }
        Value::Object(out)
    }
}

/// cozy-stack's page size for `_find` without a (valid) `limit`.
pub const DEFAULT_LIMIT: usize = 100;

const OPERATORS: &[&str] = &[
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$and", "$or", "$nor",
    "$not",
];

/// Refuses operators this subset does not evaluate, naming them.
fn check(selector: &Value) -> Result<(), QueryError> {
    match selector {
        Value::Object(map) => {
            for (k, v) in map {
                if k.starts_with('$') && !OPERATORS.contains(&k.as_str()) {
                    return Err(QueryError(format!(
                        "the Mango operator `{k}` is not served by Gleaner (served: {})",
                        OPERATORS.join(" ")
                    )));
                }
                check(v)?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(check),
        _ => Ok(()),
    }
}

fn matches_selector(selector: &Value, doc: &Value) -> bool {
    let Value::Object(map) = selector else {
        return false;
    };
    map.iter().all(|(k, v)| match k.as_str() {
        "$and" => v
            .as_array()
            .is_some_and(|items| items.iter().all(|s| matches_selector(s, doc))),
        "$or" => v
            .as_array()
            .is_some_and(|items| items.iter().any(|s| matches_selector(s, doc))),
        "$nor" => v
            .as_array()
            .is_some_and(|items| !items.iter().any(|s| matches_selector(s, doc))),
        "$not" => !matches_selector(v, doc),
        field => matches_condition(lookup(doc, field), v, doc, field),
    })
}

/// `value` is the document's value at `field` (`None`: missing).
fn matches_condition(value: Option<&Value>, condition: &Value, doc: &Value, field: &str) -> bool {
    match condition {
        Value::Object(ops) if ops.keys().any(|k| k.starts_with('$')) => {
            ops.iter().all(|(op, arg)| apply(op, value, arg))
        }
        // A nested selector: `{"metadata": {"fileIdAttributes": "x"}}`.
        Value::Object(sub) => sub.iter().all(|(k, v)| {
            let path = format!("{field}.{k}");
            matches_condition(lookup(doc, &path), v, doc, &path)
        }),
        other => value.is_some_and(|v| collate(Some(v), Some(other)) == Ordering::Equal),
    }
}

fn apply(op: &str, value: Option<&Value>, arg: &Value) -> bool {
    let cmp =
        |want: &[Ordering]| value.is_some_and(|v| want.contains(&collate(Some(v), Some(arg))));
    match op {
        "$eq" => cmp(&[Ordering::Equal]),
        "$ne" => !cmp(&[Ordering::Equal]),
        "$gt" => cmp(&[Ordering::Greater]),
        "$gte" => cmp(&[Ordering::Greater, Ordering::Equal]),
        "$lt" => cmp(&[Ordering::Less]),
        "$lte" => cmp(&[Ordering::Less, Ordering::Equal]),
        "$in" => arg.as_array().is_some_and(|items| {
            value.is_some_and(|v| {
                items
                    .iter()
                    .any(|i| collate(Some(v), Some(i)) == Ordering::Equal)
            })
        }),
        "$nin" => arg.as_array().is_some_and(|items| {
            !value.is_some_and(|v| {
                items
                    .iter()
                    .any(|i| collate(Some(v), Some(i)) == Ordering::Equal)
            })
        }),
        "$exists" => arg.as_bool().is_some_and(|want| want == value.is_some()),
        "$not" => match value {
            Some(v) => !matches_condition(Some(v), arg, v, ""),
            None => true,
        },
        _ => false,
    }
}

/// The value at a dotted path (`metadata.fileIdAttributes`).
pub fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = doc.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(doc, |v, part| v.get(part))
}

fn insert_path(out: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            out.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = out
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

fn rank(v: Option<&Value>) -> u8 {
    match v {
        None | Some(Value::Null) => 0,
        Some(Value::Bool(false)) => 1,
        Some(Value::Bool(true)) => 2,
        Some(Value::Number(_)) => 3,
        Some(Value::String(_)) => 4,
        Some(Value::Array(_)) => 5,
        Some(Value::Object(_)) => 6,
    }
}

/// CouchDB's order between two JSON values (missing sorts first).
pub fn collate(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let (ra, rb) = (rank(a), rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let (x, y) = (x.to_string(), y.to_string());
            match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                _ => x.cmp(&y),
            }
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for (i, j) in x.iter().zip(y) {
                let o = collate(Some(i), Some(j));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Some(Value::Object(x)), Some(Value::Object(y))) => Value::Object(x.clone())
            .to_string()
            .cmp(&Value::Object(y.clone()).to_string()),
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn docs() -> Vec<Value> {
        vec![
            json!({"_id": "a", "date": "2026-01-05", "amount": 19.99, "vendor": "Free", "metadata": {"fileIdAttributes": "k1"}, "trashed": false}),
            json!({"_id": "b", "date": "2026-02-05", "amount": 9.5, "vendor": "Free", "metadata": {"fileIdAttributes": "k2"}, "trashed": false}),
            json!({"_id": "c", "date": "2026-03-05", "amount": 30, "vendor": "Orange", "trashed": true}),
        ]
    }

    fn ids(q: Value) -> Vec<String> {
        let q = Query::parse(&q).unwrap();
        q.run(docs())
            .0
            .iter()
            .map(|d| d["_id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn selectors_like_the_libs_send() {
        assert_eq!(ids(json!({"selector": {"vendor": "Free"}})), ["a", "b"]);
        assert_eq!(
            ids(json!({"selector": {"metadata.fileIdAttributes": "k2", "trashed": false}})),
            ["b"]
        );
        assert_eq!(
            ids(json!({"selector": {"metadata": {"fileIdAttributes": "k1"}}})),
            ["a"]
        );
        assert_eq!(
            ids(
                json!({"selector": {"date": {"$gt": null}}, "sort": [{"date": "desc"}], "limit": 2})
            ),
            ["c", "b"]
        );
        assert_eq!(
            ids(json!({"selector": {"amount": {"$gte": 10, "$lt": 30}}})),
            ["a"]
        );
        assert_eq!(
            ids(json!({"selector": {"vendor": {"$in": ["Orange"]}}})),
            ["c"]
        );
        assert_eq!(
            ids(json!({"selector": {"metadata": {"$exists": false}}})),
            ["c"]
        );
        assert_eq!(
            ids(json!({"selector": {"$or": [{"_id": "a"}, {"_id": "c"}]}})),
            ["a", "c"]
        );
        assert_eq!(
            ids(json!({"selector": {"_id": {"$ne": "a"}}, "skip": 1})),
            ["c"]
        );
    }

    #[test]
    fn fields_project_and_more_is_reported() {
        let q = Query::parse(
            &json!({"selector": {}, "fields": ["_id", "metadata.fileIdAttributes"], "limit": 1}),
        )
        .unwrap();
        let (page, more) = q.run(docs());
        assert!(more);
        assert_eq!(
            page,
            [json!({"_id": "a", "metadata": {"fileIdAttributes": "k1"}})]
        );
    }

    #[test]
    fn unknown_operators_are_named() {
        let err = Query::parse(&json!({"selector": {"a": {"$regex": "x"}}})).unwrap_err();
        assert!(err.0.contains("$regex"), "{err}");
    }
}
