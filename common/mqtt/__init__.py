"""The one MQTT client both sides use (paho-mqtt 2): see `common/mqtt/client.py`."""
