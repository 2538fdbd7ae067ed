"""The legacy schema: a batch stored its rows inline (`entries`), as the old app did."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Batch",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("legacy_id", models.CharField(blank=True, max_length=64, null=True, unique=True)),
                ("name", models.CharField(max_length=200)),
                ("type", models.CharField(default="question", max_length=32)),
                ("ai_provider", models.CharField(max_length=32)),
                ("search_provider", models.CharField(max_length=32)),
                ("page_language", models.CharField(default="en", max_length=2)),
                ("apply_overrides", models.BooleanField(default=False)),
                ("status", models.CharField(default="uploaded", max_length=16)),
                ("total_items", models.PositiveIntegerField(default=0)),
                ("processed_items", models.PositiveIntegerField(default=0)),
                ("failed_items", models.PositiveIntegerField(default=0)),
                ("last_processed_index", models.PositiveIntegerField(default=0)),
                ("entries", models.JSONField(blank=True, default=list)),
                ("interactions", models.JSONField(blank=True, default=list)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "uploader",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="batches",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"verbose_name_plural": "batches", "ordering": ["-created_at", "-id"]},
        ),
    ]
