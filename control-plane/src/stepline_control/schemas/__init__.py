"""Request and response schemas of the REST API: Create / Update / Public per entity."""
