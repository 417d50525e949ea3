"""Notifications: the gate's events to MQTT (and Home Assistant), e-mail and a webhook.

Every event is first stored in the device's SQLite database (:mod:`maskgate.edge.events`), which is
also the outbox: each channel delivers from it in order on its own thread, acknowledges after
success and retries with capped backoff on failure.  A broker, mail server or network outage
therefore neither stalls the frame loop nor loses an event.  See ``README.md`` beside this file.

Optional dependencies (paho-mqtt) are imported only when the channel that needs them is enabled.
"""

from __future__ import annotations

from maskgate.edge.alerts.mqtt import BrokerUrl, mqtt_override, parse_broker_url
from maskgate.edge.alerts.notifier import Notifier

__all__ = ["Notifier", "mqtt_override", "parse_broker_url", "BrokerUrl"]
