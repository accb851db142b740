"""Everything the bot knows about Partoo: the retry call, its outcomes, and webhook signatures."""
