"""Notifications: the emails the product sends from its domain events (API.md "Notifications (email)").

`occasions` turns an EventBridge event into one email occasion, `render` fills the templates, `mail`
builds the RFC 5322 message and sends it (SES v2, or an .eml outbox under `make dev`), `service` sends each
occasion at most once, `unsubscribe` signs and applies one-click unsubscribe links, `summary` is the
monthly usage-summary sweep and `welcome` announces a new user.
"""
