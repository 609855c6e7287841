"""Tests of the RabbitMQ transport against this machine's real RabbitMQ and PostgreSQL."""
