"""The naive bot: the few-line Bolt app most tutorials show, kept as the baseline of the benchmarks.

It calls Partoo inside the `/partoo-retry` listener *before* `ack()`, so Slack's 3-second deadline has to
cover Partoo's answer; it has no queue, no pacing, no retry and no record of what it sent. Its Partoo
webhook route verifies nothing and posts each failure to SLACK_ALERT_CHANNEL before answering, so Partoo
waits for Slack and a Slack error becomes a 500. It is served the usual way: Bolt's Starlette adapter under
uvicorn, configured by the same environment variables as the bot.

    SLACK_BOT_TOKEN=... SLACK_SIGNING_SECRET=... PARTOO_API_KEY=... python bench/naive_bot.py
"""

import os

import httpx
import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

PARTOO_API_URL = os.environ.get("PARTOO_API_URL", "https://api.partoo.co/v2")
ALERT_CHANNEL = os.environ.get("SLACK_ALERT_CHANNEL", "")

# Tutorials write AsyncApp(token=...); the client is spelled out only to point it at SLACK_API_URL.
app = AsyncApp(
    client=AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"],
        base_url=os.environ.get("SLACK_API_URL", "https://slack.com/api/"),
    ),
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
)


@app.command("/partoo-retry")
async def retry(ack, command, say):
    message_id = command["text"].strip()
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{PARTOO_API_URL}/messages/{message_id}/retry",
            headers={"x-APIKey": os.environ["PARTOO_API_KEY"]},
        )
    await ack()
    await say(f"Retry of message {message_id}: Partoo answered {response.status_code} {response.text}")


handler = AsyncSlackRequestHandler(app)


async def endpoint(request):
    return await handler.handle(request)


async def partoo_webhook(request):
    event = await request.json()
    message = event["payload"]["message"]
    if message["status"] == "Failed":
        await app.client.chat_postMessage(
            channel=ALERT_CHANNEL,
            text=f"Partoo message {message['id']} to {event['payload']['conversation']['consumer_name']} failed",
        )
    return JSONResponse({"status": "ok"})


api = Starlette(
    routes=[
        Route("/slack/events", endpoint=endpoint, methods=["POST"]),
        Route("/partoo/webhook", endpoint=partoo_webhook, methods=["POST"]),
    ]
)

if __name__ == "__main__":
    uvicorn.run(api, host="127.0.0.1", port=int(os.environ.get("PORT", "3000")))
