from __future__ import annotations

import factory

from accounts.tests.factories import UserFactory
from chats.models import Chat, Interaction, PromptOverride


class ChatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Chat

    ai_provider = "extractive"
    model = "extractive"
    search_provider = "local"
    page_language = "en"
    uploader = factory.SubFactory(UserFactory)


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    chat = factory.SubFactory(ChatFactory)
    position = factory.Sequence(lambda n: n)
    question = factory.Sequence(lambda n: f"Question {n}?")
    answer = factory.LazyAttribute(lambda o: f"Answer to {o.question}")
    citation_url = "https://example.org/doc"
    citation_title = "Example document"
    search_query = factory.LazyAttribute(lambda o: o.question)
    search_results = factory.LazyFunction(
        lambda: [{"title": "Example document", "url": "https://example.org/doc", "snippet": "…"}]
    )
    model = "extractive"
    input_tokens = 100
    output_tokens = 20
    latency_ms = 5


class PromptOverrideFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PromptOverride

    owner = factory.SubFactory(UserFactory)
    key = PromptOverride.Key.SYSTEM
    text = "Answer in one short paragraph."
    enabled = True
