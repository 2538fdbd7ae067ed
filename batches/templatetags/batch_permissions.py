"""`{% if batch|may_act:request.user %}`: the templates show actions by the same rule as
the views (batches.selectors.may_act_on)."""

from __future__ import annotations

from django import template

from batches.selectors import may_act_on

register = template.Library()


@register.filter
def may_act(batch, user) -> bool:
    return user is not None and user.is_authenticated and may_act_on(user, batch)
