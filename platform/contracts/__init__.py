"""Typed records for every wire format the suite speaks.

One module per wire format (a Kafka topic's value, its headers, an HTTP ingest
body).  Producers and consumers import the same record, so the validation rules
(lengths, finite numbers, patterns, size limits) live in one place.  The
catalogue of topics and the generated JSON Schemas / AsyncAPI document are
described in ``docs/contracts.md``.
"""
