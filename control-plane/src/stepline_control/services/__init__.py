"""The control plane's services: keyword-only functions over a session, called by the
routers, raising the domain errors of :mod:`.errors` for what the client must change; each
service that changes anything owns its transaction (it commits)."""
