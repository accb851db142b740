"""The Slack side: client, listeners, authorization, and the messages the bot posts."""
