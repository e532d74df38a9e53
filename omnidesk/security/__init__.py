"""Cross-cutting protections: security headers on every response, login throttling."""
