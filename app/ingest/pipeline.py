"""What to do with an inbound mail, decided by an ordered list of small pure filters.

The service looks up the facts a mail needs (tickets its headers point to, how often its
sender got an automatic answer) and hands them in; each filter reads the parsed mail and
those facts and writes its decision into the context. Adding a behaviour means adding a
filter, not growing one function.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from app.core.config import ClosedTicketReply
from app.ingest.parser import ParsedMail
from app.tickets.models import MailKind, ThreadMatch, TicketStatus
from app.tickets.schemas import ThreadCandidate

_REPLY_PREFIX = re.compile(
    r"^\s*((re|fw|fwd|sv|vs|aw|wg|vb|vl|antw|ynt|tr|rv|odp)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE
)
_AUTOMATIC_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto(matisk|matiskt)? ?svar|autoreply|out of (the )?office|"
    r"fravær|frånvaro|poissa|abwesenheitsnotiz|automaattinen vastaus)\b",
    re.IGNORECASE,
)
_NO_REPLY_SENDER = re.compile(r"^(no-?reply|do-?not-?reply|noreply|mailer-daemon|postmaster)\b")


def is_no_reply_address(address: str) -> bool:
    """no-reply@, mailer-daemon@, postmaster@...: nobody reads what is sent there."""
    return bool(_NO_REPLY_SENDER.match(address.split("@", 1)[0].lower()))


def ticket_reference(prefix: str, number: int) -> str:
    """How a ticket is named in subjects and texts: ``[#100123]``."""
    return f"[{prefix}{number}]"


def ticket_number_pattern(prefix: str) -> re.Pattern[str]:
    """``[#100123]`` in a subject, for the configured prefix."""
    return re.compile(r"\[" + re.escape(prefix) + r"(\d{1,18})\]")


def strip_reply_prefixes(subject: str) -> str:
    """``Re: SV: Fwd: Faktura`` -> ``Faktura``, in the languages our customers write."""
    return _REPLY_PREFIX.sub("", subject)


def normalised_subject(subject: str, number_pattern: re.Pattern[str]) -> str:
    """The subject without reply prefixes and ticket tags, for comparing two subjects."""
    without_tag = number_pattern.sub(" ", subject)
    return " ".join(strip_reply_prefixes(without_tag).casefold().split())


@dataclass(frozen=True)
class Facts:
    """What the database knows that bears on this mail, looked up before the filters run."""

    own_addresses: frozenset[str] = frozenset()
    is_own_message_id: bool = False
    tokens: dict[str, ThreadCandidate] = field(default_factory=dict)
    """Referenced Message-IDs that are ours (signed token), with their ticket."""
    by_message_id: dict[str, ThreadCandidate] = field(default_factory=dict)
    """Referenced Message-IDs of messages we stored (sent or received), with their ticket."""
    subject_ticket: ThreadCandidate | None = None
    sender_known_to_subject_ticket: bool = False
    bounced_ticket: ThreadCandidate | None = None
    automatic_answers_today: int = 0
    imported: bool = False
    """Old mail brought in by `ticketry import`: history is never answered automatically."""


@dataclass(frozen=True)
class Policy:
    ticket_number_prefix: str
    reply_to_closed: ClosedTicketReply
    auto_reply_limit_per_day: int


@dataclass
class Context:
    """The decisions the filters write."""

    mail: ParsedMail
    facts: Facts
    policy: Policy
    kind: MailKind = MailKind.normal
    kind_reason: str = ""
    target: ThreadCandidate | None = None
    threaded_by: ThreadMatch = ThreadMatch.new_ticket
    threading_detail: str = "no header or subject matched a ticket"
    suggested: ThreadCandidate | None = None
    """A weak match: the mail opens a new ticket, linked to this one for an agent to merge."""
    suggestion_reason: str = ""
    follow_up_of: ThreadCandidate | None = None
    customer_address: str | None = None
    auto_reply_allowed: bool = False
    auto_reply_reason: str = ""

    @property
    def subject_number_pattern(self) -> re.Pattern[str]:
        return ticket_number_pattern(self.policy.ticket_number_prefix)


Filter = Callable[[Context], None]


def classify(ctx: Context) -> None:
    """Own mail come back, bounces, auto-replies and list mail: stored, never answered."""
    mail, headers = ctx.mail, ctx.mail.auto_headers
    sender = mail.from_address or ""
    loop = headers.get("x-loop", "").strip().lower()
    local_part = sender.split("@", 1)[0]
    auto_submitted = headers.get("auto-submitted", "").strip().lower()
    precedence = headers.get("precedence", "").strip().lower()
    return_path = headers.get("return-path", "").strip()
    checks: list[tuple[bool, MailKind, str]] = [
        (
            "x-ticketry-loop" in headers or ctx.facts.is_own_message_id,
            MailKind.own,
            "our own outgoing mail",
        ),
        (mail.report_type == "delivery-status", MailKind.bounce, "a delivery status report"),
        (local_part in ("mailer-daemon", "postmaster"), MailKind.bounce, f"sent by {sender}"),
        (
            bool(auto_submitted) and auto_submitted != "no",
            MailKind.auto_reply,
            f"Auto-Submitted: {auto_submitted}",
        ),
        (
            "x-autoreply" in headers or "x-autorespond" in headers,
            MailKind.auto_reply,
            "an X-Autoreply/X-Autorespond header",
        ),
        (
            precedence in ("auto_reply", "junk"),
            MailKind.auto_reply,
            f"Precedence: {precedence}",
        ),
        (bool(loop), MailKind.auto_reply, f"X-Loop: {loop}"),
        (return_path == "<>", MailKind.auto_reply, "an empty Return-Path"),
        (
            bool(_AUTOMATIC_SUBJECT.match(mail.subject)),
            MailKind.auto_reply,
            "an automatic-reply subject",
        ),
        (
            precedence in ("list", "bulk")
            or any(h in headers for h in ("list-id", "list-unsubscribe", "list-post")),
            MailKind.mailing_list,
            "mailing-list headers",
        ),
    ]
    for matched, kind, reason in checks:
        if matched:
            ctx.kind, ctx.kind_reason = kind, reason
            return


def thread_bounce(ctx: Context) -> None:
    """A bounce belongs to the ticket whose reply did not arrive."""
    if ctx.kind is MailKind.bounce and ctx.facts.bounced_ticket is not None:
        ctx.target = ctx.facts.bounced_ticket
        ctx.threaded_by = ThreadMatch.references
        ctx.threading_detail = "a bounce of a message sent from this ticket"


def thread_by_headers(ctx: Context) -> None:
    """In-Reply-To first, then References newest first; at each, our signed token is certain
    and a message we stored is strong, except that a References hit under a changed subject is
    only a suggestion."""
    if ctx.target is not None or ctx.kind is MailKind.own:
        return
    facts, mail = ctx.facts, ctx.mail
    for header in mail.in_reply_to:
        if header in facts.tokens:
            _matched(ctx, facts.tokens[header], ThreadMatch.token, f"signed ticket token {header}")
            return
        if header in facts.by_message_id:
            _matched(
                ctx, facts.by_message_id[header], ThreadMatch.in_reply_to, f"In-Reply-To {header}"
            )
            return
    pattern = ctx.subject_number_pattern
    for header in reversed(mail.references):
        if header in facts.tokens:
            _matched(ctx, facts.tokens[header], ThreadMatch.token, f"signed ticket token {header}")
            return
        candidate = facts.by_message_id.get(header)
        if candidate is None:
            continue
        subject_fits = normalised_subject(mail.subject, pattern) == normalised_subject(
            candidate.subject, pattern
        ) or str(candidate.number) in set(pattern.findall(mail.subject))
        if subject_fits:
            _matched(ctx, candidate, ThreadMatch.references, f"References {header}")
        else:
            ctx.suggested = candidate
            ctx.suggestion_reason = f"References {header}, but the subject changed"
        return


def _matched(ctx: Context, ticket: ThreadCandidate, how: ThreadMatch, detail: str) -> None:
    ctx.target, ctx.threaded_by, ctx.threading_detail = ticket, how, detail


def thread_by_subject_number(ctx: Context) -> None:
    """``[#N]`` in the subject: certain enough from the ticket's customer, a suggestion from
    anyone else (anyone can type a number)."""
    candidate = ctx.facts.subject_ticket
    if ctx.target is not None or ctx.suggested is not None or candidate is None:
        return
    if ctx.kind is MailKind.own:
        return
    if ctx.facts.sender_known_to_subject_ticket:
        ctx.target = candidate
        ctx.threaded_by = ThreadMatch.subject_number
        ctx.threading_detail = f"ticket number {candidate.number} in the subject"
    else:
        ctx.suggested = candidate
        ctx.suggestion_reason = (
            f"ticket number {candidate.number} in the subject, from a sender the ticket "
            "does not know"
        )


def closed_ticket(ctx: Context) -> None:
    """A reply to a closed ticket reopens it, or opens a follow-up linked to it."""
    target = ctx.target
    if target is None or target.status is not TicketStatus.closed:
        return
    if ctx.policy.reply_to_closed is ClosedTicketReply.follow_up:
        ctx.follow_up_of = target
        ctx.target = None
        ctx.threaded_by = ThreadMatch.follow_up
        ctx.threading_detail = f"a reply to closed ticket {target.number} ({ctx.threading_detail})"


def choose_customer_address(mail: ParsedMail) -> str | None:
    """The person behind the mail: the sender, unless the sender does not take replies and
    Reply-To names someone (contact forms, shop systems)."""
    sender = mail.from_address
    no_reply = bool(sender) and bool(_NO_REPLY_SENDER.match((sender or "").split("@", 1)[0]))
    return mail.reply_to[0] if no_reply and mail.reply_to else sender


def choose_customer(ctx: Context) -> None:
    ctx.customer_address = choose_customer_address(ctx.mail)


def automatic_answer(ctx: Context) -> None:
    """May the customer get an automatic answer (an acknowledgement)? Only a person, not too
    often, and never anything that could answer back automatically."""
    sender = ctx.customer_address
    suppress = ctx.mail.auto_headers.get("x-auto-response-suppress", "").lower()
    refusals = [
        (ctx.facts.imported, "imported history"),
        (ctx.kind is not MailKind.normal, f"the mail is {ctx.kind.value}: {ctx.kind_reason}"),
        (sender is None, "the mail has no sender address"),
        (
            bool(sender) and is_no_reply_address(sender or ""),
            f"{sender} does not take replies",
        ),
        (sender in ctx.facts.own_addresses, f"{sender} is one of our own addresses"),
        (
            any(w in suppress for w in ("all", "autoreply", "oof")),
            f"X-Auto-Response-Suppress: {suppress}",
        ),
        (
            ctx.facts.automatic_answers_today >= ctx.policy.auto_reply_limit_per_day,
            f"{sender} got {ctx.facts.automatic_answers_today} automatic answers in 24 hours",
        ),
    ]
    for refused, reason in refusals:
        if refused:
            ctx.auto_reply_allowed, ctx.auto_reply_reason = False, reason
            return
    ctx.auto_reply_allowed, ctx.auto_reply_reason = True, "a person wrote"


FILTERS: tuple[Filter, ...] = (
    classify,
    thread_bounce,
    thread_by_headers,
    thread_by_subject_number,
    closed_ticket,
    choose_customer,
    automatic_answer,
)


def decide(mail: ParsedMail, facts: Facts, policy: Policy) -> Context:
    ctx = Context(mail=mail, facts=facts, policy=policy)
    for step in FILTERS:
        step(ctx)
    return ctx
