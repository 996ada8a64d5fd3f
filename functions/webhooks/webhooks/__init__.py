"""The webhooks function: Razorpay -> Function URL -> verify the signature, apply the event once."""
