"""MQTT session towards the plant broker (paho-mqtt 2.x). v1: no spool yet."""

from __future__ import annotations

import logging
import ssl
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import MqttConfig

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, config: MqttConfig, client_id: str, will: tuple[str, bytes] | None = None) -> None:
        protocol = mqtt.MQTTv5 if config.protocol == "5" else mqtt.MQTTv311
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        self._config = config
        self.connected = threading.Event()
        if config.username:
            password = config.password_file.read_text().strip() if config.password_file else None
            self._client.username_pw_set(config.username, password)
        if config.uses_tls:
            context = ssl.create_default_context(cafile=str(config.tls.ca_file) if config.tls.ca_file else None)
            if config.tls.cert_file and config.tls.key_file:
                context.load_cert_chain(str(config.tls.cert_file), str(config.tls.key_file))
            self._client.tls_set_context(context)
        if will:
            self._client.will_set(will[0], will[1], qos=1, retain=True)
        self._client.reconnect_delay_set(1, 60)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused connection broker=%s reason=%s", self._config.url, reason_code)
            return
        log.info("connected to broker broker=%s", self._config.url)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        log.warning("disconnected from broker broker=%s reason=%s", self._config.url, reason_code)

    def start(self) -> None:
        self._client.connect_async(self._config.host, self._config.port, keepalive=self._config.keepalive)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self._last = self._client.publish(topic, payload, qos=self._config.qos, retain=retain)

    def stop(self, timeout: float = 5.0) -> None:
        last = getattr(self, "_last", None)
        if last is not None and self.connected.is_set():
            try:
                last.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
