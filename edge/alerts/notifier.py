"""The notifier: one background delivery thread per enabled channel, started and stopped together.

    notifier = Notifier(cfg, store, status=gate.status, on_command=gate.command)
    notifier.start()                          # returns at once
    event_log.add_listener(notifier.wake)     # on the gate thread: only sets flags
    ...
    notifier.stop(timeout=5.0)                # best-effort flush, MQTT 'offline', join; never raises

Everything that can be wrong with the configuration (a secret file that cannot be read, a bad
broker URL, remote unlock without broker authentication, no mail recipients, paho-mqtt missing)
is raised by the constructor, before any thread starts, so the gate refuses to start with its lock
locked instead of running without the alerts it was configured to send.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from maskgate.edge.alerts.credentials import check_readable, read_secret
from maskgate.edge.alerts.outbox import Channel
from maskgate.edge.config import Config
from maskgate.edge.events import Event, EventStore
from maskgate.edge.status import GateStatus
from maskgate.errors import ConfigError

log = logging.getLogger(__name__)


class Notifier:
    """Delivers the events in ``store`` to MQTT, e-mail and a webhook, as ``cfg`` enables them.

    ``status`` (thread-safe, returns a :class:`GateStatus`) feeds telemetry and the retained lock
    state.  ``on_command(name, payload)`` receives ``("unlock", {"source": "mqtt"})`` when remote
    unlock is enabled; it is called on the MQTT network thread and must only hand the command over
    to the gate (the gate records the ``remote_unlock`` event and drives the lock).  ``camera``
    (a :class:`~maskgate.edge.alerts.camera.CameraFeed` the gate fills) feeds the Home Assistant
    camera entity when ``mqtt.camera`` is on.
    """

    def __init__(self, cfg: Config, store: EventStore, *, status: Callable[[], GateStatus] | None = None,
                 on_command: Callable[[str, dict], None] | None = None, camera=None):
        self.cfg = cfg
        self.store = store
        self.channels: list[Channel] = []
        self._started = False
        if cfg.mqtt.enabled:
            self.channels.append(self._mqtt_channel(cfg, store, status, on_command, camera))
        if cfg.email.enabled:
            self.channels.append(self._mail_channel(cfg, store))
        if cfg.webhook.enabled:
            self.channels.append(self._webhook_channel(cfg, store))
        for channel in self.channels:
            channel.begin()  # a new channel starts at the end of the history

    @staticmethod
    def _mqtt_channel(cfg, store, status, on_command, camera) -> Channel:
        from maskgate.edge.alerts.mqtt import MqttChannel, parse_broker_url

        broker = parse_broker_url(cfg.mqtt.url)
        if broker.username and cfg.mqtt.username and broker.username != cfg.mqtt.username:
            raise ConfigError("mqtt.url", f"names user {broker.username!r} but mqtt.username is {cfg.mqtt.username!r}")
        if broker.username and not cfg.mqtt.username:
            cfg = cfg.replace(mqtt={"username": broker.username})
        m = cfg.mqtt
        if m.remote_unlock and not m.username:
            raise ConfigError("mqtt.remote_unlock", "needs an authenticated broker: set mqtt.username and "
                                                    "mqtt.password_file, or turn remote unlock off")
        if m.remote_unlock and not m.password_file:
            log.warning("mqtt.remote_unlock is on with a user name but no mqtt.password_file: make sure the broker "
                        "authenticates this client some other way")
        if m.remote_unlock and not m.command_key_file:
            raise ConfigError("mqtt.command_key_file", "mqtt.remote_unlock needs the key that signs unlock commands")
        if m.password_file and not m.username:
            raise ConfigError("mqtt.password_file", "a broker password needs mqtt.username")
        if m.ca_file:
            if not broker.tls:
                raise ConfigError("mqtt.ca_file", "is only used with an mqtts:// broker URL")
            check_readable(m.ca_file, "mqtt.ca_file")
        password = read_secret(m.password_file, "mqtt.password_file") if m.password_file else None
        key = read_secret(m.command_key_file, "mqtt.command_key_file") if m.remote_unlock else None
        if m.username and not broker.tls and not m.plaintext_credentials:
            raise ConfigError("mqtt.url", f"{m.url} is plain mqtt:// but mqtt.username is set: the credentials would "
                                          "cross the network unencrypted; use mqtts:// or set "
                                          "mqtt.plaintext_credentials = true")
        return MqttChannel(cfg, store, password=password, command_key=key, status=status, on_command=on_command,
                           camera=camera)

    @staticmethod
    def _mail_channel(cfg, store) -> Channel:
        from maskgate.edge.alerts.mail import MailChannel

        e = cfg.email
        if not e.recipients:
            raise ConfigError("email.recipients", "email is enabled but there is no recipient")
        for i, address in enumerate([e.sender, *e.recipients]):
            if "@" not in address or any(c in address for c in "\r\n,"):
                raise ConfigError("email.sender" if i == 0 else f"email.recipients[{i - 1}]",
                                  f"{address!r} is not an e-mail address")
        if e.password_file and not e.username:
            raise ConfigError("email.password_file", "an SMTP password needs email.username")
        if e.ca_file:
            if not e.starttls:
                raise ConfigError("email.ca_file", "is only used with email.starttls")
            check_readable(e.ca_file, "email.ca_file")
        password = read_secret(e.password_file, "email.password_file") if e.password_file else None
        return MailChannel(cfg, store, password=password)

    @staticmethod
    def _webhook_channel(cfg, store) -> Channel:
        from maskgate.edge.alerts.webhook import WebhookChannel, check_url

        check_url(cfg.webhook.url)
        secret = read_secret(cfg.webhook.secret_file, "webhook.secret_file") if cfg.webhook.secret_file else None
        return WebhookChannel(cfg, store, secret=secret)

    # -------------------------------------------------------------------------------------------- #

    def channel(self, name: str) -> Channel | None:
        """The channel called ``name`` ("mqtt", "email", "webhook"), if enabled."""
        return next((c for c in self.channels if c.name == name), None)

    def start(self) -> None:
        """Start the delivery threads; returns at once (connections are made in the background)."""
        if self._started:
            return
        self._started = True
        for channel in self.channels:
            channel.start()
        if self.channels:
            log.info("notifications: %s", ", ".join(c.name for c in self.channels))

    def wake(self, event: Event | None = None) -> None:
        """A new event (an :class:`EventLog` listener).  Never blocks.

        An event without a ``seq`` is one the store could not write (a full disk): each channel gets it
        directly (:meth:`Channel.offer`) instead of waiting for the database to be writable again.
        """
        for channel in self.channels:
            if event is not None and event.seq is None:
                channel.offer(event)
            else:
                channel.wake()

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what can go out within ``timeout`` seconds, say ``offline`` on MQTT, end the threads.

        Never raises.  Whatever is not delivered stays in the outbox for the next run.
        """
        try:
            deadline = time.monotonic() + max(0.0, timeout)
            for channel in self.channels:
                channel.request_stop(deadline)
            for channel in self.channels:
                if not channel.join(deadline - time.monotonic() + 0.5):
                    log.warning("%s: delivery thread still busy at shutdown; undelivered events wait for the next run",
                                channel.name)
        except Exception:  # noqa: BLE001 - stopping must never fail the gate's shutdown
            log.exception("error while stopping notifications")

    def __enter__(self) -> "Notifier":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
