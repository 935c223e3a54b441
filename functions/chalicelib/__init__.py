"""The edge's library: services built once per Lambda instance, publishing, HTTP errors."""
