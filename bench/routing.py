"""Routing speed: how long the rules engine takes to decide one message, at 10 to 1,000 rules.

Builds rule sets of each size from a realistic mix (which of our addresses was written to, the
sender's domain, trigger words in Danish, Swedish, Norwegian, Finnish and English in subject
and body, order-number regexes, customer attributes, opening hours, nested any/all/not), and
messages of a few hundred words with Nordic letters; evaluates every message against each
rule set and prints one JSON line: per size, decisions per second and the per-message latency
(p50/p95, ms) of the decision alone and of the decision with its full trace written as JSON
(what the service stores).
Usage:
    python bench/routing.py [--messages 2000] [--sizes 10,100,1000] [--seed 7]
No database or network is needed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.routing.engine import CompiledRuleSet, compile_rule_set, evaluate, parse_rule_set
from app.routing.facts import Facts, Trigger

WORDS = {
    "da": "faktura regning betaling kreditnota rykker spørgsmål levering pakke ødelagt mangler "
    "ombytning returnering adgangskode konto opsigelse abonnement kvittering rabat tilbud fejl "
    "hjælp bestilling ordre",
    "sv": "räkning faktura betalning påminnelse leverans paket trasig saknas retur byte lösenord "
    "konto uppsägning abonnemang kvitto rabatt erbjudande fel hjälp beställning order ärende",
    "no": "regning faktura betaling purring levering pakke ødelagt mangler retur bytte passord "
    "konto oppsigelse abonnement kvittering rabatt tilbud feil hjelp bestilling ordre sak",
    "fi": "lasku maksu muistutus toimitus paketti rikki puuttuu palautus vaihto salasana tili "
    "irtisanominen tilaus kuitti alennus tarjous virhe apua",
    "en": "invoice bill payment reminder delivery parcel broken missing return exchange password "
    "account cancellation subscription receipt discount offer error help order",
}
"""Words of customer service, per language: what trigger words are chosen from."""
FILLER = {
    "da": "jeg har det en og i at er ikke på med som kan vi til af for den du så min har været "
    "også når hvor hvad skal vil gerne hurtigt venlig hilsen tak kære hej mvh søndag fødselsdag",
    "sv": "jag har det en och i att är inte på med som kan vi till av för den du så min varit "
    "också när var vad ska vill gärna snabbt vänliga hälsningar tack hej söndag födelsedag",
    "no": "jeg har det en og i at er ikke på med som kan vi til av for den du så min vært også "
    "når hvor hva skal vil gjerne raskt vennlig hilsen takk hei søndag bursdag særlig",
    "fi": "minä olen se ja on ei kanssa joka voi me että sinä niin minun ollut myös kun missä mitä "
    "pitää haluan mielellään nopeasti ystävällisin terveisin kiitos hei sunnuntai syntymäpäivä",
    "en": "i have it a and in to is not on with as can we of for the you so my been also when "
    "where what shall would like quickly kind regards thanks dear hello sunday birthday",
}
"""Everyday words that make up most of a message and trigger nothing."""
LANGUAGES = list(WORDS)
DEPARTMENTS = ["faktura", "support", "salg", "kundeservice", "asiakaspalvelu", "kundtjanst"]
DOMAINS = ["firma.dk", "foretag.se", "bedrift.no", "yritys.fi", "company.co.uk", "gmail.com"]


def _address(rng: random.Random) -> str:
    return f"{rng.choice(DEPARTMENTS)}{rng.randrange(20)}@firma.dk"


def _words(rng: random.Random, count: int) -> list[str]:
    return rng.sample(WORDS[rng.choice(LANGUAGES)].split(), count)


def _condition(rng: random.Random, index: int) -> dict[str, Any]:
    """One rule's condition; the kinds cycle so every size has the same mix."""
    recipient = {"field": "message.recipients", "op": "equals", "value": _address(rng)}
    subject_words = {"field": "message.subject", "op": "words", "value": _words(rng, 4)}
    body_words = {"field": "message.body", "op": "words", "value": _words(rng, 3)}
    kinds = [
        {"all": [recipient, subject_words]},
        {"field": "message.sender_domain", "op": "in", "value": rng.sample(DOMAINS, 2)},
        {"any": [subject_words, body_words]},
        {
            "all": [
                recipient,
                {
                    "field": "message.subject",
                    "op": "regex",
                    "value": rf"\b(?:ordre|order|tilaus)\s*(?:nr\.?|#)?\s*{index % 10}\d{{4}}\b",
                },
            ]
        },
        {
            "all": [
                {"field": "customer.attributes.segment", "op": "equals", "value": "b2b"},
                {"field": "customer.vip", "op": "equals", "value": True},
                {"field": "time.business_hours", "op": "equals", "value": False},
            ]
        },
        {
            "all": [
                {"not": {"field": "language", "op": "in", "value": rng.sample(LANGUAGES, 2)}},
                {"field": "time.weekday", "op": "in", "value": ["sat", "sun"]},
                body_words,
            ]
        },
        {
            "any": [
                {
                    "all": [
                        {"field": "message.has_attachments", "op": "equals", "value": True},
                        {
                            "field": "message.attachment_types",
                            "op": "contains",
                            "value": "application/pdf",
                        },
                        {"not": {"field": "customer.open_tickets", "op": "lt", "value": 3}},
                    ]
                },
                {"all": [recipient, {"not": subject_words}, body_words]},
            ]
        },
        {
            "field": "message.subject",
            "op": "starts_with",
            "value": rng.choice(["SV:", "VS:", "AW:"]),
        },
    ]
    return kinds[index % len(kinds)]


def rule_set(size: int, rng: random.Random) -> CompiledRuleSet:
    days = {day: ["08:00", "16:00"] for day in ("mon", "tue", "wed", "thu")}
    rules = [
        {
            "id": f"rule-{index}",
            "name": f"Rule {index}",
            "triggers": ["ticket_created", "message_received"],
            "when": _condition(rng, index),
            "actions": [
                {"type": "set_queue", "queue_id": 1 + index % 40},
                {"type": "add_tags", "tags": [f"tag-{index % 25}"]},
            ],
        }
        for index in range(size)
    ]
    definition = parse_rule_set(
        {
            "business_hours": {
                "timezone": "Europe/Copenhagen",
                "hours": {**days, "fri": ["08:00", "15:00"]},
            },
            "rules": rules,
        }
    )
    return compile_rule_set(definition)


def message(rng: random.Random, start: datetime) -> Facts:
    language = rng.choice(LANGUAGES)
    topic, filler = WORDS[language].split(), FILLER[language].split()

    def sentence(length: int) -> str:
        return " ".join(rng.choice(topic if rng.random() < 0.05 else filler) for _ in range(length))

    subject = f"{sentence(rng.randrange(3, 8))} {rng.choice(topic)}"
    if rng.random() < 0.2:
        subject += f" ordre nr. {rng.randrange(10000, 99999)}"
    body = "\n".join(
        sentence(rng.randrange(8, 16)).capitalize() + "." for _ in range(rng.randrange(20, 35))
    )
    attachments = rng.random() < 0.3
    return Facts(
        trigger=Trigger.ticket_created,
        now=start + timedelta(minutes=rng.randrange(7 * 24 * 60)),
        values={
            "message.recipients": [_address(rng)],
            "message.sender": f"kunde@{rng.choice(DOMAINS)}",
            "message.sender_domain": rng.choice(DOMAINS),
            "message.subject": ("SV: " if rng.random() < 0.3 else "") + subject.capitalize(),
            "message.body": body,
            "message.channel": "email",
            "message.has_attachments": attachments,
            "message.attachment_types": ["application/pdf"] if attachments else [],
            "language": language,
            "customer.vip": rng.random() < 0.1,
            "customer.open_tickets": rng.randrange(6),
            "customer.attributes.segment": rng.choice(["b2b", "b2c"]),
        },
    )


def _percentile(latencies: list[float], fraction: float) -> float:
    return round(statistics.quantiles(latencies, n=100)[int(fraction * 100) - 1] * 1000, 3)


def _latencies(messages: list[Facts], decide: Callable[[Facts], object]) -> list[float]:
    latencies = []
    for facts in messages:
        started = time.perf_counter()
        decide(facts)
        latencies.append(time.perf_counter() - started)
    return latencies


def measure(rules: CompiledRuleSet, messages: list[Facts]) -> dict[str, Any]:
    """Deciding alone, then deciding and writing the trace, each over all messages (run
    separately so neither's garbage is counted in the other's figures)."""
    decide = _latencies(messages, lambda facts: evaluate(rules, facts))
    with_trace = _latencies(
        messages, lambda facts: json.dumps(evaluate(rules, facts).as_json(), ensure_ascii=False)
    )
    return {
        "decisions_per_second": round(len(decide) / sum(decide)),
        "p50_ms": _percentile(decide, 0.50),
        "p95_ms": _percentile(decide, 0.95),
        "with_trace_p50_ms": _percentile(with_trace, 0.50),
        "with_trace_p95_ms": _percentile(with_trace, 0.95),
    }


def main(message_count: int, sizes: list[int], seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    start = datetime(2025, 3, 24, tzinfo=UTC)
    messages = [message(rng, start) for _ in range(message_count)]
    return {f"rules_{size}": measure(rule_set(size, rng), messages) for size in sizes} | {
        "messages": message_count
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.sizes.split(",")]
    print(json.dumps(main(arguments.messages, sizes, arguments.seed)))
