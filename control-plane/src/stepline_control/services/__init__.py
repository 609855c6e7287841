"""The control plane's services: keyword-only functions over a session, called by the
routers, raising ApiError for what the client must change."""
