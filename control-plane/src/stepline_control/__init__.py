"""Stepline's control plane: the REST API (one router per resource), validation of
definitions, immutable versions, manual starts, jobs and processes, and the one-machine
launcher behind ``make run``."""
