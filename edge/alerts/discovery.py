"""MQTT topics of one gate, and its Home Assistant discovery messages.

Pure functions over the config: they build topic names and payloads and publish nothing, so they
are tested without a broker.  Home Assistant's MQTT discovery reads retained JSON configs under
``<discovery_prefix>/<component>/<node_id>/<object_id>/config``; each entity names the device it
belongs to (``device.identifiers``), where its state comes from, and the gate's availability topic.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from maskgate import __version__
from maskgate.edge.config import Config
from maskgate.edge.events import EVENT_KINDS
from maskgate.errors import ConfigError

#: event kinds published on ``.../decision`` and offered by the Home Assistant event entity: the
#: outcomes of a visit and the other ways the door opens (only those the gate records)
DECISION_KINDS = tuple(k for k in ("unlocked", "denied", "allowed", "remote_unlock", "exit_request")
                       if k in EVENT_KINDS)

PAYLOAD_ONLINE = "online"
PAYLOAD_OFFLINE = "offline"
PAYLOAD_LOCK = "LOCK"

_TOPIC_LEVEL = re.compile(r"^[^/+#\x00]+$")


def node_id(name: str) -> str:
    """``name`` reduced to the characters Home Assistant accepts in a node / unique id."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "gate"


@dataclass(frozen=True)
class Topics:
    """Every topic of one gate: ``<mqtt.topic_prefix>/<device.name>/...``."""

    base: str
    discovery_prefix: str
    node: str  # Home Assistant node id, also the device identifier

    @classmethod
    def from_config(cls, cfg: Config) -> "Topics":
        for key, value in (("mqtt.topic_prefix", cfg.mqtt.topic_prefix), ("device.name", cfg.device.name)):
            if not all(_TOPIC_LEVEL.match(level) for level in value.split("/")):
                raise ConfigError(key, f"{value!r} cannot be part of an MQTT topic (no empty levels, '+', '#')")
        if not _TOPIC_LEVEL.match(cfg.device.name):
            raise ConfigError("device.name", f"{cfg.device.name!r} must be one topic level (no '/')")
        if not all(_TOPIC_LEVEL.match(level) for level in cfg.mqtt.discovery_prefix.split("/")):
            raise ConfigError("mqtt.discovery_prefix", f"{cfg.mqtt.discovery_prefix!r} is not a valid topic prefix")
        return cls(
            base=f"{cfg.mqtt.topic_prefix}/{cfg.device.name}",
            discovery_prefix=cfg.mqtt.discovery_prefix,
            node=node_id(f"maskgate_{cfg.device.name}"),
        )

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def decision(self) -> str:
        return f"{self.base}/decision"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def telemetry(self) -> str:
        return f"{self.base}/telemetry"

    @property
    def camera(self) -> str:
        """JPEG pictures of the door (``mqtt.camera``)."""
        return f"{self.base}/camera"

    @property
    def lock_set(self) -> str:
        return f"{self.base}/lock/set"

    @property
    def ha_status(self) -> str:
        """Where Home Assistant announces itself (``online`` after a restart)."""
        return f"{self.discovery_prefix}/status"

    def config_topic(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node}/{object_id}/config"


def discovery_messages(cfg: Config, topics: Topics, *, door_contact: bool | None = None, cpu_temperature: bool = False,
                       mode: str = "gate", camera: bool = False) -> list[tuple[str, str]]:
    """(topic, retained JSON payload) for every entity of the gate.

    An entity the gate does not have (no door contact wired; no lock in monitor mode, no crowd
    sensors at a door; no camera unless ``mqtt.camera`` feeds one) gets an empty payload, which
    removes it from Home Assistant if an earlier configuration had announced it.
    """
    monitor = mode == "monitor"
    if door_contact is None:
        door_contact = cfg.gpio.door_contact >= 0 and not monitor
    device = {
        "identifiers": [topics.node],
        "name": cfg.device.name,
        "manufacturer": "maskgate",
        "model": "mask-checking door gate",
        "sw_version": __version__,
    }
    common = {
        "device": device,
        "origin": {"name": "maskgate", "sw_version": __version__},
        "availability": [{"topic": topics.status, "payload_available": PAYLOAD_ONLINE,
                          "payload_not_available": PAYLOAD_OFFLINE}],
    }

    def entity(object_id: str, **fields) -> dict:
        return {"unique_id": f"{topics.node}_{object_id}", **common, **fields}

    entities: list[tuple[str, str, dict | None]] = [
        # The lock is shown, never commanded: Home Assistant's lock entity sends a fixed UNLOCK, which the
        # gate always refuses (remote unlock off: nobody listens; on: only a fresh signed command opens).  A
        # lock entity announced by an earlier version is removed (empty config); a signed unlock is sent as
        # edge/alerts/README.md shows.
        ("lock", "lock", None),
        ("binary_sensor", "lock_state", entity(
            "lock_state", name="Lock", device_class="lock",  # Home Assistant: on = unlocked, off = locked
            state_topic=topics.state, value_template="{{ 'ON' if value_json.lock == 'unlocked' else 'OFF' }}",
        ) if not monitor else None),
        ("sensor", "people", entity(
            "people", name="People", state_class="measurement", icon="mdi:account-group",
            state_topic=topics.telemetry, value_template="{{ value_json.people }}",
        ) if monitor else None),
        ("sensor", "masked_share", entity(
            "masked_share", name="Masked share", unit_of_measurement="%", state_class="measurement", icon="mdi:face-mask",
            state_topic=topics.telemetry,
            value_template="{{ (value_json.masked_share * 100) | round(0) if value_json.masked_share is not none else none }}",
        ) if monitor else None),
        ("sensor", "violations", entity(
            "violations", name="Distancing violations", state_class="measurement", icon="mdi:social-distance-2-meters",
            state_topic=topics.telemetry, value_template="{{ value_json.violations }}",
        ) if monitor else None),
        ("binary_sensor", "door", entity(
            "door", name="Door", device_class="door",
            state_topic=topics.state, value_template="{{ 'ON' if value_json.door_open else 'OFF' }}",
        ) if door_contact else None),
        ("binary_sensor", "problem", entity(
            "problem", name="Problem", device_class="problem", entity_category="diagnostic",
            state_topic=topics.state, value_template="{{ 'ON' if value_json.fault else 'OFF' }}",
            json_attributes_topic=topics.state,
        )),
        ("sensor", "fps", entity(
            "fps", name="Frame rate", unit_of_measurement="fps", state_class="measurement",
            entity_category="diagnostic", icon="mdi:camera-timer",
            state_topic=topics.telemetry, value_template="{{ value_json.fps }}",
        )),
        ("sensor", "inference", entity(
            "inference", name="Inference time", unit_of_measurement="ms", device_class="duration",
            state_class="measurement", entity_category="diagnostic",
            state_topic=topics.telemetry, value_template="{{ value_json.infer_ms }}",
        )),
        ("sensor", "cpu_temperature", entity(
            "cpu_temperature", name="CPU temperature", unit_of_measurement="°C", device_class="temperature",
            state_class="measurement", entity_category="diagnostic",
            state_topic=topics.telemetry, value_template="{{ value_json.cpu_temp_c }}",
        ) if cpu_temperature else None),
        ("event", "decision", entity(
            "decision", name="Decision", event_types=list(DECISION_KINDS), state_topic=topics.decision,
        )),
        # raw JPEG bytes on the topic (no image_encoding): Home Assistant shows each message as it comes
        ("camera", "camera", entity("camera", name="Camera", topic=topics.camera, icon="mdi:cctv") if camera else None),
    ]
    return [
        (topics.config_topic(component, object_id), "" if payload is None else json.dumps(payload, sort_keys=True))
        for component, object_id, payload in entities
    ]


def decision_payload(event_json: dict) -> dict:
    """The ``.../decision`` message for Home Assistant's event entity: the event with ``event_type``."""
    return {"event_type": event_json["event"], **{k: v for k, v in event_json.items() if k != "event"}}
