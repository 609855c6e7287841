"""Every hot-path query of Stepline, named, in ``queries.sql``."""
