"""The Django admin for batches and chats: fixed query counts, read-only engine fields,
actions through the services."""

from __future__ import annotations

import re

import factory
import pytest
from django.urls import reverse

from batchchat.admin import INLINE_LIMIT
from batches.models import Batch, BatchItem
from batches.tests.factories import BatchFactory, BatchItemFactory
from chats.models import Chat
from chats.tests.factories import ChatFactory, InteractionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def make_batch_with_rows(rows: int, **fields) -> Batch:
    fields.setdefault("uploader", plain_users(1, prefix=f"rows{Batch.objects.count()}-")[0])
    batch = BatchFactory(total_items=rows, **fields)
    for position in range(rows):
        item = BatchItemFactory(batch=batch, position=position)
        if position % 2 == 0:
            item.interaction = InteractionFactory(chat=item.chat, position=0)
            item.status = BatchItem.Status.DONE
            item.save()
    return batch


def test_batch_changelist_costs_a_fixed_number_of_queries(
    admin_client, django_assert_max_num_queries
):
    users = plain_users(5)
    BatchFactory.create_batch(200, uploader=factory_cycle(users), processed_items=3, total_items=9)

    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse("admin:batches_batch_changelist"))

    assert response.status_code == 200
    assert "3 / 0 / 9 (33%)" in response.text
    assert "200 batches" in response.text


def factory_cycle(values):
    return factory.Iterator(values)


def plain_users(count: int, prefix: str = "plain") -> list:
    # No password hashing: a hash per user costs a second on a busy machine.
    from django.contrib.auth import get_user_model

    User = get_user_model()
    return User.objects.bulk_create(
        User(username=f"{prefix}{n}", password="!") for n in range(count)
    )


def test_batch_changelist_filters_and_searches(admin_client, owner):
    BatchFactory(name="Passport questions", uploader=owner, status="completed")
    BatchFactory(name="Tax questions", status="uploaded", ai_provider="openai")
    url = reverse("admin:batches_batch_changelist")

    assert "Passport questions" in admin_client.get(url, {"q": "owner"}).text
    assert "Tax questions" not in admin_client.get(url, {"q": "owner"}).text
    filtered = admin_client.get(url, {"status__exact": "uploaded", "ai_provider": "openai"})
    assert "Tax questions" in filtered.text and "Passport questions" not in filtered.text


def test_batch_change_page_costs_the_same_for_a_big_batch(
    admin_client, django_assert_max_num_queries
):
    small = make_batch_with_rows(3)
    big = make_batch_with_rows(INLINE_LIMIT + 10)

    with django_assert_max_num_queries(14) as small_queries:
        admin_client.get(reverse("admin:batches_batch_change", args=[small.pk]))
    with django_assert_max_num_queries(len(small_queries.captured_queries)):
        response = admin_client.get(reverse("admin:batches_batch_change", args=[big.pk]))

    assert response.status_code == 200
    # Capped inline, each row linking to its chat's admin page.
    assert len(re.findall(r'href="/admin/chats/chat/\d+/change/"', response.text)) == INLINE_LIMIT
    assert "Answer to Question" in response.text


def test_batch_counters_are_read_only(admin_client):
    batch = make_batch_with_rows(2, processed_items=1)
    url = reverse("admin:batches_batch_change", args=[batch.pk])
    data = {
        "name": "Renamed",
        "uploader": batch.uploader_id,
        "type": "question",
        "ai_provider": "extractive",
        "model": "extractive",
        "search_provider": "local",
        "page_language": "en",
        "processed_items": 999,
        "status": "completed",
        "items-TOTAL_FORMS": "2",
        "items-INITIAL_FORMS": "2",
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "1000",
    }
    for index, item in enumerate(batch.items.order_by("position")):
        data[f"items-{index}-id"] = item.pk
        data[f"items-{index}-batch"] = batch.pk

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.content[:2000]
    batch.refresh_from_db()
    assert batch.name == "Renamed"
    assert (batch.processed_items, batch.status) == (1, "uploaded")


def test_cancel_and_retry_actions_call_the_services(admin_client):
    running = make_batch_with_rows(2, status=Batch.Status.PROCESSING)
    done = make_batch_with_rows(2, status=Batch.Status.COMPLETED)
    url = reverse("admin:batches_batch_changelist")

    response = admin_client.post(
        url, {"action": "cancel_batches", "_selected_action": [running.pk, done.pk]}, follow=True
    )

    running.refresh_from_db()
    assert running.status == Batch.Status.CANCELLED
    assert running.items.filter(status=BatchItem.Status.CANCELLED).count() == 1
    assert "Cancelled 1 batch(es)." in response.text
    assert "cannot be cancelled" in response.text  # the completed one, with the reason

    response = admin_client.post(
        url, {"action": "retry_failed_rows", "_selected_action": [running.pk]}, follow=True
    )

    running.refresh_from_db()
    assert running.status == Batch.Status.QUEUED
    assert running.items.filter(status=BatchItem.Status.PENDING).count() == 1
    assert "Queued again 1 batch(es)." in response.text


def test_export_action_streams_one_batch_as_csv(admin_client):
    batch = make_batch_with_rows(3)
    url = reverse("admin:batches_batch_changelist")

    response = admin_client.post(url, {"action": "export_csv", "_selected_action": [batch.pk]})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    lines = body.strip().splitlines()
    assert lines[0].startswith("batch_id,batch_name,row,question_number,repeat,chat_id")
    assert len(lines) == 4


def test_export_action_asks_for_exactly_one_batch(admin_client):
    first, second = BatchFactory.create_batch(2)
    url = reverse("admin:batches_batch_changelist")

    response = admin_client.post(
        url, {"action": "export_csv", "_selected_action": [first.pk, second.pk]}, follow=True
    )

    assert "Select exactly one batch to export" in response.text


def test_deleting_a_batch_in_the_admin_deletes_its_chats(admin_client):
    batch = make_batch_with_rows(2)
    kept = ChatFactory(uploader=batch.uploader)

    response = admin_client.post(
        reverse("admin:batches_batch_delete", args=[batch.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Batch.objects.exists()
    assert list(Chat.objects.all()) == [kept]


def test_chat_changelist_costs_a_fixed_number_of_queries(
    admin_client, django_assert_max_num_queries
):
    users = plain_users(3)
    chats = ChatFactory.create_batch(120, uploader=factory_cycle(users))
    for chat in chats[:40]:
        InteractionFactory.create_batch(3, chat=chat)

    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse("admin:chats_chat_changelist"), {"o": "-6"})

    assert response.status_code == 200
    assert '<td class="field-turns">3</td>' in response.text


def test_chat_change_page_shows_turns_in_fixed_queries(admin_client, django_assert_max_num_queries):
    chat = ChatFactory()
    InteractionFactory.create_batch(30, chat=chat)

    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse("admin:chats_chat_change", args=[chat.pk]))

    assert response.status_code == 200
    assert response.text.count("Answer to Question") >= 30


def test_interaction_and_override_lists_render(admin_client, django_assert_max_num_queries):
    chats = ChatFactory.create_batch(30, uploader=factory_cycle(plain_users(3)))
    for chat in chats:
        InteractionFactory(chat=chat)
    with django_assert_max_num_queries(10):
        response = admin_client.get(reverse("admin:chats_interaction_changelist"))
    assert response.status_code == 200

    response = admin_client.get(reverse("admin:chats_promptoverride_changelist"))
    assert response.status_code == 200


def test_admin_is_for_staff_only(client, owner):
    client.force_login(owner)
    response = client.get(reverse("admin:batches_batch_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
