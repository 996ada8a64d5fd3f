"""The admin routers, one module per resource (each module's `router`)."""
