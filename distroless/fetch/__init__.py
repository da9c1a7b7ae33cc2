"""Getting bytes: repositories, HTTP transport, the content-addressed cache, parallel verified fetches."""
