"""OneAI shared layer: settings, data access, auth, domain services and the web app factory."""
