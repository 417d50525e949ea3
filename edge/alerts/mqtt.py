"""MQTT: the gate's events, lock state, health and Home Assistant discovery on one broker connection.

Topics (``<base>`` is ``<mqtt.topic_prefix>/<device.name>``):

=====================  ======  ========  =========================================================
topic                  QoS     retained  payload
=====================  ======  ========  =========================================================
``<base>/status``      1       yes       ``online`` / ``offline`` (``offline`` is also the last will)
``<base>/event``       1       no        every event, versioned JSON (:meth:`Event.to_json`)
``<base>/decision``    1       no        decision events with ``event_type`` (Home Assistant event)
``<base>/state``       1       yes       ``{"lock": "locked"|"unlocked", "fault": null|"why", ...}``
``<base>/telemetry``   0       no        fps, inference ms, frames, CPU temperature, throttling
``<base>/camera``      0       no        JPEG of the annotated frame every ``mqtt.camera_interval``
                                         s — only with ``mqtt.camera`` (:mod:`.camera`)
``<base>/lock/set``    (in)    ignored   a signed unlock command (:mod:`.commands`) — only with
                                         ``mqtt.remote_unlock`` enabled
=====================  ======  ========  =========================================================

Events are published one at a time and acknowledged in the outbox only after the broker's PUBACK,
so an outage delays them but loses none; a publish cut off by an outage may arrive twice, with the
same ``uid``.  paho-mqtt is imported only when MQTT is enabled.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from maskgate.edge.alerts.commands import CommandVerifier
from maskgate.edge.alerts.discovery import (
    DECISION_KINDS, PAYLOAD_LOCK, PAYLOAD_OFFLINE, PAYLOAD_ONLINE, Topics,
    decision_payload, discovery_messages,
)
from maskgate.edge.alerts.outbox import Channel, DeliveryFailed, event_bytes, event_dict
from maskgate.edge.alerts.telemetry import Telemetry
from maskgate.edge.config import Config
from maskgate.edge.events import Event, EventStore, is_storage_fault
from maskgate.edge.status import GateStatus
from maskgate.errors import ConfigError, DependencyMissing

if TYPE_CHECKING:  # the camera (drawing, the page's module) is imported only by a gate that has one
    from maskgate.edge.alerts.camera import CameraFeed

log = logging.getLogger(__name__)

#: seconds to wait for the broker's PUBACK before treating a publish as failed (it is retried)
PUBLISH_TIMEOUT = 10.0
KEEPALIVE = 30
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


# ---------------------------------------------------------------------------------------------- #
# Broker URL


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool
    username: str = ""

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_broker_url(url: str, key: str = "mqtt.url") -> BrokerUrl:
    """``mqtt://[user@]host[:port]`` or ``mqtts://...`` (TLS); anything else is a ConfigError naming ``key``."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(key, f"{url!r} is not a broker URL: {exc}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ConfigError(key, f"{url!r}: the scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(key, f"{url!r}: no host")
    if port == 0:
        raise ConfigError(key, f"{url!r}: port 0 is not a broker port")
    if parts.password is not None:
        raise ConfigError(key, f"{parts.scheme}://{parts.username}:***@{parts.hostname}: a password does not belong "
                               "in a URL; put it in the file named by mqtt.password_file")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(key, f"{url!r}: a broker URL has no path, query or fragment")
    return BrokerUrl(parts.hostname, port or DEFAULT_PORTS[parts.scheme], parts.scheme == "mqtts", parts.username or "")


def mqtt_override(cfg: Config, url: str) -> Config:
    """``cfg`` with MQTT enabled and pointed at ``url`` (``maskgate run --mqtt URL``).

    A user name in the URL (``mqtt://gate@broker``) replaces ``mqtt.username``; the password still
    comes from ``mqtt.password_file``.
    """
    broker = parse_broker_url(url, key="mqtt.url")
    values: dict[str, Any] = {"enabled": True, "url": str(BrokerUrl(broker.host, broker.port, broker.tls))}
    if broker.username:
        values["username"] = broker.username
    return cfg.replace(mqtt=values)


def _import_paho():
    try:
        import paho.mqtt.client as mqtt_client
    except ImportError:
        raise DependencyMissing(
            "mqtt.enabled is true but paho-mqtt is not installed: pip install 'maskgate[alerts]'"
        ) from None
    if not hasattr(mqtt_client, "CallbackAPIVersion"):
        raise DependencyMissing("paho-mqtt 2.0 or newer is needed: pip install -U 'paho-mqtt>=2.0'")
    return mqtt_client


# ---------------------------------------------------------------------------------------------- #
# State implied by events


def implied_state(event: Event) -> dict[str, Any]:
    """The fields of ``.../state`` an event of this kind sets."""
    kind = event.event
    if kind in ("started", "stopped"):
        return {"lock": "locked", "fault": None}
    if kind == "locked":
        return {"lock": "locked"}
    if kind == "unlocked":
        return {"lock": "unlocked"}
    if kind == "fault":
        if is_storage_fault(event):  # a full disk stops nothing: the lock goes on being driven
            return {"fault": event.detail}
        return {"lock": "locked", "fault": event.detail or "fault"}
    if kind == "recovered":
        return {"fault": None}
    if kind in ("door_opened", "held_open"):
        return {"door_open": True}
    if kind == "door_closed":
        return {"door_open": False}
    return {}


# ---------------------------------------------------------------------------------------------- #
# The channel


class MqttChannel(Channel):
    name = "mqtt"

    def __init__(self, cfg: Config, store: EventStore, *, password: str | None, command_key: str | None = None,
                 status: Callable[[], GateStatus] | None = None,
                 on_command: Callable[[str, dict], None] | None = None,
                 telemetry: Telemetry | None = None, camera: CameraFeed | None = None):
        super().__init__(store, retry_max_seconds=cfg.mqtt.reconnect_max_seconds)
        self.cfg = cfg
        self.topics = Topics.from_config(cfg)
        self.broker = parse_broker_url(cfg.mqtt.url)
        self.status = status
        self.on_command = on_command
        self.telemetry = telemetry or Telemetry()
        self.remote_unlock = cfg.mqtt.remote_unlock and on_command is not None and command_key is not None
        self.verifier = (CommandVerifier(command_key.encode("utf-8"), max_age=cfg.mqtt.command_max_age_seconds)
                         if self.remote_unlock else None)
        if cfg.mqtt.remote_unlock and on_command is None:
            log.warning("mqtt.remote_unlock is enabled but this gate has no command handler; commands are ignored")
        if self.remote_unlock and not self.broker.tls:
            log.warning("mqtt.remote_unlock over plain mqtt://: credentials and commands cross the network "
                        "unencrypted; prefer mqtts://")
        self.camera = camera if cfg.mqtt.camera else None
        if self.camera is not None:
            self.camera.on_frame = self.wake
            if not self.broker.tls:
                log.warning("mqtt.camera over plain mqtt://: pictures of the door cross the network unencrypted")
        elif cfg.mqtt.camera:
            log.warning("mqtt.camera is on but only the door gate publishes pictures: no camera entity")

        self._connected = threading.Event()
        self._state_lock = threading.Lock()
        self._last_state: dict | None = None
        self._event_state: dict[str, Any] = {}  # lock/fault/door as the events delivered in this run left them
        self._state_dirty = False  # a state-changing event went out since the last state publish
        self._unacked: tuple[str, list] | None = None  # (uid, MQTTMessageInfo...) of a publish cut off
        self._next_telemetry = 0.0
        self._down_logged = False
        self._status_failed = False
        self.connects = 0

        mqtt = _import_paho()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"maskgate-{self.topics.node}",
                             clean_session=True, protocol=mqtt.MQTTv311)
        if cfg.mqtt.username:
            client.username_pw_set(cfg.mqtt.username, password)
        if self.broker.tls:
            try:
                client.tls_set(ca_certs=cfg.mqtt.ca_file or None, cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ConfigError("mqtt.ca_file", f"cannot set up TLS: {exc}") from None
        client.will_set(self.topics.status, PAYLOAD_OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(cfg.mqtt.reconnect_max_seconds)))
        client.connect_timeout = 5.0
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    # -- paho callbacks (network thread: never wait here) ------------------------------------- #

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            if not self._down_logged:
                log.warning("MQTT broker %s refused the connection: %s", self.broker, reason_code)
                self._down_logged = True
            return
        self.connects += 1
        self._down_logged = False
        log.info("MQTT connected to %s", self.broker)
        subscriptions = []
        if self.cfg.mqtt.discovery:
            subscriptions.append((self.topics.ha_status, 1))
        if self.remote_unlock:
            subscriptions.append((self.topics.lock_set, 1))
        if subscriptions:  # before 'online': whoever sees the gate online can already reach it
            client.subscribe(subscriptions)
        client.publish(self.topics.status, PAYLOAD_ONLINE, qos=1, retain=True)
        if self.cfg.mqtt.discovery:
            self.publish_discovery()
        self.publish_state(force=True)
        self._next_telemetry = 0.0  # telemetry at once, from the channel thread
        self._connected.set()
        self.wake()

    def _on_connect_fail(self, client, userdata) -> None:
        if not self._down_logged and not self.stopping:
            log.warning("MQTT broker %s unreachable; retrying, events wait in the outbox", self.broker)
            self._down_logged = True

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self.stopping and not self._down_logged:
            log.warning("MQTT connection to %s lost (%s); reconnecting, events wait in the outbox",
                        self.broker, reason_code)
            self._down_logged = True

    def _on_message(self, client, userdata, msg) -> None:
        try:
            if msg.topic == self.topics.ha_status:
                if msg.payload.strip() == PAYLOAD_ONLINE.encode():
                    log.info("Home Assistant is online: announcing the gate again")
                    self.publish_discovery()
                    self.publish_state(force=True)
            elif msg.topic == self.topics.lock_set and self.remote_unlock:
                self._command(msg)
        except Exception:  # noqa: BLE001 - a bad message must not kill the network thread
            log.exception("error handling an MQTT message on %s", msg.topic)

    def _command(self, msg) -> None:
        if msg.retain:
            # A retained UNLOCK would open the door again on every reconnect: commands must be live.
            log.warning("ignoring a retained command on %s (commands must not be retained)", msg.topic)
            return
        payload = bytes(msg.payload)
        if not payload.strip():
            log.debug("empty message on %s (a retained command being cleared)", msg.topic)
            return
        if payload.strip() == PAYLOAD_LOCK.encode():
            log.info("ignoring LOCK on %s: the gate locks by itself", msg.topic)
            return
        command, why = self.verifier.verify(msg.topic, payload)
        if command is None:
            log.warning("refused a command on %s: %s", msg.topic, why)
            return
        log.info("signed remote %s accepted over MQTT (%s)", command, msg.topic)
        self.on_command(command, {"source": "mqtt"})

    # -- publishing --------------------------------------------------------------------------- #

    def publish_discovery(self) -> None:
        status = self._current_status()
        mode = status.mode if status is not None else "gate"
        for topic, payload in discovery_messages(self.cfg, self.topics, cpu_temperature=self.telemetry.has_temperature,
                                                 mode=mode, camera=self.camera is not None):
            self.client.publish(topic, payload, qos=1, retain=True)

    def _current_status(self) -> GateStatus | None:
        if self.status is None:
            return None
        try:
            status = self.status()
        except Exception:  # noqa: BLE001
            if not self._status_failed:
                log.exception("the gate's status callback failed")
                self._status_failed = True
            return None
        self._status_failed = False
        return status

    def state_payload(self) -> dict[str, Any]:
        """The gate's status, overridden by what the events delivered in this run say.

        Every lock change is an event, and events reach this channel in order, so once the outbox
        is drained the events are the most precise source (they cannot lag behind like a status
        polled a moment too early); the status supplies the start-up state and the mode.
        """
        state: dict[str, Any] = {"lock": "locked", "fault": None, "door_open": None, "mode": "gate"}
        status = self._current_status()
        if status is not None:
            state.update(lock=status.lock, fault=status.fault, door_open=status.door_open, mode=status.mode)
        state.update(self._event_state)
        return {"v": 1, **state}

    def publish_state(self, *, force: bool = False) -> None:
        with self._state_lock:
            state = self.state_payload()
            if not force and state == self._last_state:
                return
            self._last_state = state
            self.client.publish(self.topics.state, json.dumps({**state, "ts": round(time.time(), 3)}), qos=1, retain=True)

    def publish_telemetry(self) -> None:
        payload = self.telemetry.payload(self._current_status())
        self.client.publish(self.topics.telemetry, json.dumps(payload), qos=0, retain=False)

    def publish_camera(self) -> None:
        """The door's picture when one is kept (:class:`CameraFeed` keeps them at most once per interval)."""
        jpeg = self.camera.poll()
        if jpeg is not None:
            self.client.publish(self.topics.camera, jpeg, qos=0, retain=False)

    # -- the channel -------------------------------------------------------------------------- #

    def open(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=KEEPALIVE)
        self.client.loop_start()

    def ready(self) -> bool:
        return self._connected.is_set()

    def wait_ready(self) -> None:
        while not self.stopping and not self._connected.wait(0.25):
            pass

    def idle_timeout(self) -> float | None:
        wait = self._next_telemetry - time.monotonic()
        picture = self.camera.wait() if self.camera is not None else None
        return max(0.05, wait if picture is None else min(wait, picture))

    def tick(self) -> None:
        if not self._connected.is_set():
            return
        if self.camera is not None:
            self.publish_camera()
        if time.monotonic() < self._next_telemetry:
            return
        self._next_telemetry = time.monotonic() + self.cfg.mqtt.telemetry_seconds
        self.publish_telemetry()

    def deliver_pending(self, *, final: bool = False) -> bool:
        more = super().deliver_pending(final=final)
        if not more and self._state_dirty:
            # Caught up: the last events delivered are the newest, so the state they imply is now's.
            self._state_dirty = False
            self.publish_state()
        return more

    def deliver(self, event: Event) -> None:
        if self._unacked is not None and self._unacked[0] == event.uid:
            # This event's publish was cut off; paho re-sends it after a reconnect.  Wait for that
            # PUBACK first so that a short outage does not always produce a duplicate.
            _, infos = self._unacked
            if all(info.rc == 0 for info in infos) and self._wait(infos):
                self._delivered(event)
                return
        if not self._connected.is_set():
            raise DeliveryFailed(f"not connected to the MQTT broker {self.broker}")
        messages = [(self.topics.event, event_bytes(event))]
        if event.event in DECISION_KINDS:
            messages.append((self.topics.decision, json.dumps(decision_payload(event_dict(event)), sort_keys=True)))
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        self._unacked = (event.uid, infos)
        if not self._wait(infos):
            raise DeliveryFailed(f"no PUBACK from {self.broker} for event {event.uid} (seq {event.seq})")
        self._delivered(event)

    def _delivered(self, event: Event) -> None:
        self._unacked = None
        implied = implied_state(event)
        if implied:
            with self._state_lock:
                self._event_state.update(implied)
            self._state_dirty = True

    def _wait(self, infos) -> bool:
        """Wait for every PUBACK; gives up early when the connection drops or the stop deadline passes."""
        deadline = time.monotonic() + min(PUBLISH_TIMEOUT, max(self.time_left(), 0.0))
        for info in infos:
            if info.rc != 0:
                return False
            while not info.is_published():
                if time.monotonic() >= deadline or not self._connected.is_set():
                    return False
                info.wait_for_publish(0.1)
        return True

    def close(self) -> None:
        try:
            if self._connected.is_set() and self.time_left() > 0:
                info = self.client.publish(self.topics.status, PAYLOAD_OFFLINE, qos=1, retain=True)
                deadline = time.monotonic() + min(2.0, max(self.time_left(), 0.0))
                while info.rc == 0 and not info.is_published() and time.monotonic() < deadline:
                    info.wait_for_publish(0.05)
            self.client.disconnect()
        finally:
            self.client.loop_stop()
            self._connected.clear()
