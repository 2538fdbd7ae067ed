"""Small filters of the batch pages."""

from __future__ import annotations

from django import template
from django.core.cache.utils import make_template_fragment_key
from django.templatetags.cache import do_cache
from django.utils.formats import localize
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from batchchat.single_flight import single_flight
from batches.errors import error_kind
from chats.services import is_not_found as _is_not_found

register = template.Library()


class _RenderedOnce(template.Node):
    """Django's `{% cache %}` rendered by one request at a time per fragment key in this
    process: those that miss together wait and read what the first stored."""

    def __init__(self, node: template.Node) -> None:
        self.node = node

    def render(self, context: template.Context) -> str:
        vary_on = [var.resolve(context) for var in self.node.vary_on]
        with single_flight(make_template_fragment_key(self.node.fragment_name, vary_on)):
            return self.node.render(context)


@register.tag
def cache_once(parser: template.base.Parser, token: template.base.Token) -> template.Node:
    """`{% cache_once TIMEOUT NAME VARY_ON... %}...{% endcache %}`: `{% cache %}`, with
    one render for the requests that miss the same fragment at once (_RenderedOnce)."""
    return _RenderedOnce(do_cache(parser, token))


@register.filter
def is_not_found(answer: str, language: str = "en") -> bool:
    """Whether a stored answer says nothing was found (chats.prompts.is_not_found)."""
    return _is_not_found(answer, language or "en")


class _Each(dict):
    """A mapping that gives `value` for every key (a label's one placeholder, whatever
    its name)."""

    def __init__(self, value) -> None:
        super().__init__()
        self.value = value

    def __missing__(self, key):
        return self.value


@register.filter
def fill_in(value, label: str) -> str:
    """`{{ n|fill_in:label }}`: `label`, a message with one placeholder translated once
    for a whole table (`{% translate "for row %(row)s" as label %}`), with `value` in its
    place, as `{% blocktranslate %}` renders it (the value localized and escaped, the
    translation trusted): a table of 50 rows asked gettext about 150 times for these."""
    return SafeString(str(label) % _Each(conditional_escape(localize(value))))


@register.filter
def duration(seconds) -> str:
    """Seconds as "1 h 02 min 05 s", "3 min 04 s" or "12 s" (to the second)."""
    if seconds is None or seconds == "":
        return "—"
    total = max(int(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return gettext("%(h)d h %(m)02d min %(s)02d s") % {"h": hours, "m": minutes, "s": secs}
    if minutes:
        return gettext("%(m)d min %(s)02d s") % {"m": minutes, "s": secs}
    return gettext("%(s)d s") % {"s": secs}


# Stored error messages stay English (batches.errors.error_kind); the page adds a
# translated explanation beside the kinds it knows.


@register.filter
def error_help(message: str) -> str:
    """A translated explanation of a stored (English) error message, or ""."""
    explanations = {
        "timeout": gettext(
            "The provider took too long to answer. Retry the failed rows; if it keeps "
            "happening, the provider may be overloaded."
        ),
        "refused": gettext(
            "BatchChat could not reach the provider (connection refused or dropped). Check "
            "that it is running and its address, then retry the failed rows."
        ),
        "rate_limited": gettext(
            "The provider limited the number of requests (rate limited). Retry the failed "
            "rows later, or lower the quotas in the settings."
        ),
        "provider_error": gettext(
            "The provider answered with an error. The message beside it is the provider's "
            "own; retry the failed rows, or check the model and its settings."
        ),
        "guard": gettext(
            "The guard stopped this question (personal information or abuse) before "
            "anything was sent."
        ),
    }
    return explanations.get(error_kind(message), "")
