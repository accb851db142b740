"""Defaults in one place: every tunable number and default value the bot starts with.

`config.py` reads the environment and falls back on these; feature modules take them as arguments, so a test
or a deployment changes them without editing code. Slack's own limits are in `bot/rendering/limits.py`.
"""

from __future__ import annotations

import httpx

# -- configuration defaults (the README's configuration table) ----------------------------------
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DATABASE_URL = "sqlite:///partoo-retry.db"
DEFAULT_PORT = 3000
DEFAULT_RATE_LIMIT_PER_MINUTE = 300
DEFAULT_LOG_FORMAT = "auto"
LOG_FORMATS = ("auto", "json", "text")
PRODUCTION_API_URL = "https://api.partoo.co/v2"
SANDBOX_API_URL = "https://api.sandbox.partoo.co/v2"

# -- Partoo -------------------------------------------------------------------------------------
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=5.0, pool=5.0)
# A conversation check is a read that must not hold a retry up for long: a slow answer means "could not check".
CHECK_TIMEOUT = httpx.Timeout(connect=3.0, read=5.0, write=3.0, pool=3.0)
# Partoo calls one process runs at once (each still waits for its slot in the shared pace).
WORKER_CONCURRENCY = 32

# -- the durable queue and its loops ------------------------------------------------------------
# Background loops look for work another replica stored at least this often.
POLL_INTERVAL = 0.5
# A loop woken in-process waits this long before its round, so that one round serves a whole burst of
# commands or deliveries, after their answers (bot/platform/loop.py; measured in docs/benchmarks.md): 50
# commands at once are answered in about 50 ms, and with 20 ms the rounds they set off began mid-burst
# (p99 70 ms against 45 ms with 100 ms). A retry or an alert starts 0.1 s later, which nobody sees.
WAKE_SETTLE = 0.1
# How long a worker holds a retry request before another may take it over (after a crash).
LEASE_SECONDS = 30.0
# A notifier's claim on a post outlives one Slack call with slack_sdk's own retries.
NOTIFIER_CLAIM_SECONDS = 60.0
# After slack_sdk's own retries gave up on a post, how long until it is tried again (the channel's pace pauses
# as long, for every replica: SlackPoster.pause_seconds).
SLACK_RETRY_SECONDS = 5.0
# slack_sdk's backoff for 5xx and lost connections: this x 2^n seconds, plus up to twice this of jitter.
SLACK_BACKOFF = 0.5
# chat.update is Tier 3 (50+ a minute): one progress update every few seconds per batch is plenty.
PROGRESS_INTERVAL = 2.0
# The log channel mirror posts at most this often, many outcomes at a time.
LOG_CHANNEL_INTERVAL = 5.0
# The log channel's lines are leased while posted (renewed meanwhile): a killed replica's lines are posted by
# another round this long after, instead of the notifier's minute.
LOG_CLAIM_SECONDS = 15.0

# -- alerts -------------------------------------------------------------------------------------
# Raw characters kept from Partoo's text before escaping; escaping can make them up to five times longer,
# so each limit below leaves every section well under Slack's 3,000 characters.
PREVIEW_CHARS = 200
# Batches of webhook deliveries written at once on PostgreSQL (bot.platform.group_commit.intake_writers).
INTAKE_WRITERS_POSTGRESQL = 4
# Webhook events the alerter applies per transaction on SQLite (bot.alerts.event_store.apply_claimed): enough
# to spare most BEGIN/COMMIT round trips, few enough that deliveries waiting for the one connection wait briefly
# (`python -m bench.apply`: 20 applied 1,000 events/s but doubled intake's p99 at 10 senders; 5 applies 720/s).
APPLY_CHUNK = 5
# Failures waiting together at once that make a digest rather than separate alerts.
DIGEST_THRESHOLD = 3
# How long a digest keeps taking new failures after it opened.
DIGEST_WINDOW = 60.0
# chat.update is Tier 3: a digest in a flood is re-rendered at most this often.
DIGEST_REFRESH = 2.0
# A claim outlives the post it covers (one paced slot and one Slack call); a dead replica's claims expire soon.
ALERT_CLAIM_SECONDS = 20.0
# Slack allows about one chat.postMessage a second per channel, with short bursts, counting every post there:
# each post the bot makes (alerts, digests, command roots, thread replies, log lines) takes a slot of its
# channel's pace, shared by every replica (bot.platform.pace.ChannelPaces). A burst of 2 keeps one post of
# Slack's burst (about 3) spare, so that network jitter between slots never draws a 429.
POSTS_PER_MINUTE = 60
POST_BURST = 2
# The longest a post waits for its channel's slot. A longer queue (several replicas, a 429 pause) makes the
# post fail as ChannelBusy, which every caller treats as transient: it keeps the post and tries it later, so no
# claim or request waits on a queue of unknown length.
POST_WAIT_LIMIT = 10.0
# From this many posts waiting for one channel (several seconds of its pace), a command's root message says so.
POSTS_WAITING_NOTE = 5
# From this many outcomes waiting to be posted as new messages in one place (a burst of commands left without
# root messages), one post shows them all (bot.retries.grouped_outcomes), up to GROUPED_OUTCOMES_MAX a post
# (each outcome a line of at most a few hundred characters: within a message's 50 blocks of 3,000).
GROUP_OUTCOMES_FROM = 3
GROUPED_OUTCOMES_MAX = 40

# -- conversation checks (README: "Why a retry would fail") -------------------------------------
DEFAULT_CONVERSATION_CHECK = True
# A verdict is reused for this long, so a flood from one conversation or one channel costs one check.
DEFAULT_CONVERSATION_CHECK_CACHE_SECONDS = 60
# An accepted retry with neither Success nor Failed after this long is shown as "not confirmed".
DEFAULT_NOT_CONFIRMED_MINUTES = 15

# -- bulk retries (`/partoo-retry failed …`, README: "Retrying many at once") ----------------------
# A plan matching more failed messages than this says so and asks to narrow the filter.
DEFAULT_BULK_PLAN_MAX = 1000
# A plan's buttons work for this long: after that the state it showed is too old to act on.
BULK_PLAN_TTL_SECONDS = 10 * 60.0
# How long a new alert waits for its conversation's verdict before it is posted without one.
ALERT_CHECK_WAIT = 2.0
# Alerts older than this are not checked in the background (e.g. those posted before an upgrade turned checks
# on): re-rendering them all would flood Slack with updates. Their retries are still checked before sending.
ALERT_CHECK_MAX_AGE = 3600.0
# Alerts checked per round by one replica (each check still waits for a free slot of the shared pace).
CHECKS_PER_ROUND = 100
# How long a round of background checks waits for idle pace slots before giving its alerts back: during a
# retry backlog or a 429 pause (up to 600 s) there are none, and the round must not hold up the not-confirmed
# scan nor outlive its claims (ALERT_CLAIM_SECONDS, renewed while a check runs).
BACKGROUND_SLOT_WAIT = 5.0

# -- operations ---------------------------------------------------------------------------------
# From SIGTERM to exit, everything included (HTTP requests, Partoo calls in flight, closing): platforms send
# SIGKILL 30 s after SIGTERM (Heroku; Kubernetes' default terminationGracePeriodSeconds).
DEFAULT_SHUTDOWN_SECONDS = 25
# The share of it HTTP requests already being served get to finish (Slack's and Partoo's take milliseconds).
HTTP_DRAIN_SECONDS = 5
# The part kept for the end: giving back claimed requests, closing what was cut short, closing connections.
SHUTDOWN_RESERVE_SECONDS = 3.0
# How long a Slack token check (auth.test) answers /readyz before it is asked again.
TOKEN_CHECK_SECONDS = 60.0

# -- retention and webhook health ----------------------------------------------------------------
# RETENTION_DAYS: finished retries, closed alerts, digests, processed events and expired plans older than this are
# pruned.
DEFAULT_RETENTION_DAYS = 90
MAX_RETENTION_DAYS = 36_500
# How often the pruner looks for old rows; pruning is cheap once caught up, so once an hour is plenty.
RETENTION_INTERVAL = 3600.0
# The first pass waits this long after start, when webhooks and commands that queued meanwhile come first.
RETENTION_FIRST_DELAY = 60.0
# Rows deleted per transaction, and the pause between two: each transaction takes milliseconds, and the
# pause lets intake and commands (which share SQLite's single connection) go first.
RETENTION_BATCH = 500
RETENTION_PAUSE = 0.05
# SQLite pages returned to the file system per transaction after pruning (4 KiB each).
VACUUM_PAGES = 2000
# Deliveries are counted in memory and written to the database this often (one write, not one per delivery).
HEALTH_FLUSH_SECONDS = 5.0
# The per-minute delivery counts kept: the App Home and /readyz show the last hour.
HEALTH_WINDOW_SECONDS = 3600.0
MAX_SILENCE_MINUTES = 7 * 24 * 60

# The weekly report: when it is posted (REPORT_SCHEDULE, REPORT_TIMEZONE), and how often the bot looks whether
# one is due (a report is due once a week; a minute late is on time).
DEFAULT_REPORT_SCHEDULE = "mon 09:00"
DEFAULT_REPORT_TIMEZONE = "UTC"
REPORT_POLL_SECONDS = 60.0
REPORT_CLAIM_SECONDS = 60.0
