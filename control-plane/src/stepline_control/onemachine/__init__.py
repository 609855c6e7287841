"""One machine only: what stands in for the cluster when ``make run`` runs the whole
platform on a laptop — the launcher (:mod:`.platform`: an embedded PostgreSQL, a demo
workflow) and the child processes it supervises (:mod:`.children`: a func-python server
per function folder, the relay, the dispatchers). Nothing here runs in a cluster."""
