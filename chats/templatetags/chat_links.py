"""Links to addresses that came from uploads, models or search results."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from chats.documents import served_url

register = template.Library()


def is_web_url(value: object) -> bool:
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


@register.simple_tag
def external_link(url: str, text: str = "") -> str:
    """An <a> for http(s) addresses only; anything else (`javascript:`, `data:`, a bare
    name) is shown as text, never made clickable. Documents of the local index under
    their placeholder address link to the app's own copy (chats.documents)."""
    label = text or url
    if not is_web_url(url):
        return format_html("{}", label)
    href = served_url(url)
    if href != url:
        return format_html('<a href="{}" title="{}">{}</a>', href, url, label)
    return format_html('<a href="{}" rel="noopener noreferrer" target="_blank">{}</a>', url, label)
