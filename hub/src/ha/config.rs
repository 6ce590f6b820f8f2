//! The device-based discovery payload (Home Assistant's current MQTT discovery schema): one
//! retained JSON document per device on `<discovery_prefix>/device/<node_id>/config` with
//! `dev` (device info), `o` (origin), shared availability and `cmps`, a map of components, each
//! with its platform `p`, a `unique_id`, a `default_entity_id` (`<platform>.<object id>`, the
//! replacement of the removed `object_id` key), its state topic and a `value_template`.
//!
//! State comes from the JSON bridge: metrics on `<bridge>/<device>/metrics` (the decoded
//! message, `{"type":"metrics","device":..,"body":{..}}`), and what the hub derives itself on
//! `<bridge>/<device>/summary` ([`super::DeviceState::summary`]). Availability needs both the
//! device (`<bridge>/<device>/availability`, from its retained status) and the hub
//! (`<bridge>/availability`, the hub's will) to be `online`.

use serde_json::{Map, Value, json};

use super::{Settings, device::DeviceState};

/// A discovery node id (`[a-zA-Z0-9_-]`): the device id if it qualifies, else the id with
/// every other character replaced by `_` and a hash of the original appended, so two device
/// ids never share a discovery topic.
pub fn node_id(device: &str) -> String {
    if !device.is_empty()
        && device
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return device.to_owned();
    }
    let clean: String = device
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}_{:08x}", fnv1a(device.as_bytes()))
}

/// The object id part of default entity ids: lower case `[a-z0-9_]` (Home Assistant adds a
/// suffix itself if two devices end up with the same one).
pub fn object_id(device: &str) -> String {
    device
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// 32-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Where one component reads its state.
#[derive(Clone, Copy)]
enum Source {
    /// The bridged metrics message.
    Metrics,
    /// The hub's summary.
    Summary,
}

/// One entity of the device.
struct Component {
    key: String,
    platform: &'static str,
    name: String,
    source: Source,
    template: String,
    extra: Value,
}

impl Component {
    fn new(key: &str, platform: &'static str, name: &str, source: Source, template: &str) -> Self {
        Self {
            key: key.to_owned(),
            platform,
            name: name.to_owned(),
            source,
            template: template.to_owned(),
            extra: json!({}),
        }
    }

    fn with(mut self, extra: Value) -> Self {
        self.extra = extra;
        self
    }
}

/// The entities offered for a device, given what it has reported so far.
fn components(st: &DeviceState) -> Vec<Component> {
    use Source::{Metrics, Summary};
    let mut out = vec![
        Component::new(
            "cpu",
            "sensor",
            "CPU",
            Metrics,
            "{{ value_json.body.cpu_percent | round(1) }}",
        )
        .with(json!({"unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:cpu-64-bit"})),
        Component::new(
            "memory",
            "sensor",
            "Memory used",
            Metrics,
            "{% set b = value_json.body %}{{ (100 * b.mem_used_kib / b.mem_total_kib) | round(1) if b.mem_total_kib > 0 else none }}",
        )
        .with(json!({"unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:memory"})),
    ];
    let mut keys: Vec<String> = Vec::new();
    for (i, label) in st.temperatures.iter().enumerate() {
        // Two labels may map to the same key ("cpu thermal", "cpu_thermal"): number the later.
        let mut key = format!("temp_{}", object_id(label));
        if keys.contains(&key) {
            key = format!("{key}_{i}");
        }
        keys.push(key.clone());
        // Labels are template-safe (`device::template_safe`): no quote can end the literal.
        let template = format!(
            "{{% set t = value_json.body.temperatures | selectattr('label', 'eq', '{label}') | list %}}{{{{ (t[0].celsius | round(1)) if t else none }}}}"
        );
        let name = if i == 0 && st.temperatures.len() == 1 {
            "Temperature".to_owned()
        } else {
            format!("Temperature {label}")
        };
        out.push(
            Component::new(&key, "sensor", &name, Metrics, &template)
                .with(json!({"device_class": "temperature", "unit_of_measurement": "°C", "state_class": "measurement"})),
        );
    }
    if st.health_seen.throttled {
        out.push(
            Component::new(
                "throttled",
                "binary_sensor",
                "Throttled",
                Summary,
                "{{ 'ON' if value_json.throttled else 'OFF' }}",
            )
            .with(json!({"device_class": "problem"})),
        );
    }
    if st.health_seen.under_voltage {
        out.push(
            Component::new(
                "under_voltage",
                "binary_sensor",
                "Under-voltage",
                Summary,
                "{{ 'ON' if value_json.under_voltage else 'OFF' }}",
            )
            .with(json!({"device_class": "problem"})),
        );
    }
    out.push(
        Component::new(
            "crashes",
            "sensor",
            "Exits by signal",
            Summary,
            "{{ value_json.crashes }}",
        )
        .with(json!({"state_class": "total_increasing", "icon": "mdi:skull-crossbones"})),
    );
    out.push(
        Component::new(
            "new_listen_ports",
            "sensor",
            "New listening ports",
            Summary,
            "{{ value_json.new_listen_ports }}",
        )
        .with(json!({"state_class": "total_increasing", "icon": "mdi:lan-connect"})),
    );
    out.push(
        Component::new(
            "drops",
            "sensor",
            "Events dropped",
            Metrics,
            "{{ value_json.body.agent.drops | sum(attribute='count') }}",
        )
        .with(json!({"state_class": "total_increasing", "entity_category": "diagnostic", "icon": "mdi:delete-alert"})),
    );
    out.push(
        Component::new(
            "agent_rss",
            "sensor",
            "Agent memory",
            Metrics,
            "{{ value_json.body.agent.rss_kib }}",
        )
        .with(json!({"device_class": "data_size", "unit_of_measurement": "KiB", "state_class": "measurement", "entity_category": "diagnostic"})),
    );
    out
}

/// The discovery topic of `device`.
pub fn topic(s: &Settings, device: &str) -> String {
    format!("{}/device/{}/config", s.discovery_prefix, node_id(device))
}

/// The discovery payload of `device` as it is known now.
pub fn payload(s: &Settings, device: &str, st: &DeviceState) -> Value {
    let base = format!("{}/{device}", s.bridge_prefix);
    let oid = object_id(device);
    let mut cmps = Map::new();
    for c in components(st) {
        let mut v = json!({
            "p": c.platform,
            "name": c.name,
            "unique_id": format!("edge_{device}_{}", c.key),
            "default_entity_id": format!("{}.{oid}_{}", c.platform, c.key),
            "state_topic": match c.source {
                Source::Metrics => format!("{base}/metrics"),
                Source::Summary => format!("{base}/summary"),
            },
            "value_template": c.template,
        });
        if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), c.extra) {
            obj.extend(extra);
        }
        cmps.insert(c.key, v);
    }
    let mut dev = json!({
        "ids": [format!("edge_{device}")],
        "name": device,
        "mf": "firmware-agent",
        "sn": device,
    });
    if let (Some(b), Some(obj)) = (&st.birth, dev.as_object_mut()) {
        obj.insert("mdl".into(), json!(b.arch));
        obj.insert("sw".into(), json!(b.agent_version));
        obj.insert(
            "hw".into(),
            json!(format!(
                "kernel {}, {} KiB pages, BTF {}",
                b.kernel_release,
                b.page_size / 1024,
                if b.kernel_btf { "yes" } else { "no" }
            )),
        );
    }
    if let (Some(url), Some(obj)) = (&s.device_url, dev.as_object_mut()) {
        obj.insert(
            "configuration_url".into(),
            json!(url.replace("{device}", device)),
        );
    }
    let mut origin = json!({"name": "edge-hub", "sw": env!("CARGO_PKG_VERSION")});
    if let (Some(url), Some(obj)) = (&s.origin_url, origin.as_object_mut()) {
        obj.insert("url".into(), json!(url));
    }
    json!({
        "dev": dev,
        "o": origin,
        "availability": [
            {"topic": format!("{base}/availability"), "payload_available": "online", "payload_not_available": "offline"},
            {"topic": s.hub_availability_topic(), "payload_available": "online", "payload_not_available": "offline"},
        ],
        "availability_mode": "all",
        "qos": 1,
        "cmps": cmps,
    })
}

#[cfg(test)]
pub(crate) mod tests;
