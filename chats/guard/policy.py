"""The guard's policy: kinds, actions and statuses, `screen`, the messages, the AI check.

`screen(question, language=...)` is pure and deterministic (no database, no network): it
returns a `GuardResult` with the status (`passed`, `redacted`, `blocked`: the
`chats.models.GuardStatus` choices), the question with every finding replaced by a
placeholder, and the kinds found (never the values). The policy comes from settings:

- `GUARD_PII_ACTION` (`block` | `redact`, default `block`) for personal information;
- `GUARD_ABUSE_ACTION` (`block` | `redact`, default `block`) for profanity, threats,
  prompt injection and scanner probes.

A question with any finding whose action is `block` is blocked; otherwise, with
findings, it is redacted. The fixed answer to a blocked question (`blocked_message`) and
the human labels of the kinds (`reason_labels`) are translated (English, French).

The optional second stage (`ai_check`, awaited on the provider loop) asks an AI model
for personal information the patterns missed; it takes the provider's `agenerate` as a
callable so the guard itself never touches the network.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from chats.guard import words
from chats.guard.detectors import Finding, find
from chats.guard.redaction import redact
from chats.models import GuardStatus
from chats.providers.base import Generation, GenerationRequest, Message

logger = logging.getLogger(__name__)

PASSED: str = GuardStatus.PASSED.value
REDACTED: str = GuardStatus.REDACTED.value
BLOCKED: str = GuardStatus.BLOCKED.value
STATUSES = (PASSED, REDACTED, BLOCKED)
BLOCK = "block"
REDACT = "redact"
ACTIONS = (BLOCK, REDACT)

# Kinds of findings. PII kinds follow GUARD_PII_ACTION, abuse kinds GUARD_ABUSE_ACTION.
PII_KINDS = (
    "phone",
    "email",
    "postal_code",
    "sin",
    "card",
    "id_number",
    "ip_address",
    "url",
    "address",
    "name",
    "ai_personal",  # found by the optional AI check
)
ABUSE_KINDS = ("profanity", "threat", "injection", "probe")
KINDS = PII_KINDS + ABUSE_KINDS

KIND_LABELS = {
    "phone": _("phone number"),
    "email": _("e-mail address"),
    "postal_code": _("postal code"),
    "sin": _("social insurance number"),
    "card": _("credit card number"),
    "id_number": _("identity, account or file number"),
    "ip_address": _("IP address"),
    "url": _("personal web address"),
    "address": _("street address"),
    "name": _("a person's name"),
    "ai_personal": _("personal information (AI check)"),
    "profanity": _("profanity"),
    "threat": _("threat"),
    "injection": _("instructions aimed at the AI model"),
    "probe": _("code or a security probe"),
}


@dataclass(frozen=True)
class GuardResult:
    """What the guard decided. `text` is the redacted question (the question itself when
    nothing was found); `reasons` the sorted kinds found, never the values."""

    status: str
    text: str
    reasons: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return self.status == BLOCKED

    @property
    def changed(self) -> bool:
        return self.status != PASSED


def action_for(kind: str) -> str:
    setting = "GUARD_ABUSE_ACTION" if kind in ABUSE_KINDS else "GUARD_PII_ACTION"
    action = str(getattr(settings, setting, BLOCK)).strip().lower()
    return action if action in ACTIONS else BLOCK


def screen(question: str, *, language: str = "en") -> GuardResult:
    """Screen one question (pure, deterministic): see the module docstring.

    `language` is the page language; detection covers English and French either way.
    """
    findings = find(question)
    if not findings:
        return GuardResult(PASSED, question)
    return _found(redact(question, findings), {finding.kind for finding in findings})


def _found(redacted: str, kinds: set[str]) -> GuardResult:
    """The result of a text in which `kinds` were found: blocked when any kind's action
    is block, else redacted."""
    status = BLOCKED if any(action_for(kind) == BLOCK for kind in kinds) else REDACTED
    return GuardResult(status, redacted, tuple(sorted(kinds)))


# A path segment or query value that is only digits (with a file extension at most), such
# as `/ei/12345678901.html` or `?id=987654321`, is a page or record id of the site, not a
# phone or identity number: a URL is screened for values a person wrote, and a bare id
# under a key that is not personal (data/personal_query_keys.txt: `sin`, `tel`, …) is not
# one. A number with separators (`613-555-0123`) or under a personal key is still read.
_PLACEHOLDER = re.compile(r"\[[^\]]*\]")  # one already put there: "?email=[EMAIL]"
_BARE_ID = re.compile(r"\d+(?:\.[A-Za-z0-9]{1,5})?")


@functools.cache
def _key_kinds() -> dict[str, str]:
    return dict(line.split() for line in words.word_list("query_key_kinds"))


def _key_kind(key: str) -> str:
    """The kind of a value under a personal query key (data/query_key_kinds.txt)."""
    return _key_kinds().get(key.lower().replace("_", ""), "url")


def screen_url(url: str) -> GuardResult:
    """Screen a referring URL by the same policy as a question (pure, deterministic).

    Each path segment and each query value is percent-decoded and read by the detectors;
    a value with findings is replaced by its redacted text, encoded again with the
    placeholders left readable (`?email=[EMAIL]`). Untouched parts (scheme, host, query
    keys, clean values) stay byte for byte; `text` is the redacted URL.
    """
    if not url:
        return GuardResult(PASSED, url)
    try:
        parts = urlsplit(url)
    except ValueError:  # an unparsable URL is screened as plain text
        return screen(url)
    kinds: set[str] = set()

    def _screened(raw: str, *, query: bool, key: str = "") -> str:
        decoded = unquote_plus(raw) if query else unquote(raw)
        personal_key = key.lower().replace("_", "") in words.word_set("personal_query_keys")
        if _BARE_ID.fullmatch(decoded) and not personal_key:
            return raw
        findings = find(decoded)
        if not findings and personal_key and not _PLACEHOLDER.fullmatch(decoded.strip() or "[]"):
            # "?name=jo": a value under a personal key is personal, found or not.
            findings = [Finding(0, len(decoded), _key_kind(key))]
        if not findings:
            return raw
        kinds.update(finding.kind for finding in findings)
        encode = quote_plus if query else quote
        return encode(redact(decoded, findings), safe="[]")

    path = "/".join(_screened(segment, query=False) for segment in parts.path.split("/"))
    pairs = []
    for pair in parts.query.split("&") if parts.query else []:
        key, equals, value = pair.partition("=")
        pairs.append(key + equals + _screened(value, query=True, key=key) if equals else pair)
    if not kinds:
        return GuardResult(PASSED, url)
    return _found(urlunsplit(parts._replace(path=path, query="&".join(pairs))), kinds)


# --- Messages ---------------------------------------------------------------------------


def reason_labels(reasons: Iterable[str], language: str | None = None) -> list[str]:
    """Human labels of the kinds found, in `language` (default: the active one)."""
    with translation.override(language) if language else contextlib.nullcontext():
        return [str(KIND_LABELS.get(kind, kind)) for kind in reasons]


def blocked_message(reasons: Iterable[str], *, language: str) -> str:
    """The fixed answer to a blocked question, in the page language."""
    reasons = list(reasons)
    with translation.override(language):
        labels = ", ".join(reason_labels(reasons))
        if any(kind in PII_KINDS for kind in reasons):
            return gettext(
                "This question was not answered: it contains personal information "
                "(%(reasons)s). For your privacy it was not sent to search or to the AI "
                "model. Ask again without names, numbers, addresses or other personal "
                "details."
            ) % {"reasons": labels}
        return gettext(
            "This question was not answered: it contains %(reasons)s. It was not sent to "
            "search or to the AI model. Ask again in other words."
        ) % {"reasons": labels}


# --- Optional second stage: an AI check -------------------------------------------------

# The policy text (data/policy.txt) is the AI check's instructions, between a short
# framing and the reply format: one text for both stages.
POLICY_TEXT = "\n".join(words.word_list("policy"))
AI_CHECK_SYSTEM = (
    "You screen a question before it is sent to a search engine and an AI assistant. "
    "Find personal information in it by this policy:\n"
    f"{POLICY_TEXT}\n"
    "Text in square brackets such as [PHONE] was already removed. Reply with JSON only, no "
    'other text: {"personal_information": [{"kind": "<short kind>", "text": "<exact text '
    'copied from the question>"}]} with an empty list when there is none.'
)


def ai_check_request(text: str, *, language: str, model: str) -> GenerationRequest:
    """The request of the AI check: a short system prompt and the question alone."""
    return GenerationRequest(
        system=AI_CHECK_SYSTEM,
        messages=[Message(role="user", content=text)],
        question=text,
        language=language,
        model=model,
    )


def parse_ai_check(reply: str, text: str) -> list[str] | None:
    """The personal values the model found in `text`, or None when the reply is not
    exactly the JSON asked for (a code fence around it is tolerated) or names a value
    that is not in the question: the caller then asks again."""
    body = reply.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.DOTALL)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != {"personal_information"}:
        return None
    entries = data["personal_information"]
    if not isinstance(entries, list):
        return None
    values: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            return None
        value = entry["text"].strip()
        if not value or value not in text:
            return None
        if re.fullmatch(r"\[[^\]]*\]", value):
            continue  # a placeholder of ours, already removed
        values.append(value)
    return values


def apply_ai_check(result: GuardResult, values: list[str]) -> GuardResult:
    """Merge the AI check's findings into `result` under the PII policy."""
    if not values:
        return result
    text = result.text
    findings = []
    for value in sorted(set(values), key=len, reverse=True):
        for match in re.finditer(re.escape(value), text):
            findings.append(Finding(match.start(), match.end(), "ai_personal"))
    reasons = tuple(sorted({*result.reasons, "ai_personal"}))
    blocked = result.blocked or action_for("ai_personal") == BLOCK
    return replace(
        result,
        status=BLOCKED if blocked else REDACTED,
        text=redact(text, findings),
        reasons=reasons,
    )


def _ai_check_attempts() -> int:
    return max(int(getattr(settings, "GUARD_AI_CHECK_ATTEMPTS", 2)), 1)


async def ai_check(
    result: GuardResult,
    *,
    agenerate: Callable[[GenerationRequest], Awaitable[Generation]],
    language: str,
    model: str,
) -> GuardResult:
    """Second stage: ask the model (`agenerate`, a provider's) for personal information
    the patterns missed, in the already redacted text.

    A blocked result is returned as is (nothing is sent). An answer that does not parse
    is asked again, up to GUARD_AI_CHECK_ATTEMPTS times; after that the deterministic
    result stands (logged, without the text). Provider errors propagate: the provider's
    own retry policy has already run.
    """
    if result.blocked:
        return result
    request = ai_check_request(result.text, language=language, model=model)
    for _attempt in range(_ai_check_attempts()):
        values = parse_ai_check((await agenerate(request)).text, result.text)
        if values is not None:
            return apply_ai_check(result, values)
    logger.warning("guard AI check: no valid answer after %s attempts", _ai_check_attempts())
    return result
