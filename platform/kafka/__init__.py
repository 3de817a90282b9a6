"""Kafka for npusuite: a real local Apache Kafka 4.x broker, and client helpers."""
