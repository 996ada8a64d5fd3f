"""Attachments: images kept in S3 (never in PostgreSQL), their records, uploads and short-lived links."""
