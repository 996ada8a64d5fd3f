"""The billing function: plans, Razorpay subscriptions for Checkout, cancel, tier changes, invoices under
/subscription (FastAPI app + Mangum behind the REST API)."""
