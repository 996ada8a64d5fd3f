"""The caller's account: quota overview and check, usage statistics (JSON or CSV), profile and preferences
(`oneai.account.service`, with the shapes of docs/api/account.md in `oneai.account.models`)."""
