"""`manage.py api_token create USERNAME [--name NAME] | revoke PREFIX_OR_ID | list [--user U]`."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import ApiToken
from accounts.services import TokenNotFound, create_api_token, find_token, revoke_api_token


class Command(BaseCommand):
    help = "Create, revoke or list personal API tokens (Authorization: Bearer <token>)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = sub.add_parser("create", help="Create a token and print it (shown only once).")
        create.add_argument("username")
        create.add_argument("--name", default="Command-line token", help="What it is for.")
        revoke = sub.add_parser("revoke", help="Revoke a token by its id or its prefix.")
        revoke.add_argument("key", metavar="TOKEN_PREFIX_OR_ID")
        listing = sub.add_parser("list", help="List tokens (never their secret).")
        listing.add_argument("--user", dest="username", help="Only this user's tokens.")

    def handle(self, *args, action: str, **options) -> None:
        getattr(self, f"_{action}")(**options)

    def _create(self, *, username: str, name: str, **_options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named '{username}': create it first (createsuperuser).")
        token, raw = create_api_token(user=user, name=name)
        # The secret goes alone on stdout so that `TOKEN=$(manage.py api_token create u)` works.
        self.stdout.write(raw)
        self.stderr.write(
            f"Created token {token.pk} '{token.name}' for {username} ({token.prefix}…). "
            "Store it now: it cannot be shown again."
        )

    def _revoke(self, *, key: str, **_options) -> None:
        try:
            token = find_token(key=key)
        except TokenNotFound as exc:
            raise CommandError(str(exc)) from None
        revoke_api_token(token=token)
        self.stdout.write(f"Revoked token {token.pk} '{token.name}' of {token.user.username}.")

    def _list(self, *, username: str | None, **_options) -> None:
        tokens = ApiToken.objects.select_related("user").order_by("user__username", "created_at")
        if username:
            tokens = tokens.filter(user__username=username)
        count = 0
        for token in tokens:
            used = (
                token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
            )
            self.stdout.write(
                f"{token.pk}\t{token.prefix}…\t{token.user.username}\t{token.name}\t"
                f"created {token.created_at.isoformat(timespec='seconds')}\tlast used {used}"
            )
            count += 1
        self.stderr.write(f"{count} token(s).")
