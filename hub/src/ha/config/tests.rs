//! Unit tests of the discovery payload builder: the documented device-based schema (shared
//! with the discovery tests), node and object ids, temperature keys, board-health entities,
//! origin and configuration URLs.

use serde_json::{Value, json};

use super::*;
use crate::ha::device::{BoardHealth, HealthSeen};

fn settings() -> Settings {
    Settings::new("homeassistant", "edge-json").expect("settings")
}

/// The checks of the documented device-based schema, shared with the integration test's.
pub(crate) fn check_schema(topic: &str, v: &Value) {
    let parts: Vec<&str> = topic.split('/').collect();
    assert_eq!(parts.len(), 4, "{topic}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("homeassistant", "device", "config")
    );
    assert!(
        parts[2]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    );
    assert!(!v["dev"]["ids"].as_array().expect("ids").is_empty());
    assert!(v["o"]["name"].is_string(), "origin name is required");
    let cmps = v["cmps"].as_object().expect("cmps");
    let mut ids: Vec<&str> = Vec::new();
    for (key, c) in cmps {
        let p = c["p"].as_str().expect("p");
        let default_id = c["default_entity_id"].as_str().expect("default_entity_id");
        assert!(
            default_id.starts_with(&format!("{p}.")),
            "{key}: {default_id}"
        );
        assert!(
            c.get("object_id").is_none() && c.get("obj_id").is_none(),
            "{key}"
        );
        assert!(
            c["state_topic"].is_string() && c["value_template"].is_string(),
            "{key}"
        );
        ids.push(c["unique_id"].as_str().expect("unique_id"));
    }
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "unique ids are unique");
}

#[test]
fn a_single_label_is_just_temperature_and_colliding_labels_get_distinct_keys() {
    let mut st = DeviceState::default();
    st.temperatures = vec!["cpu thermal".into()];
    let v = payload(&settings(), "pi1", &st);
    assert_eq!(v["cmps"]["temp_cpu_thermal"]["name"], "Temperature");
    st.temperatures.push("cpu_thermal".into());
    let v = payload(&settings(), "pi1", &st);
    check_schema("homeassistant/device/pi1/config", &v);
    assert!(v["cmps"]["temp_cpu_thermal"].is_object());
    assert_eq!(
        v["cmps"]["temp_cpu_thermal_1"]["name"],
        "Temperature cpu_thermal"
    );
}

#[test]
fn board_health_entities_appear_once_reported() {
    let mut st = DeviceState::default();
    st.health_seen = HealthSeen {
        throttled: true,
        under_voltage: true,
    };
    st.health = BoardHealth {
        throttled: Some(true),
        under_voltage: Some(false),
    };
    let v = payload(&settings(), "pi1", &st);
    check_schema("homeassistant/device/pi1/config", &v);
    assert_eq!(
        v["cmps"]["throttled"],
        json!({"p": "binary_sensor", "name": "Throttled", "unique_id": "edge_pi1_throttled",
               "default_entity_id": "binary_sensor.pi1_throttled",
               "state_topic": "edge-json/pi1/summary",
               "value_template": "{{ 'ON' if value_json.throttled else 'OFF' }}",
               "device_class": "problem"})
    );
    assert_eq!(v["cmps"]["under_voltage"]["p"], "binary_sensor");
    assert_eq!(st.summary()["throttled"], true);
    assert_eq!(st.summary()["under_voltage"], false);
}

#[test]
fn node_ids_are_topic_safe_and_distinct() {
    assert_eq!(node_id("pi5-0042"), "pi5-0042");
    let dotted = node_id("pi.5");
    assert!(
        dotted.starts_with("pi_5_") && dotted.len() == "pi_5_".len() + 8,
        "{dotted}"
    );
    assert_ne!(dotted, node_id("pi_5"));
    assert_ne!(dotted, node_id("pi 5"));
    assert_eq!(object_id("Pi5-0042.lab"), "pi5_0042_lab");
    assert_eq!(
        topic(&settings(), "pi.5"),
        format!("homeassistant/device/{dotted}/config")
    );
}

#[test]
fn urls_become_origin_and_configuration_urls() {
    let mut s = settings();
    s.origin_url = Some("http://hub.lan:8080/".into());
    s.device_url = Some("http://hub.lan:8080/device/{device}".into());
    let v = payload(&s, "pi1", &DeviceState::default());
    assert_eq!(v["o"]["url"], "http://hub.lan:8080/");
    assert_eq!(
        v["dev"]["configuration_url"],
        "http://hub.lan:8080/device/pi1"
    );
}
