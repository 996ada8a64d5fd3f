"""Usage quotas: the plan's tiers (`oneai.quota.tiers`) and reserve / settle / refund against them
(`oneai.quota.service`), on top of the `oneai_private` SQL functions (`oneai.db.quota`)."""
