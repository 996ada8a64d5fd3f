"""Encryption of secrets at rest (`oneai.crypto.envelope`: KMS data keys, AES-256-GCM)."""
