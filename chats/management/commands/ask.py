"""`manage.py ask "QUESTION"`: one question through the whole chat pipeline, streamed."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chats.errors import ChatPipelineError
from chats.models import Chat, Language
from chats.prompts import AnswerStreamFilter
from chats.services import check_chat_settings, process_message


class Command(BaseCommand):
    help = (
        "Ask one question through the chat pipeline (search, prompt, model, parse, store) "
        "and stream the answer. The chat is kept and can be opened at /chats/<chat id>/."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("question", help="the question to ask")
        parser.add_argument(
            "--provider",
            default=settings.DEFAULT_AI_PROVIDER,
            help="AI provider: extractive, openai, azure, anthropic, compatible "
            "(default: DEFAULT_AI_PROVIDER)",
        )
        parser.add_argument("--model", default="", help="model (default: the provider's first)")
        parser.add_argument(
            "--search",
            default=settings.DEFAULT_SEARCH_PROVIDER,
            help="search provider: none, local, google, searxng, canadaca "
            "(default: DEFAULT_SEARCH_PROVIDER)",
        )
        parser.add_argument("--language", choices=Language.values, default=Language.EN)
        parser.add_argument("--referring-url", default="", help="page the question came from")
        parser.add_argument(
            "--raw", action="store_true", help="stream the raw model output, tags included"
        )

    def handle(self, *args, **options) -> None:
        question = options["question"].strip()
        if not question:
            raise CommandError("The question is empty.")
        try:
            model = check_chat_settings(
                ai_provider=options["provider"],
                model=options["model"],
                search_provider=options["search"],
            )
        except ChatPipelineError as exc:
            raise CommandError(str(exc)) from exc
        chat = Chat.objects.create(
            ai_provider=options["provider"],
            model=model,
            search_provider=options["search"],
            page_language=options["language"],
            uploader=None,
        )
        shown = AnswerStreamFilter()

        def on_token(token: str) -> None:
            piece = token if options["raw"] else shown.feed(token)
            if piece:
                self.stdout.write(piece, ending="")
                self.stdout.flush()

        try:
            interaction = process_message(
                chat=chat,
                question=question,
                referring_url=options["referring_url"],
                on_token=on_token,
            )
        except ChatPipelineError as exc:
            chat.delete()  # an empty chat helps nobody
            self.stdout.write("")
            raise CommandError(str(exc)) from exc
        if not options["raw"] and shown.shown != interaction.answer:
            # The stream showed only part of it (the model wrapped the format oddly):
            # print the parsed answer so the output is complete.
            self.stdout.write("\n" + interaction.answer, ending="")
        self.stdout.write("\n")
        if interaction.citation_url:
            title = interaction.citation_title or interaction.citation_url
            self.stdout.write(f"Citation: {title} <{interaction.citation_url}>")
        else:
            self.stdout.write("Citation: none")
        tokens_in = "?" if interaction.input_tokens is None else interaction.input_tokens
        tokens_out = "?" if interaction.output_tokens is None else interaction.output_tokens
        self.stdout.write(
            f"Model: {chat.ai_provider} / {interaction.model}; tokens: {tokens_in} in, "
            f"{tokens_out} out; latency: {interaction.latency_ms} ms"
        )
        self.stdout.write(f"Chat: {chat.chat_id}")
