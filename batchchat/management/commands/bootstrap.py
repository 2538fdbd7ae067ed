"""First-run set-up for a local install: a login account and the offline search index."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from chats.search.indexer import build_index


class Command(BaseCommand):
    help = (
        "Create a local login on first run (or from DJANGO_SUPERUSER_USERNAME / "
        "DJANGO_SUPERUSER_PASSWORD) and print how to log in."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000/", help="where the app will be served"
        )

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        login_file = Path(settings.BASE_DIR) / "var" / "local-login.txt"
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        if username and password:
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_staff": True, "is_superuser": True}
            )
            if created:
                user.set_password(password)
                user.save()
            self.stdout.write(f"Log in as {username} with DJANGO_SUPERUSER_PASSWORD.")
        elif not User.objects.exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(username="admin", email="", password=password)
            login_file.parent.mkdir(parents=True, exist_ok=True)
            login_file.write_text(f"username: admin\npassword: {password}\n")
            login_file.chmod(0o600)
            self.stdout.write(self.style.SUCCESS("Created the local account 'admin'."))
        if login_file.exists() and not username:
            self.stdout.write(
                f"Log in at {options['url']} with the account in {login_file}:\n"
                + login_file.read_text()
            )
        # The default `local` search needs its index; build it once from the sample docs
        # (later changes: `manage.py index_documents DIR`).
        index, docs = Path(settings.LOCAL_SEARCH_INDEX), Path(settings.LOCAL_SEARCH_DOCS)
        if not index.exists() and docs.is_dir():
            summary = build_index(docs_dir=docs, index_path=index)
            self.stdout.write(
                f"Built the local search index: {summary.indexed} documents from {docs}."
            )
