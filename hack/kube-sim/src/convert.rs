//! Conversion between a served version and its storage form, for resources that share
//! storage with another group: events.k8s.io/v1 Events are stored as core/v1 Events, as on a
//! real cluster, so `kubectl get events` shows what a controller's `Recorder` published.

use serde_json::{Map, Value, json};

use crate::resources::{Conversion, ResourceInfo};

/// (core/v1 field, events.k8s.io/v1 field) pairs that only change name.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn rename(
    obj: &Value,
    from_to: impl Iterator<Item = (&'static str, &'static str)>,
    api_version: &str,
) -> Value {
    let Some(m) = obj.as_object() else {
        return obj.clone();
    };
    let pairs: Vec<(&str, &str)> = from_to.collect();
    let mut out = Map::new();
    for (k, v) in m {
        let key = pairs
            .iter()
            .find(|(from, _)| from == k)
            .map_or(k.as_str(), |(_, to)| to);
        out.insert(key.to_string(), v.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// The object as served in `info`'s version, from its storage form.
pub fn to_served(stored: &Value, info: &ResourceInfo) -> Value {
    match info.conversion {
        Conversion::None => stored.clone(),
        Conversion::EventsV1 => rename(stored, EVENT_FIELDS.iter().copied(), "events.k8s.io/v1"),
    }
}

/// The storage form of an object written in `info`'s version.
pub fn to_storage(served: &Value, info: &ResourceInfo) -> Value {
    match info.conversion {
        Conversion::None => served.clone(),
        Conversion::EventsV1 => rename(served, EVENT_FIELDS.iter().map(|(a, b)| (*b, *a)), "v1"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ResourceTable;
    use proptest::prelude::*;

    fn events_v1() -> std::sync::Arc<ResourceInfo> {
        ResourceTable::builtin()
            .get("events.k8s.io", "v1", "events")
            .unwrap()
    }

    #[test]
    fn events_convert_like_the_api_server() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hello", "reason": "Started",
            "reportingController": "ctl", "reportingInstance": "ctl-1", "type": "Normal",
            "series": {"count": 2, "lastObservedTime": "2025-01-01T00:00:00.000000Z"}});
        let core = to_storage(&v1, &events_v1());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "ctl");
        assert_eq!(core["series"]["count"], 2);
        assert_eq!(to_served(&core, &events_v1()), v1);
    }

    proptest! {
        #[test]
        fn served_storage_round_trip(keys in proptest::collection::btree_set(
            prop_oneof![Just("regarding"), Just("note"), Just("reason"), Just("type"),
                        Just("reportingController"), Just("deprecatedCount"), Just("action")], 0..7)) {
            let mut v = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}});
            for k in keys {
                v[k] = json!(k.len());
            }
            prop_assert_eq!(to_served(&to_storage(&v, &events_v1()), &events_v1()), v);
        }
    }
}
