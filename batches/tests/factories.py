from __future__ import annotations

import factory

from accounts.tests.factories import UserFactory
from batches.models import Batch, BatchItem
from chats.tests.factories import ChatFactory


class BatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Batch

    name = factory.Sequence(lambda n: f"Batch {n}")
    ai_provider = "extractive"
    model = "extractive"
    search_provider = "local"
    page_language = "en"
    uploader = factory.SubFactory(UserFactory)


class BatchItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BatchItem

    batch = factory.SubFactory(BatchFactory)
    chat = factory.SubFactory(
        ChatFactory,
        uploader=factory.SelfAttribute("..batch.uploader"),
        ai_provider=factory.SelfAttribute("..batch.ai_provider"),
        search_provider=factory.SelfAttribute("..batch.search_provider"),
    )
    position = factory.Sequence(lambda n: n)
    question = factory.Sequence(lambda n: f"Question {n}?")
    row = factory.LazyAttribute(lambda o: {"question": o.question})
