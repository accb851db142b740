"""The weekly report as Slack shows it (a message, and the App Home's section), built by pure functions."""

from __future__ import annotations

from slack_sdk.models.blocks import Block, ContextBlock, HeaderBlock, MarkdownTextObject, SectionBlock

from bot.domain.weekly_report import Report
from bot.rendering import mrkdwn
from bot.rendering.message import SlackMessage
from bot.rendering.mrkdwn import escape, shorten

FIELD_LIMIT = 2000  # Slack's limit for a section field's text


def report_message(report: Report) -> SlackMessage:
    """The report posted each week: the figures, then what failed most and why."""
    blocks: list[Block] = [HeaderBlock(text="Partoo retries: weekly report"), *report_blocks(report)]
    return SlackMessage(text=summary_line(report), blocks=blocks)


def weekly_report_section(report: Report) -> list[Block]:
    """The App Home's section: the latest week the schedule closed, as the channel got it."""
    return [SectionBlock(text=MarkdownTextObject(text="*Weekly report*")), *report_blocks(report)]


def report_blocks(report: Report) -> list[Block]:
    """The figures as blocks (the message's body, and the App Home's section)."""
    blocks: list[Block] = [
        ContextBlock(elements=[MarkdownTextObject(text=f"From {_day(report.start)} to {_day(report.end)}")]),
        SectionBlock(
            fields=[
                MarkdownTextObject(text=f"*Failed messages*\n{report.failures:,} ({_trend(report)})"),
                MarkdownTextObject(text=f"*Retried*\n{report.retried:,} ({report.retry_requests:,} retries)"),
                MarkdownTextObject(text=f"*Delivered after retry*\n{report.delivered:,} ({_rate(report)})"),
                MarkdownTextObject(text=f"*Median time to delivery*\n{_median(report)}"),
            ]
        ),
    ]
    if report.failures == 0:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="No message failed in these seven days.")))
        # A quiet week may be quiet because of a silence: say so all the same.
        if report.silences:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=_lines("Silenced", list(report.silences)))))
        return blocks
    fields = [
        MarkdownTextObject(text=_ranking("Not retryable", report.not_retryable, "none")),
        MarkdownTextObject(text=_ranking("Most failures", report.top_businesses, "none")),
        MarkdownTextObject(text=_ranking("Causes", report.top_causes, "none")),
    ]
    if report.silences:
        fields.append(MarkdownTextObject(text=_lines("Silenced", list(report.silences))))
    blocks.append(SectionBlock(fields=fields))
    return blocks


def summary_line(report: Report) -> str:
    """One line: the fallback text of the message, and what notifications show."""
    return (
        f"Weekly report: {report.failures:,} failed messages, {report.retried:,} retried, "
        f"{report.delivered:,} delivered after retry"
    )


def _trend(report: Report) -> str:
    if report.trend == 0:
        return f"as many as the week before, {report.failures_before:,}"
    direction = "more" if report.trend > 0 else "fewer"
    return f"{abs(report.trend):,} {direction} than the week before, {report.failures_before:,}"


def _rate(report: Report) -> str:
    rate = report.delivery_rate
    return "nothing retried" if rate is None else f"{rate:.0%} of retried"


def _median(report: Report) -> str:
    seconds = report.median_to_delivery
    return "no delivery after retry" if seconds is None else mrkdwn.duration(seconds)


def _ranking(title: str, ranked: tuple[tuple[str, int], ...], empty: str) -> str:
    return _lines(title, [f"{escape(name)}: {count:,}" for name, count in ranked] or [empty])


def _lines(title: str, lines: list[str]) -> str:
    return shorten(f"*{title}*\n" + "\n".join(lines), FIELD_LIMIT)


def _day(timestamp: float) -> str:
    return mrkdwn.when(timestamp)
