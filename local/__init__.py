"""The `make dev` server: every route of template.yaml on one local port, no Docker, no AWS (not deployed)."""

# The user every local token is minted for; dev mode provisions it on first use.
DEV_USER_ID = "00000000-0000-4000-8000-000000000001"
DEV_USER_EMAIL = "dev@oneai.local"
# Where a local Supabase (`supabase start`) would listen; the dev JWT issuer is derived from it.
LOCAL_SUPABASE_URL = "http://127.0.0.1:54321"
DEFAULT_PORT = 3000
