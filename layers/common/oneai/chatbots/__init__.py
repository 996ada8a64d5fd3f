"""Chatbots (issue 25): a workspace's configured assistants and what members do with them."""
