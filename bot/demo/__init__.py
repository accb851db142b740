"""`partoo-retry-bot demo`: the real bot at work on one local page, with nothing to configure.

    run.py           starts everything on 127.0.0.1 and prints the page's URL
    workspace.py     the demo's people and channels
    changes.py       a version number the page follows (server-sent events)
    slack_standin.py the Slack Web API and workspace the bot posts to
    signed.py        what Slack sends the bot: signed commands, clicks, shortcuts, modals and App Home events
    modals.py        views.open and the modal each person sees; shortcuts.py: the page's ⋯ menu and modals
    partoo_sim.py    Partoo's API and its signed webhooks, with knobs for failures and outages
    customers.py     its made-up businesses, customers and messages, and the webhook body
    controls.py      those knobs, and what the page may ask of the bot (the weekly report now), as its
                     control panel shows them
    page.py          the page and the JSON it reads and posts; static/ holds its HTML, CSS and JS

The bot is the one `bot.app.create_app` builds; only its Slack and Partoo are stand-ins.
"""
