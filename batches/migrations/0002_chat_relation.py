"""Rows move out of the batch: BatchItem (one per row, with its Chat) and engine fields."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0001_initial"),
        ("chats", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="batch",
            name="model",
            field=models.CharField(blank=True, max_length=128),
        ),
        migrations.AddField(
            model_name="batch",
            name="source_filename",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name="batch",
            name="error",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="batch",
            name="started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="batch",
            name="finished_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="batch",
            name="page_language",
            field=models.CharField(choices=[("en", "English"), ("fr", "French")], default="en", max_length=2),
        ),
        migrations.AlterField(
            model_name="batch",
            name="status",
            field=models.CharField(
                choices=[
                    ("uploaded", "Uploaded"),
                    ("queued", "Queued"),
                    ("processing", "Processing"),
                    ("completed", "Completed"),
                    ("cancelled", "Cancelled"),
                    ("failed", "Failed"),
                ],
                default="uploaded",
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="BatchItem",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("position", models.PositiveIntegerField()),
                ("question", models.TextField()),
                ("referring_url", models.CharField(blank=True, max_length=2048)),
                ("row", models.JSONField(blank=True, default=dict)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("running", "Running"),
                            ("done", "Done"),
                            ("failed", "Failed"),
                            ("cancelled", "Cancelled"),
                        ],
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("error", models.TextField(blank=True)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("lease_owner", models.CharField(blank=True, max_length=64)),
                ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "batch",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="items", to="batches.batch"
                    ),
                ),
                (
                    "chat",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="batch_items", to="chats.chat"
                    ),
                ),
                (
                    "interaction",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="batch_item",
                        to="chats.interaction",
                    ),
                ),
            ],
            options={"ordering": ["batch", "position"]},
        ),
        migrations.AddField(
            model_name="batch",
            name="chats",
            field=models.ManyToManyField(related_name="batches", through="batches.BatchItem", to="chats.chat"),
        ),
        migrations.AddConstraint(
            model_name="batchitem",
            constraint=models.UniqueConstraint(fields=("batch", "position"), name="unique_batch_position"),
        ),
        migrations.AddIndex(
            model_name="batchitem",
            index=models.Index(fields=["batch", "status", "position"], name="item_batch_status_pos"),
        ),
        migrations.AddIndex(
            model_name="batchitem",
            index=models.Index(fields=["status", "lease_expires_at"], name="item_status_lease"),
        ),
        migrations.AddIndex(
            model_name="batch",
            index=models.Index(fields=["uploader", "-created_at"], name="batch_uploader_created"),
        ),
        migrations.AddIndex(
            model_name="batch",
            index=models.Index(fields=["status"], name="batch_status"),
        ),
    ]
