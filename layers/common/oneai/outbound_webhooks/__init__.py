"""Outbound webhooks (issue 28 item 3; API.md "Outbound webhooks"; docs/api/webhooks-outbound.md).

- `signing`: the Standard Webhooks scheme (secret, headers, signature);
- `events`: which domain events become which webhook events, and their payloads;
- `delivery`: a delivery's attempts (the guarded client, the timeout, the outcome, the backoff);
- `service`: the routes' logic (the endpoint, its secret, the test event, the deliveries' list).
"""
