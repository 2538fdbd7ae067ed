from django.db import migrations, models


def derive_answer_types(apps, schema_editor):
    """Existing turns get the type their stored answer says: blocked by the guard, the
    not-found wording (any language's), else a normal answer. Tags were not asked for
    before, so no stored turn is not-gc, pt-muni or a clarifying question."""
    from chats.prompts import not_found_q

    Interaction = apps.get_model("chats", "Interaction")
    pending = Interaction.objects.filter(answer_type="")
    pending.filter(guard_status="blocked").update(answer_type="blocked")
    pending.filter(not_found_q(language=None)).update(answer_type="not-found")
    pending.update(answer_type="normal")


class Migration(migrations.Migration):
    dependencies = [
        ("chats", "0002_guard_fields"),
    ]

    operations = [
        migrations.AddField(
            model_name="interaction",
            name="answer_type",
            field=models.CharField(
                blank=True,
                choices=[
                    ("normal", "Answer"),
                    ("not-found", "Not found"),
                    ("not-gc", "Out of scope"),
                    ("pt-muni", "Other jurisdiction"),
                    ("clarifying-question", "Clarifying question"),
                    ("blocked", "Blocked"),
                ],
                max_length=24,
            ),
        ),
        migrations.RunPython(derive_answer_types, migrations.RunPython.noop),
    ]
