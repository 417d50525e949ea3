"""The gate's configuration: typed sections, validated at start-up.

A config is one or more TOML files, later files overriding earlier ones key by key (the SD image
ships ``/etc/maskgate/config.toml``; first boot adds the card's own ``device.toml``).  Every value
is checked against its section's schema: an unknown key, a wrong type or an out-of-range value is
a :class:`~maskgate.errors.ConfigError` naming the dotted key, and the gate refuses to start with
the lock left de-energized.

The defaults work on a bare Linux box: a replayed doorway clip and simulated pins.  On a Raspberry
Pi, ``camera.source = "auto"`` means the Pi camera and ``gpio.pin_factory = "auto"`` the real pins,
so a Pi never silently runs the demo against its real lock.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from maskgate.errors import ConfigError


def opt(default: Any, doc: str, *, min: float | None = None, max: float | None = None, factory=None):
    """A config field with its description and bounds (used by validation and the reference docs)."""
    meta = {"doc": doc, "min": min, "max": max}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DeviceConfig:
    name: str = opt("maskgate", "Device name: MQTT topics, Home Assistant device, e-mail subjects.")
    door_id: str = opt("door", "Which door this gate controls, recorded with every event.")


@dataclass(frozen=True)
class CameraConfig:
    source: str = opt(
        "auto",
        "Where frames come from: 'auto' (Pi camera on a Raspberry Pi, else the demo clip), 'picamera2', "
        "'demo', a USB camera index ('0'), an RTSP/HTTP URL, a video file, a folder of images or one image.",
    )
    fps: float = opt(10.0, "Frame rate: requested from live cameras; timestamps of replayed files are index/fps.", min=0.5, max=120)
    width: int = opt(640, "Width of the main (snapshot) stream.", min=64, max=4096)
    height: int = opt(480, "Height of the main (snapshot) stream.", min=48, max=3072)
    lores_width: int = opt(320, "Width of picamera2's low-resolution stream that feeds inference.", min=64, max=1920)
    lores_height: int = opt(240, "Height of picamera2's low-resolution stream.", min=48, max=1080)
    stall_timeout: float = opt(2.0, "Seconds without a frame before a live camera is declared stalled (door locks).", min=0.2, max=60)
    reconnect_max_backoff: float = opt(30.0, "Longest wait between reconnection attempts, in seconds.", min=0.5, max=600)


@dataclass(frozen=True)
class ModelsConfig:
    detector: str = opt("", "Face detector .tflite; empty means the packaged int8 model.")
    classifier: str = opt("", "Mask classifier .tflite; empty means the packaged int8 model.")
    threads: int = opt(2, "CPU threads per interpreter.", min=1, max=16)
    edgetpu: Literal["auto", "off", "require"] = opt(
        "auto", "Use a Coral Edge TPU when a *_edgetpu.tflite sits beside the model and libedgetpu loads "
        "('auto'), never ('off'), or refuse to start without one ('require')."
    )


@dataclass(frozen=True)
class DetectionConfig:
    score_threshold: float = opt(
        -1.0, "Minimum face detector score; -1 takes the value recorded in the model manifest (chosen on "
        "development data: low enough to find masked faces, which the detector scores lower).", min=-1.0, max=0.99,
    )
    min_face: int = opt(80, "Minimum face width in frame pixels: the person at the door, not passers-by.", min=16, max=2000)
    max_face_fraction: float = opt(0.7, "Boxes wider than this fraction of the frame are not a face at the door.", min=0.2, max=1.0)
    zoom_out: float = opt(
        1.0, "Show the detector the frame this many times smaller, inside a grey border: res10 misses faces that "
        "fill much of its input, as with a camera mounted close to the door. The manifest's thresholds were chosen at 1 (README, 'A camera close to the door').", min=1.0, max=3.0,
    )
    other_face_score: float = opt(
        0.5, "Detector score a face besides the largest needs to count as another person (max_people, "
        "another person without a mask).", min=0.05, max=0.99,
    )
    nms_threshold: float = opt(0.45, "IoU above which overlapping face boxes are merged.", min=0.1, max=0.9)
    mask_threshold: float = opt(
        -1.0, "p_mask at or above which a face counts as masked; -1 takes the threshold recorded in the "
        "model manifest (chosen on development data to keep false accepts rare).", min=-1.0, max=1.0,
    )
    motion_gate: bool = opt(True, "Skip detection while the doorway is empty and unchanged (saves CPU when idle).")
    motion_threshold: float = opt(0.02, "Fraction of changed pixels that counts as motion.", min=0.0, max=1.0)
    lowlight: Literal["off", "gamma", "clahe", "auto"] = opt(
        "auto", "Brighten frames before inference: 'gamma' (curve, every frame), 'clahe' (local contrast, every "
        "frame), 'auto' (the gamma curve on dark frames only, mean grey level below 60); measured in docs/lowlight.md.",
    )


@dataclass(frozen=True)
class PolicyConfig:
    enforce: Literal["hard", "soft"] = opt(
        "hard", "'hard': unlock only for a masked person; 'soft': log and alert, but the mask decision "
        "never drives the lock."
    )
    window: int = opt(5, "M: the number of recent frames a decision looks at.", min=1, max=100)
    required: int = opt(3, "K: masked frames out of the last M needed to unlock.", min=1, max=100)
    max_people: int = opt(1, "Faces of at least min_face allowed in the doorway at once (tailgating).", min=1, max=20)
    unlock_seconds: float = opt(5.0, "How long the lock stays open after an unlock.", min=0.5, max=600)
    visit_gap_seconds: float = opt(2.0, "The doorway must be empty this long before a new visit starts.", min=0.1, max=600)
    exit_unlock_seconds: float = opt(5.0, "How long the request-to-exit button opens the lock.", min=0.5, max=600)
    held_open_seconds: float = opt(30.0, "Door open longer than this raises a held-open alarm.", min=1, max=3600)


@dataclass(frozen=True)
class GpioConfig:
    pin_factory: Literal["auto", "mock", "lgpio", "rpigpio", "pigpio", "native"] = opt(
        "auto", "gpiozero pin factory; 'auto' uses the real pins on a Raspberry Pi and simulated (mock) pins elsewhere."
    )
    fail_mode: Literal["secure", "safe"] = opt(
        "secure", "'secure': de-energized relay = locked (strike / fail-secure lock). 'safe': for maglocks "
        "whose fire code requires the door to open on power or software failure."
    )
    lock_pin: int = opt(17, "BCM pin of the lock relay.", min=0, max=27)
    lock_active_high: bool = opt(True, "True if the relay board energizes on a high pin.")
    green_led: int = opt(27, "BCM pin of the green (granted) LED; -1 for none.", min=-1, max=27)
    red_led: int = opt(22, "BCM pin of the red (denied / fault) LED; -1 for none.", min=-1, max=27)
    buzzer: int = opt(23, "BCM pin of the buzzer; -1 for none.", min=-1, max=27)
    exit_button: int = opt(24, "BCM pin of the request-to-exit button (to ground); -1 for none.", min=-1, max=27)
    door_contact: int = opt(-1, "BCM pin of the door contact (closed = pin pulled low); -1 for none.", min=-1, max=27)


@dataclass(frozen=True)
class EventsConfig:
    database: str = opt("", "SQLite event database; empty means <state dir>/events.db.")
    snapshots: bool = opt(False, "Save a JPEG of each denied visit (off by default: privacy).")
    snapshot_dir: str = opt("", "Where snapshots go; empty means <state dir>/snapshots.")
    snapshot_keep: int = opt(200, "Keep at most this many snapshots; the oldest are deleted.", min=1, max=100000)
    max_events: int = opt(
        100000, "Keep at most this many events in the database; the oldest are deleted (under 20 MB; a busy door "
        "records a few hundred a day, so a year fits).", min=100, max=10000000,
    )


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = opt(False, "Publish events, state and telemetry to an MQTT broker.")
    url: str = opt("mqtt://localhost:1883", "Broker URL: mqtt://host:port or mqtts://host:port (TLS).")
    username: str = opt("", "Broker user name.")
    password_file: str = opt("", "File holding the broker password (kept out of the config).")
    ca_file: str = opt("", "CA certificate for TLS; empty uses the system store.")
    topic_prefix: str = opt("maskgate", "Topics are <prefix>/<device.name>/...")
    discovery: bool = opt(True, "Announce the gate to Home Assistant (MQTT discovery).")
    discovery_prefix: str = opt("homeassistant", "Home Assistant's discovery prefix.")
    plaintext_credentials: bool = opt(
        False, "Allow mqtt.username / mqtt.password_file over plain mqtt:// (the password crosses the network "
        "unencrypted); without it credentials need an mqtts:// URL.",
    )
    remote_unlock: bool = opt(
        False, "Accept unlock commands over MQTT: needs an authenticated broker and mqtt.command_key_file; only a "
        "fresh command signed with that key opens the door (edge/alerts/README.md).",
    )
    command_key_file: str = opt("", "File with the HMAC-SHA256 key that signs remote unlock commands.")
    command_max_age_seconds: float = opt(
        30.0, "A signed command older (or further in the future) than this, by the wall clock, is refused.",
        min=1, max=600,
    )
    telemetry_seconds: float = opt(30.0, "Interval of telemetry messages.", min=1, max=3600)
    camera: bool = opt(
        False, "Publish the latest annotated frame (drawn as on the installer's page) as JPEG on <base>/camera, a Home "
        "Assistant camera entity announced by discovery; door gate only (off by default: privacy).",
    )
    camera_interval: float = opt(
        10.0, "Seconds between two mqtt.camera pictures, at least; the gate copies and encodes nothing in between.",
        min=1, max=3600,
    )
    reconnect_max_seconds: float = opt(
        60.0, "Longest wait between reconnection attempts while the broker is unreachable.", min=1, max=3600
    )


@dataclass(frozen=True)
class EmailConfig:
    enabled: bool = opt(False, "Mail denied and fault events.")
    host: str = opt("localhost", "SMTP server.")
    port: int = opt(587, "SMTP port.", min=1, max=65535)
    starttls: bool = opt(True, "Upgrade the connection with STARTTLS.")
    username: str = opt("", "SMTP user name.")
    password_file: str = opt("", "File holding the SMTP password.")
    sender: str = opt("maskgate@localhost", "From address.")
    recipients: list[str] = opt(None, "To addresses.", factory=list)
    min_interval_seconds: float = opt(60.0, "At most one mail per this interval; the rest go in a digest.", min=0, max=86400)
    ca_file: str = opt("", "CA certificate that signs the SMTP server's certificate; empty uses the system store.")
    timeout_seconds: float = opt(30.0, "SMTP connection and command timeout.", min=1, max=600)
    retry_max_seconds: float = opt(300.0, "Longest wait between attempts while the mail server is unreachable.", min=0.5, max=3600)


@dataclass(frozen=True)
class WebhookConfig:
    enabled: bool = opt(False, "POST each event as JSON.")
    url: str = opt("", "Where to POST.")
    secret_file: str = opt("", "File with an HMAC-SHA256 key; when set, requests carry an X-Maskgate-Signature header.")
    timeout_seconds: float = opt(5.0, "HTTP timeout.", min=0.1, max=120)
    retry_max_seconds: float = opt(60.0, "Longest wait between attempts while the receiver is unreachable.", min=0.5, max=3600)


@dataclass(frozen=True)
class MonitorConfig:
    face_width_cm: float = opt(16.0, "Typical face width used to estimate distance from face size.", min=5, max=40)
    horizontal_fov_deg: float = opt(62.2, "Camera horizontal field of view (Pi camera v2: 62.2).", min=10, max=180)
    min_distance_m: float = opt(1.5, "People closer than this are a distancing violation.", min=0.1, max=10)
    min_face: int = opt(
        10, "Minimum face width in pixels for monitor mode and 'maskgate annotate' (crowds: far faces are small; "
        "the door's detection.min_face does not apply there).", min=4, max=2000,
    )
    detector: str = opt(
        "face_detector_300x300_int8.tflite",
        "Face detector for monitor mode and 'maskgate annotate': a file in the packaged models folder, a .tflite "
        "path with a manifest.json beside it, or empty for the door's models.detector.  The 300x300 detector finds "
        "small faces far better than the door's 224x168 one (docs/annotate.md).",
    )
    score_threshold: float = opt(
        0.3, "Minimum face detector score in monitor mode and 'maskgate annotate' (chosen on ../shared/data/wild: "
        "masked faces in crowds score low; the classifier's not_face class removes most false detections).",
        min=0.05, max=0.99,
    )
    mask_threshold: float = opt(
        0.5, "p_mask at or above which a face counts as masked in monitor mode and 'maskgate annotate'; -1 takes the "
        "door's (detection.mask_threshold).  The door's threshold keeps false accepts near zero and so calls many "
        "masked faces unmasked; a crowd's masked share wants balanced errors (docs/annotate.md).", min=-1.0, max=1.0,
    )
    tiles: int = opt(
        2, "Also run the detector on a tiles x tiles grid of overlapping tiles (small faces; 1 + tiles^2 detector runs "
        "per frame); 1 runs it on the whole frame only.", min=1, max=4,
    )
    window: int = opt(5, "Monitor mode: analysed frames whose median counts make the crowd state (smooths flicker).",
                      min=1, max=100)
    event_seconds: float = opt(
        10.0, "Monitor mode: a 'crowd' event is recorded when the crowd state changes, at most once per this "
        "many seconds.", min=0, max=3600,
    )


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = opt(False, "Serve the installer's page (live view, status, events, admin actions); on in the SD image.")
    bind: str = opt("127.0.0.1", "Address the page listens on: '127.0.0.1' this machine only, '0.0.0.0' every interface.")
    port: int = opt(8080, "TCP port of the page; 0 picks a free one (tests).", min=0, max=65535)
    secret_file: str = opt(
        "", "File with the page's tokens (admin = \"...\", viewer = \"...\"); empty means <state dir>/web-secret.toml, "
        "created with new random tokens on first start (the SD image's first boot writes /etc/maskgate/secrets/web-secret.toml).",
    )
    tls_cert: str = opt("", "PEM certificate (chain) for HTTPS; empty serves plain HTTP.  Needs web.tls_key.")
    tls_key: str = opt("", "PEM private key of web.tls_cert.")
    live_fps: float = opt(2.0, "Most frames per second the live view is sent at (only while someone watches).", min=0.2, max=5)
    failures_per_minute: int = opt(
        5, "Wrong or missing tokens one client may send per minute; beyond that it gets 429 until the minute is over.",
        min=1, max=1000,
    )
    session_minutes: float = opt(720.0, "A login lasts this long.", min=1, max=10080)


@dataclass(frozen=True)
class Config:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    web: WebConfig = field(default_factory=WebConfig)

    def replace(self, **sections: dict[str, Any]) -> "Config":
        """A copy with some keys of some sections changed, validated like a file: ``replace(camera={"fps": 5})``."""
        data = to_dict(self)
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        return from_dict(data)


# ---------------------------------------------------------------------------------------------- #
# Validation


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _check_value(key: str, tp, value, f: dataclasses.Field):
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(key, f"must be a {_type_name(tp)}, got {value!r}")
        return [_check_value(f"{key}[{i}]", item_tp, v, f) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be a whole number, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"must be a number, got {value!r}")
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(key, f"must be a number of sensible size, got {value!r}") from None
        if not math.isfinite(value):
            raise ConfigError(key, f"must be a finite number, got {value!r}")
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {value!r}")
        return value
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if lo is not None and value < lo:
        raise ConfigError(key, f"must be >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(key, f"must be <= {hi}, got {value!r}")
    return value


def _section_from_dict(cls, data: Any, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(prefix, f"must be a table ([{prefix}]), got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}", f"unknown key (known keys of [{prefix}]: {', '.join(fields)})")
    values = {name: _check_value(f"{prefix}.{name}", hints[name], value, fields[name]) for name, value in data.items()}
    return cls(**values)


def from_dict(data: dict[str, Any]) -> Config:
    """Validate a parsed config (all sections optional) into a :class:`Config`."""
    if not isinstance(data, dict):
        raise ConfigError("<root>", "a config must be a TOML table")
    sections = {f.name: f for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(unknown[0], f"unknown section (known sections: {', '.join(sections)})")
    hints = typing.get_type_hints(Config)
    cfg = Config(**{name: _section_from_dict(hints[name], value, name) for name, value in data.items()})
    _check_cross_field(cfg)
    return cfg


def _check_cross_field(cfg: Config) -> None:
    if cfg.policy.required > cfg.policy.window:
        raise ConfigError("policy.required", f"K={cfg.policy.required} cannot exceed window M={cfg.policy.window}")
    pins = {
        name: getattr(cfg.gpio, name)
        for name in ("lock_pin", "green_led", "red_led", "buzzer", "exit_button", "door_contact")
        if getattr(cfg.gpio, name) >= 0
    }
    seen: dict[int, str] = {}
    for name, pin in pins.items():
        if pin in seen:
            raise ConfigError(f"gpio.{name}", f"GPIO{pin} is already used by gpio.{seen[pin]}")
        seen[pin] = name
    if bool(cfg.web.tls_cert) != bool(cfg.web.tls_key):
        missing = "web.tls_key" if cfg.web.tls_cert else "web.tls_cert"
        raise ConfigError(missing, "HTTPS needs both web.tls_cert and web.tls_key")


def to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(cfg)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``, table by table."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load(paths: list[str | Path] | tuple[str | Path, ...] = ()) -> Config:
    """Read and validate TOML files in order (later ones override earlier ones); none gives defaults."""
    data: dict[str, Any] = {}
    for path in paths:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError("<file>", f"config file not found: {path}") from None
        except OSError as exc:
            raise ConfigError("<file>", f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError("<file>", f"{path} is not UTF-8 text (byte {exc.start})") from None
        try:
            data = merge(data, tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("<file>", f"{path} is not valid TOML: {exc}") from None
    return from_dict(data)


def state_dir() -> Path:
    """Where the device keeps its database and snapshots.

    systemd's ``StateDirectory=`` sets ``$STATE_DIRECTORY`` (``/var/lib/maskgate`` in the image);
    elsewhere ``$XDG_STATE_HOME/maskgate`` (``~/.local/state/maskgate``).
    """
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "maskgate"


def describe() -> list[tuple[str, str, Any, str]]:
    """(dotted key, type, default, description) of every config key, for docs and ``--help``."""
    rows = []
    hints = typing.get_type_hints(Config)
    for section in dataclasses.fields(Config):
        cls = hints[section.name]
        sub = typing.get_type_hints(cls)
        defaults = cls()
        for f in dataclasses.fields(cls):
            rows.append((f"{section.name}.{f.name}", _type_name(sub[f.name]), getattr(defaults, f.name), f.metadata.get("doc", "")))
    return rows


__all__ = [
    "Config", "DeviceConfig", "CameraConfig", "ModelsConfig", "DetectionConfig", "PolicyConfig", "GpioConfig",
    "EventsConfig", "MqttConfig", "EmailConfig", "WebhookConfig", "MonitorConfig", "WebConfig",
    "load", "from_dict", "to_dict", "merge", "state_dir", "describe",
]
