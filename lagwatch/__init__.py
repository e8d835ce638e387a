"""lagwatch: Kafka consumer-lag and health monitoring daemon."""

__version__ = "0.1.0"
