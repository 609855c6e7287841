"""Stepline's outbox relay: claims due outbox rows in leased batches (``FOR UPDATE SKIP
LOCKED``, so replicas share the work), wakes on ``LISTEN/NOTIFY``, hands each row to a
transport — RabbitMQ in production, HTTP straight to the functions on one machine — and
marks it sent, retried with backoff, or dead, never losing or forgetting a row."""
