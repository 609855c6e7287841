"""Stepline's shared runtime.

Everything the components share lives here once: the settings, the packet and its
CloudEvent form, the SQL of the hot paths, the step transaction every function runs in,
the host that serves a function under func-python, and (with the ``models`` extra) the
SQLAlchemy models of the whole data model.
"""
