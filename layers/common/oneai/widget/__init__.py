"""The embeddable widget (issue 27): visitor session tokens, origin rules, the public routes' service and
the script's serving rules. The chat turn of a visitor is part 2 (it goes through oneai.chat.entry)."""
